//! What one call may make the gateway hold, and for how long: the request body of every gRPC call goes through
//! [`LimitedBody`] before tonic decodes it.
//!
//! - A method that takes one request message (every method but the client-streaming ones) must send that message
//!   and end its stream within `--request-body-timeout`; a second message is refused with `INTERNAL`
//!   (`TOO_MANY_REQUEST_MESSAGES`), as grpc-java and grpc-go answer that protocol violation, instead of being read
//!   and thrown away for ever.
//! - A client-streaming method's stream may not sit silent for longer than `--stream-idle-timeout` while the
//!   gateway waits for its next message (time the gateway spends not reading, under back-pressure, is not counted).
//! - Messages that have not fully arrived are charged to one process-wide budget, `--max-buffered-request-bytes`,
//!   at their announced length as soon as their 5-byte gRPC header is in (tonic reserves that much then); a
//!   message that would overflow it is refused with `RESOURCE_EXHAUSTED` before tonic sees it. A message that
//!   arrives whole in one DATA frame is never charged, so ordinary calls pass even while the budget is full.
//!
//! Refusals are `tonic::Status` errors of the body, which tonic answers as the call's status.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::gauge::Gauge;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use super::status;
use crate::core::Error;

/// The methods whose callers stream request messages; every other method takes exactly one.
const CLIENT_STREAMING_METHODS: [&str; 3] = [
    "/kgen.session.v1.SessionService/CreateSessions",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The length of a gRPC message header: a compression flag and a 4-byte big-endian length.
const GRPC_HEADER: usize = 5;

/// The limits on request bodies (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimitSettings {
    /// The whole request of a single-message method must arrive within this.
    pub body_timeout: Duration,
    /// Longest silence of a request stream while the gateway waits for it.
    pub stream_idle_timeout: Duration,
    /// Bytes of partly received request messages the whole process may hold.
    pub max_buffered_bytes: usize,
}

impl Default for RequestLimitSettings {
    fn default() -> Self {
        Self {
            body_timeout: Duration::from_secs(5),
            stream_idle_timeout: Duration::from_secs(30),
            max_buffered_bytes: 32 * 1024 * 1024,
        }
    }
}

/// The process-wide budget of partly received request bytes.
#[derive(Debug)]
pub struct BufferBudget {
    used: AtomicUsize,
    max: usize,
    gauge: Gauge,
}

impl BufferBudget {
    /// A budget of `max` bytes, reported in `gauge`.
    pub fn new(max: usize, gauge: Gauge) -> Self {
        Self {
            used: AtomicUsize::new(0),
            max,
            gauge,
        }
    }

    /// Bytes charged now.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn try_charge(&self, bytes: usize) -> bool {
        let charged = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.max)
            })
            .is_ok();
        if charged {
            self.gauge.inc_by(gauge_value(bytes));
        }
        charged
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.gauge.dec_by(gauge_value(bytes));
    }
}

