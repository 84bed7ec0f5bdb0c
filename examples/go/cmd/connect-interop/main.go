// Command connect-interop runs the interop checks against a kgen-gateway started with --sandbox, through
// connect-go (the Connect protocol, which the gateway serves on its gRPC port) and the stubs protoc-gen-connect-go
// generates:
//
//	go run ./cmd/connect-interop --target 127.0.0.1:50051 [--user-id interop-connect-go-<random>]
//	    [--expect-client-name NAME] [--verbose]
//
// Each case runs in four variants: over HTTP/1.1 (a plain http.Transport) and over HTTP/2 cleartext (h2c, the
// standard library's Transport.Protocols), each with the JSON codec (connect.WithProtoJSON(), application/json)
// and the binary one (application/proto); the bidirectional CreateSessions only over h2c. One line per case
// (`[connect-go] PASS <variant>: <case>` or `[connect-go] FAIL <variant>: <case>: <why>`), then the summary
// `[connect-go] N passed, N failed`; exit status 1 when any case failed, 2 for bad usage. --verbose prints each
// decoded error under its case. An http.RoundTripper under connect-go records what went over the wire (the HTTP
// version, the status, the headers), so the cases also check what connect-go does not show: that the protocol is
// the one asked for, the HTTP status of Connect's code table, connect-timeout-ms, content-encoding.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	sessionv1 "github.com/kgen/kgen-gateway/examples/go/gen/kgen/session/v1"
	"github.com/kgen/kgen-gateway/examples/go/gen/kgen/session/v1/sessionv1connect"
	"github.com/kgen/kgen-gateway/examples/go/kgen"
	"github.com/kgen/kgen-gateway/examples/go/kgen/interop"
)

const (
	label       = "connect-go"
	callTimeout = 10 * time.Second
	requestID   = "x-request-id"
)

// exchange is one HTTP request connect-go made and what came back (status 0: no answer, e.g. the client's own
// deadline ran out first).
type exchange struct {
	request  http.Header
	status   int
	proto    string
	response http.Header
}

// recorder is the http.RoundTripper under a connect-go client: it passes each request on and keeps the exchange.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []exchange
	// timeout, when set, replaces the connect-timeout-ms connect-go derives from the context's deadline: to see
	// the gateway answer a deadline before the client's own runs out.
	timeout string
}

func (r *recorder) RoundTrip(request *http.Request) (*http.Response, error) {
	r.mu.Lock()
	timeout := r.timeout
	r.mu.Unlock()
	if timeout != "" {
		request = request.Clone(request.Context())
		request.Header.Set("Connect-Timeout-Ms", timeout)
	}
	seen := exchange{request: request.Header.Clone()}
	response, err := r.next.RoundTrip(request)
	if err == nil {
		seen.status, seen.proto, seen.response = response.StatusCode, response.Proto, response.Header.Clone()
	}
	r.mu.Lock()
	r.seen = append(r.seen, seen)
	r.mu.Unlock()
	return response, err
}

func (r *recorder) setTimeout(ms string) {
	r.mu.Lock()
	r.timeout = ms
	r.mu.Unlock()
}

// take returns the exchanges since the last take.
func (r *recorder) take() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := r.seen
	r.seen = nil
	return seen
}

// variant is one way of calling: a transport (HTTP/1.1 or h2c) and a codec (JSON or binary).
type variant struct {
	name        string // in the case lines, e.g. "HTTP/1.1 JSON"
	slug        string // in user ids, e.g. "h1-json"
	h2c         bool
	proto       string // the HTTP version every answer must come in, as http.Response.Proto
	contentType string // of the request and of a successful answer
	rec         *recorder
	client      sessionv1connect.SessionServiceClient
	gzip        sessionv1connect.SessionServiceClient // the same, sending gzip-compressed requests
	exchanges   []exchange                            // those of the running case, once it called
}

