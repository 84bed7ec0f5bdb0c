//! The one KGeN HTTP client: `POST {upstream_url}/s2s/session/` with the game's credentials.
//!
//! Built once at start-up (rustls, pooled keep-alive connections, HTTP/2 via ALPN where KGeN offers it, no
//! redirects so the secret header never follows one). Bodies are read chunk by chunk against a cap, so an
//! oversized answer is refused without being buffered whole.

use std::{
    error::Error as StdError,
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use reqwest::{
    header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, HOST, RETRY_AFTER},
    Method, Response, StatusCode, Url,
};
use secrecy::SecretString;
use serde::Serialize;

use super::{
    error::{Delivery, Error, UpstreamStatus},
    message::sanitize_upstream_message,
    model::Session,
    settings::UpstreamSettings,
};
use crate::support::{headers, secrets::expose};

// Header names as constants: inserting a `&'static str` name copies it into a fresh allocation on every call.
const REQUEST_ID: HeaderName = HeaderName::from_static(headers::REQUEST_ID);
const TRACEPARENT: HeaderName = HeaderName::from_static(headers::TRACEPARENT);
const TRACESTATE: HeaderName = HeaderName::from_static(headers::TRACESTATE);

/// What a call forwards to KGeN so it can be correlated with the caller's traces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Correlation {
    /// The call's `x-request-id`.
    pub request_id: Option<HeaderValue>,
    /// The caller's `traceparent`, if well-formed enough to forward.
    pub traceparent: Option<HeaderValue>,
    /// The caller's `tracestate`, if well-formed enough to forward.
    pub tracestate: Option<HeaderValue>,
}

impl Correlation {
    /// The request id as text, for logs.
    pub fn request_id(&self) -> &str {
        self.request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// `User-Agent` sent upstream.
pub const USER_AGENT: &str = concat!("kgen-gateway/", env!("CARGO_PKG_VERSION"));
/// Path of KGeN's session endpoint, appended to the configured base URL.
pub const SESSION_PATH: &str = "s2s/session/";
/// How much of an error (non-2xx) body is read to find KGeN's message.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// Longest `Retry-After` honoured (a day); anything beyond is treated as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// The KGeN session endpoint and the credentials to call it with.
pub struct UpstreamClient {
    http: reqwest::Client,
    endpoint: Url,
    /// The `Host` header of an HTTP/1.1 request to `endpoint`, made once: hyper-util would format it on every
    /// request (two allocations) when it is missing. Not sent with `--upstream-http2-prior-knowledge` (HTTP/2 has
    /// `:authority`); over TLS, a connection that negotiates HTTP/2 sends it beside `:authority`, with the same value.
    host: Option<HeaderValue>,
    /// Swapped whole when the secret rotates: a call uses one consistent set from start to end.
    credentials: ArcSwap<Credentials>,
    max_body: usize,
}

/// The request headers that carry the credentials, and the secret (to scrub it from KGeN's error messages).
struct Credentials {
    client_id: String,
    headers: HeaderMap,
    secret: SecretString,
}

impl Credentials {
    fn new(client_id: &str, secret: SecretString) -> Result<Self, BuildError> {
        let mut headers = HeaderMap::with_capacity(4);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            headers::CLIENT_ID,
            HeaderValue::from_str(client_id).map_err(|_| BuildError::Header("client id"))?,
        );
        let mut secret_header = HeaderValue::from_str(expose(&secret))
            .map_err(|_| BuildError::Header("client secret"))?;
        secret_header.set_sensitive(true);
        headers.insert(headers::CLIENT_SECRET, secret_header);
        Ok(Self {
            client_id: client_id.to_owned(),
            headers,
            secret,
        })
    }
}

/// The client could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The credentials cannot be sent as HTTP header values.
    #[error("{0} is not a valid HTTP header value")]
    Header(&'static str),
    /// The endpoint URL cannot be formed from the base URL.
    #[error("cannot form the session URL from {0}")]
    Url(String),
    /// reqwest refused its configuration (e.g. no TLS backend).
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

#[derive(Serialize)]
struct CreateSessionBody<'a> {
    user_id: &'a str,
}

impl UpstreamClient {
    /// Builds the pooled client; call once and share it.
    pub fn new(settings: &UpstreamSettings) -> Result<Self, BuildError> {
        let mut builder = reqwest::Client::builder();
        for root in &settings.extra_roots {
            builder = builder.add_root_certificate(root.clone());
        }
        if settings.http2_prior_knowledge {
            builder = builder.http2_prior_knowledge();
        }
        let http = builder
            .use_rustls_tls()
            .https_only(settings.url.scheme() == "https")
            .user_agent(USER_AGENT)
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(settings.max_idle_connections)
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            // The gateway's own retry policy (`--retry-on`, the retry budget, the metrics) is the only one: reqwest
            // would otherwise retry refused HTTP/2 streams twice on its own, unseen and uncounted, and keep a copy
            // of every request for it.
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .build()?;
        let endpoint = session_endpoint(&settings.url)?;
        let host = if settings.http2_prior_knowledge {
            None
        } else {
            host_header(&endpoint)
        };

        let credentials = Credentials::new(&settings.client_id, settings.client_secret.clone())?;
        Ok(Self {
            http,
            endpoint,
            host,
            credentials: ArcSwap::from_pointee(credentials),
            max_body: settings.max_body,
        })
    }

