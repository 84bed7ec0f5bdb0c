//! An embedded fake KGeN upstream: a real HTTP server (HTTP/1.1 and h2c) answering `POST /s2s/session/` like KGeN
//! would, so the gateway's real client path is used offline, in tests and in benchmarks.
//!
//! It checks the credential headers (401 for anything but the configured pair), returns realistic sessions (fresh
//! session ids, `is_new_user` only on a user's first call, a wallet address and JWT-shaped tokens derived from the
//! user id, Go-format `session_start_time`, `<client id>#<user id>`), and injects faults for magic user ids:
//!
//! | `user_id` | answer |
//! |---|---|
//! | `fault:status:<code>` | HTTP `<code>` (200–599) with a JSON `{"message": …}` body; 429 and 503 add `Retry-After: 1` |
//! | `fault:status:<code>:<secs>` | the same with `Retry-After: <secs>` |
//! | `fault:delay:<ms>` | a normal session after `<ms>` milliseconds (at most 60000) |
//! | `fault:malformed` | 200 with an HTML body |
//! | `fault:no-session-id` | 200 with a session lacking `session_id` |
//! | `fault:oversized` | 200 with a 2 MiB JSON body |

use std::{
    collections::HashSet,
    io,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::{net::TcpListener, task::JoinHandle};

/// Client id the sandbox accepts by default.
pub const SANDBOX_CLIENT_ID: &str = "sandbox-client";
/// Client secret the sandbox accepts by default.
pub const SANDBOX_CLIENT_SECRET: &str = "sandbox-secret";
/// Prefix of the magic user ids that inject faults.
pub const FAULT_PREFIX: &str = "fault:";
/// Longest injected delay.
pub const MAX_FAULT_DELAY: Duration = Duration::from_secs(60);
/// Users remembered for `is_new_user`; past this the memory is cleared (everyone is new again).
const MAX_REMEMBERED_USERS: usize = 1_000_000;

/// The credentials the sandbox accepts.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Accepted `x-client-id`.
    pub client_id: String,
    /// Accepted `x-client-secret`.
    pub client_secret: SecretString,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            client_id: SANDBOX_CLIENT_ID.to_owned(),
            client_secret: SecretString::from(SANDBOX_CLIENT_SECRET),
        }
    }
}

struct SandboxState {
    client_id: String,
    client_secret: SecretString,
    third_party_client_id: String,
    third_party_client_name: String,
    seen: Mutex<HashSet<String>>,
}

/// The fake upstream as an axum router (`POST /s2s/session[/]`, `GET /healthz`).
pub fn router(config: SandboxConfig) -> Router {
    let digest = Sha256::digest(config.client_id.as_bytes());
    let numeric =
        u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 90_000_000 + 10_000_000;
    let state = Arc::new(SandboxState {
        third_party_client_name: format!(
            "SANDBOX_{}",
            config.client_id.to_ascii_uppercase().replace('-', "_")
        ),
        third_party_client_id: numeric.to_string(),
        client_id: config.client_id,
        client_secret: config.client_secret,
        seen: Mutex::new(HashSet::new()),
    });
    Router::new()
        .route("/s2s/session", post(create_session))
        .route("/s2s/session/", post(create_session))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

/// HTTP/2 streams the sandbox lets one connection carry: far more than a real server allows, so a gateway that
/// multiplexes its calls over one h2c connection (`--upstream-http2-prior-knowledge`) is never held back by the
/// stand-in when a benchmark keeps thousands of calls in flight.
pub const MAX_CONCURRENT_STREAMS: u32 = 100_000;

/// Serves the fake upstream on `listener` (HTTP/1.1 and h2c) until `shutdown` resolves, then lets the requests
/// in flight finish.
pub async fn serve(
    listener: TcpListener,
    config: SandboxConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = router(config);
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http2().max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let connection = http
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()))
                        .into_owned();
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                }
                // Out of file descriptors, say: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A sandbox running in this process on an ephemeral loopback port.
#[derive(Debug)]
pub struct SandboxHandle {
    addr: SocketAddr,
    url: Url,
    task: JoinHandle<io::Result<()>>,
}

/// Starts the sandbox on `127.0.0.1:<ephemeral>`.
pub async fn spawn(config: SandboxConfig) -> io::Result<SandboxHandle> {
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let url = Url::parse(&format!("http://{addr}")).map_err(io::Error::other)?;
    let task = tokio::spawn(serve(listener, config, std::future::pending()));
    Ok(SandboxHandle { addr, url, task })
}

