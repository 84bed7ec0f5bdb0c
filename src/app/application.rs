//! Wiring: [`Application::build`] makes everything that can fail at start-up fail there; [`Application::run`]
//! serves a listener the caller bound, until the caller's shutdown future resolves.
//!
//! Shutdown: health flips to NOT_SERVING, the server stops accepting connections and sends HTTP/2 GOAWAY so no
//! new calls start, in-flight calls get up to the grace period to finish, and `run` returns.

use std::{
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use socket2::{SockRef, TcpKeepalive};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tonic_health::{server::HealthReporter, ServingStatus};
use tower::Layer;

use super::{
    admin::{self, AdminState},
    connections::{self, ConnectionLimit, Greeting, Lifetime, Slot, Tracked},
    settings::{ServerSettings, Settings},
};
use crate::{
    core::{self, BreakerState, Sessions, TenantGrant, Tenants, UpstreamPin},
    grpc::{
        self, CallerAuth, CallerCheck, CallerTokens, ConnectSettings, GrpcPort, Handler,
        RequestIdLayer, RequestLimitsLayer, ServerTls, SessionGateway, WithPeer,
    },
    observability::{BreakerGauge, Metrics, MetricsLayer, TenantGauges},
    proto::{self, session_service_server::SessionServiceServer},
    sandbox::{self, SandboxConfig, SandboxHandle},
    support::{
        secrets::{expose, parse_secret},
        throttle::Throttle,
        watcher,
    },
    upstream::BuildError,
};

/// The HTTP/2 flow-control window of each request stream: request data a stream may send ahead of the gateway.
const REQUEST_STREAM_WINDOW: u32 = 64 * 1024;
/// The HTTP/2 flow-control window of each client connection, over all its streams.
const REQUEST_CONNECTION_WINDOW: u32 = 128 * 1024;
/// How long cut-off calls get to flush their `UNAVAILABLE` answers once the grace period is over.
const CUT_OFF_FLUSH: Duration = Duration::from_secs(1);

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The upstream client could not be built.
    #[error("upstream client: {0}")]
    Upstream(#[from] BuildError),
    /// The embedded sandbox could not start.
    #[error("embedded sandbox: {0}")]
    Sandbox(std::io::Error),
    /// Server reflection could not load the descriptor sets.
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The Connect protocol's descriptors could not be loaded.
    #[error("Connect protocol: {0}")]
    Connect(String),
    /// The listener is unusable.
    #[error("listener: {0}")]
    Listener(std::io::Error),
}

/// A gateway ready to serve.
#[derive(Debug)]
pub struct Application {
    gateway: SessionGateway,
    tenants: Arc<Tenants>,
    tenants_file: Option<PathBuf>,
    secret_file: Option<PathBuf>,
    caller_auth: Option<(PathBuf, Arc<CallerAuth>)>,
    metrics: Arc<Metrics>,
    admin: Option<TcpListener>,
    ready: Arc<AtomicBool>,
    server: ServerSettings,
    cut_off: CancellationToken,
    shutdown_grace: Duration,
    drain_delay: Duration,
    sandbox: Option<SandboxHandle>,
}

impl Application {
    /// Builds the upstream client (and, with `settings.sandbox`, starts the embedded fake KGeN on an ephemeral
    /// loopback port and pins every tenant to it, with the sandbox's credentials).
    pub async fn build(mut settings: Settings) -> Result<Self, StartupError> {
        let (sandbox, pin) = if settings.sandbox {
            let (handle, pin) = start_sandbox(&mut settings).await?;
            (Some(handle), Some(pin))
        } else {
            (None, None)
        };
        let file = settings.tenants.as_ref().map(|(_, config)| config);
        let tenants = Arc::new(match pin {
            Some(pin) => Tenants::pinned(&settings.upstream, &settings.resilience, file, pin)?,
            None => Tenants::new(&settings.upstream, &settings.resilience, file)?,
        });
        if let Some(flag) = tenants.flag_tenant() {
            tracing::info!(upstream = %flag.upstream().endpoint(), "upstream configured");
        }
        if settings.tenants.is_some() {
            tracing::info!(tenants = %tenants.summary(), "tenants configured");
        }
        if let Some((_, auth)) = &settings.caller_tokens {
            warn_grants_of_unknown_tenants(&auth.current(), &tenants);
        }
        let cut_off = CancellationToken::new();
        let metrics = Arc::new(Metrics::new());
        Ok(Self {
            secret_file: settings.upstream.client_secret_file.clone(),
            caller_auth: settings.caller_tokens.clone(),
            tenants_file: settings.tenants.map(|(path, _)| path),
            gateway: SessionGateway::new(Handler::new(
                Sessions::new(
                    tenants.clone(),
                    settings.upstream.timeout,
                    metrics.clone(),
                    cut_off.clone(),
                ),
                metrics.clone(),
                settings.batch_concurrency,
                settings.server.access_log,
            )),
            tenants,
            metrics,
            admin: None,
            ready: Arc::new(AtomicBool::new(false)),
            server: settings.server,
            cut_off,
            shutdown_grace: settings.shutdown_grace,
            drain_delay: settings.drain_delay,
            sandbox,
        })
    }

    /// The tenants, each with its client, concurrency limit, retry budget and circuit breaker (for inspection).
    pub fn tenants(&self) -> Arc<Tenants> {
        self.tenants.clone()
    }

    /// Also serve the admin HTTP endpoints (`/metrics`, `/healthz`, `/readyz`) on `listener` while running.
    pub fn serve_admin_on(&mut self, listener: TcpListener) {
        self.admin = Some(listener);
    }

    /// Re-reads the client secret, caller tokens and tenants files while running (rotation without a restart).
    fn spawn_watchers(&self, stop: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
        let mut watchers = Vec::new();
        // Each watched file's `kgen_config_reload_failing{setting}`, for the alert on a reload that keeps failing.
        let report = |setting: &'static str| -> watcher::ReloadReport {
            let gauge = self.metrics.reload_failing(setting);
            Arc::new(move |failing| {
                gauge.set(i64::from(failing));
            })
        };
        if let Some(path) = &self.tenants_file {
            watchers.push(core::watch_tenants(
                self.tenants.clone(),
                path.clone(),
                watcher::RELOAD_INTERVAL,
                report("--tenants-file"),
                stop.clone(),
            ));
        }
        if let (Some(path), Some(flag)) = (&self.secret_file, self.tenants.flag_tenant()) {
            let upstream = flag.upstream().clone();
            watchers.push(watcher::watch_file(
                "--client-secret-file",
                path.clone(),
                watcher::RELOAD_INTERVAL,
                parse_secret,
                move |secret| upstream.rotate_secret(secret).map_err(|e| e.to_string()),
                report("--client-secret-file"),
                stop.clone(),
            ));
        }
        if let Some((path, auth)) = &self.caller_auth {
            let auth = auth.clone();
            watchers.push(watcher::watch_file(
                "--caller-tokens-file",
                path.clone(),
                watcher::RELOAD_INTERVAL,
                |content| {
                    let text =
                        std::str::from_utf8(content).map_err(|_| "is not UTF-8".to_owned())?;
                    grpc::CallerTokens::parse(text).map_err(|e| e.to_string())
                },
                move |tokens| {
                    auth.replace(tokens);
                    Ok(())
                },
                report("--caller-tokens-file"),
                stop,
            ));
        }
        watchers
    }

    /// Serves gRPC on `listener` until `shutdown` resolves, then drains for at most the grace period.
    ///
    /// The HTTP/2 server is hyper's, driven here rather than through `tonic::transport::Server`: tonic's server
    /// enforces `grpc-timeout` itself and answers `CANCELLED` before the gateway can answer `DEADLINE_EXCEEDED`.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), StartupError> {
        let addr = listener.local_addr().map_err(StartupError::Listener)?;
        let (health, health_service) = tonic_health::server::health_reporter();
        set_serving(&health, ServingStatus::Serving).await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // google.rpc.ErrorInfo / RetryInfo / BadRequest, so reflection clients can decode error details.
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        };
        let watchers_stop = CancellationToken::new();
        let watchers = self.spawn_watchers(watchers_stop.clone());
        let routes = grpc::Routes::new(
            SessionServiceServer::new(self.gateway)
                .max_decoding_message_size(self.server.max_request_size),
            CallerCheck::new(
                self.caller_auth.as_ref().map(|(_, auth)| auth.clone()),
                self.server.access_log,
            ),
            health_service,
            reflection().build_v1()?,
            reflection().build_v1alpha()?,
        );
        let routes = RequestLimitsLayer::new(
            self.server.request_limits,
            self.metrics.request_buffered_bytes(),
        )
        .layer(routes);
        let service = MetricsLayer::new(self.metrics.clone()).layer(RequestIdLayer.layer(routes));
        let service = GrpcPort::new(service, self.server.grpc_web.as_ref());
        let connect = self.server.connect.then_some(ConnectSettings {
            max_request_size: self.server.max_request_size,
            body_timeout: self.server.request_limits.body_timeout,
        });
        let service = grpc::Connect::new(service, connect, self.metrics.clone())
            .map_err(StartupError::Connect)?;

        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1().timer(TokioTimer::new());
        http.http2()
            .timer(TokioTimer::new())
            // Requests are small: these windows bound the unread request data a stalled stream can park here.
            .initial_stream_window_size(REQUEST_STREAM_WINDOW)
            .initial_connection_window_size(REQUEST_CONNECTION_WINDOW)
            .max_concurrent_streams(self.server.max_concurrent_streams)
            .keep_alive_interval(self.server.http2_keepalive_interval)
            .keep_alive_timeout(self.server.http2_keepalive_timeout);
        let http = Arc::new(http);
        let drain = CancellationToken::new();
        let tls = self.server.tls.clone().map(grpc::tls_acceptor);
        let open_files = connections::raise_open_files_limit();
        let limit = ConnectionLimit::with_max_calls(
            "grpc",
            self.server
                .max_connections
                .unwrap_or_else(|| connections::default_max_connections(open_files)),
            self.server.max_concurrent_calls,
            too_many_calls,
            self.metrics.listener("grpc"),
        );
        // The admin endpoints outlive the drain, so probes see /readyz turn 503 while calls finish.
        let admin_stop = CancellationToken::new();
        let mut connections = JoinSet::new();
        let admin = match self.admin {
            Some(listener) => {
                let tenants = self.tenants.clone();
                let state = AdminState {
                    metrics: self.metrics.clone(),
                    gauges: Arc::new(move || tenant_gauges(&tenants)),
                    ready: self.ready.clone(),
                };
                Some(
                    admin::spawn(listener, state, admin_stop.clone())
                        .map_err(StartupError::Listener)?,
                )
            }
            None => None,
        };
        self.ready.store(true, Ordering::SeqCst);
        if let Some(grpc_web) = &self.server.grpc_web {
            tracing::info!(allowed_origins = ?grpc_web.allowed_origins, "gRPC-Web enabled (HTTP/1.1 and HTTP/2)");
        }
        if self.server.connect {
            tracing::info!("Connect protocol enabled for unary calls (HTTP/1.1 and HTTP/2)");
        }
        tracing::info!(
            %addr,
            max_connections = limit.max(),
            max_concurrent_calls = self.server.max_concurrent_calls,
            max_concurrent_streams = self.server.max_concurrent_streams,
            transport = self.server.tls.as_ref().map_or("plaintext", ServerTls::mode),
            "kgen-gateway serving gRPC"
        );

        let server = &self.server;
        let mut serve = |stream: TcpStream, slot| {
            configure_socket(&stream, server);
            // The client's address, for the access log only (when off, requests get no extension to allocate).
            let peer = server.access_log.then(|| stream.peer_addr().ok()).flatten();
            let lifetime = Lifetime {
                greet_by: tokio::time::Instant::now() + server.handshake_timeout,
                max_idle: server.max_connection_idle,
                max_age: Some((
                    jittered(server.max_connection_age),
                    server.max_connection_age_grace,
                )),
                drain: drain.clone(),
            };
            let service =
                TowerToHyperService::new(Tracked::new(WithPeer::new(service.clone(), peer), &slot));
            serve_connection(http.clone(), tls.clone(), stream, service, lifetime, slot)
        };
        connections::accept_until(&listener, &limit, &mut connections, shutdown, &mut serve).await;

        set_serving(&health, ServingStatus::NotServing).await;
        self.ready.store(false, Ordering::SeqCst);
        if !self.drain_delay.is_zero() {
            // Still accepting and serving: a health check on a new connection (grpc-health-probe, a kubelet) and
            // /readyz say the gateway is leaving, so the load balancers stop sending calls before it closes.
            tracing::info!(drain_delay = ?self.drain_delay, "shutting down: NOT_SERVING, still accepting for the drain delay");
            let delay = tokio::time::sleep(self.drain_delay);
            connections::accept_until(&listener, &limit, &mut connections, delay, &mut serve).await;
        }
        tracing::info!(grace = ?self.shutdown_grace, "shutting down: NOT_SERVING, draining in-flight calls");
        drop(listener);
        // GOAWAY on every connection: calls in flight go on, new ones are refused.
        drain.cancel();
        if !all_closed_within(&mut connections, self.shutdown_grace).await {
            tracing::warn!("grace period over: cutting off calls still in flight (UNAVAILABLE)");
            self.cut_off.cancel();
            all_closed_within(&mut connections, CUT_OFF_FLUSH).await;
        }
        // Whatever is left (long-lived streams such as health watches) is closed now.
        connections.shutdown().await;
        if let Some(sandbox) = self.sandbox {
            sandbox.stop();
        }
        admin_stop.cancel();
        watchers_stop.cancel();
        for watcher in watchers {
            let _ = watcher.await;
        }
        if let Some(admin) = admin {
            let _ = tokio::time::timeout(CUT_OFF_FLUSH, admin).await;
        }
        tracing::info!("kgen-gateway stopped");
        Ok(())
    }
}