    /// Uses `secret` for calls from now on (calls in flight keep the one they started with).
    pub fn rotate_secret(&self, secret: SecretString) -> Result<(), BuildError> {
        let client_id = self.credentials.load().client_id.clone();
        self.credentials
            .store(Arc::new(Credentials::new(&client_id, secret)?));
        Ok(())
    }

    /// The URL sessions are created at.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Creates (or retrieves) the session of `user_id`. Dropping the future aborts the HTTP request.
    pub async fn create_session(
        &self,
        user_id: &str,
        correlation: &Correlation,
    ) -> Result<Session, Error> {
        let credentials = self.credentials.load_full();
        let body = serde_json::to_vec(&CreateSessionBody { user_id }).map_err(|error| {
            Error::Unreachable {
                cause: format!("cannot encode the request body: {error}"),
                delivery: Delivery::NotSent,
            }
        })?;
        let mut request = reqwest::Request::new(Method::POST, self.endpoint.clone());
        *request.body_mut() = Some(body.into());
        // One map, sized once for the credentials and the correlation headers: no per-call growth or merge.
        let request_headers = request.headers_mut();
        request_headers.reserve(credentials.headers.len() + 4);
        if let Some(host) = &self.host {
            request_headers.insert(HOST, host.clone());
        }
        for (name, value) in &credentials.headers {
            request_headers.insert(name.clone(), value.clone());
        }
        for (name, value) in [
            (REQUEST_ID, &correlation.request_id),
            (TRACEPARENT, &correlation.traceparent),
            (TRACESTATE, &correlation.tracestate),
        ] {
            if let Some(value) = value {
                request_headers.insert(name, value.clone());
            }
        }
        let response = self.http.execute(request).await.map_err(transport_error)?;

        let status = response.status();
        if status.is_success() {
            let session = match read_capped(response, self.max_body).await {
                Ok(body) => body.decode().map(|session| Session {
                    http_status: status.as_u16(),
                    ..session
                }),
                Err(error) => Err(error),
            };
            // Recorded for the failure's log line only: on the hot path a span record costs more than the
            // decode (the JSON formatter re-serialises the span's fields). A body that is not a session is never
            // retried, so this is the call's last attempt and the field is recorded once.
            if session.is_err() {
                tracing::Span::current().record("upstream_status", status.as_u16());
            }
            return session;
        }
        // Not recorded here: an attempt that is retried would add its status to the span once more (text logs
        // repeat a field recorded twice); `grpc::status::log_failure` records the last one, once.
        Err(Error::HttpStatus(
            upstream_status(status, response, &credentials.secret).await,
        ))
    }
}

/// Reduces a non-2xx answer to its status, `Retry-After` and sanitized message.
async fn upstream_status(
    status: StatusCode,
    response: Response,
    secret: &SecretString,
) -> UpstreamStatus {
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()));
    let body = read_prefix(response, MAX_ERROR_BODY).await;
    UpstreamStatus {
        code: status.as_u16(),
        message: sanitize_upstream_message(&error_message(&body), expose(secret)),
        retry_after,
    }
}

