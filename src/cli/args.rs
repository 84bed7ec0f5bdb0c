//! The command line: every flag, its environment fallback, its default and its help text. The client secret comes
//! from a file (`--client-secret-file`) or from the `KGEN_CLIENT_SECRET` environment variable, never from a flag,
//! so it does not show up in `ps`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use super::check::ConfigError;
use crate::{
    app::Settings,
    core::{RetryOn, DEFAULT_RETRY_ON},
    grpc::DEFAULT_BATCH_CONCURRENCY,
    observability::LogFormat,
    sandbox::{SandboxConfig, SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET},
    upstream::DEFAULT_UPSTREAM_URL,
};

/// Environment variable holding the client secret (deliberately not a flag).
pub const CLIENT_SECRET_ENV: &str = "KGEN_CLIENT_SECRET";

/// The gateway's gRPC address, as errors name it.
pub const LISTEN: &str = "--listen / KGEN_GATEWAY_LISTEN";
/// The admin address, as errors name it.
pub const ADMIN_LISTEN: &str = "--admin-listen / KGEN_ADMIN_LISTEN";
/// The standalone sandbox's address, as errors name it.
pub const SANDBOX_LISTEN: &str = "--listen / KGEN_SANDBOX_LISTEN";

/// A listen address: an IP and a port. The standard parser's "invalid socket address syntax" does not say that a
/// host name (`localhost:50051`) is what it refuses.
fn listen_address(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        "expected IP:PORT, such as 0.0.0.0:50051 (every interface) or 127.0.0.1:50051 (this machine only); a host \
         name such as localhost is not accepted"
            .to_owned()
    })
}
/// A switch's value from its environment variable: what people type for booleans, in any case. Empty is off, as
/// for an unset variable; anything else is refused rather than taken as on.
fn boolean(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "y" | "t" => Ok(true),
        "0" | "false" | "no" | "off" | "n" | "f" | "" => Ok(false),
        _ => Err("expected a boolean: true or false, 1 or 0, yes or no, on or off".to_owned()),
    }
}

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
            || match self.command {
                // One call needs no more than one thread.
                Some(Command::Call(_)) => 1,
                _ => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            },
            usize::from,
        )
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run only the fake KGeN upstream (plain HTTP/1.1 and h2c), for other tools and benchmarks.
    Sandbox(SandboxArgs),
    /// Make one CreateSession call and print the session, or the error with its details decoded.
    ///
    /// For trying a running gateway by hand. The session is printed to stdout as proto3 JSON (camelCase names,
    /// every field, the tokens redacted unless --show-tokens). A failed call prints `CODE: message` to stderr, then
    /// one indented line per google.rpc detail (ErrorInfo, RetryInfo, BadRequest) and the call's x-request-id.
    #[command(after_help = CALL_EXIT_STATUS)]
    Call(CallArgs),
}

/// The exit statuses of `kgen-gateway call`, for its `--help`.
const CALL_EXIT_STATUS: &str = "\
Exit status:
  0        the call succeeded; the session is on stdout
  64 + N   the gateway answered gRPC status code N, e.g. 67 INVALID_ARGUMENT, 68 DEADLINE_EXCEEDED,
           72 RESOURCE_EXHAUSTED, 77 UNAVAILABLE, 80 UNAUTHENTICATED (as grpcurl does)
  1        no gRPC answer: nothing reachable at --addr, or not a plaintext gRPC server
  2        bad command line";

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormatArg {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(format: LogFormatArg) -> Self {
        match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// Flags of the gateway.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Address the gRPC server listens on.
    #[arg(long, env = "KGEN_GATEWAY_LISTEN", default_value = "0.0.0.0:50051", value_parser = listen_address)]
    pub listen: SocketAddr,
    /// Address of the admin HTTP listener (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, env = "KGEN_ADMIN_LISTEN", default_value = "127.0.0.1:9090", value_parser = listen_address)]
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
    #[arg(long, env = "KGEN_UPSTREAM_HTTP2_PRIOR_KNOWLEDGE", value_parser = boolean)]
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
    #[arg(long, env = "KGEN_RETRY_ON", default_value = DEFAULT_RETRY_ON, value_parser = RetryOn::parse)]
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
    #[arg(long, env = "KGEN_BATCH_CONCURRENCY", default_value_t = DEFAULT_BATCH_CONCURRENCY)]
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
    #[arg(long, env = "KGEN_GRPC_WEB", value_parser = boolean)]
    pub grpc_web: bool,
    /// Origins whose web pages may call over gRPC-Web (CORS): comma-separated exact origins such as
    /// `https://tools.example.com`, or `*` for any origin. Needs --grpc-web.
    #[arg(long, env = "KGEN_GRPC_WEB_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub grpc_web_allowed_origins: Vec<String>,
    /// Also serve the Connect protocol's unary calls (`POST` with `application/json` or `application/proto`) on
    /// the gRPC port, over HTTP/1.1 and HTTP/2: on unless set to false (`--connect=false`, `KGEN_CONNECT=false`).
    #[arg(
        long,
        env = "KGEN_CONNECT",
        value_parser = boolean,
        num_args = 0..=1,
        require_equals = true,
        default_value = "true",
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub connect: bool,
    /// How long in-flight calls may take to finish after SIGTERM/SIGINT.
    #[arg(long, env = "KGEN_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// After SIGTERM/SIGINT, how long to go on accepting connections and serving calls while health checks answer
    /// NOT_SERVING and /readyz 503, before the listener closes and the grace period starts: time for load balancers
    /// to stop sending calls. 0s closes the listener at once.
    #[arg(long, env = "KGEN_DRAIN_DELAY", default_value = "0s", value_parser = parse_duration)]
    pub drain_delay: Duration,
    /// Log format.
    #[arg(long, env = "KGEN_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
    /// Log one line per finished CreateSession, CreateSessions or CreateSessionBatch RPC, at INFO with the target
    /// `kgen_gateway::access` (method, code, reason, latency, upstream status, attempts, tenant, caller, request id,
    /// client address).
    #[arg(long, env = "KGEN_ACCESS_LOG", value_parser = boolean)]
    pub access_log: bool,
    /// Export spans over OTLP/HTTP to this collector (e.g. `http://otel-collector:4318`); needs a build with
    /// `--features otlp`.
    #[arg(long, env = "KGEN_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Serve against an embedded fake KGeN upstream (responses are fake; no credentials needed). `KGEN_SANDBOX`
    /// takes what people type for booleans: 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "KGEN_SANDBOX", value_parser = boolean)]
    pub sandbox: bool,
}

/// Flags of `kgen-gateway sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address the fake upstream listens on.
    #[arg(long, env = "KGEN_SANDBOX_LISTEN", default_value = "127.0.0.1:8080", value_parser = listen_address)]
    pub listen: SocketAddr,
    /// Client id the fake upstream accepts (secret from KGEN_SANDBOX_CLIENT_SECRET, default `sandbox-secret`).
    #[arg(long, env = "KGEN_SANDBOX_CLIENT_ID", default_value = SANDBOX_CLIENT_ID)]
    pub client_id: String,
    /// Log format.
    #[arg(long, env = "KGEN_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
}

