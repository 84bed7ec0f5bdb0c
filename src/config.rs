//! Command line and environment, parsed by clap and validated completely before any port is bound.
//!
//! Every flag has an environment fallback. The client secret comes from a file (`--client-secret-file`) or from
//! the `KGEN_CLIENT_SECRET` environment variable, never from a flag, so it does not show up in `ps`.

use std::{fmt, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use http::HeaderValue;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

use crate::{
    auth::CallerAuth, breaker::BreakerSettings, request_limits::RequestLimitSettings,
    retry_policy::RetryOn, tenants::TenantsConfig,
};

/// The upstream KGeN uses when nothing else is configured: KGeN's staging platform.
pub const DEFAULT_UPSTREAM_URL: &str = "https://stage-platform-protocols.kgen.io";
/// Environment variable holding the client secret (deliberately not a flag).
pub const CLIENT_SECRET_ENV: &str = "KGEN_CLIENT_SECRET";
/// Environment variable holding the standalone sandbox's accepted secret.
pub const SANDBOX_CLIENT_SECRET_ENV: &str = "KGEN_SANDBOX_CLIENT_SECRET";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "kgen-gateway",
    version,
    about = "gRPC gateway in front of KGeN's server-to-server session API",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Run something other than the gateway.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The gateway's own settings (used when no subcommand is given).
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Threads running calls (default: the CPUs this process may use, container CPU quotas included). Set it to
    /// the CPU limit when that is lower, and to 1 where the gateway shares a small machine with busy neighbours.
    #[arg(long, env = "KGEN_WORKER_THREADS", global = true, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
}

