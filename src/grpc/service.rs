//! `kgen.session.v1.SessionService`: the unary `CreateSession` here, the batch RPCs in [`super::batch`]. A handler
//! reads its call ([`Handler::incoming`]), asks the core for the session, and on failure logs once and answers
//! through the one status edge ([`super::status`]).

use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::{
    access,
    batch::{self, CreateSessionsStream},
    call::{Handler, Incoming},
    correlation, status,
};
use crate::{
    core::{validate_user_id, CallError},
    proto::{
        session_service_server::SessionService, CreateSessionBatchRequest,
        CreateSessionBatchResponse, CreateSessionRequest, CreateSessionResponse,
    },
    support::headers::RETRIED_AFTER_AMBIGUOUS,
};

const METHOD: &str = "CreateSession";

/// The tonic service: every RPC of `kgen.session.v1.SessionService`.
#[derive(Debug, Clone)]
pub struct SessionGateway {
    handler: Handler,
}

impl SessionGateway {
    /// The service answering with `handler`.
    pub fn new(handler: Handler) -> Self {
        Self { handler }
    }
}

#[tonic::async_trait]
impl SessionService for SessionGateway {
    async fn create_session(
        &self,
        request: Request<CreateSessionRequest>,
    ) -> Result<Response<CreateSessionResponse>, Status> {
        let Incoming {
            started,
            deadline,
            correlation,
            caller,
            tenant,
            peer,
        } = self.handler.incoming(&request);
        let user_id = request.into_inner().user_id;
        // Only a valid `user_id` goes into the span: an invalid one may be huge or hold control characters. The
        // outcome fields stay empty on success (nothing is logged then at `info`, and each record re-serialises
        // the span's JSON); a failure records them for its `call failed` line.
        let span = tracing::info_span!(
            "call",
            method = METHOD,
            request_id = correlation.request_id(),
            caller = caller.as_ref().map_or("", |c| c.name.as_str()),
            tenant = tenant.as_ref().map_or("", |t| t.name()),
            user_id = validate_user_id(&user_id)
                .is_ok()
                .then_some(user_id.as_str()),
            upstream_status = tracing::field::Empty,
            attempts = tracing::field::Empty,
            grpc_code = tracing::field::Empty,
            reason = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
        );
        correlation::continue_trace(&span, &correlation);
        let (tenant, result) = match tenant {
            Ok(tenant) => {
                let upstream = correlation::upstream_of(&span, &correlation);
                let result = self
                    .handler
                    .create(&tenant, &user_id, deadline, &upstream)
                    .instrument(span.clone())
                    .await;
                (Some(tenant), result)
            }
            // Unknown tenants are not counted per tenant (only configured names become label values).
            Err(error) => (None, Err(CallError::from(error))),
        };
        // The outcome is logged inside the span, so its line carries the call's fields.
        let entered = span.enter();
        let latency = started.elapsed();
        let latency_ms = latency.as_secs_f64() * 1000.0;
        if let Err(error) = &result {
            span.record("latency_ms", latency_ms);
            status::log_failure(error);
        }
        if let Some(caller) = &caller {
            let code = result
                .as_ref()
                .map_or_else(|e| status::code(&e.error), |_| tonic::Code::Ok);
            self.handler.metrics().caller_call(&caller.name, code);
        }
        if result.is_ok() {
            tracing::debug!(grpc_code = "OK", latency_ms, "session created");
        }
        // The access line is an event of its own, outside the span: each field once, given here.
        drop(entered);
        if self.handler.access_log() {
            let (code, reason, upstream_status, attempts) = match &result {
                Ok(created) => (
                    tonic::Code::Ok,
                    "",
                    Some(created.upstream_status),
                    created.attempts,
                ),
                Err(error) => {
                    let (code, reason) = status::code_and_reason(&error.error);
                    let upstream_status = error.error.upstream_status().map(|s| s.code);
                    (code, reason, upstream_status, error.attempts)
                }
            };
            access::Entry {
                method: METHOD,
                code,
                reason,
                latency,
                upstream_status,
                attempts,
                items: None,
                tenant: tenant.as_ref().map_or("", |t| t.name()),
                caller: caller.as_ref().map_or("", |c| c.name.as_str()),
                request_id: correlation.request_id(),
                peer,
            }
            .log();
        }
        let created = result?;
        let mut response = Response::new(created.session);
        if let Some(outcome) = created.retried_after_ambiguous {
            // Always a status code or "reset": valid metadata.
            if let Ok(value) = outcome.to_string().parse() {
                response
                    .metadata_mut()
                    .insert(RETRIED_AFTER_AMBIGUOUS, value);
            }
        }
        Ok(response)
    }

    async fn create_sessions(
        &self,
        request: Request<Streaming<CreateSessionRequest>>,
    ) -> Result<Response<CreateSessionsStream>, Status> {
        batch::create_sessions(self.handler.clone(), request).map(Response::new)
    }

    async fn create_session_batch(
        &self,
        request: Request<CreateSessionBatchRequest>,
    ) -> Result<Response<CreateSessionBatchResponse>, Status> {
        batch::create_session_batch(self.handler.clone(), request)
            .await
            .map(Response::new)
    }
}
