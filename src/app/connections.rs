//! How many client connections a listener holds, and for how long: the bounds that keep file descriptors and
//! memory finite whatever clients do.
//!
//! - [`ConnectionLimit`]: at most `max` connections at once per listener. When a new connection arrives at the
//!   limit, the connection idle the longest (no call in flight) is closed to make room; when every connection has
//!   a call in flight, the new one is closed instead. Either way the accept loop keeps draining the kernel's
//!   queue, so the process never runs out of descriptors and a new caller always gets in when anything is idle.
//! - [`Lifetime`]: one connection's timers — the TLS handshake and the client's first bytes within the handshake
//!   timeout, no more than `max_idle` without a call in flight, a GOAWAY at its maximum age, and a prompt end when
//!   evicted or drained.
//! - [`Tracked`]: the per-connection service wrapper that tells the limit whether the connection is in use.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, PoisonError,
    },
    task::{Context, Poll},
    time::Duration,
};

use http_body::{Body, Frame, SizeHint};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    task::JoinSet,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::observability::ListenerMetrics;

/// Bytes a client must send before its connection counts as greeted: the HTTP/2 connection preface is 24 bytes,
/// and every HTTP/1.1 request line with its `Host` header is longer.
pub const GREETING_BYTES: u64 = 24;
/// How long an evicted or timed-out connection gets to finish writing its GOAWAY before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

// === impl ConnectionLimit ===

/// The connections of one listener (see the module docs).
#[derive(Debug)]
pub struct ConnectionLimit {
    listener: &'static str,
    max: usize,
    epoch: Instant,
    open: Mutex<Registry>,
    calls: AtomicUsize,
    max_calls: usize,
    busy: fn() -> http::Response<()>,
    metrics: ListenerMetrics,
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    by_id: HashMap<u64, Arc<Activity>>,
}

/// What admitting a connection decided.
#[derive(Debug)]
pub enum Admission {
    /// Serve it; dropping the slot gives the place back.
    Admitted(Slot),
    /// Every connection has a call in flight: close this one.
    Refused,
}

impl ConnectionLimit {
    /// At most `max` (at least 1) connections on the listener named `listener` (for logs), reported in `metrics`.
    pub fn new(listener: &'static str, max: usize, metrics: ListenerMetrics) -> Arc<Self> {
        Self::with_max_calls(listener, max, usize::MAX, http::Response::default, metrics)
    }

    /// At most `max` connections and, over all of them, at most `max_calls` calls in flight: a call past that is
    /// answered at once with `busy()`, before anything is read or allocated for it.
    pub fn with_max_calls(
        listener: &'static str,
        max: usize,
        max_calls: usize,
        busy: fn() -> http::Response<()>,
        metrics: ListenerMetrics,
    ) -> Arc<Self> {
        metrics
            .max
            .set(i64::try_from(max.max(1)).unwrap_or(i64::MAX));
        Arc::new(Self {
            listener,
            max: max.max(1),
            epoch: Instant::now(),
            open: Mutex::new(Registry::default()),
            calls: AtomicUsize::new(0),
            max_calls: max_calls.max(1),
            busy,
            metrics,
        })
    }