func newVariant(target string, h2c, json bool) *variant {
	v := &variant{h2c: h2c, proto: "HTTP/1.1", rec: &recorder{next: kgen.ConnectTransport(h2c)}}
	transport, slug := "HTTP/1.1", "h1"
	if h2c {
		transport, slug, v.proto = "h2c", "h2c", "HTTP/2.0"
	}
	codec, contentType := "proto", "application/proto"
	var opts []connect.ClientOption
	if json {
		codec, contentType = "JSON", "application/json"
		opts = append(opts, connect.WithProtoJSON())
	}
	v.name, v.slug, v.contentType = transport+" "+codec, slug+"-"+strings.ToLower(codec), contentType
	httpClient := &http.Client{Transport: v.rec}
	v.client = kgen.NewConnectClient(httpClient, target, opts...)
	v.gzip = kgen.NewConnectClient(httpClient, target, append(opts, connect.WithSendGzip())...)
	return v
}

// last is the last exchange of the running case; the case fails when there is none, or it had no answer.
func (v *variant) last() exchange {
	v.exchanges = append(v.exchanges, v.rec.take()...)
	interop.Expect(len(v.exchanges) > 0, "no HTTP request was made")
	last := v.exchanges[len(v.exchanges)-1]
	interop.Expect(last.status != 0, "the HTTP request got no answer")
	return last
}

// expectHTTPStatus checks the last answer's HTTP status against Connect's code table.
func (v *variant) expectHTTPStatus(want int) {
	got := v.last().status
	interop.Expect(got == want, "HTTP status: got %d %s, want %d %s", got, http.StatusText(got), want, http.StatusText(want))
}

func callContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), callTimeout)
}

func createSession(ctx context.Context, client sessionv1connect.SessionServiceClient, userID string, header http.Header) (*connect.Response[sessionv1.CreateSessionResponse], error) {
	request := connect.NewRequest(&sessionv1.CreateSessionRequest{UserId: userID})
	for name, values := range header {
		request.Header()[name] = values
	}
	return client.CreateSession(ctx, request)
}

// mustSucceed fails the case with the decoded error when err is set.
func mustSucceed(err error) {
	if err != nil {
		lines := kgen.DecodeConnectError(err).Describe()
		for i := range lines {
			lines[i] = strings.TrimSpace(lines[i])
		}
		interop.Fail("the call failed: %s", strings.Join(lines, "; "))
	}
}

// expectCode checks that err is a *connect.Error with code; returns its decoded details.
func expectCode(err error, code connect.Code) kgen.ConnectErrorDetails {
	interop.Expect(err != nil, "the call succeeded, want %s", code)
	d := kgen.DecodeConnectError(err)
	interop.Expect(d.Code == code, "code: got %s (%s), want %s", d.Code, d.Message, code)
	return d
}

// expectErrorInfo checks that the error is the gateway's, with details that all decode and an ErrorInfo of the
// gateway's domain with reason.
func expectErrorInfo(d kgen.ConnectErrorDetails, reason string) {
	interop.Expect(d.Wire, "the error is the client's, not the gateway's answer: %s", d.Message)
	interop.Expect(len(d.Types) > 0, "the Connect error has no details")
	interop.Expect(len(d.Other) == 0, "details of another type or that did not decode: %v", d.Other)
	interop.Expect(d.ErrorInfo != nil, "no google.rpc.ErrorInfo in the details (types %v)", d.Types)
	interop.ExpectEq(d.ErrorInfo.GetReason(), reason, "ErrorInfo.reason")
	interop.ExpectEq(d.ErrorInfo.GetDomain(), interop.Domain, "ErrorInfo.domain")
}

func violationFields(d kgen.ConnectErrorDetails) []string {
	var fields []string
	for _, v := range d.BadRequest.GetFieldViolations() {
		fields = append(fields, v.GetField())
	}
	return fields
}

func main() {
	os.Exit(run())
}