/// Starts the embedded fake KGeN on an ephemeral loopback port and points the flags' upstream at it, with the
/// sandbox's credentials; the pin it returns does the same for every tenant, now and on every reload, so no call
/// leaves for another upstream and no configured secret is sent anywhere.
async fn start_sandbox(
    settings: &mut Settings,
) -> Result<(SandboxHandle, UpstreamPin), StartupError> {
    let config = SandboxConfig::default();
    let handle = sandbox::spawn(config.clone())
        .await
        .map_err(StartupError::Sandbox)?;
    tracing::warn!(
        upstream = %handle.url(),
        "SANDBOX MODE: calls go to an embedded fake KGeN upstream; every session is FAKE"
    );
    if !settings.sandbox_ignores.is_empty() {
        // Named, never their values: what the operator set that sandbox mode does not use.
        tracing::warn!(
            ignored = ?settings.sandbox_ignores,
            "SANDBOX MODE: these settings are ignored; every tenant calls the embedded sandbox with the sandbox's own credentials"
        );
    }
    let pin = UpstreamPin {
        url: handle.url(),
        client_id: config.client_id.clone(),
        client_secret: expose(&config.client_secret).to_owned().into(),
    };
    settings.upstream.url = pin.url.clone();
    settings.upstream.client_id = pin.client_id.clone();
    settings.upstream.client_secret = expose(&pin.client_secret).to_owned().into();
    settings.upstream.client_secret_file = None;
    Ok((handle, pin))
}