impl fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

/// `host[:port]` of `url` as HTTP/1.1 sends it (the port only when it is not the scheme's default), as hyper-util
/// would make it.
fn host_header(url: &Url) -> Option<HeaderValue> {
    let host = url.host_str()?;
    let value = match url.port() {
        Some(port) => HeaderValue::from_str(&format!("{host}:{port}")),
        None => HeaderValue::from_str(host),
    };
    value.ok()
}

fn session_endpoint(base: &Url) -> Result<Url, BuildError> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    base.join(SESSION_PATH)
        .map_err(|_| BuildError::Url(base.to_string()))
}

/// Reads the whole body as the pieces it arrived in (not joined: a large body is held once), refusing one larger
/// than `cap` without buffering it.
async fn read_capped(mut response: Response, cap: usize) -> Result<Chunks, Error> {
    let too_large = Error::TooLarge { limit: cap };
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Err(too_large);
    }
    let Some(first) = response.chunk().await.map_err(body_error)? else {
        return Ok(Chunks::One(Bytes::new()));
    };
    if first.len() > cap {
        return Err(too_large);
    }
    // Most bodies arrive in one piece.
    let Some(mut next) = response.chunk().await.map_err(body_error)? else {
        return Ok(Chunks::One(first));
    };
    let mut total = first.len();
    let mut chunks = vec![first];
    loop {
        total += next.len();
        if total > cap {
            return Err(too_large);
        }
        chunks.push(next);
        match response.chunk().await.map_err(body_error)? {
            Some(chunk) => next = chunk,
            None => break,
        }
    }
    Ok(Chunks::Many(chunks))
}

/// A body as received: usually one piece.
enum Chunks {
    One(Bytes),
    Many(Vec<Bytes>),
}

impl Chunks {
    fn decode(&self) -> Result<Session, Error> {
        match self {
            Chunks::One(body) => Session::decode(body),
            Chunks::Many(chunks) => Session::decode_chunks(chunks),
        }
        .map_err(|e| Error::BadResponse(e.to_string()))
    }
}

/// Reads at most `cap` bytes of an error body; whatever fails just ends the read.
async fn read_prefix(mut response: Response, cap: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = cap - buf.len();
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= cap {
            break;
        }
    }
    buf
}

/// KGeN's own words from an error body: a `message`-like field of a JSON object, or the text itself.
fn error_message(body: &[u8]) -> String {
    const KEYS: [&str; 6] = [
        "message",
        "error",
        "error_description",
        "detail",
        "msg",
        "description",
    ];
    if let Ok(serde_json::Value::Object(object)) = serde_json::from_slice(body) {
        for key in KEYS {
            match object.get(key) {
                Some(serde_json::Value::String(text)) => return text.clone(),
                Some(serde_json::Value::Object(inner)) => {
                    if let Some(serde_json::Value::String(text)) = inner.get("message") {
                        return text.clone();
                    }
                }
                _ => {}
            }
        }
        return String::new();
    }
    String::from_utf8_lossy(body).into_owned()
}