fn gauge_value(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

// === impl RequestLimitsLayer ===

/// Wraps every request body in a [`LimitedBody`].
#[derive(Debug, Clone)]
pub struct RequestLimitsLayer {
    settings: RequestLimitSettings,
    budget: Arc<BufferBudget>,
}

impl RequestLimitsLayer {
    /// The limits of `settings`, with a budget of their own reported in `buffered_bytes`.
    pub fn new(settings: RequestLimitSettings, buffered_bytes: Gauge) -> Self {
        Self {
            budget: Arc::new(BufferBudget::new(
                settings.max_buffered_bytes,
                buffered_bytes,
            )),
            settings,
        }
    }
}

impl<S> Layer<S> for RequestLimitsLayer {
    type Service = RequestLimits<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLimits {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RequestLimitsLayer`].
#[derive(Debug, Clone)]
pub struct RequestLimits<S> {
    inner: S,
    layer: RequestLimitsLayer,
}

impl<S, B> Service<Request<B>> for RequestLimits<S>
where
    S: Service<Request<LimitedBody<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let streaming = CLIENT_STREAMING_METHODS.contains(&request.uri().path());
        let settings = &self.layer.settings;
        let timer = if streaming {
            Timer::Idle(settings.stream_idle_timeout)
        } else {
            Timer::Whole(
                Instant::now() + settings.body_timeout,
                settings.body_timeout,
            )
        };
        let budget = self.layer.budget.clone();
        self.inner
            .call(request.map(|body| LimitedBody::new(body, timer, !streaming, budget)))
    }
}

// === impl LimitedBody ===

/// When a request body runs out of time.
#[derive(Debug, Clone, Copy)]
enum Timer {
    /// The whole body by this instant (single-message methods).
    Whole(Instant, Duration),
    /// No silence longer than this while waited for (client-streaming methods).
    Idle(Duration),
}

/// Where the reader is in the gRPC framing.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// Reading a message header; this many of its bytes are in.
    Header {
        filled: usize,
        header: [u8; GRPC_HEADER],
    },
    /// Reading a message's payload of `announced` bytes; `remaining` of them are still to come.
    Payload { announced: usize, remaining: usize },
}

/// A request body that keeps to the limits of the module docs.
#[derive(Debug)]
pub struct LimitedBody<B> {
    inner: B,
    timer: Timer,
    sleep: Option<Pin<Box<Sleep>>>,
    single: bool,
    messages: usize,
    framing: Framing,
    /// Bytes of the current partly received message charged to the budget.
    charged: usize,
    budget: Arc<BufferBudget>,
    failed: bool,
}

impl<B> LimitedBody<B> {
    fn new(inner: B, timer: Timer, single: bool, budget: Arc<BufferBudget>) -> Self {
        Self {
            inner,
            timer,
            sleep: None,
            single,
            messages: 0,
            framing: Framing::Header {
                filled: 0,
                header: [0; GRPC_HEADER],
            },
            charged: 0,
            budget,
            failed: false,
        }
    }

    /// Follows the gRPC framing through one DATA frame, charging or releasing the budget for the message left
    /// incomplete at its end.
    fn account(&mut self, mut data: &[u8]) -> Result<(), Error> {
        while !data.is_empty() {
            match &mut self.framing {
                Framing::Header { filled, header } => {
                    if self.single && self.messages >= 1 {
                        return Err(Error::TooManyRequestMessages);
                    }
                    let take = (GRPC_HEADER - *filled).min(data.len());
                    header[*filled..*filled + take].copy_from_slice(&data[..take]);
                    *filled += take;
                    data = &data[take..];
                    if *filled == GRPC_HEADER {
                        let length =
                            u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
                        let remaining = usize::try_from(length).unwrap_or(usize::MAX);
                        if remaining == 0 {
                            self.message_done();
                        } else {
                            self.framing = Framing::Payload {
                                announced: remaining,
                                remaining,
                            };
                        }
                    }
                }
                Framing::Payload { remaining, .. } => {
                    let take = (*remaining).min(data.len());
                    *remaining -= take;
                    data = &data[take..];
                    if *remaining == 0 {
                        self.message_done();
                    }
                }
            }
        }
        if let Framing::Payload { announced, .. } = self.framing {
            if self.charged == 0 {
                // tonic reserves the announced length (it refuses more than --max-request-size itself).
                let announced = announced.saturating_add(GRPC_HEADER);
                if !self.budget.try_charge(announced) {
                    return Err(Error::RequestBuffersFull);
                }
                self.charged = announced;
            }
        }
        Ok(())
    }

    fn message_done(&mut self) {
        self.messages += 1;
        self.framing = Framing::Header {
            filled: 0,
            header: [0; GRPC_HEADER],
        };
        self.release();
    }

    fn release(&mut self) {
        if self.charged > 0 {
            self.budget.release(self.charged);
            self.charged = 0;
        }
    }

    fn fail(&mut self, error: Error) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.failed = true;
        self.release();
        self.sleep = None;
        Poll::Ready(Some(Err(Box::new(status::refusal(error)))))
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> Drop for LimitedBody<B> {
    fn drop(&mut self) {
        self.release();
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(error) = this.account(data) {
                        return this.fail(error);
                    }
                }
                if matches!(this.timer, Timer::Idle(_)) {
                    this.sleep = None;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.release();
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(None) => {
                this.release();
                this.sleep = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let (deadline, error) = match this.timer {
                    Timer::Whole(deadline, limit) => (deadline, Error::RequestBodyTimeout(limit)),
                    Timer::Idle(limit) => (Instant::now() + limit, Error::StreamIdle(limit)),
                };
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => this.fail(error),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(single: bool, budget: usize) -> LimitedBody<http_body_util::Empty<Bytes>> {
        LimitedBody::new(
            http_body_util::Empty::new(),
            Timer::Idle(Duration::from_secs(1)),
            single,
            Arc::new(BufferBudget::new(budget, Gauge::default())),
        )
    }

    fn frame(length: u32, payload: usize) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend(std::iter::repeat_n(7, payload));
        bytes
    }

    #[test]
    fn a_whole_message_in_one_frame_is_never_charged_even_with_the_budget_spent() {
        let mut body = body(true, 0);
        assert!(body.account(&frame(3, 3)).is_ok());
        assert_eq!(body.budget.used(), 0);
    }

    #[test]
    fn a_partly_received_message_is_charged_its_announced_length_until_it_completes() {
        let mut body = body(true, 1 << 20);
        body.account(&frame(65_536, 100)).expect("fits");
        assert_eq!(body.budget.used(), 65_536 + GRPC_HEADER);
        body.account(&vec![0; 65_436]).expect("the rest");
        assert_eq!(body.budget.used(), 0);
    }

    #[test]
    fn a_message_that_would_overflow_the_budget_is_refused() {
        let mut first = body(true, 100_000);
        first.account(&frame(65_536, 10)).expect("fits");
        let mut second = LimitedBody::new(
            http_body_util::Empty::<Bytes>::new(),
            Timer::Idle(Duration::from_secs(1)),
            true,
            first.budget.clone(),
        );
        assert!(matches!(
            second.account(&frame(65_536, 10)),
            Err(Error::RequestBuffersFull)
        ));
        drop(first);
        assert_eq!(
            second.budget.used(),
            0,
            "a dropped body gives its charge back"
        );
    }

    #[test]
    fn a_second_message_on_a_single_message_method_is_refused_even_when_empty() {
        let mut body = body(true, 1 << 20);
        body.account(&frame(0, 0)).expect("first");
        assert!(matches!(
            body.account(&frame(0, 0)),
            Err(Error::TooManyRequestMessages)
        ));
        let mut split = self::body(true, 1 << 20);
        let two = [frame(2, 2), frame(1, 1)].concat();
        split.account(&two[..3]).expect("a header in pieces");
        assert!(matches!(
            split.account(&two[3..]),
            Err(Error::TooManyRequestMessages)
        ));
    }

    #[test]
    fn streaming_methods_take_many_messages() {
        let mut body = body(false, 1 << 20);
        for _ in 0..100 {
            body.account(&frame(4, 4)).expect("a message");
        }
        assert_eq!(body.messages, 100);
    }
}
