//! gRPC-Web (`--grpc-web`): browsers and edge workers call the same service over HTTP/1.1 or HTTP/2.
//!
//! [`GrpcPort`] is the service behind the gRPC port. With gRPC-Web off it is the native stack and nothing else:
//! a gRPC-Web request is refused with HTTP 415 (tonic itself would decode its body as a gRPC call and serve it),
//! and so is any HTTP/1.x request with HTTP 505 (native gRPC needs HTTP/2). Whether gRPC-Web is on or off, an
//! HTTP/2 request whose content type is not `application/grpc…` gets the HTTP 415 the gRPC protocol prescribes.
//! With gRPC-Web on, every request goes through CORS (answering preflights, granting the allow-list) and tonic-web
//! (translating `application/grpc-web[+proto]` and `application/grpc-web-text[+proto]` to gRPC and back, passing
//! native HTTP/2 gRPC through) before the same native stack, so metrics, request ids, caller authentication,
//! deadlines and error details are the same for both protocols.

use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use reqwest::Url;
use tonic_web::{GrpcWebLayer, GrpcWebService};
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

use crate::support::headers;

/// gRPC-Web (`--grpc-web`): which browser origins may read the answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcWebSettings {
    /// The CORS allow-list.
    pub allowed_origins: AllowedOrigins,
}

/// Origins granted CORS access to gRPC-Web calls. Never with credentials (cookies, HTTP authentication, client
/// certificates): browser callers authenticate with `authorization: Bearer`, which CORS allows as a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// `*`: every origin.
    Any,
    /// Exactly these origins, serialized as browsers send them (`https://tools.example.com`); empty grants none.
    List(Vec<HeaderValue>),
}

impl Default for AllowedOrigins {
    fn default() -> Self {
        Self::List(Vec::new())
    }
}

impl GrpcWebSettings {
    /// gRPC-Web allowing `origins` (each `scheme://host[:port]`, or a lone `*`); blank entries are skipped.
    pub fn allowing<I>(origins: I) -> Result<Self, String>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut list = Vec::new();
        let mut any = false;
        for raw in origins {
            match raw.as_ref().trim() {
                "" => {}
                "*" => any = true,
                origin => {
                    let origin = parse_origin(origin)?;
                    if !list.contains(&origin) {
                        list.push(origin);
                    }
                }
            }
        }
        let allowed_origins = match (any, list.is_empty()) {
            (false, _) => AllowedOrigins::List(list),
            (true, true) => AllowedOrigins::Any,
            (true, false) => {
                return Err("`*` allows every origin; it cannot be combined with others".into())
            }
        };
        Ok(Self { allowed_origins })
    }
}

/// An origin as browsers send it in `Origin`: `https://tools.example.com`, `http://localhost:5173`. Scheme and host
/// are lower-cased and a default port dropped, so the configured value compares equal to the header.
fn parse_origin(raw: &str) -> Result<HeaderValue, String> {
    let problem =
        |why: &str| format!("{raw:?} is not an origin like https://tools.example.com ({why})");
    let url = Url::parse(raw).map_err(|e| problem(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(problem("scheme must be https or http"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(problem("has user info"));
    }
    if url.path() != "/" || raw.ends_with('/') || url.query().is_some() || url.fragment().is_some()
    {
        return Err(problem("scheme://host[:port] only, without a path"));
    }
    HeaderValue::from_str(&url.origin().ascii_serialization()).map_err(|e| problem(&e.to_string()))
}

/// How long browsers may cache a preflight answer (Chromium caps it at 2 hours). Removing an origin still takes
/// effect at once: each answer must carry `access-control-allow-origin` too.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(2 * 60 * 60);

/// Request headers a browser page may send: gRPC-Web's own, Connect's (its version, deadline and request
/// compression; Connect calls from a page are translated and pass through this same policy), the gateway's metadata,
/// trace context.
pub const ALLOWED_HEADERS: [HeaderName; 12] = [
    header::CONTENT_TYPE,
    HeaderName::from_static("x-grpc-web"),
    HeaderName::from_static("x-user-agent"),
    HeaderName::from_static(headers::GRPC_TIMEOUT),
    HeaderName::from_static("connect-protocol-version"),
    HeaderName::from_static("connect-timeout-ms"),
    header::CONTENT_ENCODING,
    header::AUTHORIZATION,
    HeaderName::from_static(headers::REQUEST_ID),
    HeaderName::from_static(headers::TENANT),
    HeaderName::from_static(headers::TRACEPARENT),
    HeaderName::from_static(headers::TRACESTATE),
];

/// Response headers a browser page may read: the status (sent as headers in trailers-only answers) with its
/// details, the request id, and the mark of a session created after an ambiguous retry.
pub const EXPOSED_HEADERS: [HeaderName; 5] = [
    HeaderName::from_static("grpc-status"),
    HeaderName::from_static("grpc-message"),
    HeaderName::from_static("grpc-status-details-bin"),
    HeaderName::from_static(headers::REQUEST_ID),
    HeaderName::from_static(headers::RETRIED_AFTER_AMBIGUOUS),
];

/// The CORS policy of gRPC-Web calls: `POST` only, the headers above, the configured origins, never credentials.
pub fn cors_layer(settings: &GrpcWebSettings) -> CorsLayer {
    let origins = match &settings.allowed_origins {
        AllowedOrigins::Any => AllowOrigin::any(),
        AllowedOrigins::List(origins) => AllowOrigin::list(origins.iter().cloned()),
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::POST])
        .allow_headers(ALLOWED_HEADERS)
        .expose_headers(EXPOSED_HEADERS)
        .max_age(PREFLIGHT_MAX_AGE)
}

/// True for `application/grpc`, `application/grpc+proto` and the like (with parameters after `;`), in any case;
/// false for gRPC-Web's types.
pub fn is_native_grpc(headers: &http::HeaderMap) -> bool {
    const PREFIX: &[u8] = b"application/grpc";
    let Some(value) = headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes) else {
        return false;
    };
    value
        .get(..PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(PREFIX))
        && matches!(value.get(PREFIX.len()), None | Some(b'+' | b';'))
}

/// True for any `application/grpc-web…` content type (`+proto`, `-text`, `-text+proto`, `+json`), in any case.
pub fn is_grpc_web(headers: &http::HeaderMap) -> bool {
    const PREFIX: &[u8] = b"application/grpc-web";
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.as_bytes().get(..PREFIX.len()))
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(PREFIX))
}