/// `Retry-After` as delay-seconds or an HTTP-date, relative to `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let delay = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(value.parse().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// A failed request (no response): TLS failures are told apart from the rest, and the rest by how far the
/// request went (see [`Delivery`]).
fn transport_error(error: reqwest::Error) -> Error {
    if is_tls_failure(&error) {
        return Error::Tls(root_cause(&error));
    }
    let delivery = if error.is_connect() {
        Delivery::NotSent
    } else if is_refused_stream(&error) {
        Delivery::Refused
    } else {
        Delivery::MaybeSent
    };
    Error::Unreachable {
        cause: root_cause(&error),
        delivery,
    }
}

/// A response whose body could not be read to its end (KGeN answered, so it acted).
fn body_error(error: reqwest::Error) -> Error {
    Error::Unreachable {
        cause: format!(
            "connection lost while reading the response: {}",
            root_cause(&error)
        ),
        delivery: Delivery::MaybeSent,
    }
}

/// HTTP/2 `REFUSED_STREAM`, or a GOAWAY from KGeN that excluded the stream: either way KGeN did not process it.
fn is_refused_stream(error: &reqwest::Error) -> bool {
    causes(error).any(|cause| {
        cause.downcast_ref::<h2::Error>().is_some_and(|h2| {
            h2.reason() == Some(h2::Reason::REFUSED_STREAM) || (h2.is_go_away() && h2.is_remote())
        })
    })
}

/// The chain of causes, looking inside `io::Error`s (whose own `source()` skips the error they wrap).
fn causes<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&e| {
        match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        }
    })
}

fn is_tls_failure(error: &reqwest::Error) -> bool {
    causes(error).any(|cause| cause.is::<rustls::Error>())
}

/// The innermost cause's text: "Connection refused (os error 111)", "invalid peer certificate: UnknownIssuer".
fn root_cause(error: &reqwest::Error) -> String {
    causes(error)
        .last()
        .map_or_else(|| error.to_string(), |cause| cause.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_host_header_is_the_one_http1_would_send() {
        let host = |url: &str| {
            super::host_header(&super::Url::parse(url).unwrap())
                .map(|v| v.to_str().unwrap().to_owned())
        };
        assert_eq!(
            host("http://127.0.0.1:8080/s2s/session/").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            host("https://api.kgen.io/s2s/session/").as_deref(),
            Some("api.kgen.io")
        );
        assert_eq!(
            host("https://api.kgen.io:443/s2s/session/").as_deref(),
            Some("api.kgen.io")
        );
        assert_eq!(
            host("http://[::1]:9000/s2s/session/").as_deref(),
            Some("[::1]:9000")
        );
    }

    use super::*;

    #[test]
    fn session_path_is_appended_to_any_base() {
        for (base, expected) in [
            ("https://kgen.example", "https://kgen.example/s2s/session/"),
            ("https://kgen.example/", "https://kgen.example/s2s/session/"),
            (
                "http://127.0.0.1:8080/api",
                "http://127.0.0.1:8080/api/s2s/session/",
            ),
            (
                "http://127.0.0.1:8080/api/",
                "http://127.0.0.1:8080/api/s2s/session/",
            ),
        ] {
            let url = session_endpoint(&Url::parse(base).unwrap()).unwrap();
            assert_eq!(url.as_str(), expected);
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn error_message_comes_from_json_fields_or_text() {
        assert_eq!(error_message(br#"{"message":"bad user"}"#), "bad user");
        assert_eq!(
            error_message(br#"{"error":{"message":"nested"}}"#),
            "nested"
        );
        assert_eq!(error_message(br#"{"detail":"d","message":1}"#), "d");
        assert_eq!(error_message(br#"{"code":7}"#), "");
        assert_eq!(error_message(b"Service Unavailable"), "Service Unavailable");
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let settings = UpstreamSettings::new(
            Url::parse("http://127.0.0.1:1").unwrap(),
            "id",
            "s3cr3t-value",
        );
        let client = UpstreamClient::new(&settings).unwrap();
        assert!(!format!("{client:?}").contains("s3cr3t-value"));
    }
}
