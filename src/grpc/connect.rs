//! The Connect protocol's unary calls (`--connect`, on by default) on the gRPC port: `POST
//! /kgen.session.v1.SessionService/CreateSession` with `content-type: application/json` (proto3 JSON) or
//! `application/proto` (the binary message), over HTTP/1.1 or HTTP/2, `connect-protocol-version: 1` optional (as
//! connect-go's handlers treat it).
//!
//! [`Connect`] sits in front of [`super::GrpcPort`] and keeps one code path: a Connect request is read (bounded by
//! `--max-request-size` and the request body timeout), translated into a gRPC request for the same native stack
//! (the message framed, `connect-timeout-ms` as `grpc-timeout`, the caller's other headers kept, so metrics, request
//! ids, caller authentication, tenants, deadlines and drain apply unchanged), and the gRPC answer translated back:
//! the message as JSON or binary, or Connect's JSON error (`code`, `message`, `details` with each
//! `google.rpc.Status` detail base64-encoded and, when its type is known, as JSON in `debug`) with the HTTP status of
//! Connect's code table. gzip is served both ways, as connect-go serves it: a `content-encoding: gzip` body is
//! decompressed (the decompressed message bounded by `--max-request-size` too), and an answer is compressed when
//! `accept-encoding` names gzip (errors are not, as the protocol has it). Streaming methods and other encodings are
//! answered `unimplemented`; `GET` requests and every other request pass through untouched.

use std::{
    convert::Infallible,
    future::Future,
    io::{Read as _, Write as _},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD_NO_PAD, Engine as _};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Either, Full, Limited};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor};
use serde::Serialize as _;
use tonic::{Code, Status};
use tower::Service;

use super::{
    correlation::ensure_request_id,
    web::{is_grpc_web, is_native_grpc},
};
use crate::{observability::Metrics, proto, support::headers};

/// Connect (`--connect`): the bounds on a Connect request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectSettings {
    /// Largest request body (the encoded message), as `--max-request-size`.
    pub max_request_size: usize,
    /// How long the whole request body may take to arrive.
    pub body_timeout: Duration,
}

/// The one service Connect serves.
const SERVICE: &str = "kgen.session.v1.SessionService";
const TYPE_URL_PREFIX: &str = "type.googleapis.com/";
const CONNECT_TIMEOUT_MS: &str = "connect-timeout-ms";
/// The one compression served (besides `identity`), in both directions.
const GZIP: &str = "gzip";

/// How a Connect request encodes its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Json,
    Proto,
}

impl Codec {
    fn content_type(self) -> HeaderValue {
        match self {
            Self::Json => HeaderValue::from_static("application/json"),
            Self::Proto => HeaderValue::from_static("application/proto"),
        }
    }
}

/// What a Connect request's content type says: the codec, and whether the request is a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConnectType {
    codec: Codec,
    /// `application/connect+json` or `application/connect+proto`: the streaming protocol, which is not served
    /// (answered `unimplemented` the way a Connect stream carries errors).
    streaming: bool,
}

/// The Connect content type of a request: unary `application/json` / `application/proto`, streaming
/// `application/connect+json` / `application/connect+proto`, with parameters such as `; charset=utf-8`, in any case;
/// `None` for anything else.
fn connect_type(headers: &HeaderMap) -> Option<ConnectType> {
    const TYPES: [(&str, Codec, bool); 4] = [
        ("application/json", Codec::Json, false),
        ("application/proto", Codec::Proto, false),
        ("application/connect+json", Codec::Json, true),
        ("application/connect+proto", Codec::Proto, true),
    ];
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    TYPES
        .iter()
        .find(|(name, ..)| essence.eq_ignore_ascii_case(name))
        .map(|&(_, codec, streaming)| ConnectType { codec, streaming })
}

/// What Connect needs at hand: the bounds and the descriptors of the contract and of `google.rpc`'s details.
#[derive(Debug)]
struct Shared {
    settings: ConnectSettings,
    pool: DescriptorPool,
    /// Where the calls Connect refuses itself are counted, as the native stack counts the calls it serves.
    metrics: Arc<Metrics>,
}

// === impl Connect ===

