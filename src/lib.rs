//! kgen-gateway: a gRPC front for KGeN's server-to-server session API.
//!
//! Game backends call `kgen.session.v1.SessionService/CreateSession` with generated stubs; the gateway holds the
//! game's KGeN client credentials, makes the HTTPS call upstream (`POST /s2s/session/`), mirrors the session back as
//! protobuf and turns every upstream failure into a gRPC status the caller can act on.
//!
//! # Layout
//! Layers, each folder one of them; a module imports only from the layers below it (`tests/architecture.rs` fails
//! the build otherwise):
//!
//! | layer | what it holds |
//! |---|---|
//! | `main.rs` | the binary: parse the command line, start telemetry, build, run (thin) |
//! | `cli` | clap arguments, the only place that names a flag or an environment variable; validates them all, runs the one file-loading step, and assembles each component's settings into [`Settings`]; and `kgen-gateway call` ([`CallArgs::run`]), one `CreateSession` call made with the generated client, its answer printed for a person |
//! | `app` | the composition root: [`Application::build`] wires the components; [`Application::run`] serves a listener the caller bound until the caller's shutdown future resolves, then drains; the accept loop and connection lifetimes (limits, handshake and idle timeouts, eviction); the admin listener (`/metrics`, `/healthz`, `/readyz`) |
//! | `grpc` | everything that knows tonic and HTTP: the session service and its batch RPCs, the one edge from errors to `tonic::Status` (with `ErrorInfo`, `RetryInfo`, `BadRequest`) and the one place a failed call is logged, the access log (`--access-log`), caller authentication, request metadata (deadline, correlation, tenant), request body limits, gRPC-Web with CORS, the Connect protocol (unary), TLS |
//! | `core` | the work, free of transport types: one session creation (validate, choose the tenant, budget the deadline, attempt, retry), the domain error, tenants and their grants, resilience (concurrency limit, retry budget and policy, circuit breaker) |
//! | `upstream` | the one KGeN HTTP client, its settings, its lenient wire model and its own error type |
//! | `observability` | Prometheus metrics (a plain API that knows none of the layers above) and telemetry (logs, OTLP spans, the W3C trace context that links them to the caller's and KGeN's) |
//! | `support` | header names, secrets, the one file watcher |
//! | [`proto`], [`sandbox`] | leaves: the generated contract, and the embedded fake KGeN upstream (`--sandbox`) |
//!
//! Everything is private but what the binary, the tests, the benchmarks and the examples use, re-exported below.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod app;
mod cli;
mod core;
mod grpc;
mod observability;
pub mod proto;
pub mod sandbox;
mod support;
mod upstream;

pub use app::{
    shutdown_signal, Application, ServerSettings, Settings, StartupError, ADMIN_MAX_CONNECTIONS,
};
pub use cli::{
    usage_error_line, CallArgs, Cli, Command, ConfigError, GatewayArgs, Invalid, SandboxArgs,
    ADMIN_LISTEN, CLIENT_SECRET_ENV, LISTEN, SANDBOX_LISTEN,
};
pub use core::{validate_user_id, CallError, Error, RetryOn, MAX_BATCH_SIZE, MAX_USER_ID_BYTES};
pub use grpc::{
    AllowedOrigins, AuthError, CallerAuth, CallerTokens, GrpcWebSettings, RequestLimitSettings,
    DEFAULT_BATCH_CONCURRENCY, DOMAIN, INVALID_BATCH_SIZE,
};
pub use observability::{init_telemetry, LogFormat, TelemetryGuard};
pub use support::headers::RETRIED_AFTER_AMBIGUOUS;
pub use upstream::{
    parse_go_time, sanitize_upstream_message, DecodeError, Delivery, Error as UpstreamError,
    Session, UpstreamSettings, UpstreamStatus, MAX_UPSTREAM_MESSAGE_CHARS, USER_AGENT,
    WITHHELD_UPSTREAM_MESSAGE,
};