/// Flags of `kgen-gateway call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The gamer whose session is created (the request's `user_id`).
    pub user_id: String,
    /// The gateway's address, `http://HOST:PORT` (the scheme may be left out). Plaintext HTTP/2 (h2c) only: this
    /// command does not speak TLS, so for a gateway serving --tls-cert use grpcurl or buf curl.
    #[arg(
        long,
        env = "KGEN_GATEWAY_ADDR",
        value_name = "URL",
        default_value = "http://127.0.0.1:50051",
        value_parser = gateway_address
    )]
    pub addr: http::Uri,
    /// The caller token, sent as `authorization: Bearer <TOKEN>`, for a gateway with --caller-tokens-file. Prefer
    /// the environment variable: a flag is visible to other users in `ps`.
    #[arg(long, env = "KGEN_CALLER_TOKEN", hide_env_values = true, value_parser = secret)]
    pub token: Option<SecretString>,
    /// The tenant the call is for, sent as the `x-kgen-tenant` metadata key (for a gateway with --tenants-file).
    #[arg(long, env = "KGEN_TENANT", value_name = "NAME", value_parser = tenant_name)]
    pub tenant: Option<String>,
    /// The call's deadline, sent as `grpc-timeout` (the connection is made within it too).
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = positive_duration)]
    pub timeout: Duration,
    /// Print the session's access_token and refresh_token; by default they are replaced by a marker, as they are
    /// secrets.
    #[arg(long)]
    pub show_tokens: bool,
}

/// The gateway's address for `call`: an `http://` URL with a host and a port (the scheme may be left out).
fn gateway_address(text: &str) -> Result<http::Uri, String> {
    let text = text.trim();
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let uri: http::Uri = with_scheme
        .parse()
        .map_err(|_| "expected http://HOST:PORT, such as http://127.0.0.1:50051".to_owned())?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(
            "TLS is not supported by this command: give the gateway's plaintext (h2c) address, \
                        http://HOST:PORT, or use grpcurl or buf curl for a gateway serving TLS"
                .to_owned(),
        ),
        _ => return Err("expected http://HOST:PORT, such as http://127.0.0.1:50051".to_owned()),
    }
    let has_host = uri.host().is_some_and(|host| !host.is_empty());
    let bare = uri.path() == "/" && uri.query().is_none();
    if !has_host || !bare {
        return Err(
            "expected http://HOST:PORT, such as http://127.0.0.1:50051, without a path".to_owned(),
        );
    }
    Ok(uri)
}

/// A secret taken as it is; it is checked where a refusal cannot echo it (clap's errors quote the value).
fn secret(text: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(text))
}

/// A value that can be sent as a metadata value (the gateway itself says whether it names a tenant).
fn tenant_name(text: &str) -> Result<String, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(text.to_owned())
    } else {
        Err("expected a tenant name: printable ASCII without spaces".to_owned())
    }
}

/// A duration (humantime) greater than zero.
fn positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        duration if duration.is_zero() => Err("must be greater than zero".to_owned()),
        duration => Ok(duration),
    }
}

impl SandboxArgs {
    /// What the standalone sandbox accepts: the client id of the flags and the secret of
    /// `KGEN_SANDBOX_CLIENT_SECRET` (or the default).
    pub fn config(&self) -> SandboxConfig {
        SandboxConfig {
            client_id: self.client_id.clone(),
            client_secret: SecretString::from(
                std::env::var(SANDBOX_CLIENT_SECRET_ENV)
                    .unwrap_or_else(|_| SANDBOX_CLIENT_SECRET.to_owned()),
            ),
        }
    }
}

impl GatewayArgs {
    /// [`GatewayArgs::into_settings`] with the client secret of `KGEN_CLIENT_SECRET`, if set.
    pub fn into_settings_from_env(self) -> Result<Settings, ConfigError> {
        self.into_settings(std::env::var(CLIENT_SECRET_ENV).ok())
    }
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