/// The service in front of the gRPC port: Connect unary calls translated, everything else passed on (see the
/// module docs).
#[derive(Debug, Clone)]
pub struct Connect<S> {
    inner: S,
    shared: Option<Arc<Shared>>,
}

impl<S> Connect<S> {
    /// Serves Connect in front of `inner` when `settings` is set; otherwise passes every request on.
    pub fn new(
        inner: S,
        settings: Option<ConnectSettings>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let shared = match settings {
            None => None,
            Some(settings) => {
                let mut pool = DescriptorPool::decode(proto::FILE_DESCRIPTOR_SET)
                    .map_err(|e| format!("the contract's descriptor set: {e}"))?;
                // google.rpc's details, for `debug`; files the contract already holds (google.rpc.Status) are skipped.
                let details =
                    prost_types::FileDescriptorSet::decode(tonic_types::pb::FILE_DESCRIPTOR_SET)
                        .map_err(|e| format!("google.rpc's descriptor set: {e}"))?;
                for file in details.file {
                    let known = file.message_type.iter().any(|message| {
                        let name = format!("{}.{}", file.package(), message.name());
                        pool.get_message_by_name(&name).is_some()
                    });
                    if !known && pool.get_file_by_name(file.name()).is_none() {
                        pool.add_file_descriptor_proto(file)
                            .map_err(|e| format!("google.rpc's descriptor set: {e}"))?;
                    }
                }
                Some(Arc::new(Shared {
                    settings,
                    pool,
                    metrics,
                }))
            }
        };
        Ok(Self { inner, shared })
    }
}

/// A request as the inner service sees it: the caller's body, or a Connect request's framed message.
pub type InnerBody<B> = Either<B, Full<Bytes>>;
/// The answer of [`Connect`]: the inner service's body, or a Connect answer.
pub type ConnectBody<B> = Either<B, Full<Bytes>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B, ResBody> Service<Request<B>> for Connect<S>
where
    S: Service<Request<InnerBody<B>>, Response = Response<ResBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Unpin + Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ConnectBody<ResBody>>;
    type Error = Infallible;
    type Future = ConnectFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(shared) = &self.shared else {
            return ConnectFuture::Inner(self.inner.call(request.map(Either::Left)));
        };
        // Other POSTs over HTTP/2 get the port's own 415 (with `grpc-status`), as before Connect; over HTTP/1.x,
        // where the port would answer gRPC-Web's or HTTP/2's refusal, Connect's 415 names the types it serves.
        if request.method() != Method::POST
            || is_native_grpc(request.headers())
            || is_grpc_web(request.headers())
            || (request.version() == http::Version::HTTP_2
                && connect_type(request.headers()).is_none())
        {
            return ConnectFuture::Inner(self.inner.call(request.map(Either::Left)));
        }
        let shared = shared.clone();
        // The clone that was made ready serves this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ConnectFuture::Connect(Box::pin(serve(inner, shared, request)))
    }
}

/// The future of [`Connect`].
pub enum ConnectFuture<F, ResBody> {
    /// A request the inner service answers as it is.
    Inner(F),
    /// A Connect call (or a refused POST).
    Connect(Pin<Box<dyn Future<Output = Response<ConnectBody<ResBody>>> + Send>>),
}

impl<F, ResBody> Future for ConnectFuture<F, ResBody>
where
    F: Future<Output = Result<Response<ResBody>, Infallible>> + Unpin,
{
    type Output = Result<Response<ConnectBody<ResBody>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Inner(future) => Pin::new(future)
                .poll(cx)
                .map(|answer| answer.map(|response| response.map(Either::Left))),
            Self::Connect(future) => future.as_mut().poll(cx).map(Ok),
        }
    }
}

// === the unary call ===

/// A Connect error before or after the call: its code and message (and the details of a gRPC answer).
#[derive(Debug)]
struct ConnectError {
    code: Code,
    message: String,
    details: Bytes,
    http: Option<StatusCode>,
}

impl ConnectError {
    fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Bytes::new(),
            http: None,
        }
    }

    /// An error answered with another HTTP status than the code table's (the spec's 404 for an unknown method).
    fn with_http(mut self, status: StatusCode) -> Self {
        self.http = Some(status);
        self
    }
}

