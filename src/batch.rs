//! `CreateSessions` (a bidirectional stream) and `CreateSessionBatch` (its unary convenience): many `CreateSession`
//! calls in one RPC.
//!
//! Every item goes through [`SessionGateway::create`], so validation, the tenant's concurrency limit, the
//! circuit breaker, retries, upstream metrics and the status mapping are exactly those of the unary call; a failed
//! item carries the status `CreateSession` would have returned, as a `google.rpc.Status` with the same details.
//!
//! What bounds the work of one RPC:
//! - At most `--batch-concurrency` items are in flight (`buffer_unordered` for the stream, `buffered` for the unary
//!   call). The next request is read from the caller only when a slot is free, and only while the answers are being
//!   polled.
//! - hyper polls the answers only while the HTTP/2 stream has send capacity (the caller's flow-control window). A
//!   caller that stops reading therefore stops the gateway from reading requests and starting upstream calls: it
//!   holds at most a window's worth of answers, one encoded chunk and the calls in flight. Unread requests stay in
//!   the gateway's receive window (HTTP/2 flow control bounds that too).
//! - The caller's deadline covers the whole RPC. When it passes, when the shutdown grace period ends, or when the
//!   caller goes away, the item futures are dropped and their upstream requests with them.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::{
    stream::{self, BoxStream},
    Stream, StreamExt, TryStreamExt,
};
use prost::Message;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::{Code, Request, Status, Streaming};
use tonic_types::{pb, ErrorDetails, StatusExt};
use tracing::{field::Empty, Instrument, Span};

use crate::{
    correlation::Correlation,
    deadline,
    error::{CallError, Error, DOMAIN},
    metrics::code_name,
    proto::{
        create_sessions_response, CreateSessionBatchRequest, CreateSessionBatchResponse,
        CreateSessionRequest, CreateSessionsResponse,
    },
    service::{validate_user_id, Caller, SessionGateway},
    tenants::Tenant,
};

/// Most `user_ids` one `CreateSessionBatch` call may hold (`CreateSessions` streams have no such cap).
pub const MAX_BATCH_SIZE: usize = 100;
/// Default of `--batch-concurrency`: upstream calls in flight per batch RPC.
pub const DEFAULT_BATCH_CONCURRENCY: usize = 16;
/// Largest accepted `--batch-concurrency`.
pub const MAX_BATCH_CONCURRENCY: usize = 256;

/// `ErrorInfo.reason` of a `CreateSessionBatch` call with no `user_ids`, or more than [`MAX_BATCH_SIZE`].
pub const INVALID_BATCH_SIZE: &str = "INVALID_BATCH_SIZE";

const CREATE_SESSIONS: &str = "CreateSessions";
const CREATE_SESSION_BATCH: &str = "CreateSessionBatch";

/// The answers of a `CreateSessions` stream.
pub type CreateSessionsStream = BoxStream<'static, Result<CreateSessionsResponse, Status>>;

/// Serves one `CreateSessions` stream: answers in completion order, at most `--batch-concurrency` upstream calls at
/// a time.
pub fn create_sessions(
    gateway: SessionGateway,
    request: Request<Streaming<CreateSessionRequest>>,
) -> Result<CreateSessionsStream, Status> {
    let (call, inbound) = Call::start(gateway, CREATE_SESSIONS, request)?;
    let concurrency = call.gateway.batch_concurrency();
    let per_item = call.clone();
    let items = inbound
        .map(move |request| {
            let call = per_item.clone();
            async move {
                match request {
                    Ok(request) => answer(call, request.user_id).await,
                    Err(status) => Outcome::End(End::Inbound(status)),
                }
            }
        })
        .buffer_unordered(concurrency)
        .boxed();
    Ok(Box::pin(Answers::new(call, items)))
}

/// Serves one `CreateSessionBatch` call: results in request order, at most `--batch-concurrency` upstream calls at
/// a time.
pub async fn create_session_batch(
    gateway: SessionGateway,
    request: Request<CreateSessionBatchRequest>,
) -> Result<CreateSessionBatchResponse, Status> {
    let (call, request) = Call::start(gateway, CREATE_SESSION_BATCH, request)?;
    let user_ids = request.user_ids;
    if user_ids.is_empty() || user_ids.len() > MAX_BATCH_SIZE {
        let _entered = call.span.enter();
        return Err(invalid_batch_size(user_ids.len()));
    }
    let concurrency = call.gateway.batch_concurrency();
    let per_item = call.clone();
    let items = stream::iter(user_ids)
        .map(move |user_id| answer(per_item.clone(), user_id))
        .buffered(concurrency)
        .boxed();
    let results = Answers::new(call, items).try_collect().await?;
    Ok(CreateSessionBatchResponse { results })
}

// === impl Call ===

