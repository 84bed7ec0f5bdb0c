//! What every RPC of the session service reads from its request before it starts — arrival time, deadline,
//! correlation, caller and tenant — and the one way an RPC creates a session (so the unary call and every batch
//! item count alike in the per-tenant metrics).

use std::{net::SocketAddr, sync::Arc};

use tokio::time::Instant;
use tonic::{Code, Request};

use super::{access::Peer, correlation, deadline, status};
use crate::{
    core::{CallError, Caller, Created, Error, Sessions, Tenant},
    observability::Metrics,
    support::headers,
    upstream::Correlation,
};

/// Default of `--batch-concurrency`: upstream calls in flight per batch RPC.
pub const DEFAULT_BATCH_CONCURRENCY: usize = 16;
/// Largest accepted `--batch-concurrency`.
pub const MAX_BATCH_CONCURRENCY: usize = 256;

/// What the RPCs share: the core's [`Sessions`], the metrics, how many upstream calls one batch RPC may have in
/// flight, and whether finished RPCs are written to the access log.
#[derive(Debug, Clone)]
pub struct Handler {
    sessions: Sessions,
    metrics: Arc<Metrics>,
    batch_concurrency: usize,
    access_log: bool,
}

/// What a request says about its call.
#[derive(Debug)]
pub struct Incoming {
    /// When the call arrived.
    pub started: Instant,
    /// When its caller stops waiting (`grpc-timeout`).
    pub deadline: Option<Instant>,
    /// What is forwarded upstream (`x-request-id`, trace context).
    pub correlation: Correlation,
    /// The authenticated caller, when caller authentication is on.
    pub caller: Option<Caller>,
    /// The tenant the call is for, or why it cannot have one.
    pub tenant: Result<Arc<Tenant>, Error>,
    /// The client's socket address (known with the access log on).
    pub peer: Option<SocketAddr>,
}

impl Handler {
    /// A handler creating sessions with `sessions`; each batch RPC may have `batch_concurrency` (at least 1)
    /// upstream calls in flight. With `access_log`, every finished RPC logs its access line ([`super::access`]).
    pub fn new(
        sessions: Sessions,
        metrics: Arc<Metrics>,
        batch_concurrency: usize,
        access_log: bool,
    ) -> Self {
        Self {
            sessions,
            metrics,
            batch_concurrency: batch_concurrency.max(1),
            access_log,
        }
    }

    /// Whether finished RPCs are written to the access log.
    pub fn access_log(&self) -> bool {
        self.access_log
    }

    /// Upstream calls one batch RPC may have in flight.
    pub fn batch_concurrency(&self) -> usize {
        self.batch_concurrency
    }

    /// The core's session maker.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Reads the deadline, correlation, caller and tenant of `request`, which arrived now.
    pub fn incoming<T>(&self, request: &Request<T>) -> Incoming {
        let started = Instant::now();
        let metadata = request.metadata();
        let caller = request.extensions().get::<Caller>().cloned();
        // A value that is not ASCII is no tenant name: refused like an unknown one.
        let requested = metadata
            .get(headers::TENANT)
            .map(|value| value.to_str().unwrap_or(""));
        let tenant = self.sessions.select_tenant(requested, caller.as_ref());
        Incoming {
            started,
            deadline: deadline::from_metadata(metadata, started),
            correlation: correlation::from_headers(metadata.as_ref()),
            caller,
            tenant,
            peer: request.extensions().get::<Peer>().map(|peer| peer.0),
        }
    }

    /// Creates the session of `user_id` for `tenant` and counts the outcome for the tenant.
    pub async fn create(
        &self,
        tenant: &Tenant,
        user_id: &str,
        deadline: Option<Instant>,
        correlation: &Correlation,
    ) -> Result<Created, CallError> {
        let result = self
            .sessions
            .create(tenant, user_id, deadline, correlation)
            .await;
        let code = result
            .as_ref()
            .map_or_else(|e| status::code(&e.error), |_| Code::Ok);
        self.metrics.tenant_call(tenant.label(), code);
        result
    }
}