    fn try_start_call(&self) -> bool {
        let started = self
            .calls
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |calls| {
                (calls < self.max_calls).then_some(calls + 1)
            })
            .is_ok();
        if started {
            self.metrics.calls.inc();
        }
        started
    }

    fn end_call(&self) {
        self.calls.fetch_sub(1, Ordering::AcqRel);
        self.metrics.calls.dec();
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        // The registry stays consistent whatever panicked while holding it: every change is one map operation.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a new connection, evicting the longest-idle one when the limit is reached.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut registry = self.registry();
        if registry.by_id.len() >= self.max {
            let victim = registry
                .by_id
                .iter()
                .filter(|(_, activity)| activity.in_flight.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, activity)| activity.idle_since_ms.load(Ordering::Acquire))
                .map(|(id, _)| *id);
            match victim.and_then(|id| registry.by_id.remove(&id)) {
                Some(activity) => {
                    activity.evict.cancel();
                    self.metrics.evicted.inc();
                    self.metrics.open.dec();
                    self.warn_now_and_then(
                        self.metrics.evicted.get(),
                        "connection limit reached: closing the longest-idle connections to make room",
                    );
                }
                None => {
                    self.metrics.refused.inc();
                    self.warn_now_and_then(
                        self.metrics.refused.get(),
                        "connection limit reached with every connection busy: refusing new connections",
                    );
                    return Admission::Refused;
                }
            }
        }
        let id = registry.next_id;
        registry.next_id += 1;
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            greeted: AtomicBool::new(false),
            evict: CancellationToken::new(),
            epoch: self.epoch,
        });
        registry.by_id.insert(id, activity.clone());
        self.metrics.open.inc();
        Admission::Admitted(Slot {
            limit: self.clone(),
            id,
            activity,
        })
    }

    /// Logs `what` on the 1st, 2nd, 4th, 8th… time (`so_far`), so a flood of connections cannot flood the log.
    fn warn_now_and_then(&self, so_far: u64, what: &str) {
        if so_far.is_power_of_two() {
            tracing::warn!(
                listener = self.listener,
                max_connections = self.max,
                so_far,
                "{what}"
            );
        }
    }

    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// One admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    limit: Arc<ConnectionLimit>,
    id: u64,
    activity: Arc<Activity>,
}

impl Slot {
    /// The connection's activity, shared with its service.
    pub fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// Resolves when the limit closes this connection to make room for a new one.
    pub async fn evicted(&self) {
        self.activity.evict.cancelled().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // An evicted connection left the registry (and the gauge) when it was evicted.
        if self.limit.registry().by_id.remove(&self.id).is_some() {
            self.limit.metrics.open.dec();
        }
    }
}

/// Whether one connection is in use, since when it is idle, whether the client has spoken, and whether it was
/// evicted.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    idle_since_ms: AtomicU64,
    greeted: AtomicBool,
    evict: CancellationToken,
    epoch: Instant,
}

impl Activity {
    /// How long the connection has had no call in flight (zero while it has one).
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        self.epoch.elapsed().saturating_sub(since)
    }
}

/// One call in flight on a connection; dropping it (the response is sent, or the call is abandoned) ends it.
#[derive(Debug)]
struct InFlight {
    activity: Arc<Activity>,
    limit: Arc<ConnectionLimit>,
}