/// What every item of one batch RPC shares: the gateway, the tenant, the caller's deadline and correlation, and
/// the call span.
#[derive(Debug)]
struct Call {
    method: &'static str,
    gateway: SessionGateway,
    tenant: Arc<Tenant>,
    deadline: Option<Instant>,
    correlation: Correlation,
    span: Span,
    started: Instant,
}

impl Call {
    /// Reads the deadline, correlation, caller and tenant of `request` and opens the call span; a call whose
    /// tenant cannot be used ends here (every item would be for that tenant).
    fn start<T>(
        gateway: SessionGateway,
        method: &'static str,
        request: Request<T>,
    ) -> Result<(Arc<Call>, T), Status> {
        let started = Instant::now();
        let deadline = deadline::from_metadata(request.metadata(), started);
        let correlation = Correlation::from_headers(request.metadata().as_ref());
        let caller = request.extensions().get::<Caller>();
        let tenant = gateway.select_tenant(request.metadata(), caller);
        // `items` is how many answers were sent; the outcome fields are recorded when the RPC ends early.
        let span = tracing::info_span!(
            "call",
            method,
            request_id = correlation.request_id(),
            caller = caller.map_or("", |c| c.name.as_str()),
            tenant = tenant.as_ref().map_or("", |t| t.name()),
            items = Empty,
            grpc_code = Empty,
            reason = Empty,
            latency_ms = Empty,
        );
        let tenant = match tenant {
            Ok(tenant) => tenant,
            Err(error) => {
                let _entered = span.enter();
                span.record("latency_ms", started.elapsed().as_secs_f64() * 1000.0);
                return Err(Status::from(error));
            }
        };
        let call = Call {
            method,
            gateway,
            tenant,
            deadline,
            correlation,
            span,
            started,
        };
        Ok((Arc::new(call), request.into_inner()))
    }
}

/// What one item came to.
// Nearly every outcome is an answer; boxing it would cost an allocation per item to shrink the rare `End`.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    /// An answer for the caller: the session, or the item's own status.
    Answer(CreateSessionsResponse),
    /// The whole RPC ends here.
    End(End),
}

/// Why an RPC ends before every request is answered.
enum End {
    /// The caller's deadline passed.
    Deadline,
    /// The shutdown grace period is over.
    ShuttingDown,
    /// The request stream failed (e.g. a message over the size limit).
    Inbound(Status),
}

/// Creates the session of one item, in a span of its own (a child of the call span) that the status mapping
/// records into and logs with, as the unary call's `call` span. It repeats the call's `method` and `request_id`, so
/// a JSON log line (which shows only the current span) still says which call it belongs to.
async fn answer(call: Arc<Call>, user_id: String) -> Outcome {
    let started = Instant::now();
    // As in the unary call, an invalid `user_id` stays out of the logs.
    let span = tracing::info_span!(
        parent: &call.span,
        "item",
        method = call.method,
        request_id = call.correlation.request_id(),
        user_id = validate_user_id(&user_id)
            .is_ok()
            .then_some(user_id.as_str()),
        upstream_status = Empty,
        attempts = Empty,
        grpc_code = Empty,
        reason = Empty,
        latency_ms = Empty,
    );
    let result = call
        .gateway
        .create(&call.tenant, &user_id, call.deadline, &call.correlation)
        .instrument(span.clone())
        .await;
    let result = match result {
        Ok(created) => create_sessions_response::Result::Session(created.session),
        // Errors of the whole RPC, not of this item: the call's deadline and the shutdown cut-off.
        Err(CallError {
            error: Error::DeadlineExceeded,
            ..
        }) => return Outcome::End(End::Deadline),
        Err(CallError {
            error: Error::ShuttingDown,
            ..
        }) => return Outcome::End(End::ShuttingDown),
        Err(error) => {
            let _entered = span.enter();
            span.record("latency_ms", started.elapsed().as_secs_f64() * 1000.0);
            create_sessions_response::Result::Error(rpc_status(&Status::from(error)))
        }
    };
    Outcome::Answer(CreateSessionsResponse {
        user_id,
        result: Some(result),
    })
}

/// The `google.rpc.Status` a unary call carries in `grpc-status-details-bin`: its code and message, and the
/// details (`ErrorInfo`, `RetryInfo`, `BadRequest`) the status mapping encoded.
fn rpc_status(status: &Status) -> pb::Status {
    let details = pb::Status::decode(status.details())
        .map(|encoded| encoded.details)
        .unwrap_or_default();
    pb::Status {
        code: status.code().into(),
        message: status.message().to_owned(),
        details,
    }
}

