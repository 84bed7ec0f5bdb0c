//! What every RPC of the session service reads from its request before it starts — arrival time, deadline,
//! correlation, caller and tenant — and the one way an RPC creates a session (so the unary call and every batch
//! item count alike in the per-tenant metrics).

use std::sync::Arc;

use tokio::time::Instant;
use tonic::{Code, Request};

use super::{correlation, deadline, status};
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

/// What the RPCs share: the core's [`Sessions`], the metrics, and how many upstream calls one batch RPC may have
/// in flight.
#[derive(Debug, Clone)]
pub struct Handler {
    sessions: Sessions,
    metrics: Arc<Metrics>,
    batch_concurrency: usize,
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
}

impl Handler {
    /// A handler creating sessions with `sessions`; each batch RPC may have `batch_concurrency` (at least 1)
    /// upstream calls in flight.
    pub fn new(sessions: Sessions, metrics: Arc<Metrics>, batch_concurrency: usize) -> Self {
        Self {
            sessions,
            metrics,
            batch_concurrency: batch_concurrency.max(1),
        }
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