impl InFlight {
    /// Counts a call on the connection of `activity`, if the listener's call limit allows one more.
    fn start(activity: &Arc<Activity>, limit: &Arc<ConnectionLimit>) -> Option<Self> {
        if !limit.try_start_call() {
            return None;
        }
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Some(Self {
            activity: activity.clone(),
            limit: limit.clone(),
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.activity;
        activity
            .idle_since_ms
            .store(millis(activity.epoch.elapsed()), Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.limit.end_call();
    }
}

// === accept loop ===

/// Accepts connections on `listener` until `stop` resolves. Each one is admitted by `limit` (or closed at once) and
/// handed with its slot to `serve`, whose future runs on its own task in `tasks`. Finished tasks are reaped as
/// the loop goes.
pub async fn accept_until<F, Fut>(
    listener: &TcpListener,
    limit: &Arc<ConnectionLimit>,
    tasks: &mut JoinSet<()>,
    stop: impl Future<Output = ()>,
    mut serve: F,
) where
    F: FnMut(TcpStream, Slot) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => match limit.admit() {
                    Admission::Admitted(slot) => {
                        tasks.spawn(serve(stream, slot));
                    }
                    Admission::Refused => drop(stream),
                },
                Err(error) => {
                    // Out of file descriptors, say: back off instead of spinning.
                    tracing::warn!(listener = limit.listener, %error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

// === impl Lifetime ===

/// The timers of one connection (see the module docs).
#[derive(Debug, Clone)]
pub struct Lifetime {
    /// The client's first [`GREETING_BYTES`] (after the TLS handshake, when there is one) must arrive by this.
    pub greet_by: Instant,
    /// Longest time without a call in flight.
    pub max_idle: Duration,
    /// Age at which the connection is asked to go away, and how long its calls then get; `None`: no maximum age.
    pub max_age: Option<(Duration, Duration)>,
    /// Cancelled when the server drains: GOAWAY, and calls in flight go on (the caller bounds the wait).
    pub drain: CancellationToken,
}

/// Why a connection is being closed by the gateway.
enum Ending {
    Drain,
    AgedOut(Duration),
    Idle,
    Evicted,
    Silent,
}

impl Lifetime {
    /// Serves `connection` (hyper's, over an IO wrapped in [`Greeting`] with `slot`'s activity) until the client
    /// closes it or one of the timers ends it; `slot` is held until then.
    pub async fn serve<C>(self, connection: C, slot: Slot)
    where
        C: GracefulConnection,
    {
        let activity = slot.activity().clone();
        tokio::pin!(connection);
        let aged = tokio::time::sleep(self.max_age.map_or(Duration::MAX, |(age, _)| age));
        tokio::pin!(aged);
        let greeting = tokio::time::sleep_until(self.greet_by);
        tokio::pin!(greeting);
        let mut greeted = false;
        let ending = loop {
            let idle_check = activity
                .epoch
                .elapsed()
                .saturating_add(self.max_idle.saturating_sub(activity.idle_for()));
            tokio::select! {
                result = connection.as_mut() => return log_end(result),
                () = self.drain.cancelled() => break Ending::Drain,
                () = activity.evict.cancelled() => break Ending::Evicted,
                () = &mut aged, if self.max_age.is_some() => {
                    break Ending::AgedOut(self.max_age.map_or(CLOSE_GRACE, |(_, grace)| grace));
                }
                () = &mut greeting, if !greeted => {
                    if activity.greeted.load(Ordering::Acquire) {
                        greeted = true;
                    } else {
                        break Ending::Silent;
                    }
                }
                () = tokio::time::sleep_until(activity.epoch + idle_check) => {
                    if activity.idle_for() >= self.max_idle {
                        break Ending::Idle;
                    }
                }
            }
        };
        match ending {
            // A client that never said anything gets nothing more.
            Ending::Silent => {
                tracing::debug!(
                    "connection closed: the client sent nothing within the handshake timeout"
                );
            }
            Ending::Drain => {
                connection.as_mut().graceful_shutdown();
                // `run` bounds this with the shutdown grace period.
                log_end(connection.await);
            }
            Ending::AgedOut(grace) => {
                // The client opens a new connection (possibly to another replica) for its next calls.
                connection.as_mut().graceful_shutdown();
                match tokio::time::timeout(grace, connection).await {
                    Ok(result) => log_end(result),
                    Err(_) => tracing::debug!("aged-out connection closed after its grace period"),
                }
            }
            Ending::Evicted | Ending::Idle => {
                // GOAWAY (HTTP/2) or `Connection: close` (HTTP/1.1), then the descriptor is freed promptly.
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(CLOSE_GRACE, connection).await;
            }
        }
        drop(slot);
    }
}

/// A hyper connection that can be asked to go away.
pub trait GracefulConnection:
    Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>
{
    /// GOAWAY / `Connection: close`: calls in flight finish, no new ones start.
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S, E, B> GracefulConnection for hyper_util::server::conn::auto::Connection<'_, I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper_util::server::conn::auto::HttpServerConnExec<S::Future, B>,
    Self: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper_util::server::conn::auto::Connection::graceful_shutdown(self);
    }
}

fn log_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(error) = result {
        tracing::debug!(%error, "connection closed with an error");
    }
}

// === impl Greeting ===

/// An IO that marks its connection greeted once the client has sent [`GREETING_BYTES`].
#[derive(Debug)]
pub struct Greeting<I> {
    io: I,
    read: u64,
    activity: Arc<Activity>,
}

impl<I> Greeting<I> {
    /// Wraps `io` of the connection holding `slot`.
    pub fn new(io: I, slot: &Slot) -> Self {
        Self {
            io,
            read: 0,
            activity: slot.activity().clone(),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Greeting<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if self.read < GREETING_BYTES {
            self.read += (buf.filled().len() - before) as u64;
            if self.read >= GREETING_BYTES {
                self.activity.greeted.store(true, Ordering::Release);
            }
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Greeting<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

// === impl Tracked ===

/// A connection's service: counts its calls in flight (until each response body ends) for [`ConnectionLimit`]
/// and [`Lifetime`], and answers calls past the listener's call limit itself.
#[derive(Debug, Clone)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    limit: Arc<ConnectionLimit>,
}

impl<S> Tracked<S> {
    /// `inner`, serving the connection holding `slot`.
    pub fn new(inner: S, slot: &Slot) -> Self {
        Self {
            inner,
            activity: slot.activity().clone(),
            limit: slot.limit.clone(),
        }
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Tracked<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<TrackedBody<ResBody>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        match InFlight::start(&self.activity, &self.limit) {
            Some(in_flight) => TrackedFuture::Call {
                inner: self.inner.call(request),
                in_flight: Some(in_flight),
            },
            None => TrackedFuture::Busy {
                response: Some((self.limit.busy)()),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Tracked`].
    #[project = TrackedFutureProj]
    #[derive(Debug)]
    pub enum TrackedFuture<F> {
        /// A call counted in flight.
        Call {
            #[pin]
            inner: F,
            in_flight: Option<InFlight>,
        },
        /// A call past the limit, answered at once.
        Busy {
            response: Option<http::Response<()>>,
        },
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            TrackedFutureProj::Call { inner, in_flight } => {
                let response = std::task::ready!(inner.poll(cx))?;
                let in_flight = in_flight.take();
                Poll::Ready(Ok(response.map(|body| TrackedBody {
                    inner: Some(body),
                    _in_flight: in_flight,
                })))
            }
            TrackedFutureProj::Busy { response } => {
                let response = response.take().unwrap_or_default();
                Poll::Ready(Ok(response.map(|()| TrackedBody {
                    inner: None,
                    _in_flight: None,
                })))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its call counted in flight until it ends or is dropped (empty for a refusal).
    #[derive(Debug)]
    pub struct TrackedBody<B> {
        #[pin]
        inner: Option<B>,
        _in_flight: Option<InFlight>,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().inner.as_pin_mut() {
            Some(inner) => inner.poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

// === open files ===

/// Most connections the gRPC port holds by default, however high the open-files limit.
pub const DEFAULT_MAX_CONNECTIONS_CAP: usize = 1024;

/// Raises this process's soft open-files limit to its hard limit and logs both; the limit in force afterwards.
pub fn raise_open_files_limit() -> Option<u64> {
    let (soft, hard) = match rlimit::Resource::NOFILE.get() {
        Ok(limits) => limits,
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-files limit");
            return None;
        }
    };
    match rlimit::increase_nofile_limit(hard) {
        Ok(now) if now > soft => {
            tracing::info!(was = soft, now, hard, "open-files limit raised");
            Some(now)
        }
        Ok(_) => {
            tracing::info!(soft, hard, "open-files limit");
            Some(soft)
        }
        Err(error) => {
            tracing::warn!(soft, hard, %error, "cannot raise the open-files limit");
            Some(soft)
        }
    }
}

/// The gRPC port's default connection limit for an open-files limit of `open_files`: half of it (the rest is
/// for upstream connections, the admin port and files), between 16 and [`DEFAULT_MAX_CONNECTIONS_CAP`].
pub fn default_max_connections(open_files: Option<u64>) -> usize {
    let half = open_files.map_or(1024, |limit| limit / 2);
    usize::try_from(half)
        .unwrap_or(usize::MAX)
        .clamp(16, DEFAULT_MAX_CONNECTIONS_CAP)
}
