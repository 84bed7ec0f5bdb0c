// Command interop runs the interop checks against a kgen-gateway started with --sandbox, through grpc-go and the
// generated Go stubs:
//
//	go run ./cmd/interop --target 127.0.0.1:50051 [--user-id interop-go-<random>] [--expect-client-name NAME]
//
// It follows examples/python/interop.py case for case: one line per case (`[go] PASS <case>` or
// `[go] FAIL <case>: <why>`), then the summary `[go] N passed, N failed`; exit status 1 when any case failed, 2
// for bad usage. The sandbox facts checked here are in the README ("The sandbox") and src/sandbox/mod.rs.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	sessionv1 "github.com/kgen/kgen-gateway/examples/go/gen/kgen/session/v1"
	"github.com/kgen/kgen-gateway/examples/go/kgen"
	"github.com/kgen/kgen-gateway/examples/go/kgen/interop"
)

const callTimeout = 10 * time.Second

// expectStatus runs call, which must fail with code; returns its decoded details.
func expectStatus(call func() error, code codes.Code) kgen.ErrorDetails {
	err := call()
	interop.Expect(err != nil, "the call succeeded, want %s", code)
	d := kgen.DecodeError(err)
	interop.Expect(d.Code == code, "status: got %s (%s), want %s", d.Code, d.Message, code)
	return d
}

func expectErrorInfo(d kgen.ErrorDetails, reason string) {
	interop.Expect(d.HasStatusDetails, "no grpc-status-details-bin trailer")
	interop.Expect(d.ErrorInfo != nil, "no ErrorInfo in the details")
	interop.ExpectEq(d.ErrorInfo.GetReason(), reason, "ErrorInfo.reason")
	interop.ExpectEq(d.ErrorInfo.GetDomain(), interop.Domain, "ErrorInfo.domain")
}

func violationFields(d kgen.ErrorDetails) []string {
	var fields []string
	for _, v := range d.BadRequest.GetFieldViolations() {
		fields = append(fields, v.GetField())
	}
	return fields
}

// checkBatchAnswer checks one batch answer against what CreateSession answers for userID (see batchUserIDs);
// returns the outcome's name.
func checkBatchAnswer(answer *sessionv1.CreateSessionsResponse, userID, clientName string) string {
	interop.ExpectEq(answer.GetUserId(), userID, "answer user_id")
	switch {
	case strings.TrimSpace(userID) == "":
		interop.Expect(answer.GetError() != nil, "outcome for %q: got a session, want an error", userID)
		d := kgen.DecodeStatus(answer.GetError())
		interop.ExpectEq(d.Code, codes.InvalidArgument, fmt.Sprintf("code for %q", userID))
		expectErrorInfo(d, "INVALID_USER_ID")
		interop.Expect(d.BadRequest != nil, "no BadRequest in the item's details")
		interop.ExpectSliceEq(violationFields(d), []string{"user_id"}, "BadRequest field violations")
		return "INVALID_ARGUMENT"
	case userID == "fault:status:404":
		interop.Expect(answer.GetError() != nil, "outcome for %q: got a session, want an error", userID)
		d := kgen.DecodeStatus(answer.GetError())
		interop.ExpectEq(d.Code, codes.NotFound, fmt.Sprintf("code for %q", userID))
		expectErrorInfo(d, "UPSTREAM_NOT_FOUND")
		interop.ExpectEq(d.ErrorInfo.GetMetadata()["upstream_status"], "404", "ErrorInfo.metadata upstream_status")
		return "NOT_FOUND"
	}
	interop.Expect(answer.GetSession() != nil, "outcome for %q: got error %v, want a session", userID, answer.GetError())
	interop.CheckSession(answer.GetSession(), userID, clientName, true)
	return "session"
}

// batchUserIDs: five user ids, three new gamers, an invalid (empty) one, and an injected 404.
func batchUserIDs(prefix string) []string {
	return []string{prefix + "-0", "", prefix + "-1", "fault:status:404", prefix + "-2"}
}

func main() {
	os.Exit(run())
}