impl From<Status> for ConnectError {
    fn from(status: Status) -> Self {
        Self {
            code: status.code(),
            message: status.message().to_owned(),
            details: status.details().to_vec().into(),
            http: None,
        }
    }
}

/// A `POST` that is neither gRPC nor gRPC-Web: a Connect unary call, a Connect stream (refused), or a content type
/// no protocol here speaks (HTTP 415). Every answer carries the request's `x-request-id` (or a fresh one, which the
/// call behind it then uses too).
async fn serve<S, B, ResBody>(
    inner: S,
    shared: Arc<Shared>,
    mut request: Request<B>,
) -> Response<ConnectBody<ResBody>>
where
    S: Service<Request<InnerBody<B>>, Response = Response<ResBody>, Error = Infallible>,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let request_id = ensure_request_id(request.headers_mut());
    let mut response = match connect_type(request.headers()) {
        None => {
            drain_http1(request, shared.settings).await;
            plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "this port serves gRPC (application/grpc), gRPC-Web (application/grpc-web) and Connect \
                 (application/json, application/proto)",
            )
        }
        Some(ConnectType {
            codec,
            streaming: true,
        }) => {
            let started = Instant::now();
            let uri = request.uri().clone();
            drain_http1(request, shared.settings).await;
            shared
                .metrics
                .refused_call(uri.path(), Code::Unimplemented, started);
            stream_error(
                codec,
                &ConnectError::new(
                    Code::Unimplemented,
                    "the Connect streaming protocol is not served by this gateway: call unary methods with \
                     application/json or application/proto, and CreateSessions over gRPC",
                ),
            )
        }
        Some(ConnectType {
            codec,
            streaming: false,
        }) => unary(inner, &shared, codec, request).await,
    };
    response
        .headers_mut()
        .entry(HeaderName::from_static(headers::REQUEST_ID))
        .or_insert(request_id);
    response
}

/// Reads and drops the body of a request refused over HTTP/1.x, bounded as a call's body is: answered before the
/// body is read, hyper closes the connection under a client still writing it, which then sees a broken pipe instead
/// of the answer (connect-es does). Over HTTP/2 a refused stream is simply reset.
async fn drain_http1<B>(request: Request<B>, settings: ConnectSettings)
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if request.version() >= http::Version::HTTP_2 {
        return;
    }
    let _dropped = read_body(request.into_body(), settings).await;
}

/// A unary call: translated, served by the native stack, its answer translated back.
async fn unary<S, B, ResBody>(
    mut inner: S,
    shared: &Shared,
    codec: Codec,
    request: Request<B>,
) -> Response<ConnectBody<ResBody>>
where
    S: Service<Request<InnerBody<B>>, Response = Response<ResBody>, Error = Infallible>,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let gzip_answer = accepts_gzip(request.headers());
    let (started, uri) = (Instant::now(), request.uri().clone());
    let (mut headers, answer) = match call(&mut inner, shared, codec, request).await {
        Ok(answer) => answer,
        Err(refused) => {
            shared
                .metrics
                .refused_call(uri.path(), refused.code, started);
            (HeaderMap::new(), Err(refused))
        }
    };
    let answer = match answer {
        Ok(body) if gzip_answer => gzip(&body).map(|body| (body, true)),
        Ok(body) => Ok((body, false)),
        Err(error) => Err(error),
    };
    let mut response = match answer {
        Ok((body, gzipped)) => {
            let mut response = Response::new(Either::Right(Full::new(body)));
            headers.insert(header::CONTENT_TYPE, codec.content_type());
            if gzipped {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(GZIP));
            }
            *response.headers_mut() = headers;
            response
        }
        Err(error) => {
            let mut response = error_response(&shared.pool, &error);
            for (name, value) in &headers {
                if !response.headers().contains_key(name) {
                    response.headers_mut().append(name, value.clone());
                }
            }
            response
        }
    };
    response.headers_mut().remove(header::CONTENT_LENGTH);
    // The encodings a request body may use (RFC 7694), as connect-go's answers name them.
    response
        .headers_mut()
        .insert(header::ACCEPT_ENCODING, HeaderValue::from_static(GZIP));
    response
}

