// Command create-session calls kgen.session.v1.SessionService/CreateSession on a kgen-gateway and prints the
// session or the error:
//
//	go run ./cmd/create-session --target 127.0.0.1:50051 --user-id FTC_User1 [--timeout 10s] [--ca-file ca.pem]
//
// (or ./create-session.sh with the same flags, which generates the stubs first). On failure the gateway's
// machine-readable details, carried in the grpc-status-details-bin trailer as a serialized google.rpc.Status,
// are decoded with status.FromError(err).Details() and printed: ErrorInfo (reason, domain, metadata), RetryInfo
// (how long to wait) and BadRequest (which field was wrong). Exit status: 0 on success, 1 when the call failed,
// 2 for bad usage.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kgen/kgen-gateway/examples/go/kgen"
)

func main() {
	os.Exit(run())
}

func run() int {
	flags := flag.NewFlagSet("create-session", flag.ContinueOnError)
	target := flags.String("target", "127.0.0.1:50051", "gateway address, HOST:PORT")
	userID := flags.String("user-id", "", "the gamer's id in your game (required)")
	timeout := flags.Duration("timeout", 10*time.Second, "the call's deadline")
	caFile := flags.String("ca-file", "", "PEM file of the CA that signed the gateway's certificate: use TLS (default: plaintext h2c)")
	if err := flags.Parse(os.Args[1:]); err != nil {
		return 2
	}
	userIDSet := false // an empty --user-id '' is sent as is (the gateway answers INVALID_ARGUMENT)
	flags.Visit(func(f *flag.Flag) { userIDSet = userIDSet || f.Name == "user-id" })
	if !userIDSet || flags.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: create-session --target HOST:PORT --user-id ID [--timeout 10s] [--ca-file ca.pem]")
		return 2
	}

	conn, err := kgen.Dial(*target, *caFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "create-session: %v\n", err)
		return 2
	}
	defer conn.Close()

	session, err := kgen.CreateSession(conn, *userID, *timeout)
	if err != nil {
		for _, line := range kgen.DecodeError(err).Describe() {
			fmt.Println(line)
		}
		return 1
	}
	for _, line := range kgen.DescribeSession(session) {
		fmt.Println(line)
	}
	return 0
}