impl SandboxHandle {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, for the gateway's `upstream_url`.
    pub fn url(&self) -> Url {
        self.url.clone()
    }

    /// Stops it (connections still open are dropped).
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Deserialize)]
struct CreateSessionBody {
    user_id: String,
}

#[derive(Serialize)]
struct SessionBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    user_id: &'a str,
    name: &'a str,
    username: &'a str,
    email: &'a str,
    device_id: &'a str,
    phonenumber: &'a str,
    level: i64,
    rank: i64,
    date_joined: &'a str,
    playertag: &'a str,
    location: &'a str,
    location_name: &'a str,
    device_model: &'a str,
    screen_height: &'a str,
    screen_width: &'a str,
    os_name: &'a str,
    os_version: &'a str,
    browser_name: &'a str,
    indigg_id: Option<&'a str>,
    indigg_wallet_address: &'a str,
    third_party_client_id: &'a str,
    third_party_client_name: &'a str,
    namespaced_third_party_user_id: &'a str,
    wallet_address: &'a str,
    is_new_user: bool,
    access_token: &'a str,
    refresh_token: &'a str,
    linked_phone: &'a str,
    session_start_time: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    padding: Option<&'a str>,
}

enum Fault {
    Status(StatusCode, Option<u64>),
    Delay(Duration),
    Malformed,
    NoSessionId,
    Oversized,
}

impl Fault {
    fn parse(spec: &str) -> Option<Fault> {
        let mut parts = spec.split(':');
        let fault = match (parts.next()?, parts.next(), parts.next()) {
            ("status", Some(code), retry_after) => {
                let code = code
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (200..=599).contains(c))?;
                let retry_after = match retry_after {
                    Some(secs) => Some(secs.parse().ok()?),
                    None => matches!(code, 429 | 503).then_some(1),
                };
                Fault::Status(StatusCode::from_u16(code).ok()?, retry_after)
            }
            ("delay", Some(ms), None) => {
                Fault::Delay(Duration::from_millis(ms.parse().ok()?).min(MAX_FAULT_DELAY))
            }
            ("malformed", None, None) => Fault::Malformed,
            ("no-session-id", None, None) => Fault::NoSessionId,
            ("oversized", None, None) => Fault::Oversized,
            _ => return None,
        };
        parts.next().is_none().then_some(fault)
    }
}