// === impl GrpcPort ===

/// The service behind the gRPC port: native gRPC only, or native gRPC and gRPC-Web (see the module docs).
#[derive(Debug, Clone)]
pub enum GrpcPort<S> {
    /// `--grpc-web` off.
    GrpcOnly(S),
    /// `--grpc-web` on (boxed, so the native variant stays as small as the native stack).
    WithGrpcWeb(Box<Cors<GrpcWebService<S>>>),
}

impl<S> GrpcPort<S> {
    /// Serves `inner`, with gRPC-Web in front when `grpc_web` is set.
    pub fn new(inner: S, grpc_web: Option<&GrpcWebSettings>) -> Self {
        match grpc_web {
            None => Self::GrpcOnly(inner),
            Some(settings) => {
                let web = cors_layer(settings).layer(GrpcWebLayer::new().layer(inner));
                Self::WithGrpcWeb(Box::new(web))
            }
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for GrpcPort<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Unpin,
    Cors<GrpcWebService<S>>:
        Service<Request<ReqBody>, Response = Response<tonic::body::Body>, Error = S::Error>,
    <Cors<GrpcWebService<S>> as Service<Request<ReqBody>>>::Future: Unpin,
{
    type Response = Response<PortBody<ResBody>>;
    type Error = S::Error;
    type Future =
        PortFuture<S::Future, <Cors<GrpcWebService<S>> as Service<Request<ReqBody>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Self::GrpcOnly(inner) => inner.poll_ready(cx),
            Self::WithGrpcWeb(inner) => inner.poll_ready(cx),
        }
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let native = is_native_grpc(request.headers());
        let http2 = request.version() == http::Version::HTTP_2;
        match self {
            Self::GrpcOnly(_) if is_grpc_web(request.headers()) => {
                PortFuture::Refused(Refusal::GrpcWebOff)
            }
            Self::GrpcOnly(_) if !http2 => PortFuture::Refused(Refusal::Http1),
            Self::GrpcOnly(_) if !native => PortFuture::Refused(Refusal::ContentType),
            Self::GrpcOnly(inner) => PortFuture::GrpcOnly(inner.call(request)),
            // tonic-web translates gRPC-Web, answers CORS preflights and refuses other HTTP/1.x requests; HTTP/2
            // requests of any other type it would pass on as gRPC.
            Self::WithGrpcWeb(_)
                if http2
                    && !native
                    && !is_grpc_web(request.headers())
                    && request.method() != Method::OPTIONS =>
            {
                PortFuture::Refused(Refusal::ContentType)
            }
            Self::WithGrpcWeb(inner) => PortFuture::WithGrpcWeb(inner.call(request)),
        }
    }
}

/// The future of [`GrpcPort`].
#[derive(Debug)]
pub enum PortFuture<N, W> {
    /// A call of the native stack.
    GrpcOnly(N),
    /// A call through CORS and tonic-web.
    WithGrpcWeb(W),
    /// A request the port does not serve.
    Refused(Refusal),
}

/// Why [`GrpcPort`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A gRPC-Web request while gRPC-Web is off (HTTP 415).
    GrpcWebOff,
    /// An HTTP/1.x request while gRPC-Web is off (HTTP 505).
    Http1,
    /// A content type that is not gRPC's (HTTP 415).
    ContentType,
}

