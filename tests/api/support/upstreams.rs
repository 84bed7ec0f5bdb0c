//! KGeN stand-ins: `wiremock` servers answering as the tests need, and raw TCP upstreams that misbehave (never
//! answer, or stream a body forever). The programmable one is [`super::fault_upstream`].

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use wiremock::MockServer;

use super::wait::bounded;

/// The documented example response of KGeN.
pub fn example_session() -> serde_json::Value {
    serde_json::from_str(include_str!("../../fixtures/session-response.example.json"))
        .expect("fixture is JSON")
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
    bounded("the upstream to receive a request", async {
        while mock
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
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

/// What a [`streaming_upstream`] reports: how many body bytes it wrote on each connection before the gateway hung
/// up.
pub struct Written(mpsc::UnboundedReceiver<usize>);

impl Written {
    /// The next report (`None` once the upstream is gone); fails the test if none comes within
    /// [`super::wait::PATIENCE`].
    pub async fn recv(&mut self) -> Option<usize> {
        bounded(
            "the streaming upstream to report the bytes it wrote",
            self.0.recv(),
        )
        .await
    }
}

/// A raw TCP upstream that answers every request with `head` and then streams `body_chunk` for as long as the
/// gateway reads; reports how many body bytes it managed to write before the gateway hung up.
pub async fn streaming_upstream(head: &'static str, body_chunk: Vec<u8>) -> (String, Written) {
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
    (url, Written(rx))
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
