// Package kgen holds what the Go examples share: a connection to kgen-gateway, the three SessionService calls and
// the health check, the decoding of the google.rpc error details the gateway sends, and the parsing of the
// session's Go-format time and JWT-shaped tokens. cmd/create-session and cmd/interop use it. connect.go holds the
// same for connect-go (the Connect protocol, which the gateway serves on its gRPC port), for cmd/connect-interop.
package kgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	sessionv1 "github.com/kgen/kgen-gateway/examples/go/gen/kgen/session/v1"
)

// SessionService is the full name of the gateway's service, as health checks and reflection name it.
const SessionService = "kgen.session.v1.SessionService"

// secretFields are the response fields that are secrets (the tokens): described redacted, never in full.
var secretFields = map[string]bool{"access_token": true, "refresh_token": true}

// Dial opens a client connection to the gateway at target (HOST:PORT). With caFile empty it speaks plaintext
// HTTP/2 (h2c), which the gateway serves unless started with --tls-cert; otherwise TLS, trusting the PEM
// certificates in caFile. grpc.NewClient connects lazily, on the first call.
func Dial(target, caFile string) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading the CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		creds = credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	return grpc.NewClient(target, grpc.WithTransportCredentials(creds))
}

// CreateSession makes one CreateSession call with a deadline of timeout (always set one: the gateway gives KGeN
// only the time the caller has left).
func CreateSession(conn *grpc.ClientConn, userID string, timeout time.Duration) (*sessionv1.CreateSessionResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return sessionv1.NewSessionServiceClient(conn).CreateSession(ctx, &sessionv1.CreateSessionRequest{UserId: userID})
}

// CreateSessions streams one request per user id and reads every answer. Answers arrive as their upstream calls
// complete, not in request order: match them by user_id. A failed item carries its own google.rpc.Status in
// its error field; the call returns an error only when the stream itself fails (deadline, shutdown, ...).
// Requests are sent from a goroutine while answers are read, as the gateway reads further requests only as
// answers are read.
func CreateSessions(conn *grpc.ClientConn, userIDs []string, timeout time.Duration) ([]*sessionv1.CreateSessionsResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stream, err := sessionv1.NewSessionServiceClient(conn).CreateSessions(ctx)
	if err != nil {
		return nil, err
	}
	sent := make(chan error, 1)
	go func() {
		for _, id := range userIDs {
			if err := stream.Send(&sessionv1.CreateSessionRequest{UserId: id}); err != nil {
				// io.EOF: the stream ended; Recv below returns the reason.
				sent <- nil
				return
			}
		}
		sent <- stream.CloseSend()
	}()
	var answers []*sessionv1.CreateSessionsResponse
	for {
		answer, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return answers, err
		}
		answers = append(answers, answer)
	}
	return answers, <-sent
}

// CreateSessionBatch is the unary form, for 1 to 100 user ids; results come in request order.
func CreateSessionBatch(conn *grpc.ClientConn, userIDs []string, timeout time.Duration) (*sessionv1.CreateSessionBatchResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return sessionv1.NewSessionServiceClient(conn).CreateSessionBatch(ctx, &sessionv1.CreateSessionBatchRequest{UserIds: userIDs})
}

// HealthCheck calls grpc.health.v1.Health/Check and returns the status name (e.g. "SERVING").
func HealthCheck(conn *grpc.ClientConn, service string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	reply, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return "", err
	}
	return reply.GetStatus().String(), nil
}

// ErrorDetails is a failed call: its code and message, and the google.rpc details it carried (for a call, in the
// grpc-status-details-bin trailer; for a batch item, in its google.rpc.Status).
type ErrorDetails struct {
	Code    codes.Code
	Message string
	// HasStatusDetails: the status carried details (a call that failed in the client, e.g. its own deadline, has
	// none).
	HasStatusDetails bool
	Details
}

// Details are the google.rpc details of a failed call, decoded: a gRPC status's (ErrorDetails) or a Connect
// error's (ConnectErrorDetails).
type Details struct {
	ErrorInfo  *errdetails.ErrorInfo
	RetryInfo  *errdetails.RetryInfo
	BadRequest *errdetails.BadRequest
	// Other holds the details of any other type, or those that could not be decoded, as text.
	Other []string
}

