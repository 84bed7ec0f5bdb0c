// Pins h2spec and every module it builds from, for scripts/go-tools.sh, which installs it from here with
// `go install` (no network once the module cache has them). h2spec's last release, v2.2.1, predates Go modules
// (hence +incompatible): `go install …@v2.2.1+incompatible` alone would take its dependencies at their newest.
module kgen-gateway/tools/go/h2spec

go 1.26.0

require (
	github.com/fatih/color v1.19.0 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/spf13/cobra v1.10.2 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	github.com/summerwind/h2spec v2.2.1+incompatible // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
)

tool github.com/summerwind/h2spec/cmd/h2spec