impl Cli {
    /// How many runtime worker threads to start (`TOKIO_WORKER_THREADS` is not consulted: tokio panics on a
    /// malformed value, and this process answers bad settings with one line instead).
    pub fn worker_threads(&self) -> usize {
        self.worker_threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            usize::from,
        )
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run only the fake KGeN upstream (plain HTTP/1.1 and h2c), for other tools and benchmarks.
    Sandbox(SandboxArgs),
}

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of the gateway.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address the gRPC server listens on.
    #[arg(long, env = "KGEN_GATEWAY_LISTEN", default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    /// Address of the admin HTTP listener (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, env = "KGEN_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Base URL of KGeN's platform API (`/s2s/session/` is appended).
    #[arg(long, env = "KGEN_UPSTREAM_URL", default_value = DEFAULT_UPSTREAM_URL)]
    pub upstream_url: String,
    /// The game's KGeN client id.
    #[arg(long, env = "KGEN_CLIENT_ID")]
    pub client_id: Option<String>,
    /// File holding the game's KGeN client secret (or set KGEN_CLIENT_SECRET).
    #[arg(long, env = "KGEN_CLIENT_SECRET_FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// Longest wait for KGeN's answer to one call (the caller's deadline can only shorten it).
    #[arg(long, env = "KGEN_UPSTREAM_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub upstream_timeout: Duration,
    /// Longest wait for a TCP + TLS connection to KGeN.
    #[arg(long, env = "KGEN_CONNECT_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Largest upstream response body read (e.g. `1MiB`, `512KiB`, `65536`).
    #[arg(long, env = "KGEN_MAX_UPSTREAM_BODY", default_value = "1MiB", value_parser = parse_size)]
    pub max_upstream_body: usize,
    /// Speak HTTP/2 to the upstream without negotiation (h2c for `http://` URLs, e.g. an h2c sidecar or the
    /// standalone sandbox in benchmarks); by default HTTP/2 is used only where TLS ALPN offers it.
    #[arg(long, env = "KGEN_UPSTREAM_HTTP2_PRIOR_KNOWLEDGE")]
    pub upstream_http2_prior_knowledge: bool,
    /// PEM file of extra CA certificates trusted for KGeN's TLS (added to the bundled Mozilla roots).
    #[arg(long, env = "KGEN_UPSTREAM_CA_FILE")]
    pub upstream_ca_file: Option<PathBuf>,
    /// Most attempts per call, retries included (1 disables retries).
    #[arg(long, env = "KGEN_UPSTREAM_MAX_ATTEMPTS", default_value_t = 3)]
    pub upstream_max_attempts: u32,
    /// Failed attempts that are retried: comma-separated `connect-failure`, `refused-stream`, `reset`, `5xx`,
    /// status codes, or `none`. The default retries only what KGeN provably did not act on; `reset`, `5xx`,
    /// `409`… may retry a request KGeN already acted on (a second session, `is_new_user` false for a new player).
    #[arg(long, env = "KGEN_RETRY_ON", default_value = crate::retry_policy::DEFAULT_RETRY_ON, value_parser = RetryOn::parse)]
    pub retry_on: RetryOn,
    /// Retries allowed as a percentage of recent first attempts (over a 10 s window).
    #[arg(long, env = "KGEN_RETRY_BUDGET_PERCENT", default_value_t = 20.0)]
    pub retry_budget_percent: f32,
    /// Retries allowed per second regardless of traffic (the budget's floor).
    #[arg(long, env = "KGEN_RETRY_BUDGET_MIN_PER_SEC", default_value_t = 10)]
    pub retry_budget_min_per_sec: u32,
    /// Most upstream calls in flight at once; past it calls wait at most --upstream-queue-timeout.
    #[arg(long, env = "KGEN_MAX_CONCURRENT_UPSTREAM", default_value_t = 1024)]
    pub max_concurrent_upstream: usize,
    /// Longest wait for a free upstream slot before answering UNAVAILABLE / OVERLOADED.
    #[arg(long, env = "KGEN_UPSTREAM_QUEUE_TIMEOUT", default_value = "100ms", value_parser = parse_duration)]
    pub upstream_queue_timeout: Duration,
    /// Most upstream calls in flight at once for one CreateSessions stream or CreateSessionBatch call (1–256).
    #[arg(long, env = "KGEN_BATCH_CONCURRENCY", default_value_t = crate::batch::DEFAULT_BATCH_CONCURRENCY)]
    pub batch_concurrency: usize,
    /// Consecutive upstream failures (unreachable, 5xx, timeouts) that open the circuit breaker.
    #[arg(long, env = "KGEN_BREAKER_FAILURE_THRESHOLD", default_value_t = 5)]
    pub breaker_failure_threshold: u32,
    /// Failures further apart than this do not make a run.
    #[arg(long, env = "KGEN_BREAKER_WINDOW", default_value = "10s", value_parser = parse_duration)]
    pub breaker_window: Duration,
    /// How long an open circuit fails calls fast before probing.
    #[arg(long, env = "KGEN_BREAKER_COOL_DOWN", default_value = "5s", value_parser = parse_duration)]
    pub breaker_cool_down: Duration,
    /// Probe calls let through when half-open (this many successes close the circuit).
    #[arg(long, env = "KGEN_BREAKER_PROBES", default_value_t = 3)]
    pub breaker_probes: u32,
    /// Most concurrent gRPC calls (HTTP/2 streams) per client connection.
    #[arg(long, env = "KGEN_MAX_CONCURRENT_STREAMS", default_value_t = 100)]
    pub max_concurrent_streams: u32,
    /// Most gRPC calls in flight at once over all connections; past it, calls are answered RESOURCE_EXHAUSTED at
    /// once.
    #[arg(long, env = "KGEN_MAX_CONCURRENT_CALLS", default_value_t = 10_000)]
    pub max_concurrent_calls: usize,
    /// Largest accepted gRPC request message.
    #[arg(long, env = "KGEN_MAX_REQUEST_SIZE", default_value = "64KiB", value_parser = parse_size)]
    pub max_request_size: usize,
    /// Interval of HTTP/2 PINGs to idle clients.
    #[arg(long, env = "KGEN_HTTP2_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub http2_keepalive_interval: Duration,
    /// How long a PING may go unanswered before the connection is closed.
    #[arg(long, env = "KGEN_HTTP2_KEEPALIVE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http2_keepalive_timeout: Duration,
    /// TCP keepalive idle time on accepted connections.
    #[arg(long, env = "KGEN_TCP_KEEPALIVE", default_value = "60s", value_parser = parse_duration)]
    pub tcp_keepalive: Duration,
    /// Connections older than this (±10 % jitter) are asked to go away, so clients rebalance across replicas.
    #[arg(long, env = "KGEN_MAX_CONNECTION_AGE", default_value = "10m", value_parser = parse_duration)]
    pub max_connection_age: Duration,
    /// How long calls on an aged-out connection may take to finish before it is closed.
    #[arg(long, env = "KGEN_MAX_CONNECTION_AGE_GRACE", default_value = "30s", value_parser = parse_duration)]
    pub max_connection_age_grace: Duration,
    /// Most client connections held at once on the gRPC port (default: half the open-files limit, at most
    /// 1,024). At the limit the longest-idle connection is closed to make room.
    #[arg(long, env = "KGEN_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// A new connection must finish its TLS handshake and send its first bytes within this.
    #[arg(long, env = "KGEN_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,
    /// A connection without a call in flight for this long is closed (GOAWAY).
    #[arg(long, env = "KGEN_MAX_CONNECTION_IDLE", default_value = "5m", value_parser = parse_duration)]
    pub max_connection_idle: Duration,
    /// The request of a call that takes one message must arrive whole (with its end of stream) within this.
    #[arg(long, env = "KGEN_REQUEST_BODY_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub request_body_timeout: Duration,
    /// A request stream (CreateSessions) may send nothing for this long while the gateway waits for it.
    #[arg(long, env = "KGEN_STREAM_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub stream_idle_timeout: Duration,
    /// Bytes of partly received request messages the gateway holds at once, over all calls; past it such
    /// messages are refused with RESOURCE_EXHAUSTED (messages that arrive whole are never refused).
    #[arg(long, env = "KGEN_MAX_BUFFERED_REQUEST_BYTES", default_value = "32MiB", value_parser = parse_size)]
    pub max_buffered_request_bytes: usize,
    /// Idle connections to each upstream host kept for reuse (more are closed once their call ends).
    #[arg(
        long,
        env = "KGEN_UPSTREAM_MAX_IDLE_CONNECTIONS",
        default_value_t = 256
    )]
    pub upstream_max_idle_connections: usize,
    /// PEM certificate chain to serve gRPC over TLS (with --tls-key); plaintext h2c without it.
    #[arg(long, env = "KGEN_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "KGEN_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: require client certificates signed by it (mTLS). Needs --tls-cert.
    #[arg(long, env = "KGEN_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// File of accepted caller tokens, one `name:token` per line; calls to SessionService then need
    /// `authorization: Bearer <token>`. Reloaded on change.
    #[arg(long, env = "KGEN_CALLER_TOKENS_FILE")]
    pub caller_tokens_file: Option<PathBuf>,
    /// TOML file of tenants (one `[tenants.<name>]` table each with `client_id`, `client_secret_file` or
    /// `client_secret_env`, optional `upstream_url`; optional top-level `default_tenant`). Callers pick one with
    /// the `x-kgen-tenant` metadata key; the --client-id flags, when set, are the tenant `default`. Reloaded on change.
    #[arg(long, env = "KGEN_TENANTS_FILE")]
    pub tenants_file: Option<PathBuf>,
    /// Also serve gRPC-Web (`application/grpc-web`, `-text`) on the gRPC port, over HTTP/1.1 and HTTP/2, for
    /// browsers and edge workers.
    #[arg(long, env = "KGEN_GRPC_WEB")]
    pub grpc_web: bool,
    /// Origins whose web pages may call over gRPC-Web (CORS): comma-separated exact origins such as
    /// `https://tools.example.com`, or `*` for any origin. Needs --grpc-web.
    #[arg(long, env = "KGEN_GRPC_WEB_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub grpc_web_allowed_origins: Vec<String>,
    /// How long in-flight calls may take to finish after SIGTERM/SIGINT.
    #[arg(long, env = "KGEN_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// Log format.
    #[arg(long, env = "KGEN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Export spans over OTLP/HTTP to this collector (e.g. `http://otel-collector:4318`); needs a build with
    /// `--features otlp`.
    #[arg(long, env = "KGEN_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Serve against an embedded fake KGeN upstream (responses are fake; no credentials needed).
    #[arg(long, env = "KGEN_SANDBOX")]
    pub sandbox: bool,
}

