//! Starting the real gateway on `127.0.0.1:0` in this process, calling it, and the settings the tests give it.

use std::{net::SocketAddr, time::Duration};

use super::{fake_kgen::FakeKgen, wait::bounded};
use hyper_util::{client::legacy::connect::HttpConnector, rt::TokioExecutor};
use kgen_gateway::{
    proto::{
        session_service_client::SessionServiceClient, CreateSessionRequest, CreateSessionResponse,
    },
    Application, Settings, StartupError, UpstreamSettings,
};
use reqwest::Url;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{transport::Channel, Request, Status};

pub type RawClient =
    SessionServiceClient<hyper_util::client::legacy::Client<HttpConnector, tonic::body::Body>>;

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "test-secret-5f2b9c";

/// The HTTP path of `CreateSession`, for requests built by hand.
pub const CREATE_SESSION: &str = "/kgen.session.v1.SessionService/CreateSession";

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
        let mut app = bounded("the gateway to build", Application::build(settings))
            .await
            .expect("gateway builds");
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

    /// A gateway in front of `kgen` with the test credentials.
    pub async fn with_upstream(kgen: &FakeKgen) -> TestApp {
        TestApp::spawn(settings_for(&kgen.url())).await
    }

    pub async fn create_session(&self, user_id: &str) -> Result<CreateSessionResponse, Status> {
        let request = CreateSessionRequest {
            user_id: user_id.to_owned(),
        };
        bounded(
            "the gateway to answer CreateSession",
            self.client.clone().create_session(request),
        )
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
        tokio::spawn(async move {
            bounded(
                "the gateway to answer a background CreateSession",
                client.create_session(request),
            )
            .await
        })
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
        bounded(
            "the gateway to answer CreateSession with a grpc-timeout",
            self.raw_client().create_session(request),
        )
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
        bounded(&format!("the admin listener to answer GET {path}"), async {
            let response = reqwest::get(format!("http://{}{path}", self.admin_addr))
                .await
                .expect("admin answers");
            let status = response.status().as_u16();
            (status, response.text().await.expect("admin body"))
        })
        .await
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
    bounded(
        &format!("a connection to the gateway at {addr}"),
        Channel::from_shared(format!("http://{addr}"))
            .expect("valid URI")
            .connect(),
    )
    .await
    .expect("gateway accepts connections")
}

/// One `CreateSession` call on a fresh connection to the gateway at `addr` (the real binary, say), every wait
/// bounded.
pub async fn create_session_at(
    addr: SocketAddr,
    user_id: &str,
) -> Result<CreateSessionResponse, Status> {
    let request = CreateSessionRequest {
        user_id: user_id.to_owned(),
    };
    bounded(
        "the gateway to answer CreateSession",
        SessionServiceClient::new(channel(addr).await).create_session(request),
    )
    .await
    .map(|r| r.into_inner())
}

/// A channel that connects on first use (for gateways that serve TLS, where a plaintext connect would fail).
/// A bare HTTP/2 connection to `addr` (no gRPC client in between): its sender, and the connection's driver, whose
/// future ends when the server closes the connection.
pub async fn bare_h2<B>(
    addr: SocketAddr,
) -> (
    hyper::client::conn::http2::SendRequest<B>,
    hyper::client::conn::http2::Connection<
        hyper_util::rt::TokioIo<tokio::net::TcpStream>,
        B,
        TokioExecutor,
    >,
)
where
    B: http_body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    bounded("an HTTP/2 connection to the gateway", async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        hyper::client::conn::http2::handshake(
            TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .expect("h2 handshake")
    })
    .await
}

pub fn lazy_channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("valid URI")
        .connect_lazy()
}

pub fn settings_for(upstream: &str) -> Settings {
    let url = Url::parse(upstream).expect("valid upstream URL");
    Settings::new(UpstreamSettings::new(url, CLIENT_ID, CLIENT_SECRET))
}

/// Settings parsed from real flags (as the binary does), with the test secret for the flags' credentials.
pub fn settings_from(args: &[&str]) -> Settings {
    let cli = <kgen_gateway::Cli as clap::Parser>::try_parse_from(
        std::iter::once("kgen-gateway").chain(args.iter().copied()),
    )
    .expect("valid flags");
    cli.gateway
        .into_settings(Some(CLIENT_SECRET.to_owned()))
        .expect("valid settings")
}

/// Settings where each call makes exactly one attempt and the breaker never opens: for tests about what a single
/// upstream answer maps to, not about resilience.
pub fn single_attempt(mut settings: Settings) -> Settings {
    settings.resilience.max_attempts = 1;
    settings.resilience.breaker.failure_threshold = u32::MAX;
    settings
}
