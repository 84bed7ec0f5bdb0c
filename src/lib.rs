//! kgen-gateway: a gRPC front for KGeN's server-to-server session API.
//!
//! Game backends call `kgen.session.v1.SessionService/CreateSession` with generated stubs; the gateway holds the
//! game's KGeN client credentials, makes the HTTPS call upstream (`POST /s2s/session/`), mirrors the session back as
//! protobuf and turns every upstream failure into a gRPC status the caller can act on.
//!
//! # Layout
//! - [`config`]: command line and environment (clap), validated into [`config::Settings`] before any port is bound;
//!   secrets are wrapped so they cannot be printed.
//! - [`telemetry`]: the tracing subscriber (`text` or `json`, filtered by `RUST_LOG`).
//! - [`startup`]: [`startup::Application::build`] wires the services; [`startup::Application::run`] serves a
//!   listener the caller bound until the caller's shutdown future resolves, then drains within the grace period.
//! - [`service`]: the `SessionService` implementation: validate, budget the deadline, call upstream, map.
//! - [`batch`]: the batch RPCs, `CreateSessions` (a stream) and `CreateSessionBatch` (unary): each item is a
//!   [`service`] call, at most `--batch-concurrency` at a time, under the caller's deadline and flow control.
//! - [`deadline`]: reads the caller's `grpc-timeout`.
//! - [`resilience`]: the concurrency limit with its short queue, retries under a budget; [`retry_policy`]: which
//!   outcomes are retried (`--retry-on`: by default only those KGeN provably did not act on); [`breaker`]: the
//!   circuit breaker.
//! - [`upstream`]: the one KGeN HTTP client and its lenient wire model.
//! - [`metrics`]: Prometheus metrics and the layer counting every gRPC call; [`correlation`]: `x-request-id`
//!   and W3C trace context.
//! - [`admin`]: the admin HTTP listener (`/metrics`, `/healthz`, `/readyz`).
//! - [`connections`]: how many client connections each port holds and for how long (limit with eviction of the
//!   longest-idle, handshake and idle timeouts, calls in flight); [`request_limits`]: what one call's request body
//!   may hold and for how long (one message for unary methods, body and idle timeouts, the buffer budget).
//! - [`grpc_web`]: gRPC-Web and its CORS policy in front of the gRPC port (`--grpc-web`), or the refusal of
//!   gRPC-Web requests when it is off.
//! - [`tls`]: TLS and mTLS for the gRPC listener; [`auth`]: caller authentication with bearer tokens;
//!   [`reload`]: re-reading the client secret and tokens files so they rotate without a restart.
//! - [`tenants`]: multi-tenant credentials (`--tenants-file`): each tenant's client, limit and breaker, the
//!   choice of tenant per call (`x-kgen-tenant`, the caller's grant, the default) and the file's reload.
//! - [`error`]: the one place where failures become `tonic::Status` (with `ErrorInfo`, `RetryInfo`, `BadRequest`).
//! - [`proto`]: the generated contract and the descriptor set served by reflection.
//! - [`sandbox`]: an embedded fake KGeN upstream for offline use, tests and benchmarks.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod auth;
pub mod batch;
pub mod breaker;
pub mod config;
pub mod connections;
pub mod correlation;
pub mod deadline;
pub mod error;
pub mod grpc_web;
pub mod metrics;
pub mod proto;
pub mod reload;
pub mod request_limits;
pub mod resilience;
pub mod retry_policy;
pub mod sandbox;
pub mod service;
pub mod startup;
pub mod telemetry;
pub mod tenants;
pub mod tls;
pub mod upstream;