/// Flags of `kgen-gateway sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address the fake upstream listens on.
    #[arg(long, env = "KGEN_SANDBOX_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Client id the fake upstream accepts (secret from KGEN_SANDBOX_CLIENT_SECRET, default `sandbox-secret`).
    #[arg(long, env = "KGEN_SANDBOX_CLIENT_ID", default_value = crate::sandbox::SANDBOX_CLIENT_ID)]
    pub client_id: String,
    /// Log format.
    #[arg(long, env = "KGEN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

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

/// How to reach KGeN.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Base URL; `/s2s/session/` is appended.
    pub url: Url,
    /// The game's KGeN client id.
    pub client_id: String,
    /// The game's KGeN client secret (never printed).
    pub client_secret: SecretString,
    /// Where the secret came from, when a file: re-read so a rotated secret is used without a restart.
    pub client_secret_file: Option<PathBuf>,
    /// Longest wait for one upstream answer.
    pub timeout: Duration,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Largest response body read.
    pub max_body: usize,
    /// Extra CA certificates trusted for KGeN's TLS.
    pub extra_roots: Vec<reqwest::Certificate>,
    /// HTTP/2 without negotiation (all calls multiplexed on few connections).
    pub http2_prior_knowledge: bool,
    /// Idle connections kept per upstream host.
    pub max_idle_connections: usize,
}

/// How the gateway protects itself and KGeN when KGeN is slow or failing.
#[derive(Debug, Clone)]
pub struct ResilienceSettings {
    /// Most attempts per call (1 = no retries).
    pub max_attempts: u32,
    /// Retries allowed as a fraction of recent first attempts (0.2 = 20 %).
    pub retry_budget_ratio: f32,
    /// Retries allowed per second whatever the traffic.
    pub retry_budget_min_per_sec: u32,
    /// Most upstream calls in flight.
    pub max_concurrent_upstream: usize,
    /// Longest wait for a free upstream slot.
    pub queue_timeout: Duration,
    /// The circuit breaker.
    pub breaker: BreakerSettings,
    /// Which failed attempts are retried.
    pub retry_on: RetryOn,
}

impl Default for ResilienceSettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            retry_budget_ratio: 0.2,
            retry_budget_min_per_sec: 10,
            max_concurrent_upstream: 1024,
            queue_timeout: Duration::from_millis(100),
            breaker: BreakerSettings::default(),
            retry_on: RetryOn::default(),
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
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// gRPC-Web on the gRPC port; off (native gRPC only) when unset.
    pub grpc_web: Option<GrpcWebSettings>,
}

/// gRPC-Web (`--grpc-web`): which browser origins may read the answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcWebSettings {
    /// The CORS allow-list.
    pub allowed_origins: AllowedOrigins,
}

/// Origins granted CORS access to gRPC-Web calls. Never with credentials (cookies, HTTP authentication, client
/// certificates): browser callers authenticate with `authorization: Bearer`, which CORS allows as a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: every origin.
    Any,
    /// Exactly these origins, serialized as browsers send them (`https://tools.example.com`); empty grants none.
    List(Vec<HeaderValue>),
}

impl Default for AllowedOrigins {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

impl GrpcWebSettings {
    /// gRPC-Web allowing `origins` (each `scheme://host[:port]`, or a lone `*`); blank entries are skipped.
    pub fn allowing<I>(origins: I) -> Result<Self, String>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut list = Vec::new();
        let mut any = false;
        for raw in origins {
            match raw.as_ref().trim() {
                "" => {}
                "*" => any = true,
                origin => {
                    let origin = parse_origin(origin)?;
                    if !list.contains(&origin) {
                        list.push(origin);
                    }
                }
            }
        }
        let allowed_origins = match (any, list.is_empty()) {
            (false, _) => AllowedOrigins::List(list),
            (true, true) => AllowedOrigins::Any,
            (true, false) => {
                return Err("`*` allows every origin; it cannot be combined with others".into())
            }
        };
        Ok(Self { allowed_origins })
    }
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
        }
    }
}

impl UpstreamSettings {
    /// Settings for `url` with the given credentials and the production defaults for everything else.
    pub fn new(url: Url, client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            url,
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
            client_secret_file: None,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            max_body: 1024 * 1024,
            extra_roots: Vec::new(),
            http2_prior_knowledge: false,
            max_idle_connections: 256,
        }
    }
}

