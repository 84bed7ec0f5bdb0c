//! Hostile and broken clients: request bodies that never end or carry two messages, partly sent messages past the
//! buffer budget, silent and idle connections, the connection limits of both ports, content types and protocol
//! versions the gRPC port does not serve, and unreadable `authorization` headers.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::{body::Frame, client::conn::http2::SendRequest};
use hyper_util::rt::TokioIo;
use kgen_gateway::{
    proto::{session_service_client::SessionServiceClient, CreateSessionRequest},
    Settings,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::support::{
    app::{bare_h2, lazy_channel, settings_for, TestApp, CREATE_SESSION},
    assertions::assert_status,
    files::Scratch,
    wait::{bounded, within_5s},
};

type RawBody = UnsyncBoxBody<Bytes, Infallible>;

fn sandboxed() -> Settings {
    let mut settings = settings_for("http://unused.invalid");
    settings.sandbox = true;
    settings
}

/// A gRPC message frame announcing `announced` bytes and carrying `payload`.
fn grpc_frame(announced: u32, payload: &[u8]) -> Bytes {
    let mut frame = vec![0];
    frame.extend_from_slice(&announced.to_be_bytes());
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

fn encoded_request(user_id: &str) -> Vec<u8> {
    prost::Message::encode_to_vec(&CreateSessionRequest {
        user_id: user_id.to_owned(),
    })
}

/// A bare HTTP/2 connection to `addr`, driven in the background.
async fn h2(addr: SocketAddr) -> SendRequest<RawBody> {
    let (sender, connection) = bare_h2(addr).await;
    tokio::spawn(connection);
    sender
}

fn grpc_request(content_type: &str, body: RawBody) -> http::Request<RawBody> {
    http::Request::post(format!("http://127.0.0.1{CREATE_SESSION}"))
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(body)
        .expect("request")
}

/// A body whose frames the test sends (and whose end it decides by dropping the sender).
fn streamed_body() -> (mpsc::Sender<Result<Frame<Bytes>, Infallible>>, RawBody) {
    let (sender, receiver) = mpsc::channel(64);
    (
        sender,
        StreamBody::new(ReceiverStream::new(receiver)).boxed_unsync(),
    )
}

/// Sends `request` and reads the HTTP status and the gRPC status (from the headers of a trailers-only answer, or
/// from the trailers).
async fn grpc_call(
    sender: &mut SendRequest<RawBody>,
    request: http::Request<RawBody>,
) -> (u16, Status) {
    bounded("the gateway to answer a hand-made gRPC call", async {
        let response = sender.send_request(request).await.expect("response");
        let http_status = response.status().as_u16();
        if let Some(status) = Status::from_header_map(response.headers()) {
            return (http_status, status);
        }
        let collected = response.into_body().collect().await.expect("body");
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let status = Status::from_header_map(&trailers).unwrap_or_else(|| Status::ok(""));
        (http_status, status)
    })
    .await
}

fn reason_of(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_unary_call_that_carries_two_messages_is_refused_with_internal() {
    let app = TestApp::spawn(sandboxed()).await;
    let mut sender = h2(app.addr).await;
    let message = encoded_request("player-1");
    let len = u32::try_from(message.len()).unwrap();
    let two = [grpc_frame(len, &message), grpc_frame(len, &message)].concat();

    let (_, status) = grpc_call(
        &mut sender,
        grpc_request(
            "application/grpc",
            Full::new(Bytes::from(two)).boxed_unsync(),
        ),
    )
    .await;

    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(reason_of(&status), "TOO_MANY_REQUEST_MESSAGES");
}

#[tokio::test]
async fn a_unary_call_that_sends_a_second_empty_message_is_refused_without_waiting_for_its_end() {
    let app = TestApp::spawn(sandboxed()).await;
    let mut sender = h2(app.addr).await;
    let (frames, body) = streamed_body();
    // Two zero-length messages, and the stream left open: a gateway that read on would wait for ever.
    for _ in 0..2 {
        frames
            .send(Ok(Frame::data(grpc_frame(0, b""))))
            .await
            .unwrap();
    }

    let (_, status) = tokio::time::timeout(
        Duration::from_secs(5),
        grpc_call(&mut sender, grpc_request("application/grpc", body)),
    )
    .await
    .expect("answered at once, not read for ever");

    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(reason_of(&status), "TOO_MANY_REQUEST_MESSAGES");
    drop(frames);
}

#[tokio::test]
async fn a_unary_body_that_never_completes_is_cut_off_at_the_request_body_timeout() {
    let mut settings = sandboxed();
    settings.server.request_limits.body_timeout = Duration::from_millis(300);
    let app = TestApp::spawn(settings).await;
    let mut sender = h2(app.addr).await;
    let (frames, body) = streamed_body();
    let feeder = tokio::spawn(async move {
        // A header announcing 60,000 bytes, then one byte at a time: the message never completes.
        let _ = frames.send(Ok(Frame::data(grpc_frame(60_000, b"")))).await;
        loop {
            if frames
                .send(Ok(Frame::data(Bytes::from_static(b"x"))))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let started = std::time::Instant::now();

    let (_, status) = tokio::time::timeout(
        Duration::from_secs(5),
        grpc_call(&mut sender, grpc_request("application/grpc", body)),
    )
    .await
    .expect("answered");

    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(reason_of(&status), "REQUEST_BODY_TIMEOUT");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    feeder.abort();
}

#[tokio::test]
async fn a_request_stream_that_goes_silent_is_ended_after_the_stream_idle_timeout() {
    let mut settings = sandboxed();
    settings.server.request_limits.stream_idle_timeout = Duration::from_millis(300);
    let app = TestApp::spawn(settings).await;
    let (requests, receiver) = mpsc::channel(4);
    requests
        .send(CreateSessionRequest {
            user_id: "player-1".to_owned(),
        })
        .await
        .unwrap();

    let mut answers = app
        .client
        .clone()
        .create_sessions(ReceiverStream::new(receiver))
        .await
        .expect("stream opened")
        .into_inner();
    let first = answers.message().await.expect("first answer");
    let end = tokio::time::timeout(Duration::from_secs(5), answers.message())
        .await
        .expect("the stream ends");

    assert!(first.is_some(), "the message sent was answered");
    let status = end.expect_err("ended with a status");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    drop(requests);
}

#[tokio::test]
async fn partly_sent_messages_past_the_buffer_budget_are_refused_while_whole_ones_pass() {
    let mut settings = sandboxed();
    settings.server.request_limits.max_buffered_bytes = 100 * 1024;
    let app = TestApp::spawn(settings).await;
    let mut sender = h2(app.addr).await;
    // Two calls each announcing 64 KiB and sending 10 bytes: only one fits the 100 KiB budget.
    let mut held = Vec::new();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let (frames, body) = streamed_body();
        frames
            .send(Ok(Frame::data(grpc_frame(65_536, &[0; 10]))))
            .await
            .unwrap();
        held.push(frames);
        let mut sender = sender.clone();
        calls.spawn(
            async move { grpc_call(&mut sender, grpc_request("application/grpc", body)).await },
        );
    }

    let (_, refused) = tokio::time::timeout(Duration::from_secs(5), calls.join_next())
        .await
        .expect("one call is answered at once")
        .expect("joined")
        .expect("task");
    let whole = grpc_call(
        &mut sender,
        grpc_request(
            "application/grpc",
            Full::new(grpc_frame(
                u32::try_from(encoded_request("player-2").len()).unwrap(),
                &encoded_request("player-2"),
            ))
            .boxed_unsync(),
        ),
    )
    .await;

    let (_, metrics) = app.admin_get("/metrics").await;

    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(reason_of(&refused), "REQUEST_BUFFERS_FULL");
    assert_eq!(
        whole.1.code(),
        Code::Ok,
        "a whole message passes: {:?}",
        whole.1
    );
    assert!(
        metrics.contains("kgen_request_buffered_bytes 65541"),
        "the held message is charged its announced length: {metrics}"
    );
    drop(held);
}

#[tokio::test]
async fn a_request_that_is_not_grpc_gets_http_415() {
    let app = TestApp::spawn(sandboxed()).await;
    let mut sender = h2(app.addr).await;
    let body = Full::new(Bytes::from_static(br#"{"user_id":"player-1"}"#)).boxed_unsync();

    let response = sender
        .send_request(grpc_request("text/plain", body))
        .await
        .expect("response");

    assert_eq!(response.status().as_u16(), 415);
}

#[tokio::test]
async fn native_grpc_over_http1_is_refused_when_grpc_web_is_off() {
    let app = TestApp::spawn(sandboxed()).await;
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    let message = encoded_request("player-1");
    let frame = grpc_frame(u32::try_from(message.len()).unwrap(), &message);
    let head = format!(
        "POST {CREATE_SESSION} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/grpc\r\nte: trailers\r\ncontent-length: {}\r\n\r\n",
        frame.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&frame).await.unwrap();

    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;

    assert!(read.is_ok(), "answered and closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 505"), "{answer}");
}

/// Reads from `tcp` until the server closes it (true) or `within` passes (false).
async fn closed_by_server(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_connection_that_never_speaks_is_closed_after_the_handshake_timeout() {
    let mut settings = sandboxed();
    settings.server.handshake_timeout = Duration::from_millis(200);
    let app = TestApp::spawn(settings).await;

    let mut silent = TcpStream::connect(app.addr).await.unwrap();

    assert!(closed_by_server(&mut silent, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_connection_without_calls_is_closed_after_max_connection_idle() {
    let mut settings = sandboxed();
    settings.server.max_connection_idle = Duration::from_millis(300);
    let app = TestApp::spawn(settings).await;
    let (sender, connection) = bare_h2::<RawBody>(app.addr).await;

    let closed = tokio::time::timeout(Duration::from_secs(5), connection).await;

    assert!(
        closed.is_ok(),
        "GOAWAY and close after 300 ms without a call"
    );
    drop(sender);
}

#[tokio::test]
async fn at_the_connection_limit_the_longest_idle_connection_makes_room_for_a_new_caller() {
    let mut settings = sandboxed();
    settings.server.max_connections = Some(3);
    let app = TestApp::spawn(settings).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(app.addr).await.unwrap());
    }

    let session = tokio::time::timeout(
        Duration::from_secs(5),
        SessionServiceClient::new(lazy_channel(app.addr)).create_session(CreateSessionRequest {
            user_id: "player-1".to_owned(),
        }),
    )
    .await
    .expect("answered within 5 s");

    assert!(session.is_ok(), "{session:?}");
    let closings = idle
        .iter_mut()
        .map(|tcp| Box::pin(closed_by_server(tcp, Duration::from_secs(5))));
    let (closed, _, _) = futures_util::future::select_all(closings).await;
    assert!(closed, "an idle connection was closed to make room");
    let (_, metrics) = app.admin_get("/metrics").await;
    assert!(
        metrics.contains(r#"kgen_connections_max{listener="grpc"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"kgen_connections_evicted_total{listener="grpc"}"#)
            && !metrics.contains(r#"kgen_connections_evicted_total{listener="grpc"} 0"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn idle_sockets_cannot_starve_the_admin_listener() {
    let app = TestApp::spawn(sandboxed()).await;
    let mut idle = Vec::new();
    for _ in 0..(kgen_gateway::ADMIN_MAX_CONNECTIONS + 10) {
        idle.push(TcpStream::connect(app.admin_addr).await.unwrap());
    }

    let probe = tokio::time::timeout(Duration::from_secs(5), app.admin_get("/healthz")).await;

    assert_eq!(probe.expect("answered within 5 s").0, 200);
}

#[tokio::test]
async fn an_authorization_header_that_is_not_ascii_is_reported_as_such() {
    let scratch = Scratch::new("non-ascii-auth");
    let tokens = scratch.write("tokens", "svc:s3cr3t-token\n");
    let mut settings = sandboxed();
    settings.caller_tokens = Some((
        tokens.clone(),
        std::sync::Arc::new(kgen_gateway::CallerAuth::new(
            kgen_gateway::CallerTokens::load(&tokens).expect("tokens"),
        )),
    ));
    let app = TestApp::spawn(settings).await;
    let mut request = tonic::Request::new(CreateSessionRequest {
        user_id: "player-1".to_owned(),
    });
    request.metadata_mut().insert(
        "authorization",
        tonic::metadata::MetadataValue::try_from(&b"Bearer t\xc3\xa9st"[..]).expect("opaque bytes"),
    );

    let status = app
        .client
        .clone()
        .create_session(request)
        .await
        .expect_err("refused");

    assert_status(&status, Code::Unauthenticated, "CALLER_UNAUTHENTICATED");
    assert!(
        status.message().contains("not printable ASCII"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn calls_past_max_concurrent_calls_are_answered_resource_exhausted_at_once() {
    let mut settings = sandboxed();
    settings.server.max_concurrent_calls = 1;
    let app = TestApp::spawn(settings).await;
    let slow = app.spawn_call("fault:delay:2000");
    let slow_in_flight = within_5s(|| async {
        let (_, metrics) = app.admin_get("/metrics").await;
        metrics.contains("kgen_upstream_in_flight 1")
    })
    .await;

    let refused = app.create_session("player-1").await.expect_err("refused");

    assert!(slow_in_flight, "the slow call reached the upstream");
    assert_status(&refused, Code::ResourceExhausted, "TOO_MANY_CALLS");
    assert!(refused.get_error_details().retry_info().is_some());
    assert!(
        slow.await.expect("joined").is_ok(),
        "the call in flight is unaffected"
    );
}

/// Connections open to a [`counting_upstream`] now, and the most at once.
#[derive(Default)]
struct OpenConnections {
    now: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

/// An HTTP/1.1 keep-alive upstream that answers every request with the example session after `delay`, and counts
/// the connections open to it.
async fn counting_upstream(delay: Duration) -> (String, std::sync::Arc<OpenConnections>) {
    use std::sync::{atomic::Ordering, Arc};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind port 0");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let open = Arc::new(OpenConnections::default());
    let counted = open.clone();
    let body = Bytes::from(crate::support::upstreams::example_session().to_string());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let open = counted.clone();
            let body = body.clone();
            let now = open.now.fetch_add(1, Ordering::SeqCst) + 1;
            open.peak.fetch_max(now, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    let body = body.clone();
                    async move {
                        tokio::time::sleep(delay).await;
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(body))
                                .expect("response"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
                open.now.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (url, open)
}

#[tokio::test]
async fn idle_upstream_connections_beyond_the_pool_bound_are_closed_after_a_burst() {
    use std::sync::atomic::Ordering;
    let (url, open) = counting_upstream(Duration::from_millis(300)).await;
    let mut settings = settings_for(&url);
    settings.upstream.max_idle_connections = 2;
    let app = TestApp::spawn(settings).await;

    let burst: Vec<_> = (0..20)
        .map(|i| app.spawn_call(&format!("player-{i}")))
        .collect();
    for call in burst {
        assert!(call.await.expect("joined").is_ok());
    }
    let settled = within_5s(|| async { open.now.load(Ordering::SeqCst) <= 2 }).await;

    assert!(
        open.peak.load(Ordering::SeqCst) > 2,
        "the burst needed many connections"
    );
    assert!(
        settled,
        "{} upstream connections still open after the burst",
        open.now.load(Ordering::SeqCst)
    );
}