func run() int {
	flags := flag.NewFlagSet("interop", flag.ContinueOnError)
	target := flags.String("target", "", "HOST:PORT of a gateway running with --sandbox (required)")
	userID := flags.String("user-id", "interop-go-"+interop.RandomSuffix(), "a fresh user id")
	clientName := os.Getenv("INTEROP_EXPECT_CLIENT_NAME")
	if clientName == "" {
		clientName = interop.DefaultClientName
	}
	flags.StringVar(&clientName, "expect-client-name", clientName, "the sandbox's third_party_client_name")
	if err := flags.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *target == "" || flags.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: interop --target HOST:PORT [--user-id ID] [--expect-client-name NAME]")
		return 2
	}
	user := *userID

	conn, err := kgen.Dial(*target, "")
	if err != nil {
		fmt.Fprintf(os.Stderr, "interop: %v\n", err)
		return 2
	}
	defer conn.Close()

	r := interop.Results{Label: "go"}
	var first *sessionv1.CreateSessionResponse

	invalid := func(id string) func() string {
		return func() string {
			d := expectStatus(func() error {
				_, err := kgen.CreateSession(conn, id, callTimeout)
				return err
			}, codes.InvalidArgument)
			expectErrorInfo(d, "INVALID_USER_ID")
			interop.Expect(d.BadRequest != nil, "no BadRequest in the details")
			interop.ExpectSliceEq(violationFields(d), []string{"user_id"}, "BadRequest field violations")
			return fmt.Sprintf("BadRequest field=user_id (%s)", d.BadRequest.GetFieldViolations()[0].GetDescription())
		}
	}
	health := func(service string) func() string {
		return func() string {
			got, err := kgen.HealthCheck(conn, service, 5*time.Second)
			interop.Expect(err == nil, "health check failed: %v", err)
			interop.ExpectEq(got, "SERVING", fmt.Sprintf("health of %q", service))
			return "SERVING"
		}
	}

	r.RunCase("success: first call, every field (is_new_user true)", func() string {
		s, err := kgen.CreateSession(conn, user, callTimeout)
		interop.Expect(err == nil, "the call failed: %v", err)
		fields := interop.CheckEverySession(s, user, clientName, true)
		first = s
		return fmt.Sprintf("user_id=%s, all %d fields checked", user, fields)
	})
	r.RunCase("success: second call for the same user (is_new_user false)", func() string {
		interop.Expect(first != nil, "the first call failed")
		s, err := kgen.CreateSession(conn, user, callTimeout)
		interop.Expect(err == nil, "the call failed: %v", err)
		interop.CheckSession(s, user, clientName, false)
		interop.ExpectEq(s.GetWalletAddress(), first.GetWalletAddress(), "wallet_address on the second call")
		interop.Expect(s.GetSessionId() != first.GetSessionId(), "session_id is not fresh on the second call")
		return "is_new_user false, same wallet_address, fresh session_id"
	})
	r.RunCase("invalid user_id '' -> INVALID_ARGUMENT/INVALID_USER_ID + BadRequest", invalid(""))
	r.RunCase("invalid user_id '   ' -> INVALID_ARGUMENT/INVALID_USER_ID + BadRequest", invalid("   "))
	r.RunCase("fault:status:429 -> RESOURCE_EXHAUSTED/UPSTREAM_RATE_LIMITED + RetryInfo", func() string {
		d := expectStatus(func() error {
			_, err := kgen.CreateSession(conn, "fault:status:429", callTimeout)
			return err
		}, codes.ResourceExhausted)
		expectErrorInfo(d, "UPSTREAM_RATE_LIMITED")
		metadata := d.ErrorInfo.GetMetadata()
		interop.ExpectEq(metadata["upstream_status"], "429", "ErrorInfo.metadata upstream_status")
		attempts := metadata["attempts"]
		n, err := strconv.Atoi(attempts)
		interop.Expect(err == nil && n >= 1, "ErrorInfo.metadata attempts: %q", attempts)
		interop.Expect(d.RetryInfo != nil, "no RetryInfo in the details")
		delay := d.RetryInfo.GetRetryDelay()
		interop.ExpectEq([2]int64{delay.GetSeconds(), int64(delay.GetNanos())}, [2]int64{1, 0},
			"RetryInfo.retry_delay (seconds, nanos)")
		return "RetryInfo 1s, attempts=" + attempts
	})
	r.RunCase("fault:delay:3000 with a 300 ms deadline -> DEADLINE_EXCEEDED", func() string {
		started := time.Now()
		d := expectStatus(func() error {
			_, err := kgen.CreateSession(conn, "fault:delay:3000", 300*time.Millisecond)
			return err
		}, codes.DeadlineExceeded)
		elapsed := time.Since(started)
		interop.Expect(elapsed < 2*time.Second, "DEADLINE_EXCEEDED only after %.2fs (deadline 0.3s)", elapsed.Seconds())
		reason := "none (client-side deadline)"
		if d.ErrorInfo != nil {
			reason = d.ErrorInfo.GetReason()
		}
		return fmt.Sprintf("after %d ms, ErrorInfo reason: %s", elapsed.Milliseconds(), reason)
	})
	r.RunCase("batch: CreateSessions of 5 (one '', one fault:status:404) -> 5 answers as CreateSession gives", func() string {
		userIDs := batchUserIDs(user + "-stream")
		answers, err := kgen.CreateSessions(conn, userIDs, callTimeout)
		interop.Expect(err == nil, "the stream failed after %d answers: %v", len(answers), err)
		interop.ExpectEq(len(answers), len(userIDs), "answers")
		byUser := map[string]*sessionv1.CreateSessionsResponse{}
		for _, a := range answers {
			byUser[a.GetUserId()] = a
		}
		got := make([]string, 0, len(byUser))
		for id := range byUser {
			got = append(got, id)
		}
		want := slices.Clone(userIDs)
		sort.Strings(got)
		sort.Strings(want)
		interop.ExpectSliceEq(got, want, "one answer per user_id")
		outcomes := make([]string, len(userIDs))
		for i, id := range userIDs {
			outcomes[i] = checkBatchAnswer(byUser[id], id, clientName)
		}
		return fmt.Sprintf("%d answers: %s", len(answers), strings.Join(outcomes, ", "))
	})
	r.RunCase("batch: CreateSessionBatch of 5 (one '', one fault:status:404) -> results in request order", func() string {
		userIDs := batchUserIDs(user + "-batch")
		reply, err := kgen.CreateSessionBatch(conn, userIDs, callTimeout)
		interop.Expect(err == nil, "the call failed: %v", err)
		resultIDs := make([]string, len(reply.GetResults()))
		for i, res := range reply.GetResults() {
			resultIDs[i] = res.GetUserId()
		}
		interop.ExpectSliceEq(resultIDs, userIDs, "results in request order")
		outcomes := make([]string, len(userIDs))
		for i, id := range userIDs {
			outcomes[i] = checkBatchAnswer(reply.GetResults()[i], id, clientName)
		}
		return fmt.Sprintf("%d results in order: %s", len(reply.GetResults()), strings.Join(outcomes, ", "))
	})
	r.RunCase("batch: CreateSessionBatch of 101 -> INVALID_ARGUMENT/INVALID_BATCH_SIZE + BadRequest", func() string {
		userIDs := make([]string, 101)
		for i := range userIDs {
			userIDs[i] = fmt.Sprintf("%s-big-%d", user, i)
		}
		d := expectStatus(func() error {
			_, err := kgen.CreateSessionBatch(conn, userIDs, callTimeout)
			return err
		}, codes.InvalidArgument)
		expectErrorInfo(d, "INVALID_BATCH_SIZE")
		interop.Expect(d.BadRequest != nil, "no BadRequest in the details")
		interop.ExpectSliceEq(violationFields(d), []string{"user_ids"}, "BadRequest field violations")
		return fmt.Sprintf("BadRequest field=user_ids (%s)", d.BadRequest.GetFieldViolations()[0].GetDescription())
	})
	r.RunCase("health check '' -> SERVING", health(""))
	r.RunCase(fmt.Sprintf("health check '%s' -> SERVING", kgen.SessionService), health(kgen.SessionService))

	return r.Summary()
}
