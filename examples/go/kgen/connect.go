package kgen

import (
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"

	"github.com/kgen/kgen-gateway/examples/go/gen/kgen/session/v1/sessionv1connect"
)

// ConnectTransport is an http.Transport for Connect calls to a plaintext gateway (one started without
// --tls-cert): HTTP/1.1 only, or with h2c HTTP/2 over cleartext with prior knowledge (the standard library's
// Transport.Protocols, Go 1.24+: UnencryptedHTTP2 without HTTP1; no golang.org/x/net/http2). The gateway serves
// Connect's unary calls over both on its gRPC port; a bidirectional stream needs HTTP/2.
func ConnectTransport(h2c bool) *http.Transport {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	var protocols http.Protocols
	if h2c {
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP1(true)
	}
	transport.Protocols = &protocols
	return transport
}

// NewConnectClient is the connect-go client of SessionService at target (HOST:PORT, plaintext) over httpClient.
// By default it speaks the Connect protocol with the binary codec (application/proto); connect.WithProtoJSON()
// makes it JSON (application/json), connect.WithSendGzip() compresses the requests. Every call advertises
// `accept-encoding: gzip` (connect-go's default), and sends its context's deadline as connect-timeout-ms.
func NewConnectClient(httpClient connect.HTTPClient, target string, opts ...connect.ClientOption) sessionv1connect.SessionServiceClient {
	return sessionv1connect.NewSessionServiceClient(httpClient, "http://"+target, opts...)
}

// ConnectErrorDetails is a failed connect-go call: its code and message, the answer's headers, and the google.rpc
// details of Connect's JSON error (the same the gateway sends a gRPC caller in grpc-status-details-bin), each
// decoded with connect.ErrorDetail.Value() into errdetails' types.
type ConnectErrorDetails struct {
	Code    connect.Code
	Message string
	// Wire: the error is the gateway's answer (connect.IsWireError), not the client's own (its deadline, a refused
	// connection).
	Wire bool
	// Meta holds the answer's headers (with an error from the wire), e.g. x-request-id.
	Meta http.Header
	// Types lists each detail's type name (connect.ErrorDetail.Type()), in order.
	Types []string
	Details
}

// DecodeConnectError decodes a connect-go call's error; an error that is no *connect.Error is CodeUnknown.
func DecodeConnectError(err error) ConnectErrorDetails {
	var connectErr *connect.Error
	if !errors.As(err, &connectErr) {
		return ConnectErrorDetails{Code: connect.CodeUnknown, Message: fmt.Sprint(err)}
	}
	d := ConnectErrorDetails{
		Code:    connectErr.Code(),
		Message: connectErr.Message(),
		Wire:    connect.IsWireError(err),
		Meta:    connectErr.Meta(),
	}
	for _, detail := range connectErr.Details() {
		d.Types = append(d.Types, detail.Type())
		value, err := detail.Value()
		if err != nil {
			d.add(fmt.Errorf("%s: %w", detail.Type(), err))
			continue
		}
		d.add(value)
	}
	return d
}

// Describe prints the error as lines: the code and message, then each detail.
func (d ConnectErrorDetails) Describe() []string {
	lines := []string{fmt.Sprintf("error: %s: %s", d.Code, d.Message)}
	switch {
	case !d.Wire:
		lines = append(lines, "  (the client's own error, not the gateway's answer)")
	case len(d.Types) == 0:
		lines = append(lines, "  (no details)")
	}
	return append(lines, d.describe()...)
}
