// Pins protoc-gen-go-grpc and every module it builds from, for scripts/go-tools.sh, which installs it from here with
// `go install` (no network once the module cache has them). To move it: `go get -tool google.golang.org/grpc/cmd/protoc-gen-go-grpc@VERSION && go mod tidy` here.
module kgen-gateway/tools/go/protoc-gen-go-grpc

go 1.26

tool google.golang.org/grpc/cmd/protoc-gen-go-grpc

require (
	google.golang.org/grpc/cmd/protoc-gen-go-grpc v1.6.2 // indirect
	google.golang.org/protobuf v1.36.11 // indirect
)