/// The answer's headers (the gRPC answer's metadata, its trailers prefixed `trailer-`) and its message or error.
/// `call` returns it once the native stack has the call; its own `Err` is a refusal made before that.
type Answer = (HeaderMap, Result<Bytes, ConnectError>);

async fn call<S, B, ResBody>(
    inner: &mut S,
    shared: &Shared,
    codec: Codec,
    request: Request<B>,
) -> Result<Answer, ConnectError>
where
    S: Service<Request<InnerBody<B>>, Response = Response<ResBody>, Error = Infallible>,
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    // The body first (bounded), so that every answer, a refusal too, comes after the whole request: see
    // `drain_http1`.
    let (parts, body) = request.into_parts();
    let body = read_body(body, shared.settings).await?;
    let method = method(&shared.pool, parts.uri.path())?;
    if method.is_client_streaming() || method.is_server_streaming() {
        return Err(ConnectError::new(
            Code::Unimplemented,
            format!(
                "{} is a streaming method: Connect streaming is not served by this gateway; call it over gRPC",
                method.name()
            ),
        ));
    }
    let gzipped = request_is_gzip(&parts.headers)?;
    let timeout = match parts.headers.get(CONNECT_TIMEOUT_MS) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .filter(|text| (1..=10).contains(&text.len()))
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or_else(|| {
                    ConnectError::new(
                        Code::InvalidArgument,
                        "connect-timeout-ms must be a positive integer of at most 10 digits",
                    )
                })?,
        ),
    };
    let body = if gzipped {
        gunzip(&body, shared.settings.max_request_size)?
    } else {
        body
    };
    let message = decode(&method.input(), codec, &body)?;

    let mut request = Request::new(Either::Right(Full::new(frame(&message))));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = parts.uri;
    *request.version_mut() = http::Version::HTTP_2;
    *request.extensions_mut() = parts.extensions;
    let headers = request.headers_mut();
    for (name, value) in &parts.headers {
        if !is_connect_header(name) {
            headers.append(name, value.clone());
        }
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    if let Some(ms) = timeout {
        if let Ok(value) = HeaderValue::from_str(&format!("{ms}m")) {
            headers.insert(HeaderName::from_static(headers::GRPC_TIMEOUT), value);
        }
    }

    let Ok(response) = inner.call(request).await;
    let (parts, body) = response.into_parts();
    // From here on the native stack has counted the call: its failures are answers, not refusals.
    let collected = match body.collect().await {
        Ok(collected) => collected,
        Err(error) => {
            let error: BoxError = error.into();
            let error = match error.downcast::<Status>() {
                Ok(status) => ConnectError::from(*status),
                Err(error) => ConnectError::new(Code::Internal, error.to_string()),
            };
            return Ok((HeaderMap::new(), Err(error)));
        }
    };
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let data = collected.to_bytes();
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if !is_grpc_header(name) && name != header::CONTENT_LENGTH {
            headers.append(name, value.clone());
        }
    }
    for (name, value) in &trailers {
        if !is_grpc_header(name) {
            if let Ok(name) = HeaderName::from_bytes(format!("trailer-{name}").as_bytes()) {
                headers.append(name, value.clone());
            }
        }
    }
    let status = Status::from_header_map(&trailers)
        .or_else(|| Status::from_header_map(&parts.headers))
        .unwrap_or_else(|| Status::internal("the gRPC answer carried no grpc-status"));
    if status.code() != Code::Ok {
        return Ok((headers, Err(status.into())));
    }
    let answer = unframe(data).and_then(|message| encode(&method.output(), codec, message));
    Ok((headers, answer))
}