impl Settings {
    /// Settings with production defaults against `upstream`.
    pub fn new(upstream: UpstreamSettings) -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 50051)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            upstream,
            resilience: ResilienceSettings::default(),
            batch_concurrency: crate::batch::DEFAULT_BATCH_CONCURRENCY,
            server: ServerSettings::default(),
            shutdown_grace: Duration::from_secs(10),
            log_format: LogFormat::Text,
            sandbox: false,
            sandbox_ignores: Vec::new(),
            otlp_endpoint: None,
            caller_tokens: None,
            tenants: None,
        }
    }
}

/// One setting that cannot be used.
#[derive(Debug)]
pub struct Invalid {
    /// The flag / environment variable at fault.
    pub setting: &'static str,
    /// What is wrong with it (never its secret value).
    pub problem: String,
}

/// Every setting that cannot be used, one line each: the process prints them all and exits with code 2, so a
/// deployment with several mistakes learns of them in one start.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in the order the settings are checked (at least one).
    pub problems: Vec<Invalid>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, invalid) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(
                f,
                "invalid setting {}: {}",
                invalid.setting, invalid.problem
            )?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn new(setting: &'static str, problem: impl fmt::Display) -> Self {
        Self {
            problems: vec![Invalid {
                setting,
                problem: problem.to_string(),
            }],
        }
    }

    /// The first problem found.
    pub fn first(&self) -> Option<&Invalid> {
        self.problems.first()
    }
}

/// The problems found so far while checking the settings: every check runs, whatever failed before it.
#[derive(Debug, Default)]
struct Problems(Vec<Invalid>);

impl Problems {
    fn add(&mut self, setting: &'static str, problem: impl fmt::Display) {
        self.0.push(Invalid {
            setting,
            problem: problem.to_string(),
        });
    }

    fn ensure(&mut self, ok: bool, setting: &'static str, problem: &str) {
        if !ok {
            self.add(setting, problem);
        }
    }

    fn positive(&mut self, value: Duration, setting: &'static str) {
        self.ensure(!value.is_zero(), setting, "must be greater than zero");
    }

    /// The value of `result`, or `None` with its error recorded against `setting`.
    fn take<T, E: fmt::Display>(
        &mut self,
        setting: &'static str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(problem) => {
                self.add(setting, problem);
                None
            }
        }
    }

    /// `Err` with every problem when there is any.
    fn finish(self) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems: self.0 })
        }
    }
}

