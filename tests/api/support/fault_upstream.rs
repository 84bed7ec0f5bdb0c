//! A programmable KGeN stand-in speaking raw HTTP/1.1 (optionally over TLS), whose behaviour per request is chosen
//! by the `user_id` in the request body, so one gateway can meet a fault and then a healthy call.
//!
//! | `user_id` | behaviour |
//! |---|---|
//! | anything not below | 200 with a session |
//! | `reset-headers` | half a status line, then a TCP reset |
//! | `reset-body` | headers and part of the body, then a TCP reset |
//! | `truncated` | `content-length: 1000`, 10 bytes, then a clean close |
//! | `slow-headers` | nothing for 30 s |
//! | `trickle` | headers, then one body byte every 100 ms |
//! | `flaky:<n>:<key>[:<code>]` | 503 (or `<code>`) for the first `n` requests with this key, then 200 |
//! | `status:<code>[:<retry-after>]` | that status |
//! | `html200` | 200 with an HTML page |
//! | `oversized` | 200 with a 2 MiB JSON body |
//! | `invalid-utf8` | 200 with bytes that are not UTF-8 |
//! | `nested` | 200 with JSON nested 100 000 deep |
//! | `delay:<ms>` | 200 with a session after `<ms>` |
//! | `hold` | never answers; reports when the gateway closes the connection |

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::TlsAcceptor;

pub struct FaultUpstream {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<HashMap<String, usize>>>,
    held_closed: mpsc::UnboundedReceiver<()>,
}

#[derive(Clone)]
struct Shared {
    requests: Arc<Mutex<HashMap<String, usize>>>,
    held_closed: mpsc::UnboundedSender<()>,
}

impl FaultUpstream {
    pub async fn start() -> FaultUpstream {
        Self::start_on(
            TcpListener::bind("127.0.0.1:0").await.expect("bind port 0"),
            None,
        )
    }

    /// Serves on `addr` (e.g. a port the gateway already failed to reach).
    pub async fn start_at(addr: SocketAddr) -> FaultUpstream {
        Self::start_on(
            TcpListener::bind(addr)
                .await
                .expect("rebind the freed port"),
            None,
        )
    }

    pub async fn start_tls(acceptor: TlsAcceptor) -> FaultUpstream {
        Self::start_on(
            TcpListener::bind("127.0.0.1:0").await.expect("bind port 0"),
            Some(acceptor),
        )
    }