/// The whole request body, at most `--max-request-size` bytes arriving within the request body timeout.
async fn read_body<B>(body: B, settings: ConnectSettings) -> Result<Bytes, ConnectError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let limited = Limited::new(body, settings.max_request_size);
    match tokio::time::timeout(settings.body_timeout, limited.collect()).await {
        Err(_) => Err(ConnectError::new(
            Code::DeadlineExceeded,
            "the request body did not arrive in time",
        )),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            Err(too_large(settings.max_request_size))
        }
        Ok(Err(_)) => Err(ConnectError::new(
            Code::Cancelled,
            "the request body could not be read",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// A request body (compressed or not) over `--max-request-size`: `resource_exhausted`, as connect-go answers a
/// message over its read limit.
fn too_large(limit: usize) -> ConnectError {
    ConnectError::new(
        Code::ResourceExhausted,
        format!(
            "the request is larger than the gateway accepts ({limit} bytes, --max-request-size)"
        ),
    )
}

// === compression ===

/// Whether the request body is gzip (`content-encoding: gzip`); absent or `identity` is plain, any other encoding
/// `unimplemented`, as connect-go answers it (the answer's `accept-encoding` names gzip).
fn request_is_gzip(headers: &HeaderMap) -> Result<bool, ConnectError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(false);
    };
    let value = value.as_bytes().trim_ascii();
    if value.eq_ignore_ascii_case(b"identity") {
        Ok(false)
    } else if value.eq_ignore_ascii_case(GZIP.as_bytes()) {
        Ok(true)
    } else {
        let shown = String::from_utf8_lossy(&value[..value.len().min(32)]).into_owned();
        Err(ConnectError::new(
            Code::Unimplemented,
            format!("content-encoding {shown:?} is not supported: send gzip or identity"),
        ))
    }
}

/// Whether the caller takes a gzip answer: `accept-encoding` names `gzip` (any case) without `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|entry| {
            let mut parts = entry.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            coding.eq_ignore_ascii_case(GZIP)
                && !parts.any(|parameter| {
                    parameter
                        .trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        == Some(0.0)
                })
        })
}

/// A gzip request body, decompressed; at most `limit` bytes come out (a small body that inflates past the limit is
/// refused as a large one would be, having cost at most `limit` bytes), a body that is not gzip is
/// `invalid_argument`.
fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, ConnectError> {
    let mut message = Vec::new();
    let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(body)
        .take(bound)
        .read_to_end(&mut message)
        .map_err(|e| {
            ConnectError::new(
                Code::InvalidArgument,
                format!("the request body is not valid gzip: {e}"),
            )
        })?;
    if message.len() > limit {
        return Err(too_large(limit));
    }
    Ok(message.into())
}

/// An answer's message, gzip-compressed.
fn gzip(message: &[u8]) -> Result<Bytes, ConnectError> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(message.len() / 2 + 32),
        flate2::Compression::default(),
    );
    encoder
        .write_all(message)
        .map_err(|e| ConnectError::new(Code::Internal, format!("gzip: {e}")))?;
    encoder
        .finish()
        .map(Bytes::from)
        .map_err(|e| ConnectError::new(Code::Internal, format!("gzip: {e}")))
}

// === the method and its messages ===

/// The method of a Connect path, `/kgen.session.v1.SessionService/{method}`: unknown ones are `unimplemented` with
/// HTTP 404, as the protocol asks.
fn method(pool: &DescriptorPool, path: &str) -> Result<MethodDescriptor, ConnectError> {
    let unknown = || {
        ConnectError::new(
            Code::Unimplemented,
            format!("{path} is not a method served over Connect"),
        )
        .with_http(StatusCode::NOT_FOUND)
    };
    let (service, name) = path
        .strip_prefix('/')
        .and_then(|path| path.split_once('/'))
        .ok_or_else(unknown)?;
    if service != SERVICE {
        return Err(unknown());
    }
    pool.get_service_by_name(SERVICE)
        .and_then(|service| service.methods().find(|method| method.name() == name))
        .ok_or_else(unknown)
}

/// The request message in its binary encoding: a JSON one decoded into the method's input type, a binary one
/// checked against it.
fn decode(
    descriptor: &MessageDescriptor,
    codec: Codec,
    body: &[u8],
) -> Result<Bytes, ConnectError> {
    let invalid = |what: &str, error: &dyn std::fmt::Display| {
        ConnectError::new(
            Code::InvalidArgument,
            format!(
                "the request is not a {what} {}: {error}",
                descriptor.full_name()
            ),
        )
    };
    match codec {
        Codec::Json => {
            let mut deserializer = serde_json::Deserializer::from_slice(body);
            let message = DynamicMessage::deserialize(descriptor.clone(), &mut deserializer)
                .and_then(|message| deserializer.end().map(|()| message))
                .map_err(|e| invalid("JSON", &e))?;
            Ok(message.encode_to_vec().into())
        }
        Codec::Proto => {
            DynamicMessage::decode(descriptor.clone(), body).map_err(|e| invalid("binary", &e))?;
            Ok(Bytes::copy_from_slice(body))
        }
    }
}