/// Waits up to `limit` for every connection task to end; true if they all did.
async fn all_closed_within(connections: &mut JoinSet<()>, limit: Duration) -> bool {
    let all_closed = async { while connections.join_next().await.is_some() {} };
    tokio::time::timeout(limit, all_closed).await.is_ok()
}

/// Serves one client connection (after its TLS handshake, when the port serves TLS) until it ends. `S` is the
/// gRPC port's service: metrics, then request ids, then the request limits and the routes, with gRPC-Web and CORS
/// in front when enabled (see [`GrpcPort`]) and Connect in front of that; generic because the health and reflection
/// services inside the routes have types that cannot be named.
async fn serve_connection<S, B>(
    http: Arc<auto::Builder<TokioExecutor>>,
    tls: Option<TlsAcceptor>,
    stream: TcpStream,
    service: TowerToHyperService<S>,
    lifetime: Lifetime,
    slot: Slot,
) where
    S: tower::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match tls {
        None => {
            let io = TokioIo::new(Greeting::new(stream, &slot));
            let connection = http.serve_connection(io, service);
            lifetime.serve(connection, slot).await;
        }
        Some(acceptor) => {
            let peer = stream.peer_addr().ok();
            let handshake = tokio::time::timeout_at(lifetime.greet_by, acceptor.accept(stream));
            let stream = tokio::select! {
                handshake = handshake => match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => return handshake_failed(peer, &error),
                    Err(_) => return tracing::debug!(?peer, "TLS handshake timed out"),
                },
                () = slot.evicted() => return,
            };
            let io = TokioIo::new(Greeting::new(stream, &slot));
            let connection = http.serve_connection(io, service);
            lifetime.serve(connection, slot).await;
        }
    }
}