// add files one decoded detail.
func (d *Details) add(detail any) {
	switch v := detail.(type) {
	case *errdetails.ErrorInfo:
		d.ErrorInfo = v
	case *errdetails.RetryInfo:
		d.RetryInfo = v
	case *errdetails.BadRequest:
		d.BadRequest = v
	case error: // a detail whose type is not linked in, or that did not decode
		d.Other = append(d.Other, v.Error())
	default:
		d.Other = append(d.Other, fmt.Sprintf("%T", v))
	}
}

// describe prints each detail as a line.
func (d Details) describe() []string {
	var lines []string
	if info := d.ErrorInfo; info != nil {
		keys := make([]string, 0, len(info.GetMetadata()))
		for k := range info.GetMetadata() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		pairs := make([]string, len(keys))
		for i, k := range keys {
			pairs[i] = fmt.Sprintf("%s=%q", k, info.GetMetadata()[k])
		}
		lines = append(lines, fmt.Sprintf("  ErrorInfo: reason=%s domain=%s metadata={%s}",
			info.GetReason(), info.GetDomain(), strings.Join(pairs, " ")))
	}
	if d.RetryInfo != nil {
		lines = append(lines, fmt.Sprintf("  RetryInfo: retry_delay=%s", d.RetryInfo.GetRetryDelay().AsDuration()))
	}
	if d.BadRequest != nil {
		for _, v := range d.BadRequest.GetFieldViolations() {
			lines = append(lines, fmt.Sprintf("  BadRequest: field=%s description=%s", v.GetField(), v.GetDescription()))
		}
	}
	for _, other := range d.Other {
		lines = append(lines, "  other detail: "+other)
	}
	return lines
}

// DecodeError decodes a call's error with status.FromError; an error that is no gRPC status is UNKNOWN.
func DecodeError(err error) ErrorDetails {
	st, _ := status.FromError(err)
	return decode(st)
}

// DecodeStatus decodes the google.rpc.Status of a failed batch item (CreateSessionsResponse.error): the same code,
// message and details CreateSession carries in its grpc-status-details-bin trailer.
func DecodeStatus(s *spb.Status) ErrorDetails {
	return decode(status.FromProto(s))
}

func decode(st *status.Status) ErrorDetails {
	d := ErrorDetails{Code: st.Code(), Message: st.Message()}
	details := st.Details()
	d.HasStatusDetails = len(details) > 0
	for _, detail := range details {
		d.add(detail)
	}
	return d
}

// Describe prints the error as lines: the code and message, then each detail.
func (d ErrorDetails) Describe() []string {
	lines := []string{fmt.Sprintf("error: %s: %s", d.Code, d.Message)}
	if !d.HasStatusDetails {
		lines = append(lines, "  (no grpc-status-details-bin trailer)")
	}
	return append(lines, d.describe()...)
}

// goTimeLayout is Go's time.Time String() format, in which KGeN sends session_start_time
// (`2024-08-20 08:32:13.025599965 +0000 UTC`).
const goTimeLayout = "2006-01-02 15:04:05.999999999 -0700 MST"

// ParseGoTime parses session_start_time, to the nanosecond.
func ParseGoTime(text string) (time.Time, error) {
	return time.Parse(goTimeLayout, text)
}

// DecodeJWTPart decodes one base64url (unpadded) JSON part of a JWT into a map.
func DecodeJWTPart(part string) (map[string]any, error) {
	raw, err := base64.RawURLEncoding.DecodeString(part)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// DescribeSession prints one `name: value` line per field, in proto order; tokens are redacted.
func DescribeSession(s *sessionv1.CreateSessionResponse) []string {
	m := s.ProtoReflect()
	fields := m.Descriptor().Fields()
	lines := make([]string, 0, fields.Len())
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		name := string(fd.Name())
		var value string
		switch {
		case name == "session_started_at":
			if s.GetSessionStartedAt() == nil {
				value = "(unset: the gateway could not parse session_start_time)"
			} else {
				value = s.GetSessionStartedAt().AsTime().Format(time.RFC3339Nano)
			}
		case fd.HasPresence() && !m.Has(fd):
			value = "(unset)"
		case secretFields[name]:
			token := m.Get(fd).String()
			value = fmt.Sprintf("[redacted, %d chars, %d parts]", len(token), strings.Count(token, ".")+1)
		case fd.Kind() == protoreflect.StringKind:
			value = fmt.Sprintf("%q", m.Get(fd).String())
		default:
			value = m.Get(fd).String()
		}
		lines = append(lines, name+": "+value)
	}
	return lines
}
