// Package interop holds what the two interop programs share, cmd/interop (grpc-go) and cmd/connect-interop
// (connect-go): the expectations that fail a case, the check of every field of a session against the sandbox
// facts (see the README, "The sandbox", and src/sandbox/mod.rs), and the case runner that prints one
// `[<label>] PASS <case>` or `[<label>] FAIL <case>: <why>` line per case and the closing
// `[<label>] N passed, N failed`.
package interop

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	sessionv1 "github.com/kgen/kgen-gateway/examples/go/gen/kgen/session/v1"
	"github.com/kgen/kgen-gateway/examples/go/kgen"
)

const (
	// Domain is the ErrorInfo.domain of every error the gateway makes.
	Domain = "kgen-gateway"
	// DefaultClientName is what the embedded sandbox (always client id `sandbox-client`) calls the game:
	// `SANDBOX_` + the client id upper-cased.
	DefaultClientName = "SANDBOX_SANDBOX_CLIENT"
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

// IsUUID tells whether text is a lower-case UUID, as the gateway's session ids and request ids are.
func IsUUID(text string) bool { return uuidRE.MatchString(text) }

// checkFailed is a failed expectation: the case fails with its text.
type checkFailed struct{ what string }

func (c checkFailed) Error() string { return c.what }

// Fail, Expect, ExpectEq and ExpectSliceEq abort the running case (recovered by RunCase); the cases read as lists
// of facts.
func Fail(format string, args ...any) { panic(checkFailed{fmt.Sprintf(format, args...)}) }

func Expect(condition bool, format string, args ...any) {
	if !condition {
		Fail(format, args...)
	}
}

func ExpectEq[T comparable](actual, expected T, what string) {
	if actual != expected {
		Fail("%s: got %#v, want %#v", what, actual, expected)
	}
}

func ExpectSliceEq[T comparable](actual, expected []T, what string) {
	if !slices.Equal(actual, expected) {
		Fail("%s: got %#v, want %#v", what, actual, expected)
	}
}

func checkToken(token, namespaced, name string) {
	parts := strings.Split(token, ".")
	ExpectEq(len(parts), 3, name+" parts")
	for _, part := range parts {
		Expect(b64urlRE.MatchString(part), "%s: a part is not unpadded base64url", name)
	}
	header, err := kgen.DecodeJWTPart(parts[0])
	Expect(err == nil, "%s: header is not base64url JSON (%v)", name, err)
	payload, err := kgen.DecodeJWTPart(parts[1])
	Expect(err == nil, "%s: payload is not base64url JSON (%v)", name, err)
	_, hasAlg := header["alg"]
	Expect(hasAlg, "%s: header has no alg", name)
	sub, _ := payload["sub"].(string)
	ExpectEq(sub, namespaced, name+" payload sub")
}

// CheckSession checks every field against the sandbox facts; returns the names of the fields checked.
func CheckSession(s *sessionv1.CreateSessionResponse, userID, clientName string, newUser bool) map[string]bool {
	checked := map[string]bool{}
	m := s.ProtoReflect()
	field := func(name string) protoreflect.Value {
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
		Expect(fd != nil, "the response has no field %q", name)
		checked[name] = true
		return m.Get(fd)
	}

	Expect(uuidRE.MatchString(field("session_id").String()), "session_id is not a UUID: %q", s.GetSessionId())
	ExpectEq(field("user_id").String(), userID, "user_id")
	for _, name := range emptyFields {
		ExpectEq(field(name).String(), "", name)
	}
	level := field("level").Int()
	Expect(0 <= level && level <= 49, "level out of 0..=49: %d", level)
	rank := field("rank").Int()
	Expect(0 <= rank && rank <= 2550 && rank%10 == 0, "rank not a multiple of 10 in 0..=2550: %d", rank)
	checked["indigg_id"] = true
	Expect(s.IndiggId == nil, "indigg_id is set: %q", s.GetIndiggId())
	tpcid := field("third_party_client_id").String()
	Expect(clientIDRE.MatchString(tpcid), "third_party_client_id is not 8 digits: %q", tpcid)
	ExpectEq(field("third_party_client_name").String(), clientName, "third_party_client_name")
	namespaced := field("namespaced_third_party_user_id").String()
	ExpectEq(namespaced, tpcid+"#"+userID, "namespaced_third_party_user_id")
	Expect(walletRE.MatchString(field("wallet_address").String()), "wallet_address: %q", s.GetWalletAddress())
	ExpectEq(field("is_new_user").Bool(), newUser, "is_new_user")
	checkToken(field("access_token").String(), namespaced, "access_token")
	checkToken(field("refresh_token").String(), namespaced, "refresh_token")
	start := field("session_start_time").String()
	Expect(goTimeRE.MatchString(start), "session_start_time not in Go's format: %q", start)
	parsed, err := kgen.ParseGoTime(start)
	Expect(err == nil, "session_start_time does not parse: %v", err)
	Expect(math.Abs(time.Since(parsed).Seconds()) < 300, "session_start_time is not now: %q", start)
	checked["session_started_at"] = true
	ts := s.GetSessionStartedAt()
	Expect(ts != nil, "session_started_at is unset")
	ExpectEq([2]int64{ts.GetSeconds(), int64(ts.GetNanos())}, [2]int64{parsed.Unix(), int64(parsed.Nanosecond())},
		fmt.Sprintf("session_started_at vs session_start_time %q", start))
	return checked
}

// CheckEverySession is CheckSession, and fails the case when the response type has a field it did not check.
func CheckEverySession(s *sessionv1.CreateSessionResponse, userID, clientName string, newUser bool) int {
	checked := CheckSession(s, userID, clientName, newUser)
	fields := s.ProtoReflect().Descriptor().Fields()
	var unchecked []string
	for i := 0; i < fields.Len(); i++ {
		if name := string(fields.Get(i).Name()); !checked[name] {
			unchecked = append(unchecked, name)
		}
	}
	sort.Strings(unchecked)
	ExpectSliceEq(unchecked, nil, "response fields without a check")
	return fields.Len()
}

// RandomSuffix is 12 random hex digits, for fresh user ids.
func RandomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Results counts the cases of one program and prints their lines under its Label (`go`, `connect-go`).
type Results struct {
	Label          string
	Passed, Failed int
}

// RunCase runs one case and prints its line; a failed expectation or any other panic fails the case, never the
// program. The case returns a note for its PASS line (or "").
func (r *Results) RunCase(name string, fn func() string) {
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
		r.Failed++
		fmt.Printf("[%s] FAIL %s: %s\n", r.Label, name, failure)
		return
	}
	r.Passed++
	if note != "" {
		note = ": " + note
	}
	fmt.Printf("[%s] PASS %s (%d ms)%s\n", r.Label, name, time.Since(started).Milliseconds(), note)
}

// Summary prints the closing line and returns the exit status: 1 when a case failed, else 0.
func (r *Results) Summary() int {
	fmt.Printf("[%s] %d passed, %d failed\n", r.Label, r.Passed, r.Failed)
	if r.Failed > 0 {
		return 1
	}
	return 0
}
