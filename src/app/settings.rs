//! The gateway's settings: plain data gathering each component's own settings, filled in by the CLI (or by a test)
//! and read once by [`super::Application::build`].

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use crate::{
    core::{ResilienceSettings, TenantsConfig},
    grpc::{
        CallerAuth, GrpcWebSettings, RequestLimitSettings, ServerTls, DEFAULT_BATCH_CONCURRENCY,
    },
    observability::LogFormat,
    upstream::UpstreamSettings,
};

/// Validated settings of the gateway. Tests build these directly.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where production binds (tests bind their own listener).
    pub listen: SocketAddr,
    /// Where production binds the admin endpoints.
    pub admin_listen: SocketAddr,
    /// The upstream call.
    pub upstream: UpstreamSettings,
    /// Retries, overload protection and circuit breaking.
    pub resilience: ResilienceSettings,
    /// Most upstream calls in flight per batch RPC (`CreateSessions` stream or `CreateSessionBatch` call).
    pub batch_concurrency: usize,
    /// Limits of the gRPC server.
    pub server: ServerSettings,
    /// How long in-flight calls may take to finish once shutdown starts.
    pub shutdown_grace: Duration,
    /// How long the gateway goes on accepting connections once shutdown starts, answering health checks
    /// `NOT_SERVING` (and `/readyz` 503) while it serves calls as before, so that load balancers and Kubernetes see it
    /// leave before its listener closes; then it drains for [`Settings::shutdown_grace`]. Zero closes the listener
    /// at once.
    pub drain_delay: Duration,
    /// Log format.
    pub log_format: LogFormat,
    /// Replace the upstream with the embedded sandbox: every tenant (the flags' and the tenants file's) calls it
    /// with the sandbox's credentials.
    pub sandbox: bool,
    /// Credential settings given but not used because of `sandbox`, by name (never a value), for the start-up
    /// warning. The upstream URL and the tenants file are not listed: they are still in these settings.
    pub sandbox_ignores: Vec<&'static str>,
    /// OTLP collector for span export (`otlp` feature).
    pub otlp_endpoint: Option<String>,
    /// Caller authentication: the tokens file (watched for rotations) and the tokens in use.
    pub caller_tokens: Option<(PathBuf, Arc<CallerAuth>)>,
    /// Multi-tenant credentials: the tenants file (watched for changes) and its tenants as read at start-up. The
    /// flags' credentials (when `upstream.client_id` is not empty) are the tenant `default` besides these.
    pub tenants: Option<(PathBuf, TenantsConfig)>,
}

impl Settings {
    /// Settings with production defaults against `upstream`.
    pub fn new(upstream: UpstreamSettings) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 50051)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            upstream,
            resilience: ResilienceSettings::default(),
            batch_concurrency: DEFAULT_BATCH_CONCURRENCY,
            server: ServerSettings::default(),
            shutdown_grace: Duration::from_secs(10),
            drain_delay: Duration::ZERO,
            log_format: LogFormat::Text,
            sandbox: false,
            sandbox_ignores: Vec::new(),
            otlp_endpoint: None,
            caller_tokens: None,
            tenants: None,
        }
    }
}

/// Limits of the gRPC server, set deliberately rather than left to library defaults.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Concurrent streams per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// Calls in flight at once over all connections.
    pub max_concurrent_calls: usize,
    /// Largest decoded request message.
    pub max_request_size: usize,
    /// HTTP/2 PING interval.
    pub http2_keepalive_interval: Duration,
    /// HTTP/2 PING timeout.
    pub http2_keepalive_timeout: Duration,
    /// TCP keepalive idle time.
    pub tcp_keepalive: Duration,
    /// Age after which a connection is asked to go away.
    pub max_connection_age: Duration,
    /// Grace for calls on an aged-out connection.
    pub max_connection_age_grace: Duration,
    /// Most connections held at once; `None`: derived from the open-files limit at start-up.
    pub max_connections: Option<usize>,
    /// TLS handshake and the client's first bytes must arrive within this.
    pub handshake_timeout: Duration,
    /// Longest time a connection may go without a call in flight.
    pub max_connection_idle: Duration,
    /// Time and memory bounds on request bodies.
    pub request_limits: RequestLimitSettings,
    /// TLS (and mTLS) for the gRPC listener; plaintext h2c when unset.
    pub tls: Option<ServerTls>,
    /// gRPC-Web on the gRPC port; off (native gRPC only) when unset.
    pub grpc_web: Option<GrpcWebSettings>,
    /// The Connect protocol's unary calls on the gRPC port (on by default), bounded by `max_request_size` and
    /// `request_limits.body_timeout` as gRPC calls are.
    pub connect: bool,
    /// One access line (INFO, target `kgen_gateway::access`) per finished session-service RPC.
    pub access_log: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 100,
            max_concurrent_calls: 10_000,
            max_request_size: 64 * 1024,
            http2_keepalive_interval: Duration::from_secs(30),
            http2_keepalive_timeout: Duration::from_secs(10),
            tcp_keepalive: Duration::from_secs(60),
            max_connection_age: Duration::from_secs(600),
            max_connection_age_grace: Duration::from_secs(30),
            max_connections: None,
            handshake_timeout: Duration::from_secs(10),
            max_connection_idle: Duration::from_secs(300),
            request_limits: RequestLimitSettings::default(),
            tls: None,
            grpc_web: None,
            connect: true,
            access_log: false,
        }
    }
}
