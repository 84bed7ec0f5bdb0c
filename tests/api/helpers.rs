//! Starting the real gateway on `127.0.0.1:0` against a mock upstream, and reading its statuses.

use std::{net::SocketAddr, time::Duration};

use hyper_util::{client::legacy::connect::HttpConnector, rt::TokioExecutor};
use kgen_gateway::{
    config::{Settings, UpstreamSettings},
    proto::{
        session_service_client::SessionServiceClient, CreateSessionRequest, CreateSessionResponse,
    },
    startup::{Application, StartupError},
};
use reqwest::Url;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
    task::JoinHandle,
};
use tonic::{transport::Channel, Code, Request, Status};
use tonic_types::{ErrorDetails, StatusExt};
use wiremock::MockServer;

pub type RawClient =
    SessionServiceClient<hyper_util::client::legacy::Client<HttpConnector, tonic::body::Body>>;

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-secret-5f2b9c";

/// A gateway running in this process.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin_addr: SocketAddr,
    pub client: SessionServiceClient<Channel>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), StartupError>>>,
}

impl TestApp {
    pub async fn spawn(settings: Settings) -> TestApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let admin_addr = admin.local_addr().expect("local addr");
        let mut app = Application::build(settings).await.expect("gateway builds");
        app.serve_admin_on(admin);
        let (shutdown, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run(listener, async {
            let _ = stopped.await;
        }));
        TestApp {
            addr,
            admin_addr,
            client: SessionServiceClient::new(lazy_channel(addr)),
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    /// A gateway in front of `mock` with the test credentials.
    pub async fn with_upstream(mock: &MockServer) -> TestApp {
        TestApp::spawn(settings_for(&mock.uri())).await
    }

    pub async fn create_session(&self, user_id: &str) -> Result<CreateSessionResponse, Status> {
        let request = CreateSessionRequest {
            user_id: user_id.to_owned(),
        };
        self.client
            .clone()
            .create_session(request)
            .await
            .map(|r| r.into_inner())
    }

    /// Starts a call in the background (its result is awaited later).
    pub fn spawn_call(
        &self,
        user_id: &str,
    ) -> JoinHandle<Result<tonic::Response<CreateSessionResponse>, Status>> {
        let mut client = self.client.clone();
        let request = CreateSessionRequest {
            user_id: user_id.to_owned(),
        };
        tokio::spawn(async move { client.create_session(request).await })
    }

    /// Calls with `grpc-timeout` set to `deadline`. tonic's `Channel` would also enforce the deadline on the
    /// client side (answering `CANCELLED` first), so this goes through a client that only sends it: what the
    /// caller then sees is the gateway's own answer.
    pub async fn create_session_within(
        &self,
        user_id: &str,
        deadline: Duration,
    ) -> Result<CreateSessionResponse, Status> {
        let mut request = Request::new(CreateSessionRequest {
            user_id: user_id.to_owned(),
        });
        request.set_timeout(deadline);
        self.raw_client()
            .create_session(request)
            .await
            .map(|r| r.into_inner())
    }

    /// A generated client over a plain HTTP/2 connection, without tonic's client-side deadline enforcement.
    pub fn raw_client(&self) -> RawClient {
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(HttpConnector::new());
        let origin = format!("http://{}", self.addr)
            .parse()
            .expect("valid origin");
        SessionServiceClient::with_origin(http, origin)
    }

    /// GETs `path` on the admin listener: (status, body).
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{}{path}", self.admin_addr))
            .await
            .expect("admin answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("admin body"))
    }

    /// Triggers graceful shutdown and waits for `run` to return.
    pub async fn shutdown(mut self) -> Result<(), StartupError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let server = self.server.take().expect("server running");
        tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .expect("gateway stops within 30s")
            .expect("server task did not panic")
    }

    pub fn shutdown_handle(&mut self) -> oneshot::Sender<()> {
        self.shutdown.take().expect("not shut down yet")
    }

