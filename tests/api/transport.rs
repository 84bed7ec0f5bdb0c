//! Upstreams that fail below HTTP: closed ports, resets, TLS, endless bodies.

use tokio::{io::AsyncReadExt, net::TcpListener};
use tonic::Code;
use wiremock::MockServer;

use crate::support::{
    app::{settings_for, TestApp},
    assertions::assert_status,
    upstreams::streaming_upstream,
};

#[tokio::test]
async fn closed_port_is_unavailable_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let app = TestApp::spawn(settings_for(&format!("http://{addr}"))).await;

    let status = app
        .create_session("FTC_User1")
        .await
        .expect_err("nothing listens");

    assert_status(&status, Code::Unavailable, "UPSTREAM_UNREACHABLE");
}

#[tokio::test]
async fn unresolvable_host_is_unavailable_unreachable() {
    let app = TestApp::spawn(settings_for("http://kgen-upstream.invalid")).await;

    let status = app
        .create_session("FTC_User1")
        .await
        .expect_err("no such host");

    assert_status(&status, Code::Unavailable, "UPSTREAM_UNREACHABLE");
}

#[tokio::test]
async fn connection_reset_before_a_response_is_unavailable_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            drop(socket); // hang up without a response
        }
    });
    let app = TestApp::spawn(settings_for(&url)).await;

    let status = app.create_session("FTC_User1").await.expect_err("reset");

    assert_status(&status, Code::Unavailable, "UPSTREAM_UNREACHABLE");
}

#[tokio::test]
async fn tls_handshake_failure_is_unavailable_tls_error() {
    // A plain-HTTP server spoken to over https: the TLS handshake cannot succeed.
    let mock = MockServer::start().await;
    let https = mock.uri().replace("http://", "https://");
    let app = TestApp::spawn(settings_for(&https)).await;

    let status = app
        .create_session("FTC_User1")
        .await
        .expect_err("no TLS there");

    assert_status(&status, Code::Unavailable, "UPSTREAM_TLS_ERROR");
    assert!(
        mock.received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "nothing readable was sent"
    );
}

#[tokio::test]
async fn endless_chunked_body_is_cut_off_at_the_cap_without_buffering_it() {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    let (url, mut written) = streaming_upstream(head, vec![b' '; 64 * 1024]).await;
    let app = TestApp::spawn(settings_for(&url)).await;

    let status = app
        .create_session("FTC_User1")
        .await
        .expect_err("too large");

    assert_status(&status, Code::Internal, "UPSTREAM_RESPONSE_TOO_LARGE");
    let sent = written.recv().await.expect("upstream reports");
    assert!(
        sent < 30 * 1024 * 1024,
        "gateway hung up after {sent} bytes, not after reading 30 MiB"
    );
}

#[tokio::test]
async fn connection_lost_mid_body_is_unavailable_unreachable() {
    // Declares 1000 bytes, sends 10 and hangs up.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"session_")
                .await;
        }
    });
    let app = TestApp::spawn(settings_for(&url)).await;

    let status = app
        .create_session("FTC_User1")
        .await
        .expect_err("truncated");

    assert_status(&status, Code::Unavailable, "UPSTREAM_UNREACHABLE");
}

#[tokio::test]
async fn a_session_body_arriving_in_many_small_pieces_is_decoded_whole() {
    let body = include_bytes!("../fixtures/session-response.example.json");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            // 64-byte chunks, each flushed on its own and a moment apart, so they reach the gateway separately.
            for piece in body.chunks(64) {
                let mut frame = format!("{:x}\r\n", piece.len()).into_bytes();
                frame.extend_from_slice(piece);
                frame.extend_from_slice(b"\r\n");
                let _ = socket.write_all(&frame).await;
                let _ = socket.flush().await;
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            let _ = socket.write_all(b"0\r\n\r\n").await;
        }
    });
    let app = TestApp::spawn(settings_for(&url)).await;

    let session = app.create_session("FTC_User1").await.expect("decoded");

    let expected = crate::support::upstreams::example_session();
    assert_eq!(session.session_id, expected["session_id"].as_str().unwrap());
    assert_eq!(session.email, expected["email"].as_str().unwrap());
    assert!(session.session_started_at.is_some());
}