impl GatewayArgs {
    /// Validates the flags into settings, reading the client secret from its file or the environment.
    /// `secret_env` is the value of `KGEN_CLIENT_SECRET`, passed in so tests need not touch the process env.
    pub fn into_settings(self, secret_env: Option<String>) -> Result<Settings, ConfigError> {
        const URL: &str = "--upstream-url / KGEN_UPSTREAM_URL";
        const ID: &str = "--client-id / KGEN_CLIENT_ID";
        const SECRET: &str = "--client-secret-file / KGEN_CLIENT_SECRET_FILE / KGEN_CLIENT_SECRET";
        const ORIGINS: &str = "--grpc-web-allowed-origins / KGEN_GRPC_WEB_ALLOWED_ORIGINS";

        let mut problems = Problems::default();
        let url = problems.take(URL, parse_upstream_url(&self.upstream_url));
        problems.positive(
            self.upstream_timeout,
            "--upstream-timeout / KGEN_UPSTREAM_TIMEOUT",
        );
        problems.positive(
            self.connect_timeout,
            "--connect-timeout / KGEN_CONNECT_TIMEOUT",
        );
        problems.ensure(
            self.max_upstream_body >= 1024,
            "--max-upstream-body / KGEN_MAX_UPSTREAM_BODY",
            "must be at least 1KiB",
        );

        problems.ensure(
            (1..=10).contains(&self.upstream_max_attempts),
            "--upstream-max-attempts / KGEN_UPSTREAM_MAX_ATTEMPTS",
            "must be between 1 and 10",
        );
        problems.ensure(
            (0.0..=1000.0).contains(&self.retry_budget_percent),
            "--retry-budget-percent / KGEN_RETRY_BUDGET_PERCENT",
            "must be between 0 and 1000",
        );
        problems.ensure(
            self.retry_budget_min_per_sec <= 100_000,
            "--retry-budget-min-per-sec / KGEN_RETRY_BUDGET_MIN_PER_SEC",
            "must be at most 100000",
        );
        problems.ensure(
            (1..=1_000_000).contains(&self.max_concurrent_upstream),
            "--max-concurrent-upstream / KGEN_MAX_CONCURRENT_UPSTREAM",
            "must be between 1 and 1000000",
        );
        problems.ensure(
            (1..=crate::batch::MAX_BATCH_CONCURRENCY).contains(&self.batch_concurrency),
            "--batch-concurrency / KGEN_BATCH_CONCURRENCY",
            "must be between 1 and 256",
        );
        problems.ensure(
            self.breaker_failure_threshold > 0 && self.breaker_probes > 0,
            "--breaker-failure-threshold / --breaker-probes",
            "must be at least 1",
        );
        problems.positive(
            self.breaker_cool_down,
            "--breaker-cool-down / KGEN_BREAKER_COOL_DOWN",
        );
        problems.positive(
            self.breaker_window,
            "--breaker-window / KGEN_BREAKER_WINDOW",
        );
        problems.ensure(
            self.max_concurrent_streams > 0,
            "--max-concurrent-streams / KGEN_MAX_CONCURRENT_STREAMS",
            "must be at least 1",
        );
        problems.ensure(
            self.max_request_size >= 1024,
            "--max-request-size / KGEN_MAX_REQUEST_SIZE",
            "must be at least 1KiB",
        );
        problems.positive(
            self.http2_keepalive_interval,
            "--http2-keepalive-interval / KGEN_HTTP2_KEEPALIVE_INTERVAL",
        );
        problems.positive(
            self.http2_keepalive_timeout,
            "--http2-keepalive-timeout / KGEN_HTTP2_KEEPALIVE_TIMEOUT",
        );
        problems.positive(self.tcp_keepalive, "--tcp-keepalive / KGEN_TCP_KEEPALIVE");
        problems.positive(
            self.max_connection_age,
            "--max-connection-age / KGEN_MAX_CONNECTION_AGE",
        );
        problems.ensure(
            self.max_concurrent_calls > 0,
            "--max-concurrent-calls / KGEN_MAX_CONCURRENT_CALLS",
            "must be at least 1",
        );
        problems.ensure(
            self.max_connections != Some(0),
            "--max-connections / KGEN_MAX_CONNECTIONS",
            "must be at least 1",
        );
        problems.positive(
            self.handshake_timeout,
            "--handshake-timeout / KGEN_HANDSHAKE_TIMEOUT",
        );
        problems.positive(
            self.max_connection_idle,
            "--max-connection-idle / KGEN_MAX_CONNECTION_IDLE",
        );
        problems.positive(
            self.request_body_timeout,
            "--request-body-timeout / KGEN_REQUEST_BODY_TIMEOUT",
        );
        problems.positive(
            self.stream_idle_timeout,
            "--stream-idle-timeout / KGEN_STREAM_IDLE_TIMEOUT",
        );
        problems.ensure(
            self.max_buffered_request_bytes >= self.max_request_size,
            "--max-buffered-request-bytes / KGEN_MAX_BUFFERED_REQUEST_BYTES",
            "must be at least --max-request-size",
        );
        problems.ensure(
            self.upstream_max_idle_connections >= 1,
            "--upstream-max-idle-connections / KGEN_UPSTREAM_MAX_IDLE_CONNECTIONS",
            "must be at least 1",
        );
        const OTLP: &str = "--otlp-endpoint / KGEN_OTLP_ENDPOINT";
        let otlp_endpoint = match self.otlp_endpoint {
            Some(_) if !cfg!(feature = "otlp") => {
                problems.add(
                    OTLP,
                    "this build has no OTLP export (build with `--features otlp`)",
                );
                None
            }
            Some(raw) => problems
                .take(OTLP, parse_upstream_url(&raw))
                .map(|url| url.to_string()),
            None => None,
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => problems.take(
                "--tls-cert / --tls-key / --tls-client-ca",
                crate::tls::server_config(cert, key, self.tls_client_ca.as_deref()),
            ),
            _ => None,
        };
        let caller_tokens = match self.caller_tokens_file {
            Some(path) => problems
                .take(
                    "--caller-tokens-file / KGEN_CALLER_TOKENS_FILE",
                    crate::auth::load(&path),
                )
                .map(|tokens| (path, Arc::new(CallerAuth::new(tokens)))),
            None => None,
        };
        let grpc_web = if self.grpc_web {
            problems.take(
                ORIGINS,
                GrpcWebSettings::allowing(&self.grpc_web_allowed_origins),
            )
        } else {
            // An empty value (an unset variable in a manifest, say) is fine; origins without gRPC-Web are not.
            problems.ensure(
                self.grpc_web_allowed_origins
                    .iter()
                    .all(|o| o.trim().is_empty()),
                ORIGINS,
                "needs --grpc-web / KGEN_GRPC_WEB=true",
            );
            None
        };
        let extra_roots = match &self.upstream_ca_file {
            Some(path) => problems
                .take(
                    "--upstream-ca-file / KGEN_UPSTREAM_CA_FILE",
                    read_ca_file(path),
                )
                .unwrap_or_default(),
            None => Vec::new(),
        };

        let mut secret_file = None::<PathBuf>;
        let mut sandbox_ignores = Vec::new();
        let tenants_only = self.tenants_file.is_some()
            && self.client_id.is_none()
            && self.client_secret_file.is_none();
        let (client_id, client_secret) = if self.sandbox {
            // The embedded sandbox supplies its own upstream and credentials at build time. Credentials given
            // anyway are not read, only named in the start-up warning.
            for (given, setting) in [
                (self.client_id.is_some(), ID),
                (
                    self.client_secret_file.is_some(),
                    "--client-secret-file / KGEN_CLIENT_SECRET_FILE",
                ),
                (secret_env.is_some(), CLIENT_SECRET_ENV),
            ] {
                if given {
                    sandbox_ignores.push(setting);
                }
            }
            (String::new(), String::new())
        } else if tenants_only {
            // Every tenant comes from the tenants file; there is no flags' tenant.
            (String::new(), String::new())
        } else {
            let id = match self.client_id {
                Some(id) => problems
                    .take(ID, check_header_value(&id))
                    .map_or_else(String::new, |()| id),
                None => {
                    problems.add(ID, "missing (required unless --sandbox)");
                    String::new()
                }
            };
            let secret = match (self.client_secret_file, secret_env) {
                (Some(path), _) => {
                    let secret = problems.take(SECRET, read_secret_file(&path));
                    secret_file = Some(path);
                    secret
                }
                (None, Some(secret)) => Some(secret.trim().to_owned()),
                (None, None) => {
                    problems.add(SECRET, "missing (required unless --sandbox)");
                    None
                }
            };
            let secret = secret
                .and_then(|secret| {
                    problems
                        .take(SECRET, check_header_value(&secret))
                        .map(|()| secret)
                })
                .unwrap_or_default();
            (id, secret)
        };

        const TENANTS: &str = "--tenants-file / KGEN_TENANTS_FILE";
        let tenants = match (self.tenants_file, &url) {
            (Some(path), Some(url)) => {
                let config = problems.take(
                    TENANTS,
                    TenantsConfig::load(&path, url, &|variable| std::env::var(variable).ok()),
                );
                config.and_then(|config| {
                    let checked = config
                        .check_against_flags(self.sandbox || !client_id.is_empty())
                        .map_err(|p| format!("{}: {p}", path.display()));
                    problems.take(TENANTS, checked).map(|()| (path, config))
                })
            }
            // Its upstream_url fallback is unusable: the URL's own problem is reported.
            (Some(_), None) | (None, _) => None,
        };

        problems.finish()?;
        let Some(url) = url else {
            return Err(ConfigError::new(URL, "unusable"));
        };
        let mut upstream = UpstreamSettings::new(url, client_id, client_secret);
        upstream.timeout = self.upstream_timeout;
        upstream.connect_timeout = self.connect_timeout;
        upstream.max_body = self.max_upstream_body;
        upstream.extra_roots = extra_roots;
        upstream.http2_prior_knowledge = self.upstream_http2_prior_knowledge;
        upstream.max_idle_connections = self.upstream_max_idle_connections;
        upstream.client_secret_file = secret_file;
        let resilience = ResilienceSettings {
            max_attempts: self.upstream_max_attempts,
            retry_budget_ratio: self.retry_budget_percent / 100.0,
            retry_budget_min_per_sec: self.retry_budget_min_per_sec,
            max_concurrent_upstream: self.max_concurrent_upstream,
            queue_timeout: self.upstream_queue_timeout,
            breaker: BreakerSettings {
                failure_threshold: self.breaker_failure_threshold,
                window: self.breaker_window,
                cool_down: self.breaker_cool_down,
                probes: self.breaker_probes,
            },
            retry_on: self.retry_on,
        };
        let server = ServerSettings {
            max_concurrent_streams: self.max_concurrent_streams,
            max_concurrent_calls: self.max_concurrent_calls,
            max_request_size: self.max_request_size,
            http2_keepalive_interval: self.http2_keepalive_interval,
            http2_keepalive_timeout: self.http2_keepalive_timeout,
            tcp_keepalive: self.tcp_keepalive,
            max_connection_age: self.max_connection_age,
            max_connection_age_grace: self.max_connection_age_grace,
            max_connections: self.max_connections,
            handshake_timeout: self.handshake_timeout,
            max_connection_idle: self.max_connection_idle,
            request_limits: RequestLimitSettings {
                body_timeout: self.request_body_timeout,
                stream_idle_timeout: self.stream_idle_timeout,
                max_buffered_bytes: self.max_buffered_request_bytes,
            },
            tls,
            grpc_web,
        };
        Ok(Settings {
            listen: self.listen,
            admin_listen: self.admin_listen,
            upstream,
            resilience,
            batch_concurrency: self.batch_concurrency,
            server,
            shutdown_grace: self.shutdown_grace,
            log_format: self.log_format,
            sandbox: self.sandbox,
            sandbox_ignores,
            otlp_endpoint,
            caller_tokens,
            tenants,
        })
    }
}

