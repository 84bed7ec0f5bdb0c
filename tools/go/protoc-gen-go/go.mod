// Pins protoc-gen-go and every module it builds from, for scripts/go-tools.sh, which installs it from here with
// `go install` (no network once the module cache has them). To move it: `go get -tool google.golang.org/protobuf/cmd/protoc-gen-go@VERSION && go mod tidy` here.
module kgen-gateway/tools/go/protoc-gen-go

go 1.26

tool google.golang.org/protobuf/cmd/protoc-gen-go

require google.golang.org/protobuf v1.36.12 // indirect
