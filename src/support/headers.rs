//! Every header and metadata key the gateway reads or writes, named once.

/// The caller's request id, echoed back and sent upstream (a fresh UUID when the caller sent none).
pub const REQUEST_ID: &str = "x-request-id";
/// W3C trace context, forwarded upstream as it came.
pub const TRACEPARENT: &str = "traceparent";
/// W3C trace state, forwarded upstream with [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";
/// The tenant a call is for (`--tenants-file`).
pub const TENANT: &str = "x-kgen-tenant";
/// The caller's deadline (gRPC over HTTP/2).
pub const GRPC_TIMEOUT: &str = "grpc-timeout";
/// The caller's bearer token (`--caller-tokens-file`).
pub const AUTHORIZATION: &str = "authorization";
/// Response metadata on a session created after retrying an outcome KGeN may have acted on (a 502, a reset…,
/// only when `--retry-on` includes one): its value is that outcome, and `is_new_user` may be false for a new
/// player.
pub const RETRIED_AFTER_AMBIGUOUS: &str = "kgen-retried-after-ambiguous";
/// The game's KGeN client id, sent upstream.
pub const CLIENT_ID: &str = "x-client-id";
/// The game's KGeN client secret, sent upstream (marked sensitive: never logged by the HTTP stack).
pub const CLIENT_SECRET: &str = "x-client-secret";
