//! The tests' one KGeN stand-in: raw HTTP/1.1 (optionally over TLS) on `127.0.0.1:0`, recording every request it
//! receives, answering with a usual answer the test chooses, and misbehaving when the request's `user_id` asks,
//! in the embedded sandbox's `fault:` grammar (the `fault:` table of docs/sandbox.md) plus transport faults only a
//! stand-in that writes its own bytes can produce.
//!
//! | `user_id` | answer | from |
//! |---|---|---|
//! | anything not below | the usual answer: by default 200 with `{"session_id": "session-of-<user_id>", "user_id": …}`, or what [`FakeKgen::answer`] / [`FakeKgen::answer_with`] set, after its [`Answer::after`] delay if it has one | — |
//! | `fault:status:<code>` | HTTP `<code>` (200–599) with `{"message": "sandbox fault: HTTP <code>"}`; 429 and 503 add `Retry-After: 1` | sandbox |
//! | `fault:status:<code>:<secs>` | the same with `Retry-After: <secs>` | sandbox |
//! | `fault:delay:<ms>` | the usual answer after `<ms>` milliseconds (at most 60000) | sandbox |
//! | `fault:malformed` | 200 with an HTML page | sandbox |
//! | `fault:no-session-id` | 200 with a session lacking `session_id` | sandbox |
//! | `fault:oversized` | 200 with a 2 MiB JSON body | sandbox |
//! | any other `fault:…` | 400 `{"message": "unknown sandbox fault"}` | sandbox |
//! | `fault:reset-headers` | half a status line, then a TCP reset (a close over TLS) | transport |
//! | `fault:reset-body` | headers and part of the body, then a TCP reset (a close over TLS) | transport |
//! | `fault:hang-up` | no answer: the connection is closed right after the request | transport |
//! | `fault:truncated` | `content-length: 1000`, 10 bytes, then a clean close | transport |
//! | `fault:slow-headers` | nothing for 30 s, then the usual answer | transport |
//! | `fault:trickle` | headers, then one body byte every 100 ms | transport |
//! | `fault:chunked` | the usual answer in 64-byte chunks, each flushed on its own 2 ms apart | transport |
//! | `fault:endless` | 200 with a chunked body of spaces that never ends (reported by [`FakeKgen::endless_written`]) | transport |
//! | `fault:hold` | never answers (reported by [`FakeKgen::next_held_event`]) | transport |
//! | `fault:flaky:<n>:<key>[:<code>]` | 503 (or `<code>`) for the first `n` requests with this key, then the usual answer | transport |
//! | `fault:invalid-utf8` | 200 with a body that is not UTF-8 | transport |
//! | `fault:nested` | 200 with JSON nested 100 000 deep | transport |
//!
//! The sandbox rows answer exactly as `src/sandbox` does (it checks credentials first; this stand-in leaves that
//! to a test's [`FakeKgen::answer_with`]). Any HTTP/1.1 request is recorded ([`FakeKgen::received`]), JSON or not,
//! so the stand-in also serves as an OTLP collector.
//!
//! What the grammar cannot say (a different answer per `user_id` prefix, say, where every item of a batch needs
//! its own id) a test says with [`FakeKgen::answer_with`]; [`Answer::after`] makes such an answer wait (the usual
//! answer of a `fault:delay`, `fault:chunked` or `fault:flaky` row waits too). Every request counts as in flight
//! from when it is read until its answer is handed to the socket, or until the gateway closes its connection
//! (seen during a wait, a `fault:hold`, or a failed write): [`FakeKgen::in_flight`] now, and
//! [`FakeKgen::max_in_flight`] the most at once since the start.

mod faults;
mod http1;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};

use http::HeaderMap;
use tokio::{net::TcpListener, sync::mpsc};
use tokio_rustls::TlsAcceptor;

use super::wait::bounded;

/// A KGeN stand-in; see the module documentation for its `user_id` grammar.
pub struct FakeKgen {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    held: mpsc::UnboundedReceiver<HeldRequest>,
    endless: mpsc::UnboundedReceiver<usize>,
}

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    /// The `user_id` of a JSON body, if it has one.
    pub fn user_id(&self) -> Option<String> {
        let json: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        Some(json.get("user_id")?.as_str()?.to_owned())
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// What `requests_for` counts this request under: the key of a `fault:flaky:…`, else the `user_id`.
    fn key(&self) -> String {
        let user_id = self.user_id().unwrap_or_default();
        faults::flaky_key(&user_id).unwrap_or(user_id)
    }
}

/// An HTTP answer for the stand-in to give.
#[derive(Debug, Clone)]
pub struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    delay: Duration,
}

impl Answer {
    /// `status` with `body` as JSON.
    pub fn json(status: u16, body: serde_json::Value) -> Answer {
        Answer::raw(status, "application/json", body.to_string())
    }