    pub fn take_server(&mut self) -> JoinHandle<Result<(), StartupError>> {
        self.server.take().expect("server running")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid URI")
        .connect()
        .await
        .expect("gateway accepts connections")
}

/// A channel that connects on first use (for gateways that serve TLS, where a plaintext connect would fail).
pub fn lazy_channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid URI")
        .connect_lazy()
}

pub fn settings_for(upstream: &str) -> Settings {
    let url = Url::parse(upstream).expect("valid upstream URL");
    Settings::new(UpstreamSettings::new(url, CLIENT_ID, CLIENT_SECRET))
}

/// The documented example response of KGeN.
pub fn example_session() -> serde_json::Value {
    serde_json::from_str(include_str!("../fixtures/session-response.example.json"))
        .expect("fixture is JSON")
}

/// Asserts `status` has `code` and an `ErrorInfo` with `reason` in our domain; returns its details.
#[track_caller]
pub fn assert_status(status: &Status, code: Code, reason: &str) -> ErrorDetails {
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    let details = status.check_error_details().expect("details decode");
    let info = details.error_info().expect("every error carries ErrorInfo");
    assert_eq!(info.reason, reason, "message: {}", status.message());
    assert_eq!(info.domain, "kgen-gateway");
    assert!(
        !status.message().contains('\n'),
        "one-line message: {:?}",
        status.message()
    );
    assert!(
        !status.message().contains(CLIENT_SECRET),
        "secret leaked: {:?}",
        status.message()
    );
    details
}

#[track_caller]
pub fn upstream_status_of(details: &ErrorDetails) -> Option<String> {
    details
        .error_info()
        .and_then(|i| i.metadata.get("upstream_status").cloned())
}

/// A raw TCP upstream that reads a request and never answers; it reports each connection it accepted
/// (`Accepted`) and the moment the gateway closed it (`Closed`).
pub struct SilentUpstream {
    pub url: String,
    pub events: mpsc::UnboundedReceiver<ConnectionEvent>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ConnectionEvent {
    Accepted,
    Closed,
}

impl SilentUpstream {
    pub async fn start() -> SilentUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let tx = tx.clone();
                let _ = tx.send(ConnectionEvent::Accepted);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    // Read until the peer closes (0) or resets (error).
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                    let _ = tx.send(ConnectionEvent::Closed);
                });
            }
        });
        SilentUpstream { url, events }
    }

    pub async fn next_event(&mut self, within: Duration) -> Option<ConnectionEvent> {
        tokio::time::timeout(within, self.events.recv())
            .await
            .ok()
            .flatten()
    }
}

/// A raw TCP upstream that answers every request with `head` and then streams `body_chunk` for as long as the
/// gateway reads; reports how many body bytes it managed to write before the gateway hung up.
pub async fn streaming_upstream(
    head: &'static str,
    body_chunk: Vec<u8>,
) -> (String, mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let tx = tx.clone();
            let chunk = body_chunk.clone();
            tokio::spawn(async move {
                let written = serve_stream(socket, head, &chunk).await;
                let _ = tx.send(written);
            });
        }
    });
    (url, rx)
}

async fn serve_stream(mut socket: TcpStream, head: &str, chunk: &[u8]) -> usize {
    let mut buf = [0u8; 8192];
    if socket.read(&mut buf).await.unwrap_or(0) == 0 {
        return 0;
    }
    if socket.write_all(head.as_bytes()).await.is_err() {
        return 0;
    }
    let framed = [
        format!("{:x}\r\n", chunk.len()).into_bytes(),
        chunk.to_vec(),
        b"\r\n".to_vec(),
    ]
    .concat();
    let mut written = 0;
    // Bounded: at most 64 MiB, whatever the gateway does.
    while written < 64 * 1024 * 1024 {
        if socket.write_all(&framed).await.is_err() {
            break;
        }
        written += chunk.len();
    }
    written
}

/// Settings where each call makes exactly one attempt and the breaker never opens: for tests about what a single
/// upstream answer maps to, not about resilience.
pub fn single_attempt(mut settings: Settings) -> Settings {
    settings.resilience.max_attempts = 1;
    settings.resilience.breaker.failure_threshold = u32::MAX;
    settings
}

