//! The admin HTTP listener (`--admin-listen`): `/metrics` in the OpenMetrics text format (which Prometheus scrapes), `/healthz` (the process is
//! up) and `/readyz` (it is serving and not draining) for plain HTTP probes. Kept off the gRPC port so it can stay
//! private to the node or the mesh.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Router};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{metrics::Metrics, tenants::Tenants};

/// What the admin endpoints read.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The registry scraped by `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Read at scrape time for the in-flight and breaker gauges of every tenant.
    pub tenants: Arc<Tenants>,
    /// True while the gateway serves and is not draining.
    pub ready: Arc<AtomicBool>,
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
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, router(state))
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "admin listener failed");
        }
    }))
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let text = state.metrics.encode(&state.tenants.gauges());
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