/// A caller-tokens line may grant a tenant that is not configured (a typo, or a tenant not added yet): its calls
/// for that tenant would be refused, so it is said once at start-up.
fn warn_grants_of_unknown_tenants(tokens: &CallerTokens, tenants: &Tenants) {
    for (caller, grant) in tokens.grants() {
        if let TenantGrant::Only(names) = grant {
            for tenant in names.iter().filter(|name| !tenants.contains(name)) {
                tracing::warn!(
                    caller,
                    tenant = %tenant,
                    "a caller's grant names a tenant that is not configured: its calls for that tenant are refused \
                     until the tenant is added"
                );
            }
        }
    }
}

/// A refused handshake (an untrusted or malformed client certificate, no common protocol, plaintext sent to the TLS
/// port) is usually a client's configuration to fix, and invisible to it beyond a generic error: logged at warn with
/// the peer and rustls' reason, at most once every 10 s (with how many were held back), so a flood cannot fill the
/// logs.
fn handshake_failed(peer: Option<SocketAddr>, error: &std::io::Error) {
    static THROTTLE: Throttle = Throttle::new(Duration::from_secs(10));
    let peer = peer.map_or_else(|| "unknown".to_owned(), |peer| peer.to_string());
    match THROTTLE.admit() {
        Some(held_back) => tracing::warn!(%peer, %error, held_back, "TLS handshake failed"),
        None => tracing::debug!(%peer, %error, "TLS handshake failed"),
    }
}