/// The answer in the request's codec.
fn encode(
    descriptor: &MessageDescriptor,
    codec: Codec,
    message: Bytes,
) -> Result<Bytes, ConnectError> {
    match codec {
        Codec::Proto => Ok(message),
        Codec::Json => {
            let message = DynamicMessage::decode(descriptor.clone(), message)
                .map_err(|e| ConnectError::new(Code::Internal, e.to_string()))?;
            let mut serializer = serde_json::Serializer::new(Vec::new());
            message
                .serialize(&mut serializer)
                .map_err(|e| ConnectError::new(Code::Internal, e.to_string()))?;
            Ok(serializer.into_inner().into())
        }
    }
}

/// One uncompressed gRPC message frame: flag, big-endian length, message.
fn frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.put_u8(0);
    framed.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    framed.put_slice(message);
    framed.freeze()
}

/// The one message of a unary gRPC answer.
fn unframe(mut data: Bytes) -> Result<Bytes, ConnectError> {
    let malformed = || ConnectError::new(Code::Internal, "the gRPC answer held no single message");
    if data.len() < 5 || data[0] != 0 {
        return Err(malformed());
    }
    data.advance(1);
    let length = data.get_u32() as usize;
    if data.len() != length {
        return Err(malformed());
    }
    Ok(data)
}

/// Headers of Connect's own, of the body, or of gRPC's framing (a Connect caller's `grpc-encoding` or
/// `grpc-accept-encoding` would change how the frame built here is read, or the answer framed) that the gRPC request
/// must not carry from the caller.
fn is_connect_header(name: &HeaderName) -> bool {
    name.as_str().starts_with("connect-")
        || name.as_str().starts_with("grpc-")
        || [
            header::CONTENT_TYPE,
            header::CONTENT_LENGTH,
            header::CONTENT_ENCODING,
            header::ACCEPT_ENCODING,
            header::TRANSFER_ENCODING,
            header::CONNECTION,
            header::TE,
        ]
        .contains(name)
}

/// gRPC's own headers and trailers, which Connect answers carry in their own form.
fn is_grpc_header(name: &HeaderName) -> bool {
    name.as_str().starts_with("grpc-") || name == header::CONTENT_TYPE
}

// === errors ===

/// Connect's name of a code.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "canceled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// The HTTP status of a code: Connect's table.
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    code: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<Detail>,
}

#[derive(serde::Serialize)]
struct Detail {
    #[serde(rename = "type")]
    type_name: String,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    debug: Option<serde_json::Value>,
}