    /// `status` with `body` as it is, labelled `content_type`.
    pub fn raw(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Answer {
        Answer::empty(status)
            .with_header("content-type", content_type)
            .with_body(body)
    }

    /// `status` with no body.
    pub fn empty(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// The same answer with one more header.
    pub fn with_header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The same answer, written `delay` after the request was read (sooner if the gateway hangs up first, when
    /// nothing is written). A `fault:delay:<ms>` adds its own wait to this one.
    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }

    fn with_body(mut self, body: impl Into<Vec<u8>>) -> Answer {
        self.body = body.into();
        self
    }
}

/// What happened to a `fault:hold` request.
#[derive(Debug, PartialEq, Eq)]
pub enum HeldRequest {
    /// It arrived and is being held.
    Arrived,
    /// The gateway closed its connection.
    Closed,
}

type Usual = Arc<dyn Fn(&Received) -> Answer + Send + Sync>;

struct Shared {
    usual: Mutex<Usual>,
    received: Mutex<Vec<Received>>,
    connections: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    held: mpsc::UnboundedSender<HeldRequest>,
    endless: mpsc::UnboundedSender<usize>,
}

impl Shared {
    fn usual_answer(&self, request: &Received) -> Answer {
        let usual = lock(&self.usual).clone();
        usual(request)
    }
}

/// Counts one request as in flight until dropped: once its answer is handed to the socket, or once the stand-in
/// is done with a connection that failed or that the gateway closed.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn start(shared: &'a Shared) -> InFlight<'a> {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The default usual answer: a small session naming the user.
fn session_of(request: &Received) -> Answer {
    Answer::json(
        200,
        faults::session_json(&request.user_id().unwrap_or_default()),
    )
}

impl FakeKgen {
    /// Serves plain HTTP on a fresh port.
    pub async fn start() -> FakeKgen {
        Self::start_on(bind("127.0.0.1:0".parse().expect("an address")).await, None)
    }

    /// Serves plain HTTP on `addr` (e.g. a port the gateway already failed to reach).
    pub async fn start_at(addr: SocketAddr) -> FakeKgen {
        Self::start_on(bind(addr).await, None)
    }

    /// Serves HTTPS with `acceptor` on a fresh port.
    pub async fn start_tls(acceptor: TlsAcceptor) -> FakeKgen {
        let listener = bind("127.0.0.1:0".parse().expect("an address")).await;
        Self::start_on(listener, Some(acceptor))
    }

    fn start_on(listener: TcpListener, tls: Option<TlsAcceptor>) -> FakeKgen {
        let addr = listener.local_addr().expect("a bound address");
        let (held_tx, held) = mpsc::unbounded_channel();
        let (endless_tx, endless) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            usual: Mutex::new(Arc::new(session_of)),
            received: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            held: held_tx,
            endless: endless_tx,
        });
        tokio::spawn(http1::accept(listener, tls, shared.clone()));
        FakeKgen {
            addr,
            shared,
            held,
            endless,
        }
    }

    /// From now on, the usual answer is `answer`.
    pub fn answer(&self, answer: Answer) {
        self.answer_with(move |_| answer.clone());
    }

    /// From now on, the usual answer is what `respond` makes of the request.
    pub fn answer_with(&self, respond: impl Fn(&Received) -> Answer + Send + Sync + 'static) {
        *lock(&self.shared.usual) = Arc::new(respond);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn https_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Requests read and not yet answered: an answer counts as given once it is handed to the socket (so this never
    /// exceeds what the gateway itself has outstanding), a request whose connection the gateway closes (a
    /// `fault:hold`, an [`Answer::after`] it gave up on) once the stand-in sees the close.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests [`FakeKgen::in_flight`] at once since the start.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Every request received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.shared.received).clone()
    }

    /// Requests received with this `user_id` (for `fault:flaky:…`, with this key).
    pub fn requests_for(&self, key: &str) -> usize {
        lock(&self.shared.received)
            .iter()
            .filter(|request| request.key() == key)
            .count()
    }

    /// Waits until at least one request has arrived (the call under test reached KGeN).
    pub async fn until_called(&self) {
        bounded("the fake KGeN to receive a request", async {
            while lock(&self.shared.received).is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }

    /// Waits until a request with this `user_id` (for `fault:flaky:…`, with this key) has arrived: the call is past
    /// the gateway, with the headers it was sent with.
    pub async fn until_requested(&self, key: &str) {
        bounded(
            &format!("the fake KGeN to receive a request for {key}"),
            async {
                while self.requests_for(key) == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
        )
        .await;
    }

    /// The next thing that happened to a `fault:hold` request, or `None` if nothing did `within`.
    pub async fn next_held_event(&mut self, within: Duration) -> Option<HeldRequest> {
        tokio::time::timeout(within, self.held.recv())
            .await
            .ok()
            .flatten()
    }

    /// How many body bytes a `fault:endless` answer wrote before the gateway hung up; fails the test if no such
    /// answer ends within [`super::wait::PATIENCE`].
    pub async fn endless_written(&mut self) -> Option<usize> {
        bounded(
            "the fake KGeN to report an endless body",
            self.endless.recv(),
        )
        .await
    }
}

async fn bind(addr: SocketAddr) -> TcpListener {
    TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"))
}