/// The answer to a call past `--max-concurrent-calls`: `RESOURCE_EXHAUSTED` with `RetryInfo`, trailers-only.
fn too_many_calls() -> http::Response<()> {
    grpc::refusal(core::Error::TooManyCalls).into_http()
}

/// Every tenant's gauges, as the metrics read them.
fn tenant_gauges(tenants: &Tenants) -> Vec<TenantGauges> {
    tenants
        .gauges()
        .into_iter()
        .map(|(name, in_flight, breaker)| TenantGauges {
            name,
            in_flight,
            breaker: match breaker {
                BreakerState::Closed => BreakerGauge::Closed,
                BreakerState::Open => BreakerGauge::Open,
                BreakerState::HalfOpen => BreakerGauge::HalfOpen,
            },
        })
        .collect()
}

/// `TCP_NODELAY` (small gRPC frames must not wait) and TCP keepalive (dead peers are noticed).
fn configure_socket(stream: &TcpStream, server: &ServerSettings) {
    let _ = stream.set_nodelay(true);
    let keepalive = TcpKeepalive::new()
        .with_time(server.tcp_keepalive)
        .with_interval(server.tcp_keepalive.min(Duration::from_secs(30)));
    if let Err(error) = SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(%error, "cannot enable TCP keepalive");
    }
}

/// `age` ± 10 %, so connections opened together do not all go away together.
fn jittered(age: Duration) -> Duration {
    age.mul_f64(0.9 + fastrand::f64() * 0.2)
}

async fn set_serving(health: &HealthReporter, status: ServingStatus) {
    health.set_service_status("", status).await;
    health
        .set_service_status(proto::SESSION_SERVICE_NAME, status)
        .await;
}