    fn start_on(listener: TcpListener, tls: Option<TlsAcceptor>) -> FaultUpstream {
        let addr = listener.local_addr().expect("addr");
        let (tx, held_closed) = mpsc::unbounded_channel();
        let requests = Arc::new(Mutex::new(HashMap::new()));
        let shared = Shared {
            requests: requests.clone(),
            held_closed: tx,
        };
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve_plain(socket, shared).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(socket).await {
                                serve(stream, shared).await;
                            }
                        }
                    }
                });
            }
        });
        FaultUpstream {
            addr,
            connections,
            requests,
            held_closed,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn https_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests seen with this `user_id` (for `flaky:*`, with this key).
    pub fn requests_for(&self, user_id: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .get(user_id)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until the gateway closes a connection whose request was being held.
    pub async fn held_connection_closed(&mut self, within: Duration) -> bool {
        matches!(
            tokio::time::timeout(within, self.held_closed.recv()).await,
            Ok(Some(()))
        )
    }
}

enum Action {
    Respond(Vec<u8>),
    ResetAfter(Vec<u8>),
    CloseAfter(Vec<u8>),
    Trickle(Vec<u8>),
    Delay(Duration, Vec<u8>),
    Hold,
}

async fn serve_plain(socket: TcpStream, shared: Shared) {
    // The plain path can send real TCP resets (SO_LINGER 0 then close).
    let mut reader = BufReader::new(socket);
    while let Some(user_id) = read_request(&mut reader).await {
        let action = decide(&user_id, &shared);
        let socket = reader.get_mut();
        match action {
            Action::ResetAfter(bytes) => {
                let _ = socket.write_all(&bytes).await;
                let _ = socket2::SockRef::from(&*socket).set_linger(Some(Duration::ZERO));
                return;
            }
            other => {
                if !perform(socket, other, &shared).await {
                    return;
                }
            }
        }
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, shared: Shared) {
    let mut reader = BufReader::new(stream);
    while let Some(user_id) = read_request(&mut reader).await {
        let action = decide(&user_id, &shared);
        if !perform(reader.get_mut(), action, &shared).await {
            return;
        }
    }
}

/// Carries out `action`; false when the connection is done.
async fn perform<S: AsyncRead + AsyncWrite + Unpin>(
    socket: &mut S,
    action: Action,
    shared: &Shared,
) -> bool {
    match action {
        Action::Respond(bytes) => socket.write_all(&bytes).await.is_ok(),
        Action::ResetAfter(bytes) | Action::CloseAfter(bytes) => {
            let _ = socket.write_all(&bytes).await;
            let _ = socket.shutdown().await;
            false
        }
        Action::Trickle(head) => {
            if socket.write_all(&head).await.is_err() {
                return false;
            }
            for _ in 0..1000 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if socket.write_all(b" ").await.is_err() || socket.flush().await.is_err() {
                    break;
                }
            }
            false
        }
        Action::Delay(delay, bytes) => {
            tokio::time::sleep(delay).await;
            socket.write_all(&bytes).await.is_ok()
        }
        Action::Hold => {
            let mut buf = [0u8; 1024];
            while let Ok(n) = socket.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
            let _ = shared.held_closed.send(());
            false
        }
    }
}

fn decide(user_id: &str, shared: &Shared) -> Action {
    let key = match user_id.split(':').collect::<Vec<_>>().as_slice() {
        ["flaky", _, key] | ["flaky", _, key, _] => (*key).to_owned(),
        _ => user_id.to_owned(),
    };
    let seen = {
        let mut requests = shared.requests.lock().unwrap();
        let count = requests.entry(key).or_default();
        *count += 1;
        *count
    };
    let parts: Vec<&str> = user_id.split(':').collect();
    match parts.as_slice() {
        ["reset-headers"] => Action::ResetAfter(b"HTTP/1.1 200 O".to_vec()),
        ["reset-body"] => Action::ResetAfter(
            [
                head(200, "application/json", 500, ""),
                b"{\"session_id\":\"s".to_vec(),
            ]
            .concat(),
        ),
        ["truncated"] => Action::CloseAfter(
            [
                head(200, "application/json", 1000, ""),
                b"{\"session_".to_vec(),
            ]
            .concat(),
        ),
        ["slow-headers"] => Action::Delay(
            Duration::from_secs(30),
            response(200, "application/json", session(user_id).as_bytes(), ""),
        ),
        ["trickle"] => Action::Trickle(head(200, "application/json", 100_000, "")),
        ["flaky", n, _] if seen <= n.parse().unwrap() => Action::Respond(response(
            503,
            "application/json",
            br#"{"message":"flaky"}"#,
            "",
        )),
        ["flaky", n, _, code] if seen <= n.parse().unwrap() => Action::Respond(response(
            code.parse().unwrap(),
            "application/json",
            br#"{"message":"flaky"}"#,
            "",
        )),
        ["status", code] => Action::Respond(response(
            code.parse().unwrap(),
            "application/json",
            br#"{"message":"as asked"}"#,
            "",
        )),
        ["status", code, retry_after] => Action::Respond(response(
            code.parse().unwrap(),
            "application/json",
            br#"{"message":"as asked"}"#,
            &format!("retry-after: {retry_after}\r\n"),
        )),
        ["html200"] => Action::Respond(response(
            200,
            "text/html",
            b"<html><body>Service Unavailable</body></html>",
            "",
        )),
        ["oversized"] => {
            let body = format!(
                "{{\"session_id\":\"s\",\"padding\":\"{}\"}}",
                "x".repeat(2 * 1024 * 1024)
            );
            Action::Respond(response(200, "application/json", body.as_bytes(), ""))
        }
        ["invalid-utf8"] => Action::Respond(response(
            200,
            "application/json",
            b"{\"session_id\":\"\xff\xfe\"}",
            "",
        )),
        ["nested"] => {
            let body = format!(
                "{{\"session_id\":{}1{}}}",
                "[".repeat(100_000),
                "]".repeat(100_000)
            );
            Action::Respond(response(200, "application/json", body.as_bytes(), ""))
        }
        ["delay", ms] => Action::Delay(
            Duration::from_millis(ms.parse().unwrap()),
            response(200, "application/json", session(user_id).as_bytes(), ""),
        ),
        ["hold"] => Action::Hold,
        _ => Action::Respond(response(
            200,
            "application/json",
            session(user_id).as_bytes(),
            "",
        )),
    }
}

fn session(user_id: &str) -> String {
    serde_json::json!({ "session_id": format!("session-of-{user_id}"), "user_id": user_id })
        .to_string()
}

fn head(status: u16, content_type: &str, content_length: usize, extra: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {content_length}\r\n{extra}\r\n")
        .into_bytes()
}

fn response(status: u16, content_type: &str, body: &[u8], extra: &str) -> Vec<u8> {
    [head(status, content_type, body.len(), extra), body.to_vec()].concat()
}

/// Reads one request and returns its `user_id`; `None` once the peer is gone.
async fn read_request<S: AsyncRead + Unpin>(reader: &mut BufReader<S>) -> Option<String> {
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body).await.ok()?;
    let json: serde_json::Value = serde_json::from_slice(&body).ok()?;
    Some(json["user_id"].as_str()?.to_owned())
}
