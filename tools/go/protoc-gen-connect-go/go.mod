// Pins protoc-gen-connect-go and every module it builds from, for scripts/go-tools.sh, which installs it from here
// with `go install` (no network once the module cache has them). To move it: `go get -tool connectrpc.com/connect/cmd/protoc-gen-connect-go@VERSION && go mod tidy` here.
module kgen-gateway/tools/go/protoc-gen-connect-go

go 1.26.0

tool connectrpc.com/connect/cmd/protoc-gen-connect-go

require (
	connectrpc.com/connect v1.21.1 // indirect
	google.golang.org/protobuf v1.36.11 // indirect
)
