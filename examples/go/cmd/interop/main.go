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
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/reflect/protoreflect"

	sessionv1 "github.com/kgen/kgen-gateway/examples/go/gen/kgen/session/v1"
	"github.com/kgen/kgen-gateway/examples/go/kgen"
)

const (
	lang   = "go"
	domain = "kgen-gateway"
	// What the embedded sandbox (always client id `sandbox-client`) calls the game: `SANDBOX_` + the client id
	// upper-cased.
	defaultClientName = "SANDBOX_SANDBOX_CLIENT"
	callTimeout       = 10 * time.Second
)

var (
	uuidRE     = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	walletRE   = regexp.MustCompile(`^0x[0-9a-f]{40}$`)
	clientIDRE = regexp.MustCompile(`^[0-9]{8}$`)
	b64urlRE   = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	goTimeRE   = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})? \+0000 UTC$`)
	// Fields the sandbox always leaves empty.
	emptyFields = []string{
		"name", "username", "email", "device_id", "phonenumber", "date_joined", "playertag", "location",
		"location_name", "device_model", "screen_height", "screen_width", "os_name", "os_version", "browser_name",
		"indigg_wallet_address", "linked_phone",
	}
)

// checkFailed is a failed expectation: the case fails with its text.
type checkFailed struct{ what string }

func (c checkFailed) Error() string { return c.what }

// expect, expectEq and fail abort the running case (recovered by runCase); the cases read as lists of facts.
func fail(format string, args ...any) { panic(checkFailed{fmt.Sprintf(format, args...)}) }

func expect(condition bool, format string, args ...any) {
	if !condition {
		fail(format, args...)
	}
}

func expectEq[T comparable](actual, expected T, what string) {
	if actual != expected {
		fail("%s: got %#v, want %#v", what, actual, expected)
	}
}

func expectSliceEq[T comparable](actual, expected []T, what string) {
	if !slices.Equal(actual, expected) {
		fail("%s: got %#v, want %#v", what, actual, expected)
	}
}

func checkToken(token, namespaced, name string) {
	parts := strings.Split(token, ".")
	expectEq(len(parts), 3, name+" parts")
	for _, part := range parts {
		expect(b64urlRE.MatchString(part), "%s: a part is not unpadded base64url", name)
	}
	header, err := kgen.DecodeJWTPart(parts[0])
	expect(err == nil, "%s: header is not base64url JSON (%v)", name, err)
	payload, err := kgen.DecodeJWTPart(parts[1])
	expect(err == nil, "%s: payload is not base64url JSON (%v)", name, err)
	_, hasAlg := header["alg"]
	expect(hasAlg, "%s: header has no alg", name)
	sub, _ := payload["sub"].(string)
	expectEq(sub, namespaced, name+" payload sub")
}

// checkSession checks every field against the sandbox facts; returns the names of the fields checked.
func checkSession(s *sessionv1.CreateSessionResponse, userID, clientName string, newUser bool) map[string]bool {
	checked := map[string]bool{}
	m := s.ProtoReflect()
	field := func(name string) protoreflect.Value {
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
		expect(fd != nil, "the response has no field %q", name)
		checked[name] = true
		return m.Get(fd)
	}

	expect(uuidRE.MatchString(field("session_id").String()), "session_id is not a UUID: %q", s.GetSessionId())
	expectEq(field("user_id").String(), userID, "user_id")
	for _, name := range emptyFields {
		expectEq(field(name).String(), "", name)
	}
	level := field("level").Int()
	expect(0 <= level && level <= 49, "level out of 0..=49: %d", level)
	rank := field("rank").Int()
	expect(0 <= rank && rank <= 2550 && rank%10 == 0, "rank not a multiple of 10 in 0..=2550: %d", rank)
	checked["indigg_id"] = true
	expect(s.IndiggId == nil, "indigg_id is set: %q", s.GetIndiggId())
	tpcid := field("third_party_client_id").String()
	expect(clientIDRE.MatchString(tpcid), "third_party_client_id is not 8 digits: %q", tpcid)
	expectEq(field("third_party_client_name").String(), clientName, "third_party_client_name")
	namespaced := field("namespaced_third_party_user_id").String()
	expectEq(namespaced, tpcid+"#"+userID, "namespaced_third_party_user_id")
	expect(walletRE.MatchString(field("wallet_address").String()), "wallet_address: %q", s.GetWalletAddress())
	expectEq(field("is_new_user").Bool(), newUser, "is_new_user")
	checkToken(field("access_token").String(), namespaced, "access_token")
	checkToken(field("refresh_token").String(), namespaced, "refresh_token")
	start := field("session_start_time").String()
	expect(goTimeRE.MatchString(start), "session_start_time not in Go's format: %q", start)
	parsed, err := kgen.ParseGoTime(start)
	expect(err == nil, "session_start_time does not parse: %v", err)
	expect(math.Abs(time.Since(parsed).Seconds()) < 300, "session_start_time is not now: %q", start)
	checked["session_started_at"] = true
	ts := s.GetSessionStartedAt()
	expect(ts != nil, "session_started_at is unset")
	expectEq([2]int64{ts.GetSeconds(), int64(ts.GetNanos())}, [2]int64{parsed.Unix(), int64(parsed.Nanosecond())},
		fmt.Sprintf("session_started_at vs session_start_time %q", start))
	return checked
}

// expectStatus runs call, which must fail with code; returns its decoded details.
func expectStatus(call func() error, code codes.Code) kgen.ErrorDetails {
	err := call()
	expect(err != nil, "the call succeeded, want %s", code)
	d := kgen.DecodeError(err)
	expect(d.Code == code, "status: got %s (%s), want %s", d.Code, d.Message, code)
	return d
}

func expectErrorInfo(d kgen.ErrorDetails, reason string) {
	expect(d.HasStatusDetails, "no grpc-status-details-bin trailer")
	expect(d.ErrorInfo != nil, "no ErrorInfo in the details")
	expectEq(d.ErrorInfo.GetReason(), reason, "ErrorInfo.reason")
	expectEq(d.ErrorInfo.GetDomain(), domain, "ErrorInfo.domain")
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
	expectEq(answer.GetUserId(), userID, "answer user_id")
	switch {
	case strings.TrimSpace(userID) == "":
		expect(answer.GetError() != nil, "outcome for %q: got a session, want an error", userID)
		d := kgen.DecodeStatus(answer.GetError())
		expectEq(d.Code, codes.InvalidArgument, fmt.Sprintf("code for %q", userID))
		expectErrorInfo(d, "INVALID_USER_ID")
		expect(d.BadRequest != nil, "no BadRequest in the item's details")
		expectSliceEq(violationFields(d), []string{"user_id"}, "BadRequest field violations")
		return "INVALID_ARGUMENT"
	case userID == "fault:status:404":
		expect(answer.GetError() != nil, "outcome for %q: got a session, want an error", userID)
		d := kgen.DecodeStatus(answer.GetError())
		expectEq(d.Code, codes.NotFound, fmt.Sprintf("code for %q", userID))
		expectErrorInfo(d, "UPSTREAM_NOT_FOUND")
		expectEq(d.ErrorInfo.GetMetadata()["upstream_status"], "404", "ErrorInfo.metadata upstream_status")
		return "NOT_FOUND"
	}
	expect(answer.GetSession() != nil, "outcome for %q: got error %v, want a session", userID, answer.GetError())
	checkSession(answer.GetSession(), userID, clientName, true)
	return "session"
}

// batchUserIDs: five user ids, three new gamers, an invalid (empty) one, and an injected 404.
func batchUserIDs(prefix string) []string {
	return []string{prefix + "-0", "", prefix + "-1", "fault:status:404", prefix + "-2"}
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type results struct{ passed, failed int }

// runCase runs one case and prints its line; a failed expectation or any other panic fails the case, never the
// program.
func (r *results) runCase(name string, fn func() string) {
	started := time.Now()
	var note string
	failure := func() (failure string) {
		defer func() {
			if p := recover(); p != nil {
				if c, ok := p.(checkFailed); ok {
					failure = c.what
				} else {
					failure = fmt.Sprintf("unexpected panic: %v", p)
				}
			}
		}()
		note = fn()
		return ""
	}()
	if failure != "" {
		r.failed++
		fmt.Printf("[%s] FAIL %s: %s\n", lang, name, failure)
		return
	}
	r.passed++
	if note != "" {
		note = ": " + note
	}
	fmt.Printf("[%s] PASS %s (%d ms)%s\n", lang, name, time.Since(started).Milliseconds(), note)
}

func main() {
	os.Exit(run())
}

func run() int {
	flags := flag.NewFlagSet("interop", flag.ContinueOnError)
	target := flags.String("target", "", "HOST:PORT of a gateway running with --sandbox (required)")
	userID := flags.String("user-id", "interop-go-"+randomSuffix(), "a fresh user id")
	clientName := os.Getenv("INTEROP_EXPECT_CLIENT_NAME")
	if clientName == "" {
		clientName = defaultClientName
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

	var r results
	var first *sessionv1.CreateSessionResponse

	invalid := func(id string) func() string {
		return func() string {
			d := expectStatus(func() error {
				_, err := kgen.CreateSession(conn, id, callTimeout)
				return err
			}, codes.InvalidArgument)
			expectErrorInfo(d, "INVALID_USER_ID")
			expect(d.BadRequest != nil, "no BadRequest in the details")
			expectSliceEq(violationFields(d), []string{"user_id"}, "BadRequest field violations")
			return fmt.Sprintf("BadRequest field=user_id (%s)", d.BadRequest.GetFieldViolations()[0].GetDescription())
		}
	}
	health := func(service string) func() string {
		return func() string {
			got, err := kgen.HealthCheck(conn, service, 5*time.Second)
			expect(err == nil, "health check failed: %v", err)
			expectEq(got, "SERVING", fmt.Sprintf("health of %q", service))
			return "SERVING"
		}
	}

	r.runCase("success: first call, every field (is_new_user true)", func() string {
		s, err := kgen.CreateSession(conn, user, callTimeout)
		expect(err == nil, "the call failed: %v", err)
		checked := checkSession(s, user, clientName, true)
		fields := s.ProtoReflect().Descriptor().Fields()
		var unchecked []string
		for i := 0; i < fields.Len(); i++ {
			if name := string(fields.Get(i).Name()); !checked[name] {
				unchecked = append(unchecked, name)
			}
		}
		sort.Strings(unchecked)
		expectSliceEq(unchecked, nil, "response fields without a check")
		first = s
		return fmt.Sprintf("user_id=%s, all %d fields checked", user, fields.Len())
	})
	r.runCase("success: second call for the same user (is_new_user false)", func() string {
		expect(first != nil, "the first call failed")
		s, err := kgen.CreateSession(conn, user, callTimeout)
		expect(err == nil, "the call failed: %v", err)
		checkSession(s, user, clientName, false)
		expectEq(s.GetWalletAddress(), first.GetWalletAddress(), "wallet_address on the second call")
		expect(s.GetSessionId() != first.GetSessionId(), "session_id is not fresh on the second call")
		return "is_new_user false, same wallet_address, fresh session_id"
	})
	r.runCase("invalid user_id '' -> INVALID_ARGUMENT/INVALID_USER_ID + BadRequest", invalid(""))
	r.runCase("invalid user_id '   ' -> INVALID_ARGUMENT/INVALID_USER_ID + BadRequest", invalid("   "))
	r.runCase("fault:status:429 -> RESOURCE_EXHAUSTED/UPSTREAM_RATE_LIMITED + RetryInfo", func() string {
		d := expectStatus(func() error {
			_, err := kgen.CreateSession(conn, "fault:status:429", callTimeout)
			return err
		}, codes.ResourceExhausted)
		expectErrorInfo(d, "UPSTREAM_RATE_LIMITED")
		metadata := d.ErrorInfo.GetMetadata()
		expectEq(metadata["upstream_status"], "429", "ErrorInfo.metadata upstream_status")
		attempts := metadata["attempts"]
		n, err := strconv.Atoi(attempts)
		expect(err == nil && n >= 1, "ErrorInfo.metadata attempts: %q", attempts)
		expect(d.RetryInfo != nil, "no RetryInfo in the details")
		delay := d.RetryInfo.GetRetryDelay()
		expectEq([2]int64{delay.GetSeconds(), int64(delay.GetNanos())}, [2]int64{1, 0},
			"RetryInfo.retry_delay (seconds, nanos)")
		return "RetryInfo 1s, attempts=" + attempts
	})
	r.runCase("fault:delay:3000 with a 300 ms deadline -> DEADLINE_EXCEEDED", func() string {
		started := time.Now()
		d := expectStatus(func() error {
			_, err := kgen.CreateSession(conn, "fault:delay:3000", 300*time.Millisecond)
			return err
		}, codes.DeadlineExceeded)
		elapsed := time.Since(started)
		expect(elapsed < 2*time.Second, "DEADLINE_EXCEEDED only after %.2fs (deadline 0.3s)", elapsed.Seconds())
		reason := "none (client-side deadline)"
		if d.ErrorInfo != nil {
			reason = d.ErrorInfo.GetReason()
		}
		return fmt.Sprintf("after %d ms, ErrorInfo reason: %s", elapsed.Milliseconds(), reason)
	})
	r.runCase("batch: CreateSessions of 5 (one '', one fault:status:404) -> 5 answers as CreateSession gives", func() string {
		userIDs := batchUserIDs(user + "-stream")
		answers, err := kgen.CreateSessions(conn, userIDs, callTimeout)
		expect(err == nil, "the stream failed after %d answers: %v", len(answers), err)
		expectEq(len(answers), len(userIDs), "answers")
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
		expectSliceEq(got, want, "one answer per user_id")
		outcomes := make([]string, len(userIDs))
		for i, id := range userIDs {
			outcomes[i] = checkBatchAnswer(byUser[id], id, clientName)
		}
		return fmt.Sprintf("%d answers: %s", len(answers), strings.Join(outcomes, ", "))
	})
	r.runCase("batch: CreateSessionBatch of 5 (one '', one fault:status:404) -> results in request order", func() string {
		userIDs := batchUserIDs(user + "-batch")
		reply, err := kgen.CreateSessionBatch(conn, userIDs, callTimeout)
		expect(err == nil, "the call failed: %v", err)
		resultIDs := make([]string, len(reply.GetResults()))
		for i, res := range reply.GetResults() {
			resultIDs[i] = res.GetUserId()
		}
		expectSliceEq(resultIDs, userIDs, "results in request order")
		outcomes := make([]string, len(userIDs))
		for i, id := range userIDs {
			outcomes[i] = checkBatchAnswer(reply.GetResults()[i], id, clientName)
		}
		return fmt.Sprintf("%d results in order: %s", len(reply.GetResults()), strings.Join(outcomes, ", "))
	})
	r.runCase("batch: CreateSessionBatch of 101 -> INVALID_ARGUMENT/INVALID_BATCH_SIZE + BadRequest", func() string {
		userIDs := make([]string, 101)
		for i := range userIDs {
			userIDs[i] = fmt.Sprintf("%s-big-%d", user, i)
		}
		d := expectStatus(func() error {
			_, err := kgen.CreateSessionBatch(conn, userIDs, callTimeout)
			return err
		}, codes.InvalidArgument)
		expectErrorInfo(d, "INVALID_BATCH_SIZE")
		expect(d.BadRequest != nil, "no BadRequest in the details")
		expectSliceEq(violationFields(d), []string{"user_ids"}, "BadRequest field violations")
		return fmt.Sprintf("BadRequest field=user_ids (%s)", d.BadRequest.GetFieldViolations()[0].GetDescription())
	})
	r.runCase("health check '' -> SERVING", health(""))
	r.runCase(fmt.Sprintf("health check '%s' -> SERVING", kgen.SessionService), health(kgen.SessionService))

	fmt.Printf("[%s] %d passed, %d failed\n", lang, r.passed, r.failed)
	if r.failed > 0 {
		return 1
	}
	return 0
}
