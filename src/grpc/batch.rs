//! `CreateSessions` (a bidirectional stream) and `CreateSessionBatch` (its unary convenience): many `CreateSession`
//! calls in one RPC.
//!
//! Every item goes through [`Handler::create`], so validation, the tenant's concurrency limit, the circuit
//! breaker, retries, upstream metrics and the status mapping are exactly those of the unary call; a failed item
//! carries the `google.rpc.Status` `CreateSession` would have returned ([`status::rpc_status`]).
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
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use futures_util::{
    stream::{self, BoxStream},
    Stream, StreamExt, TryStreamExt,
};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::{Code, Request, Status, Streaming};
use tracing::{field::Empty, Instrument, Span};

use super::{
    access,
    call::{Handler, Incoming},
    correlation, status,
};
use crate::{
    core::{validate_user_id, CallError, Error, Tenant, MAX_BATCH_SIZE},
    observability::code_name,
    proto::{
        create_sessions_response, CreateSessionBatchRequest, CreateSessionBatchResponse,
        CreateSessionRequest, CreateSessionsResponse,
    },
    upstream::Correlation,
};

const CREATE_SESSIONS: &str = "CreateSessions";
const CREATE_SESSION_BATCH: &str = "CreateSessionBatch";

/// The answers of a `CreateSessions` stream.
pub type CreateSessionsStream = BoxStream<'static, Result<CreateSessionsResponse, Status>>;

/// Serves one `CreateSessions` stream: answers in completion order, at most `--batch-concurrency` upstream calls at
/// a time.
pub fn create_sessions(
    handler: Handler,
    request: Request<Streaming<CreateSessionRequest>>,
) -> Result<CreateSessionsStream, Status> {
    let (call, inbound) = Call::start(handler, CREATE_SESSIONS, request)?;
    let concurrency = call.handler.batch_concurrency();
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
    handler: Handler,
    request: Request<CreateSessionBatchRequest>,
) -> Result<CreateSessionBatchResponse, Status> {
    let (call, request) = Call::start(handler, CREATE_SESSION_BATCH, request)?;
    let user_ids = request.user_ids;
    if user_ids.is_empty() || user_ids.len() > MAX_BATCH_SIZE {
        let error = CallError::from(Error::InvalidBatchSize(user_ids.len()));
        call.span.in_scope(|| status::log_failure(&error));
        call.log_access(Code::InvalidArgument, status::INVALID_BATCH_SIZE, 0);
        return Err(Status::from(error));
    }
    let concurrency = call.handler.batch_concurrency();
    let per_item = call.clone();
    let items = stream::iter(user_ids)
        .map(move |user_id| answer(per_item.clone(), user_id))
        .buffered(concurrency)
        .boxed();
    let results = Answers::new(call, items).try_collect().await?;
    Ok(CreateSessionBatchResponse { results })
}

// === impl Call ===

/// What every item of one batch RPC shares: the handler, the tenant, the caller's deadline and correlation, and
/// the call span; and, for the access line, the caller, the client's address and the upstream attempts so far.
#[derive(Debug)]
struct Call {
    method: &'static str,
    handler: Handler,
    tenant: Arc<Tenant>,
    deadline: Option<Instant>,
    correlation: Correlation,
    span: Span,
    started: Instant,
    caller: Option<String>,
    peer: Option<SocketAddr>,
    attempts: AtomicU32,
}

impl Call {
    /// Reads the deadline, correlation, caller and tenant of `request` and opens the call span; a call whose
    /// tenant cannot be used ends here (every item would be for that tenant).
    fn start<T>(
        handler: Handler,
        method: &'static str,
        request: Request<T>,
    ) -> Result<(Arc<Call>, T), Status> {
        let Incoming {
            started,
            deadline,
            correlation,
            caller,
            tenant,
            peer,
        } = handler.incoming(&request);
        // `items` is how many answers were sent; the outcome fields are recorded when the RPC ends early.
        let span = tracing::info_span!(
            "call",
            method,
            request_id = correlation.request_id(),
            caller = caller.as_ref().map_or("", |c| c.name.as_str()),
            tenant = tenant.as_ref().map_or("", |t| t.name()),
            items = Empty,
            grpc_code = Empty,
            reason = Empty,
            latency_ms = Empty,
        );
        correlation::continue_trace(&span, &correlation);
        let caller = caller.map(|caller| caller.name);
        let tenant = match tenant {
            Ok(tenant) => tenant,
            Err(error) => {
                let latency = started.elapsed();
                let error = CallError::from(error);
                span.in_scope(|| {
                    span.record("latency_ms", latency.as_secs_f64() * 1000.0);
                    status::log_failure(&error);
                });
                if handler.access_log() {
                    let (code, reason) = status::code_and_reason(&error.error);
                    access::Entry {
                        method,
                        code,
                        reason,
                        latency,
                        upstream_status: None,
                        attempts: 0,
                        items: Some(0),
                        tenant: "",
                        caller: caller.as_deref().unwrap_or(""),
                        request_id: correlation.request_id(),
                        peer,
                    }
                    .log();
                }
                return Err(Status::from(error));
            }
        };
        let call = Call {
            method,
            handler,
            tenant,
            deadline,
            correlation,
            span,
            started,
            caller,
            peer,
            attempts: AtomicU32::new(0),
        };
        Ok((Arc::new(call), request.into_inner()))
    }

