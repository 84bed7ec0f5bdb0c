//! Everything that knows gRPC, tonic and HTTP: the session service and its batch RPCs, the one edge from errors to
//! statuses, the access log, caller authentication, the request metadata (deadline, correlation, tenant), the
//! limits on request bodies, gRPC-Web with its CORS policy, the Connect protocol's unary calls, and TLS for the
//! gRPC port.

mod access;
mod auth;
mod batch;
mod call;
mod connect;
mod correlation;
mod deadline;
mod request_limits;
mod routes;
mod service;
mod status;
mod tls;
mod web;

pub use access::WithPeer;
pub use auth::{AuthError, CallerAuth, CallerCheck, CallerTokens};
pub use call::{Handler, DEFAULT_BATCH_CONCURRENCY, MAX_BATCH_CONCURRENCY};
pub use connect::{Connect, ConnectSettings};
pub use correlation::RequestIdLayer;
pub use request_limits::{RequestLimitSettings, RequestLimitsLayer};
pub use routes::Routes;
pub use service::SessionGateway;
pub use status::{refusal, DOMAIN, INVALID_BATCH_SIZE};
pub use tls::{acceptor as tls_acceptor, server_config as tls_server_config, ServerTls};
pub use web::{AllowedOrigins, GrpcPort, GrpcWebSettings};