/// Connect's JSON error: the code's name, the message, the `google.rpc.Status` details of the gRPC answer.
fn error_response<B>(pool: &DescriptorPool, error: &ConnectError) -> Response<ConnectBody<B>> {
    let details = tonic_types::pb::Status::decode(error.details.clone())
        .map(|status| status.details)
        .unwrap_or_default()
        .into_iter()
        .map(|any| {
            let type_name = any
                .type_url
                .strip_prefix(TYPE_URL_PREFIX)
                .unwrap_or(&any.type_url)
                .to_owned();
            let debug = pool
                .get_message_by_name(&type_name)
                .and_then(|descriptor| {
                    DynamicMessage::decode(descriptor, any.value.as_slice()).ok()
                })
                .and_then(|message| serde_json::to_value(&message).ok());
            Detail {
                type_name,
                value: STANDARD_NO_PAD.encode(&any.value),
                debug,
            }
        })
        .collect();
    let body = ErrorBody {
        code: code_name(error.code),
        message: &error.message,
        details,
    };
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *response.status_mut() = error.http.unwrap_or_else(|| http_status(error.code));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Connect's answer to a stream: HTTP 200 and one end-of-stream message (flag `0x02`) holding the error as JSON,
/// which is how the streaming protocol carries errors (connect-go and connect-es read its code; to an HTTP error
/// status they would give `unknown`).
fn stream_error<B>(codec: Codec, error: &ConnectError) -> Response<ConnectBody<B>> {
    let end = serde_json::json!({
        "error": { "code": code_name(error.code), "message": error.message }
    });
    let end = serde_json::to_vec(&end).unwrap_or_default();
    let mut body = BytesMut::with_capacity(5 + end.len());
    body.put_u8(0x02);
    body.put_u32(u32::try_from(end.len()).unwrap_or(u32::MAX));
    body.put_slice(&end);
    let mut response = Response::new(Either::Right(Full::new(body.freeze())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(match codec {
            Codec::Json => "application/connect+json",
            Codec::Proto => "application/connect+proto",
        }),
    );
    response
}

/// A refusal outside the Connect protocol (a POST of a type no protocol here speaks), as plain text.
fn plain<B>(status: StatusCode, message: &'static str) -> Response<ConnectBody<B>> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        message.as_bytes(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_type(content_type: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers
    }

    #[test]
    fn connect_content_types_are_recognized_and_others_are_not() {
        let unary = |codec| {
            Some(ConnectType {
                codec,
                streaming: false,
            })
        };
        for json in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
        ] {
            assert_eq!(connect_type(&with_type(json)), unary(Codec::Json), "{json}");
        }
        assert_eq!(
            connect_type(&with_type("application/proto")),
            unary(Codec::Proto)
        );
        assert_eq!(
            connect_type(&with_type("application/connect+json")),
            Some(ConnectType {
                codec: Codec::Json,
                streaming: true
            })
        );
        assert_eq!(
            connect_type(&with_type("Application/Connect+Proto")),
            Some(ConnectType {
                codec: Codec::Proto,
                streaming: true
            })
        );
        for other in [
            "application/grpc",
            "application/grpc-web",
            "application/connect+thrift",
            "application/jsonx",
            "text/plain",
        ] {
            assert_eq!(connect_type(&with_type(other)), None, "{other}");
        }
        assert_eq!(connect_type(&HeaderMap::new()), None);
    }

    #[test]
    fn every_code_has_connects_name_and_http_status() {
        assert_eq!(code_name(Code::ResourceExhausted), "resource_exhausted");
        assert_eq!(
            http_status(Code::ResourceExhausted),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(code_name(Code::Cancelled), "canceled");
        assert_eq!(http_status(Code::Cancelled).as_u16(), 499);
        assert_eq!(http_status(Code::Unauthenticated), StatusCode::UNAUTHORIZED);
        assert_eq!(
            http_status(Code::Unimplemented),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            http_status(Code::Unknown),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn a_framed_message_unframes_to_itself() {
        let message = Bytes::from_static(b"\x0a\x03abc");
        assert_eq!(unframe(frame(&message)).ok(), Some(message));
        assert!(unframe(Bytes::from_static(b"\x01\0\0\0\0")).is_err());
        assert!(unframe(Bytes::from_static(b"\0\0\0\0\x09ab")).is_err());
    }

    #[test]
    fn only_the_session_services_unary_and_streaming_methods_are_found() {
        let connect = Connect::new(
            (),
            Some(ConnectSettings {
                max_request_size: 1024,
                body_timeout: Duration::from_secs(1),
            }),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        let pool = &connect.shared.as_ref().unwrap().pool;
        let create = method(pool, "/kgen.session.v1.SessionService/CreateSession").unwrap();
        assert!(!create.is_client_streaming());
        assert!(
            method(pool, "/kgen.session.v1.SessionService/CreateSessions")
                .unwrap()
                .is_client_streaming()
        );
        for unknown in [
            "/kgen.session.v1.SessionService/Nope",
            "/grpc.health.v1.Health/Check",
            "/",
        ] {
            let error = method(pool, unknown).err().unwrap();
            assert_eq!(error.http, Some(StatusCode::NOT_FOUND), "{unknown}");
        }
        assert!(pool.get_message_by_name("google.rpc.RetryInfo").is_some());
    }
}