func run() int {
	flags := flag.NewFlagSet("connect-interop", flag.ContinueOnError)
	target := flags.String("target", "", "HOST:PORT of a gateway running with --sandbox, plaintext (required)")
	userID := flags.String("user-id", "interop-connect-go-"+interop.RandomSuffix(),
		"a fresh user id (each variant appends its own suffix)")
	clientName := os.Getenv("INTEROP_EXPECT_CLIENT_NAME")
	if clientName == "" {
		clientName = interop.DefaultClientName
	}
	flags.StringVar(&clientName, "expect-client-name", clientName, "the sandbox's third_party_client_name")
	verbose := flags.Bool("verbose", false, "print each decoded error under its case")
	if err := flags.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *target == "" || strings.Contains(*target, "/") || flags.NArg() > 0 {
		fmt.Fprintln(os.Stderr,
			"usage: connect-interop --target HOST:PORT [--user-id ID] [--expect-client-name NAME] [--verbose]")
		return 2
	}

	r := interop.Results{Label: label}
	for _, h2c := range []bool{false, true} {
		for _, json := range []bool{true, false} {
			runVariant(&r, newVariant(*target, h2c, json), *userID, clientName, *verbose)
		}
	}
	return r.Summary()
}

// runVariant runs every case in one variant.
func runVariant(r *interop.Results, v *variant, userID, clientName string, verbose bool) {
	user := userID + "-" + v.slug
	var shown []string // the decoded error of the running case, for --verbose
	show := func(d kgen.ConnectErrorDetails) {
		shown = append(shown, d.Describe()...)
		if value := d.Meta.Get(requestID); value != "" {
			shown = append(shown, "  x-request-id: "+value)
		}
	}
	runCase := func(name string, fn func() string) {
		v.rec.take()
		v.exchanges, shown = nil, nil
		r.RunCase(v.name+": "+name, func() string {
			note := fn()
			for _, seen := range append(v.exchanges, v.rec.take()...) {
				interop.Expect(seen.status == 0 || seen.proto == v.proto, "an answer came over %s, want %s",
					seen.proto, v.proto)
			}
			return note
		})
		if verbose {
			for _, line := range shown {
				fmt.Println("    " + line)
			}
		}
	}
	var first *sessionv1.CreateSessionResponse

	runCase("success: first call, every field (is_new_user true)", func() string {
		ctx, cancel := callContext()
		defer cancel()
		answer, err := createSession(ctx, v.client, user, nil)
		mustSucceed(err)
		fields := interop.CheckEverySession(answer.Msg, user, clientName, true)
		seen := v.last()
		interop.ExpectEq(seen.request.Get("content-type"), v.contentType, "the request's content-type")
		interop.ExpectEq(seen.response.Get("content-type"), v.contentType, "the answer's content-type")
		first = answer.Msg
		return fmt.Sprintf("user_id=%s, all %d fields checked, %s over %s", user, fields, v.contentType, seen.proto)
	})
	runCase("success: second call for the same user (is_new_user false)", func() string {
		interop.Expect(first != nil, "the first call failed")
		ctx, cancel := callContext()
		defer cancel()
		answer, err := createSession(ctx, v.client, user, nil)
		mustSucceed(err)
		interop.CheckSession(answer.Msg, user, clientName, false)
		interop.ExpectEq(answer.Msg.GetWalletAddress(), first.GetWalletAddress(), "wallet_address on the second call")
		interop.Expect(answer.Msg.GetSessionId() != first.GetSessionId(), "session_id is not fresh on the second call")
		return "is_new_user false, same wallet_address, fresh session_id"
	})
	invalid := func(id string) func() string {
		return func() string {
			ctx, cancel := callContext()
			defer cancel()
			_, err := createSession(ctx, v.client, id, nil)
			d := expectCode(err, connect.CodeInvalidArgument)
			show(d)
			expectErrorInfo(d, "INVALID_USER_ID")
			interop.Expect(d.BadRequest != nil, "no google.rpc.BadRequest in the details (types %v)", d.Types)
			interop.ExpectSliceEq(violationFields(d), []string{"user_id"}, "BadRequest field violations")
			v.expectHTTPStatus(http.StatusBadRequest)
			return fmt.Sprintf("HTTP 400, BadRequest field=user_id (%s)",
				d.BadRequest.GetFieldViolations()[0].GetDescription())
		}
	}
	runCase("invalid user_id '' -> invalid_argument/INVALID_USER_ID + BadRequest", invalid(""))
	runCase("invalid user_id '   ' -> invalid_argument/INVALID_USER_ID + BadRequest", invalid("   "))
	runCase("fault:status:429 -> resource_exhausted/UPSTREAM_RATE_LIMITED + RetryInfo 1s", func() string {
		ctx, cancel := callContext()
		defer cancel()
		_, err := createSession(ctx, v.client, "fault:status:429", nil)
		d := expectCode(err, connect.CodeResourceExhausted)
		show(d)
		expectErrorInfo(d, "UPSTREAM_RATE_LIMITED")
		metadata := d.ErrorInfo.GetMetadata()
		interop.ExpectEq(metadata["upstream_status"], "429", "ErrorInfo.metadata upstream_status")
		attempts := metadata["attempts"]
		n, err := strconv.Atoi(attempts)
		interop.Expect(err == nil && n >= 1, "ErrorInfo.metadata attempts: %q", attempts)
		interop.Expect(d.RetryInfo != nil, "no google.rpc.RetryInfo in the details (types %v)", d.Types)
		delay := d.RetryInfo.GetRetryDelay()
		interop.ExpectEq([2]int64{delay.GetSeconds(), int64(delay.GetNanos())}, [2]int64{1, 0},
			"RetryInfo.retry_delay (seconds, nanos)")
		v.expectHTTPStatus(http.StatusTooManyRequests)
		return "HTTP 429, RetryInfo 1s, attempts=" + attempts
	})
	runCase("fault:delay:3000 with a 300 ms deadline -> deadline_exceeded", func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		started := time.Now()
		_, err := createSession(ctx, v.client, "fault:delay:3000", nil)
		elapsed := time.Since(started)
		d := expectCode(err, connect.CodeDeadlineExceeded)
		show(d)
		interop.Expect(elapsed < 2*time.Second, "deadline_exceeded only after %.2fs (deadline 0.3s)", elapsed.Seconds())
		v.exchanges = append(v.exchanges, v.rec.take()...)
		interop.Expect(len(v.exchanges) == 1, "%d HTTP requests, want 1", len(v.exchanges))
		timeout := v.exchanges[0].request.Get("connect-timeout-ms")
		ms, err := strconv.Atoi(timeout)
		interop.Expect(err == nil && 0 < ms && ms <= 300, "the request's connect-timeout-ms: %q, want 1..300", timeout)
		answer := "the client's own deadline ran out first"
		if d.Wire {
			expectErrorInfo(d, "DEADLINE_EXCEEDED")
			v.expectHTTPStatus(http.StatusGatewayTimeout)
			answer = "HTTP 504, ErrorInfo reason DEADLINE_EXCEEDED"
		}
		return fmt.Sprintf("connect-timeout-ms %d sent, after %d ms: %s", ms, elapsed.Milliseconds(), answer)
	})
	runCase("fault:delay:3000 with connect-timeout-ms 100 (a 5 s deadline) -> the gateway's deadline_exceeded", func() string {
		// The header is rewritten under connect-go (recorder.timeout): with the deadline of the case above, the
		// client's own deadline runs out with the gateway's, and connect-go reports its own.
		v.rec.setTimeout("100")
		defer v.rec.setTimeout("")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		started := time.Now()
		_, err := createSession(ctx, v.client, "fault:delay:3000", nil)
		elapsed := time.Since(started)
		d := expectCode(err, connect.CodeDeadlineExceeded)
		show(d)
		expectErrorInfo(d, "DEADLINE_EXCEEDED")
		v.expectHTTPStatus(http.StatusGatewayTimeout)
		interop.Expect(elapsed < 2*time.Second, "deadline_exceeded only after %.2fs (connect-timeout-ms 100)",
			elapsed.Seconds())
		return fmt.Sprintf("after %d ms: HTTP 504, ErrorInfo reason DEADLINE_EXCEEDED", elapsed.Milliseconds())
	})
	runCase("batch: CreateSessionBatch of 2 -> results in request order", func() string {
		ctx, cancel := callContext()
		defer cancel()
		userIDs := []string{user + "-batch-0", user + "-batch-1"}
		answer, err := v.client.CreateSessionBatch(ctx,
			connect.NewRequest(&sessionv1.CreateSessionBatchRequest{UserIds: userIDs}))
		mustSucceed(err)
		results := answer.Msg.GetResults()
		resultIDs := make([]string, len(results))
		for i, result := range results {
			resultIDs[i] = result.GetUserId()
		}
		interop.ExpectSliceEq(resultIDs, userIDs, "results in request order")
		for i, result := range results {
			interop.Expect(result.GetSession() != nil, "result %d: got error %v, want a session", i, result.GetError())
			interop.CheckSession(result.GetSession(), userIDs[i], clientName, true)
		}
		interop.ExpectEq(v.last().response.Get("content-type"), v.contentType, "the answer's content-type")
		return fmt.Sprintf("%d sessions in order", len(results))
	})
	if v.h2c {
		runCase("streaming: CreateSessions over Connect -> unimplemented", func() string {
			ctx, cancel := callContext()
			defer cancel()
			stream := v.client.CreateSessions(ctx)
			sendErr := stream.Send(&sessionv1.CreateSessionRequest{UserId: user + "-stream"})
			_, err := stream.Receive()
			_ = stream.CloseRequest()
			_ = stream.CloseResponse()
			interop.Expect(err != nil, "the stream answered a message, want unimplemented")
			if sendErr != nil && !errors.Is(sendErr, io.EOF) {
				err = sendErr
			}
			d := kgen.DecodeConnectError(err)
			show(d)
			if d.Code != connect.CodeUnimplemented {
				answer := "no HTTP answer"
				if seen := v.last(); seen.status != 0 {
					answer = fmt.Sprintf("HTTP %d, content-type %q, grpc-status %q", seen.status,
						seen.response.Get("content-type"), seen.response.Get("grpc-status"))
				}
				interop.Fail("code: got %s (%s; the gateway answered %s), want unimplemented", d.Code, d.Message, answer)
			}
			interop.Expect(d.Wire, "the error is the client's, not the gateway's answer: %s", d.Message)
			return "unimplemented: " + d.Message
		})
	}
	runCase("gzip: request and answer compressed -> success", func() string {
		ctx, cancel := callContext()
		defer cancel()
		id := user + "-gzip"
		answer, err := createSession(ctx, v.gzip, id, nil)
		mustSucceed(err)
		interop.CheckSession(answer.Msg, id, clientName, true)
		seen := v.last()
		interop.ExpectEq(seen.request.Get("content-encoding"), "gzip", "the request's content-encoding")
		interop.ExpectEq(seen.request.Get("accept-encoding"), "gzip", "the request's accept-encoding")
		interop.ExpectEq(seen.response.Get("content-encoding"), "gzip", "the answer's content-encoding")
		return "content-encoding gzip both ways"
	})
	runCase("x-request-id: echoed on a session and on an error, a UUID when not sent", func() string {
		ctx, cancel := callContext()
		defer cancel()
		sent := "connect-go-" + interop.RandomSuffix()
		answer, err := createSession(ctx, v.client, user+"-rid", http.Header{"X-Request-Id": {sent}})
		mustSucceed(err)
		interop.ExpectEq(answer.Header().Get(requestID), sent, "x-request-id of a session")
		_, err = createSession(ctx, v.client, "", http.Header{"X-Request-Id": {sent + "-error"}})
		d := expectCode(err, connect.CodeInvalidArgument)
		interop.ExpectEq(d.Meta.Get(requestID), sent+"-error", "x-request-id of an error (connect.Error.Meta())")
		answer, err = createSession(ctx, v.client, user+"-rid", nil)
		mustSucceed(err)
		created := answer.Header().Get(requestID)
		interop.Expect(interop.IsUUID(created), "x-request-id created by the gateway is not a UUID: %q", created)
		return "created " + created
	})
}
