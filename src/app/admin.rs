//! The admin HTTP listener (`--admin-listen`): `/metrics` in the OpenMetrics text format (which Prometheus scrapes), `/healthz` (the process is
//! up) and `/readyz` (it is serving and not draining) for plain HTTP probes. Kept off the gRPC port so it can stay
//! private to the node or the mesh.
//!
//! It holds at most [`ADMIN_MAX_CONNECTIONS`] connections (the longest-idle one makes room for a new one), each
//! of which must send its request within [`ADMIN_HANDSHAKE_TIMEOUT`] and is closed after [`ADMIN_MAX_IDLE`]
//! without one: idle sockets cannot starve the probes, whatever holds them.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Router};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    net::TcpListener,
    task::{JoinHandle, JoinSet},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::connections::{accept_until, ConnectionLimit, Greeting, Lifetime, Tracked};
use crate::observability::{Metrics, TenantGauges};

/// Reads every tenant's gauges at scrape time.
pub type GaugeSource = Arc<dyn Fn() -> Vec<TenantGauges> + Send + Sync>;

/// Most connections the admin listener holds at once (probes and scrapes need a handful).
pub const ADMIN_MAX_CONNECTIONS: usize = 64;
/// A new admin connection must send its request within this.
pub const ADMIN_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// An admin connection without a request in flight for this long is closed.
pub const ADMIN_MAX_IDLE: Duration = Duration::from_secs(60);
/// How long requests in flight get when the listener stops.
const ADMIN_STOP_GRACE: Duration = Duration::from_secs(1);

/// What the admin endpoints read.
#[derive(Clone)]
pub struct AdminState {
    /// The registry scraped by `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Read at scrape time for the in-flight and breaker gauges of every tenant.
    pub gauges: GaugeSource,
    /// True while the gateway serves and is not draining.
    pub ready: Arc<AtomicBool>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state)
}

/// Serves the admin routes on `listener` until `stop` is cancelled (readiness already reads false by then).
pub fn spawn(
    listener: TcpListener,
    state: AdminState,
    stop: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "admin endpoints serving /metrics, /healthz, /readyz");
    let limit = ConnectionLimit::new(
        "admin",
        ADMIN_MAX_CONNECTIONS,
        state.metrics.listener("admin"),
    );
    let router = router(state);
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(ADMIN_HANDSHAKE_TIMEOUT);
    http.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(16);
    let http = Arc::new(http);
    Ok(tokio::spawn(async move {
        let drain = CancellationToken::new();
        let mut tasks = JoinSet::new();
        accept_until(
            &listener,
            &limit,
            &mut tasks,
            stop.cancelled_owned(),
            |stream, slot| {
                let lifetime = Lifetime {
                    greet_by: Instant::now() + ADMIN_HANDSHAKE_TIMEOUT,
                    max_idle: ADMIN_MAX_IDLE,
                    max_age: None,
                    drain: drain.clone(),
                };
                let service = TowerToHyperService::new(Tracked::new(router.clone(), &slot));
                let http = http.clone();
                async move {
                    let io = TokioIo::new(Greeting::new(stream, &slot));
                    let connection = http.serve_connection(io, service);
                    lifetime.serve(connection, slot).await;
                }
            },
        )
        .await;
        drain.cancel();
        let all_closed = async { while tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(ADMIN_STOP_GRACE, all_closed).await;
        tasks.shutdown().await;
    }))
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let text = state.metrics.encode(&(state.gauges)());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

async fn ready(State(state): State<AdminState>) -> impl IntoResponse {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