    /// Logs the RPC's access line (with the access log on), which `answered` answers were sent; called outside the
    /// call span.
    fn log_access(&self, code: Code, reason: &str, answered: usize) {
        if !self.handler.access_log() {
            return;
        }
        access::Entry {
            method: self.method,
            code,
            reason,
            latency: self.started.elapsed(),
            upstream_status: None,
            attempts: self.attempts.load(Ordering::Relaxed),
            items: Some(answered),
            tenant: self.tenant.name(),
            caller: self.caller.as_deref().unwrap_or(""),
            request_id: self.correlation.request_id(),
            peer: self.peer,
        }
        .log();
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
    let upstream = correlation::upstream_of(&span, &call.correlation);
    let result = call
        .handler
        .create(&call.tenant, &user_id, call.deadline, &upstream)
        .instrument(span.clone())
        .await;
    let attempts = match &result {
        Ok(created) => created.attempts,
        Err(error) => error.attempts,
    };
    call.attempts.fetch_add(attempts, Ordering::Relaxed);
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
            status::log_failure(&error);
            create_sessions_response::Result::Error(status::rpc_status(&error))
        }
    };
    Outcome::Answer(CreateSessionsResponse {
        user_id,
        result: Some(result),
    })
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
    /// How the RPC ended, for its access line, until that is logged.
    ended: Option<(Code, &'static str)>,
}

impl Answers {
    fn new(call: Arc<Call>, items: BoxStream<'static, Outcome>) -> Self {
        Self {
            items: Some(items),
            deadline: call
                .deadline
                .map(|deadline| Box::pin(tokio::time::sleep_until(deadline))),
            cut_off: Box::pin(call.handler.sessions().cut_off().clone().cancelled_owned()),
            call,
            answered: 0,
            ended: None,
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
                self.ended = Some((Code::Ok, ""));
                None
            }
            Some(End::Deadline) => Some(self.end_with(Error::DeadlineExceeded)),
            Some(End::ShuttingDown) => Some(self.end_with(Error::ShuttingDown)),
            Some(End::Inbound(status)) => {
                span.record("grpc_code", code_name(status.code()));
                tracing::debug!(
                    error = status.message(),
                    "call failed: the request stream failed"
                );
                self.ended = Some((status.code(), ""));
                Some(status)
            }
        }
    }
}

impl Answers {
    /// The status ending the RPC for a reason of the whole call, logged as the unary call's failure would be.
    fn end_with(&mut self, error: Error) -> Status {
        let error = CallError::from(error);
        status::log_failure(&error);
        self.ended = Some(status::code_and_reason(&error.error));
        Status::from(error)
    }

    /// The next answer, or the end of the RPC; called inside the call span.
    fn poll_answer(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<CreateSessionsResponse, Status>>> {
        let Some(items) = self.items.as_mut() else {
            return Poll::Ready(None);
        };
        // The RPC's own ends first: past the deadline or the cut-off, no further answer goes out.
        let end = if self.cut_off.as_mut().poll(cx).is_ready() {
            End::ShuttingDown
        } else if self
            .deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready())
        {
            End::Deadline
        } else {
            match items.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Outcome::Answer(answer))) => {
                    self.answered += 1;
                    return Poll::Ready(Some(Ok(answer)));
                }
                Poll::Ready(Some(Outcome::End(end))) => end,
                Poll::Ready(None) => return Poll::Ready(self.finish(None).map(Err)),
            }
        };
        Poll::Ready(self.finish(Some(end)).map(Err))
    }
}

impl Stream for Answers {
    type Item = Result<CreateSessionsResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let span = this.call.span.clone();
        let next = span.in_scope(|| this.poll_answer(cx));
        // The access line is an event of its own, outside the span: each field once, given here.
        if let Some((code, reason)) = this.ended.take() {
            this.call.log_access(code, reason, this.answered);
        }
        next
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        if self.items.is_some() {
            let entered = self.call.span.enter();
            self.call.span.record("items", self.answered);
            tracing::debug!(
                items = self.answered,
                "batch cancelled by the caller; upstream calls in flight dropped"
            );
            drop(entered);
            self.call.log_access(Code::Cancelled, "", self.answered);
        }
    }
}