/// Reads the sandbox's accepted secret from its environment variable, or its default.
pub fn sandbox_secret(env_value: Option<String>) -> SecretString {
    SecretString::from(
        env_value.unwrap_or_else(|| crate::sandbox::SANDBOX_CLIENT_SECRET.to_owned()),
    )
}

/// `Err` naming `setting` and `problem` unless `ok`.
pub(crate) fn parse_upstream_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme must be https or http, not {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_owned());
    }
    Ok(url)
}

/// An origin as browsers send it in `Origin`: `https://tools.example.com`, `http://localhost:5173`. Scheme and host
/// are lower-cased and a default port dropped, so the configured value compares equal to the header.
fn parse_origin(raw: &str) -> Result<HeaderValue, String> {
    let problem =
        |why: &str| format!("{raw:?} is not an origin like https://tools.example.com ({why})");
    let url = Url::parse(raw).map_err(|e| problem(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(problem("scheme must be https or http"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(problem("has user info"));
    }
    if url.path() != "/" || raw.ends_with('/') || url.query().is_some() || url.fragment().is_some()
    {
        return Err(problem("scheme://host[:port] only, without a path"));
    }
    HeaderValue::from_str(&url.origin().ascii_serialization()).map_err(|e| problem(&e.to_string()))
}

fn read_secret_file(path: &std::path::Path) -> Result<String, String> {
    let raw = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
    Ok(raw.trim().to_owned())
}

fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem =
        std::fs::read(path).map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|_| format!("{} is not a PEM certificate bundle", path.display()))?;
    if certificates.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certificates)
}

/// Parses a rotated client secret file the way the original was read.
pub fn parse_secret(content: &[u8]) -> Result<SecretString, String> {
    let text = std::str::from_utf8(content)
        .map_err(|_| "is not UTF-8".to_owned())?
        .trim();
    check_header_value(text).map_err(str::to_owned)?;
    Ok(SecretString::from(text.to_owned()))
}

