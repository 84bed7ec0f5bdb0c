//! Span export over OTLP/HTTP (only with `--features otlp`; CI runs it as its own step).
#![cfg(feature = "otlp")]

use std::{process::Stdio, time::Duration};

use kgen_gateway::proto::{session_service_client::SessionServiceClient, CreateSessionRequest};
use tokio::io::{AsyncBufReadExt, BufReader};
use wiremock::{
    matchers::{header, method, path},
    Mock, MockServer, ResponseTemplate,
};

#[tokio::test]
async fn spans_of_calls_are_exported_to_the_otlp_collector() {
    let collector = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .and(header("content-type", "application/x-protobuf"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&collector)
        .await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kgen-gateway"))
        .args([
            "--sandbox",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .args(["--otlp-endpoint", &collector.uri()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("serving before exit");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["message"] == "kgen-gateway serving gRPC" {
            break event["addr"].as_str().unwrap().to_owned();
        }
    };
    let mut client = SessionServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    client
        .create_session(CreateSessionRequest {
            user_id: "traced-user".into(),
        })
        .await
        .expect("session");

    // Spans are batched; shutting down flushes them.
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));

    let exported = collector.received_requests().await.unwrap();
    assert!(!exported.is_empty(), "spans reached the collector");
    let body: Vec<u8> = exported.iter().flat_map(|r| r.body.clone()).collect();
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"kgen-gateway"), "service name in the resource");
    assert!(has(b"traced-user"), "the call span's user_id attribute");
}