async fn create_session(
    State(state): State<Arc<SandboxState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !state.authorized(&headers) {
        return json_error(
            StatusCode::UNAUTHORIZED,
            "invalid x-client-id or x-client-secret",
        );
    }
    let Ok(CreateSessionBody { user_id }) = serde_json::from_slice(&body) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "body must be a JSON object with a string user_id",
        );
    };
    if user_id.trim().is_empty() {
        return json_error(StatusCode::BAD_REQUEST, "user_id is required");
    }
    let Some(spec) = user_id.strip_prefix(FAULT_PREFIX) else {
        return state.session(&user_id, Shape::Normal);
    };
    match Fault::parse(spec) {
        None => json_error(StatusCode::BAD_REQUEST, "unknown sandbox fault"),
        Some(Fault::Status(status, retry_after)) => {
            let mut response =
                json_error(status, &format!("sandbox fault: HTTP {}", status.as_u16()));
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            state.session(&user_id, Shape::Normal)
        }
        Some(Fault::Malformed) => (
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
            .into_response(),
        Some(Fault::NoSessionId) => state.session(&user_id, Shape::NoSessionId),
        Some(Fault::Oversized) => state.session(&user_id, Shape::Oversized),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Normal,
    NoSessionId,
    Oversized,
}

impl SandboxState {
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let id = headers.get("x-client-id").map(HeaderValue::as_bytes);
        let secret = headers.get("x-client-secret").map(HeaderValue::as_bytes);
        id == Some(self.client_id.as_bytes())
            && secret == Some(self.client_secret.expose_secret().as_bytes())
    }

    fn is_new_user(&self, user_id: &str) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if seen.contains(user_id) {
            return false;
        }
        if seen.len() >= MAX_REMEMBERED_USERS {
            seen.clear();
        }
        seen.insert(user_id.to_owned());
        true
    }

    fn session(&self, user_id: &str, shape: Shape) -> Response {
        let session_id = uuid::Uuid::new_v4().to_string();
        let now = chrono::Utc::now();
        let issued = now.timestamp();
        let user_hash = Sha256::digest(user_id.as_bytes());
        let wallet_address = format!("0x{}", hex(&user_hash[..20]));
        let namespaced = format!("{}#{}", self.third_party_client_id, user_id);
        let access_token = jwt(&namespaced, &session_id, "access", issued, 3600, &user_hash);
        let refresh_token = jwt(
            &namespaced,
            &session_id,
            "refresh",
            issued,
            30 * 86_400,
            &user_hash,
        );
        let session_start_time = now.format("%Y-%m-%d %H:%M:%S%.9f +0000 UTC").to_string();
        let padding = (shape == Shape::Oversized).then(|| "x".repeat(2 * 1024 * 1024));
        let body = SessionBody {
            session_id: (shape != Shape::NoSessionId).then_some(session_id.as_str()),
            user_id,
            name: "",
            username: "",
            email: "",
            device_id: "",
            phonenumber: "",
            level: i64::from(user_hash[20] % 50),
            rank: i64::from(user_hash[21]) * 10,
            date_joined: "",
            playertag: "",
            location: "",
            location_name: "",
            device_model: "",
            screen_height: "",
            screen_width: "",
            os_name: "",
            os_version: "",
            browser_name: "",
            indigg_id: None,
            indigg_wallet_address: "",
            third_party_client_id: &self.third_party_client_id,
            third_party_client_name: &self.third_party_client_name,
            namespaced_third_party_user_id: &namespaced,
            wallet_address: &wallet_address,
            is_new_user: self.is_new_user(user_id),
            access_token: &access_token,
            refresh_token: &refresh_token,
            linked_phone: "",
            session_start_time: &session_start_time,
            padding: padding.as_deref(),
        };
        match serde_json::to_vec(&body) {
            Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
            Err(_) => json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the session",
            ),
        }
    }
}

fn json_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "message": message }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A JWT-shaped token (header.payload.signature, base64url) for `subject`; the signature is a digest, not a MAC.
fn jwt(
    subject: &str,
    session_id: &str,
    kind: &str,
    issued: i64,
    lifetime: i64,
    user_hash: &[u8],
) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = serde_json::json!({
        "iss": "kgen-sandbox",
        "sub": subject,
        "sid": session_id,
        "typ": kind,
        "iat": issued,
        "exp": issued + lifetime,
    });
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    let mut signer = Sha256::new();
    signer.update(user_hash);
    signer.update(header.as_bytes());
    signer.update(payload.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(signer.finalize());
    format!("{header}.{payload}.{signature}")
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_specs_parse_and_unknown_ones_are_refused() {
        assert!(
            matches!(Fault::parse("status:429"), Some(Fault::Status(s, Some(1))) if s == StatusCode::TOO_MANY_REQUESTS)
        );
        assert!(
            matches!(Fault::parse("status:500"), Some(Fault::Status(s, None)) if s == StatusCode::INTERNAL_SERVER_ERROR)
        );
        assert!(matches!(
            Fault::parse("status:503:7"),
            Some(Fault::Status(_, Some(7)))
        ));
        assert!(
            matches!(Fault::parse("delay:250"), Some(Fault::Delay(d)) if d == Duration::from_millis(250))
        );
        assert!(
            matches!(Fault::parse("delay:99999999"), Some(Fault::Delay(d)) if d == MAX_FAULT_DELAY)
        );
        assert!(matches!(Fault::parse("malformed"), Some(Fault::Malformed)));
        for bad in [
            "status:99",
            "status:600",
            "status:abc",
            "delay:",
            "nope",
            "malformed:1",
            "status:429:1:2",
        ] {
            assert!(Fault::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn tokens_are_jwt_shaped_and_derived_from_the_user() {
        let hash = Sha256::digest(b"u1");
        let token = jwt("1#u1", "sid", "access", 1_700_000_000, 3600, &hash);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload["sub"], "1#u1");
        assert_eq!(payload["exp"], 1_700_003_600);
        assert_ne!(
            token,
            jwt(
                "1#u2",
                "sid",
                "access",
                1_700_000_000,
                3600,
                &Sha256::digest(b"u2")
            )
        );
    }
}