/// `INVALID_ARGUMENT` / [`INVALID_BATCH_SIZE`] with a `BadRequest` on `user_ids`, logged like the caller's other
/// mistakes (at debug).
fn invalid_batch_size(len: usize) -> Status {
    let description = if len == 0 {
        "must not be empty".to_owned()
    } else {
        format!("must hold at most {MAX_BATCH_SIZE} entries, not {len}")
    };
    let message = format!("invalid user_ids: {description}");
    let span = Span::current();
    span.record("grpc_code", code_name(Code::InvalidArgument));
    span.record("reason", INVALID_BATCH_SIZE);
    tracing::debug!(reason = INVALID_BATCH_SIZE, error = %message, "call failed");
    let mut details = ErrorDetails::new();
    details.add_bad_request_violation("user_ids", description);
    details.set_error_info(INVALID_BATCH_SIZE, DOMAIN, HashMap::new());
    Status::with_error_details(Code::InvalidArgument, message, details)
}

// === impl Answers ===

/// The answers of one batch RPC, ended early by the caller's deadline or the shutdown cut-off. After an error it
/// yields nothing more; once it ends, or is dropped because the caller went away, the items still in flight are
/// dropped, and their upstream requests with them.
struct Answers {
    items: Option<BoxStream<'static, Outcome>>,
    deadline: Option<Pin<Box<Sleep>>>,
    cut_off: Pin<Box<WaitForCancellationFutureOwned>>,
    call: Arc<Call>,
    answered: usize,
}

impl Answers {
    fn new(call: Arc<Call>, items: BoxStream<'static, Outcome>) -> Self {
        Self {
            items: Some(items),
            deadline: call
                .deadline
                .map(|deadline| Box::pin(tokio::time::sleep_until(deadline))),
            cut_off: Box::pin(call.gateway.cut_off().clone().cancelled_owned()),
            call,
            answered: 0,
        }
    }

    /// Drops the items still in flight and records the end of the RPC in its span (the caller's span is entered).
    fn finish(&mut self, end: Option<End>) -> Option<Status> {
        self.items = None;
        let span = &self.call.span;
        span.record("items", self.answered);
        span.record(
            "latency_ms",
            self.call.started.elapsed().as_secs_f64() * 1000.0,
        );
        match end {
            None => {
                tracing::debug!(items = self.answered, "batch finished");
                None
            }
            Some(End::Deadline) => Some(Status::from(Error::DeadlineExceeded)),
            Some(End::ShuttingDown) => Some(Status::from(Error::ShuttingDown)),
            Some(End::Inbound(status)) => {
                span.record("grpc_code", code_name(status.code()));
                tracing::debug!(
                    error = status.message(),
                    "call failed: the request stream failed"
                );
                Some(status)
            }
        }
    }
}

impl Stream for Answers {
    type Item = Result<CreateSessionsResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(items) = this.items.as_mut() else {
            return Poll::Ready(None);
        };
        let span = this.call.span.clone();
        let _entered = span.enter();
        // The RPC's own ends first: past the deadline or the cut-off, no further answer goes out.
        let end = if this.cut_off.as_mut().poll(cx).is_ready() {
            End::ShuttingDown
        } else if this
            .deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready())
        {
            End::Deadline
        } else {
            match items.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Outcome::Answer(answer))) => {
                    this.answered += 1;
                    return Poll::Ready(Some(Ok(answer)));
                }
                Poll::Ready(Some(Outcome::End(end))) => end,
                Poll::Ready(None) => return Poll::Ready(this.finish(None).map(Err)),
            }
        };
        Poll::Ready(this.finish(Some(end)).map(Err))
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        if self.items.is_some() {
            let _entered = self.call.span.enter();
            self.call.span.record("items", self.answered);
            tracing::debug!(
                items = self.answered,
                "batch cancelled by the caller; upstream calls in flight dropped"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic_types::RpcStatusExt;

    use super::*;

    #[test]
    fn an_item_status_carries_the_code_message_and_details_of_the_unary_status() {
        let unary = Status::from(Error::InvalidUserId("must not be empty"));
        let item = rpc_status(&unary);
        assert_eq!(item.code, Code::InvalidArgument as i32);
        assert_eq!(item.message, unary.message());
        let details = item.check_error_details().expect("details decode");
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "INVALID_USER_ID");
        assert_eq!(info.domain, DOMAIN);
        let bad = details.bad_request().expect("BadRequest");
        assert_eq!(bad.field_violations[0].field, "user_id");
    }

    #[test]
    fn a_status_without_details_becomes_code_and_message_only() {
        let item = rpc_status(&Status::unavailable("gone"));
        assert_eq!(item.code, Code::Unavailable as i32);
        assert_eq!(item.message, "gone");
        assert!(item.details.is_empty());
    }

    #[test]
    fn empty_and_oversized_batches_name_the_user_ids_field() {
        for len in [0, MAX_BATCH_SIZE + 1] {
            let status = invalid_batch_size(len);
            assert_eq!(status.code(), Code::InvalidArgument);
            let details = status.get_error_details();
            assert_eq!(
                details.error_info().map(|i| i.reason.as_str()),
                Some(INVALID_BATCH_SIZE)
            );
            let bad = details.bad_request().expect("BadRequest");
            assert_eq!(bad.field_violations[0].field, "user_ids");
        }
    }
}