impl<N, W, NB, E> Future for PortFuture<N, W>
where
    N: Future<Output = Result<Response<NB>, E>> + Unpin,
    W: Future<Output = Result<Response<tonic::body::Body>, E>> + Unpin,
{
    type Output = Result<Response<PortBody<NB>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match &mut *self {
            Self::GrpcOnly(future) => ready!(Pin::new(future).poll(cx))?.map(PortBody::Grpc),
            Self::WithGrpcWeb(future) => ready!(Pin::new(future).poll(cx))?.map(PortBody::GrpcWeb),
            Self::Refused(why) => refused(*why),
        };
        Poll::Ready(Ok(response))
    }
}

/// HTTP 415 (as the gRPC protocol asks for an unsupported content type) or 505; `grpc-status` UNIMPLEMENTED
/// with a message for clients that read it. The request body is never read.
fn refused<B>(why: Refusal) -> Response<PortBody<B>> {
    let (status, message) = match why {
        Refusal::GrpcWebOff => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "gRPC-Web is not enabled on this gateway (--grpc-web)",
        ),
        Refusal::Http1 => (
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "gRPC needs HTTP/2; HTTP/1.1 is served only for gRPC-Web, which is not enabled (--grpc-web)",
        ),
        Refusal::ContentType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "this port serves gRPC: the content type must be application/grpc",
        ),
    };
    let mut response = Response::new(PortBody::Empty);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("grpc-status"),
        HeaderValue::from_static("12"),
    );
    headers.insert(
        HeaderName::from_static("grpc-message"),
        HeaderValue::from_static(message),
    );
    if why == Refusal::Http1 {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

// === impl PortBody ===

/// The response body of [`GrpcPort`]: the native stack's, tonic-web's, or none.
#[derive(Debug)]
pub enum PortBody<B> {
    /// Native gRPC with gRPC-Web off.
    Grpc(B),
    /// Anything with gRPC-Web on (native HTTP/2 gRPC passes through tonic-web unchanged).
    GrpcWeb(tonic::body::Body),
    /// A refusal.
    Empty,
}

impl<B> Body for PortBody<B>
where
    B: Body<Data = Bytes, Error = tonic::Status> + Unpin,
{
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        match &mut *self {
            Self::Grpc(body) => Pin::new(body).poll_frame(cx),
            Self::GrpcWeb(body) => Pin::new(body).poll_frame(cx),
            Self::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Grpc(body) => body.is_end_stream(),
            Self::GrpcWeb(body) => body.is_end_stream(),
            Self::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Grpc(body) => body.size_hint(),
            Self::GrpcWeb(body) => body.size_hint(),
            Self::Empty => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grpc_web_content_type_is_recognized_and_native_grpc_is_not() {
        let with = |content_type: &'static str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            is_grpc_web(&headers)
        };
        for grpc_web in [
            "application/grpc-web",
            "application/grpc-web+proto",
            "application/grpc-web-text",
            "application/grpc-web-text+proto",
            "Application/gRPC-Web+proto",
        ] {
            assert!(with(grpc_web), "{grpc_web}");
        }
        for other in [
            "application/grpc",
            "application/grpc+proto",
            "application/json",
            "application/grpc-",
        ] {
            assert!(!with(other), "{other}");
        }
        assert!(!is_grpc_web(&http::HeaderMap::new()));
    }

    #[test]
    fn only_grpc_content_types_are_native_grpc() {
        let with = |content_type: &'static str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            is_native_grpc(&headers)
        };
        for grpc in [
            "application/grpc",
            "application/grpc+proto",
            "Application/GRPC",
            "application/grpc;charset=utf-8",
        ] {
            assert!(with(grpc), "{grpc}");
        }
        for other in [
            "application/json",
            "application/grpc-web",
            "application/grpc-web-text",
            "application/grpcx",
            "text/plain",
            "",
        ] {
            assert!(!with(other), "{other}");
        }
        assert!(!is_native_grpc(&http::HeaderMap::new()));
    }
}