/// A wiremock upstream answering every call with a session after `delay`.
pub async fn slow_mock(delay: Duration) -> MockServer {
    let mock = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({ "session_id": "s" }))
                .set_delay(delay),
        )
        .mount(&mock)
        .await;
    mock
}

/// Waits until `mock` has received at least one request (the call under test reached the upstream).
pub async fn until_upstream_called(mock: &MockServer) {
    while mock
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A scratch directory removed when dropped.
pub struct Scratch(pub std::path::PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "kgen-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes atomically (write, then rename), as Kubernetes swaps Secret and ConfigMap volumes.
    pub fn write(&self, name: &str, content: &str) -> std::path::PathBuf {
        let path = self.0.join(name);
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Settings parsed from real flags (as the binary does), with the test secret for the flags' credentials.
pub fn settings_from(args: &[&str]) -> Settings {
    let cli = <kgen_gateway::config::Cli as clap::Parser>::try_parse_from(
        std::iter::once("kgen-gateway").chain(args.iter().copied()),
    )
    .expect("valid flags");
    cli.gateway
        .into_settings(Some(CLIENT_SECRET.to_owned()))
        .expect("valid settings")
}

/// Calls until `check` passes or 5 s pass (watched files are polled every second).
pub async fn within_5s<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The ways an upstream might quote a secret so that a plain search for it fails: split by a NUL, upper-cased,
/// split by a line break, split by an escape character, and split by a NUL and upper-cased.
pub fn disguised_secrets(secret: &str) -> Vec<String> {
    let (head, tail) = secret.split_at(secret.len() / 2);
    vec![
        format!("{head}\u{0}{tail}"),
        secret.to_ascii_uppercase(),
        format!("{head}\r\n{tail}"),
        format!("{head}\u{1b}{tail}"),
        format!("{head}\u{0}{tail}").to_ascii_uppercase(),
    ]
}

/// A KGeN stand-in that rejects every call with HTTP 400, its JSON `message` quoting the `x-client-secret` the
/// call was sent with in every way of [`disguised_secrets`].
pub async fn secret_echoing_upstream() -> MockServer {
    let mock = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(|request: &wiremock::Request| {
            let secret = request
                .headers
                .get("x-client-secret")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let quoted = disguised_secrets(secret).join(" or ");
            wiremock::ResponseTemplate::new(400).set_body_json(serde_json::json!({
                "message": format!("client secret {quoted} rejected")
            }))
        })
        .mount(&mock)
        .await;
    mock
}

/// Asserts that `secret` appears nowhere in what the caller got: `grpc-message`, nor `grpc-status-details-bin`
/// (the `google.rpc.Status` it encodes: message and every detail, `ErrorInfo` metadata included), ASCII case and
/// spaces ignored.
#[track_caller]
pub fn assert_secret_absent(status: &Status, secret: &str) {
    use prost::Message as _;
    let squeezed = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace() && !c.is_control())
            .collect::<String>()
            .to_ascii_lowercase()
    };
    let secret = squeezed(secret);
    assert!(
        !squeezed(status.message()).contains(&secret),
        "secret in grpc-message: {:?}",
        status.message()
    );
    let raw = squeezed(&String::from_utf8_lossy(status.details()));
    assert!(!raw.contains(&secret), "secret in grpc-status-details-bin");
    let decoded =
        tonic_types::Status::decode(status.details()).expect("details are a google.rpc.Status");
    assert!(!squeezed(&decoded.message).contains(&secret), "{decoded:?}");
    let details = status.check_error_details().expect("details decode");
    assert!(
        !squeezed(&format!("{details:?}")).contains(&secret),
        "{details:?}"
    );
    let info = details.error_info().expect("ErrorInfo");
    for (key, value) in &info.metadata {
        assert!(!squeezed(key).contains(&secret) && !squeezed(value).contains(&secret));
    }
}