fn check_header_value(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("is empty");
    }
    if value.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err("must be printable ASCII");
    }
    Ok(())
}

/// Parses `5s`, `250ms`, `1m 30s` (humantime).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| e.to_string())
}

/// Parses a byte size: `65536`, `64KiB`, `1MiB`, `1GiB` (also `KB`/`MB`/`GB` as binary multiples).
pub fn parse_size(raw: &str) -> Result<usize, String> {
    let raw = raw.trim();
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (digits, unit) = raw.split_at(split);
    let number: usize = digits
        .parse()
        .map_err(|_| format!("{raw:?} is not a size like 65536, 64KiB or 1MiB"))?;
    let multiplier: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB or GiB)"
            ))
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("{raw:?} is too large"))
}

/// Exposes a secret for the one place that must send it (an HTTP header).
pub(crate) fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> GatewayArgs {
        let mut argv = vec!["kgen-gateway"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv)
            .expect("valid command line")
            .gateway
    }

    #[test]
    fn sizes_accept_plain_bytes_and_binary_units() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(64 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2 mb"), Ok(2 << 20));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1TiB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn missing_client_id_without_sandbox_names_the_setting() {
        let err = args(&[]).into_settings(Some("s".into())).unwrap_err();
        assert_eq!(err.problems[0].setting, "--client-id / KGEN_CLIENT_ID");
    }

    #[test]
    fn missing_secret_without_sandbox_names_the_setting() {
        let err = args(&["--client-id", "game"])
            .into_settings(None)
            .unwrap_err();
        assert!(
            err.problems[0].setting.contains("KGEN_CLIENT_SECRET"),
            "{err}"
        );
    }

    #[test]
    fn secret_from_env_is_trimmed_and_never_printed() {
        let settings = args(&["--client-id", "game"])
            .into_settings(Some("hunter2-secret\n".into()))
            .unwrap();
        assert_eq!(
            settings.upstream.client_secret.expose_secret(),
            "hunter2-secret"
        );
        assert!(!format!("{settings:?}").contains("hunter2-secret"));
    }

    #[test]
    fn unreadable_secret_file_is_reported_without_its_path_contents() {
        let err = args(&[
            "--client-id",
            "game",
            "--client-secret-file",
            "/nonexistent/secret",
        ])
        .into_settings(None)
        .unwrap_err();
        assert!(
            err.to_string().contains("cannot read /nonexistent/secret"),
            "{err}"
        );
    }

    #[test]
    fn upstream_url_must_be_http_or_https() {
        let err = args(&["--sandbox", "--upstream-url", "ftp://example.com"])
            .into_settings(None)
            .unwrap_err();
        assert_eq!(
            err.problems[0].setting,
            "--upstream-url / KGEN_UPSTREAM_URL"
        );
        assert!(args(&["--sandbox", "--upstream-url", "not a url"])
            .into_settings(None)
            .is_err());
    }

    #[test]
    fn zero_timeouts_are_rejected() {
        let err = args(&["--sandbox", "--upstream-timeout", "0s"])
            .into_settings(None)
            .unwrap_err();
        assert!(err.problems[0].setting.starts_with("--upstream-timeout"));
    }

    #[test]
    fn sandbox_ignores_the_credentials_it_is_given_and_names_them_without_reading_them() {
        let settings = args(&[
            "--sandbox",
            "--client-id",
            "real-id",
            "--client-secret-file",
            "/nonexistent/secret",
        ])
        .into_settings(Some("real-secret".into()))
        .unwrap();
        assert_eq!(settings.upstream.client_id, "");
        assert_eq!(settings.upstream.client_secret.expose_secret(), "");
        assert_eq!(settings.upstream.client_secret_file, None);
        assert_eq!(
            settings.sandbox_ignores,
            [
                "--client-id / KGEN_CLIENT_ID",
                "--client-secret-file / KGEN_CLIENT_SECRET_FILE",
                "KGEN_CLIENT_SECRET"
            ]
        );
        assert!(!format!("{settings:?}").contains("real-secret"));
        assert!(args(&["--sandbox"])
            .into_settings(None)
            .unwrap()
            .sandbox_ignores
            .is_empty());
    }

    #[test]
    fn sandbox_needs_no_credentials() {
        let settings = args(&["--sandbox"]).into_settings(None).unwrap();
        assert!(settings.sandbox);
        assert_eq!(settings.upstream.timeout, Duration::from_secs(5));
        assert_eq!(settings.upstream.max_body, 1 << 20);
        assert_eq!(settings.shutdown_grace, Duration::from_secs(10));
    }

    #[test]
    fn resilience_and_server_flags_reach_the_settings() {
        let settings = args(&[
            "--sandbox",
            "--upstream-max-attempts",
            "1",
            "--retry-budget-percent",
            "50",
            "--max-concurrent-upstream",
            "8",
            "--batch-concurrency",
            "4",
            "--breaker-cool-down",
            "2s",
            "--max-connection-age",
            "1m",
        ])
        .into_settings(None)
        .unwrap();
        assert_eq!(settings.resilience.max_attempts, 1);
        assert!((settings.resilience.retry_budget_ratio - 0.5).abs() < f32::EPSILON);
        assert_eq!(settings.resilience.max_concurrent_upstream, 8);
        assert_eq!(settings.batch_concurrency, 4);
        assert_eq!(
            settings.resilience.breaker.cool_down,
            Duration::from_secs(2)
        );
        assert_eq!(settings.server.max_connection_age, Duration::from_secs(60));
        assert_eq!(
            args(&["--sandbox"])
                .into_settings(None)
                .unwrap()
                .resilience
                .max_attempts,
            3
        );
    }

    #[test]
    fn out_of_range_resilience_flags_are_rejected() {
        for flags in [
            &["--sandbox", "--upstream-max-attempts", "0"][..],
            &["--sandbox", "--upstream-max-attempts", "11"],
            &["--sandbox", "--retry-budget-percent", "-1"],
            &["--sandbox", "--max-concurrent-upstream", "0"],
            &["--sandbox", "--batch-concurrency", "0"],
            &["--sandbox", "--batch-concurrency", "257"],
            &["--sandbox", "--breaker-failure-threshold", "0"],
            &["--sandbox", "--max-concurrent-streams", "0"],
            &["--sandbox", "--max-connection-age", "0s"],
        ] {
            let parsed =
                Cli::try_parse_from(std::iter::once("kgen-gateway").chain(flags.iter().copied()));
            let rejected = parsed.map_or(true, |cli| cli.gateway.into_settings(None).is_err());
            assert!(rejected, "{flags:?}");
        }
    }

    #[test]
    fn every_invalid_setting_is_reported_at_once_one_line_each() {
        let err = args(&[
            "--upstream-url",
            "ftp://example.com",
            "--client-id",
            "id",
            "--upstream-timeout",
            "0s",
            "--max-concurrent-streams",
            "0",
            "--batch-concurrency",
            "0",
        ])
        .into_settings(None)
        .unwrap_err();

        let settings: Vec<&str> = err.problems.iter().map(|p| p.setting).collect();
        assert_eq!(
            settings,
            [
                "--upstream-url / KGEN_UPSTREAM_URL",
                "--upstream-timeout / KGEN_UPSTREAM_TIMEOUT",
                "--batch-concurrency / KGEN_BATCH_CONCURRENCY",
                "--max-concurrent-streams / KGEN_MAX_CONCURRENT_STREAMS",
                "--client-secret-file / KGEN_CLIENT_SECRET_FILE / KGEN_CLIENT_SECRET",
            ]
        );
        let text = err.to_string();
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(
            text.lines().all(|l| l.starts_with("invalid setting ")),
            "{text}"
        );
    }

    #[test]
    fn a_ca_file_that_is_not_pem_is_rejected() {
        let path = std::env::temp_dir().join(format!("kgen-not-a-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate").unwrap();
        let err = args(&["--sandbox", "--upstream-ca-file", path.to_str().unwrap()])
            .into_settings(None)
            .unwrap_err();
        let _ = std::fs::remove_file(&path);
        assert!(
            err.problems[0].setting.starts_with("--upstream-ca-file"),
            "{err}"
        );
    }

    #[test]
    fn grpc_web_is_off_by_default_and_grants_no_origin_when_enabled_without_a_list() {
        let off = args(&["--sandbox"]).into_settings(None).unwrap();
        assert_eq!(off.server.grpc_web, None);
        let on = args(&["--sandbox", "--grpc-web"])
            .into_settings(None)
            .unwrap();
        assert_eq!(
            on.server.grpc_web,
            Some(GrpcWebSettings {
                allowed_origins: AllowedOrigins::List(Vec::new())
            })
        );
    }

    #[test]
    fn grpc_web_origins_are_normalized_the_way_browsers_send_them() {
        let settings = args(&[
            "--sandbox",
            "--grpc-web",
            "--grpc-web-allowed-origins",
            "https://Tools.Example.com:443, http://localhost:5173,,https://tools.example.com",
        ])
        .into_settings(None)
        .unwrap();
        assert_eq!(
            settings.server.grpc_web.unwrap().allowed_origins,
            AllowedOrigins::List(vec![
                HeaderValue::from_static("https://tools.example.com"),
                HeaderValue::from_static("http://localhost:5173"),
            ])
        );
        assert_eq!(
            GrpcWebSettings::allowing(["*"]).unwrap().allowed_origins,
            AllowedOrigins::Any
        );
    }

    #[test]
    fn grpc_web_origins_that_are_not_bare_origins_are_rejected() {
        for bad in [
            "tools.example.com",
            "https://tools.example.com/",
            "https://tools.example.com/app",
            "https://tools.example.com?x=1",
            "https://user@tools.example.com",
            "ftp://tools.example.com",
            "null",
            "https://",
        ] {
            let err = args(&["--sandbox", "--grpc-web", "--grpc-web-allowed-origins", bad])
                .into_settings(None)
                .unwrap_err();
            assert_eq!(
                err.problems[0].setting,
                "--grpc-web-allowed-origins / KGEN_GRPC_WEB_ALLOWED_ORIGINS",
                "{bad}"
            );
        }
        assert!(GrpcWebSettings::allowing(["*", "https://tools.example.com"]).is_err());
    }

    #[test]
    fn grpc_web_origins_need_grpc_web_unless_blank() {
        let err = args(&[
            "--sandbox",
            "--grpc-web-allowed-origins",
            "https://tools.example.com",
        ])
        .into_settings(None)
        .unwrap_err();
        assert!(err.to_string().contains("needs --grpc-web"), "{err}");
        let blank = args(&["--sandbox", "--grpc-web-allowed-origins", ""])
            .into_settings(None)
            .unwrap();
        assert_eq!(blank.server.grpc_web, None);
    }

    #[test]
    fn secrets_with_control_characters_are_rejected() {
        let err = args(&["--client-id", "game"])
            .into_settings(Some("bad\u{7}secret".into()))
            .unwrap_err();
        assert!(err.to_string().contains("printable ASCII"));
        assert!(!err.to_string().contains("bad"));
    }
}
