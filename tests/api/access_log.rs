//! The access log (`--access-log`): one INFO line per finished session-service RPC, target `kgen_gateway::access`,
//! with every field once, and never a secret.

use kgen_gateway::proto::{
    session_service_client::SessionServiceClient, CreateSessionBatchRequest, CreateSessionRequest,
};
use serde_json::Value;
use tonic::{transport::Channel, Code, Request};

use crate::support::{
    app::{CLIENT_ID, CLIENT_SECRET},
    fake_kgen::FakeKgen,
    files::Scratch,
    process::RunningBinary,
    upstreams::{answer_with_things_to_leak, example_kgen, MUST_NOT_LEAK},
    wait::bounded,
};

const ACCESS: &str = "kgen_gateway::access";
/// Only warnings but the start-up and access lines: RUST_LOG routes the access lines by their target.
const ACCESS_LINES_ONLY: &str = "warn,kgen_gateway::app=info,kgen_gateway::access=info";

/// The gateway binary (JSON logs unless `text`) in front of `kgen`, one upstream attempt per call, with `extra`
/// arguments and `RUST_LOG=rust_log`.
async fn gateway(kgen: &FakeKgen, extra: &[&str], rust_log: &str, text: bool) -> RunningBinary {
    let uri = kgen.url();
    let mut args = vec![
        "--upstream-url",
        &uri,
        "--client-id",
        CLIENT_ID,
        "--upstream-max-attempts",
        "1",
    ];
    args.extend_from_slice(extra);
    let env = [
        ("KGEN_CLIENT_SECRET", CLIENT_SECRET),
        ("RUST_LOG", rust_log),
    ];
    if text {
        RunningBinary::gateway_with_text_logs(&args, &env).await
    } else {
        RunningBinary::gateway(&args, &env).await
    }
}

async fn client(gateway: &RunningBinary) -> SessionServiceClient<Channel> {
    bounded(
        "a connection to the binary",
        SessionServiceClient::connect(format!("http://{}", gateway.addr)),
    )
    .await
    .unwrap()
}

/// `CreateSession` for `user_id` with the request id `request_id`.
async fn call(
    client: &mut SessionServiceClient<Channel>,
    user_id: &str,
    request_id: &str,
) -> Result<(), tonic::Status> {
    let mut request = Request::new(CreateSessionRequest {
        user_id: user_id.into(),
    });
    request
        .metadata_mut()
        .insert("x-request-id", request_id.parse().unwrap());
    bounded("the binary to answer", client.create_session(request))
        .await
        .map(drop)
}

/// The access lines among JSON `logs`, parsed.
fn access_lines(logs: &[String]) -> Vec<Value> {
    logs.iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["target"] == ACCESS)
        .collect()
}

/// The access line of the call with `request_id`; exactly one.
fn line_of<'a>(lines: &'a [Value], request_id: &str) -> &'a Value {
    let found: Vec<&Value> = lines
        .iter()
        .filter(|line| line["request_id"] == request_id)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one access line for {request_id}: {lines:#?}"
    );
    found[0]
}

fn assert_from_loopback(line: &Value) {
    let peer = line["peer"].as_str().expect("peer");
    assert!(
        peer.starts_with("127.0.0.1:") && peer.len() > "127.0.0.1:".len(),
        "{line}"
    );
}

#[tokio::test]
async fn with_the_access_log_each_finished_rpc_logs_one_line_with_every_field() {
    let kgen = example_kgen().await;
    let gateway = gateway(&kgen, &["--access-log"], ACCESS_LINES_ONLY, false).await;
    let mut client = client(&gateway).await;

    call(&mut client, "good-user", "req-ok").await.expect("ok");
    let failed = call(&mut client, "fault:status:503", "req-503")
        .await
        .expect_err("503");
    assert_eq!(failed.code(), Code::Unavailable);
    let invalid = call(&mut client, "", "req-invalid")
        .await
        .expect_err("invalid");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let mut batch = Request::new(CreateSessionBatchRequest {
        user_ids: vec!["a".into(), "fault:status:503".into()],
    });
    batch
        .metadata_mut()
        .insert("x-request-id", "req-batch".parse().unwrap());
    let results = bounded("the batch", client.create_session_batch(batch))
        .await
        .expect("batch")
        .into_inner()
        .results;
    assert_eq!(results.len(), 2);

    let (code, logs) = gateway.stop().await;
    assert_eq!(code, Some(0));
    let lines = access_lines(&logs);
    assert_eq!(lines.len(), 4, "one line per RPC: {lines:#?}");
    for line in &lines {
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["message"], "access", "{line}");
        assert!(line.get("span").is_none(), "outside the call span: {line}");
        assert!(
            line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
            "{line}"
        );
        assert_eq!(line["tenant"], "default", "{line}");
        assert_eq!(line["caller"], "", "no caller authentication: {line}");
        assert_from_loopback(line);
    }

    let ok = line_of(&lines, "req-ok");
    assert_eq!(ok["method"], "CreateSession");
    assert_eq!(ok["grpc_code"], "OK");
    assert_eq!(ok["reason"], "");
    assert_eq!(ok["upstream_status"], 200);
    assert_eq!(ok["attempts"], 1);

    let unavailable = line_of(&lines, "req-503");
    assert_eq!(unavailable["method"], "CreateSession");
    assert_eq!(unavailable["grpc_code"], "Unavailable");
    assert_eq!(unavailable["reason"], "UPSTREAM_UNAVAILABLE");
    assert_eq!(unavailable["upstream_status"], 503);
    assert_eq!(unavailable["attempts"], 1);

    let invalid = line_of(&lines, "req-invalid");
    assert_eq!(invalid["grpc_code"], "InvalidArgument");
    assert_eq!(invalid["reason"], "INVALID_USER_ID");
    assert_eq!(invalid["attempts"], 0);
    assert!(invalid.get("upstream_status").is_none(), "{invalid}");

    let batch = line_of(&lines, "req-batch");
    assert_eq!(batch["method"], "CreateSessionBatch");
    assert_eq!(batch["grpc_code"], "OK", "the RPC's code: {batch}");
    assert_eq!(batch["items"], 2);
    assert_eq!(batch["attempts"], 2, "over its items");
}

#[tokio::test]
async fn a_connect_call_logs_the_same_access_line_as_a_grpc_call() {
    let kgen = example_kgen().await;
    let gateway = gateway(&kgen, &["--access-log"], ACCESS_LINES_ONLY, false).await;
    let client = reqwest::Client::builder().http1_only().build().unwrap();

    let answer = bounded(
        "a Connect answer",
        client
            .post(format!(
                "http://{}/kgen.session.v1.SessionService/CreateSession",
                gateway.addr
            ))
            .header("content-type", "application/json")
            .header("x-request-id", "req-connect")
            .body(r#"{"user_id":"fault:status:503"}"#)
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(answer.status(), 503);

    let (code, logs) = gateway.stop().await;
    assert_eq!(code, Some(0));
    let lines = access_lines(&logs);
    let line = line_of(&lines, "req-connect");
    assert_eq!(line["method"], "CreateSession");
    assert_eq!(line["grpc_code"], "Unavailable");
    assert_eq!(line["reason"], "UPSTREAM_UNAVAILABLE");
    assert_eq!(line["upstream_status"], 503);
    assert_from_loopback(line);
}

#[tokio::test]
async fn without_the_access_log_no_access_line_is_written() {
    let kgen = example_kgen().await;
    let gateway = gateway(&kgen, &[], "debug", false).await;
    let mut client = client(&gateway).await;

    call(&mut client, "good-user", "req-ok").await.expect("ok");
    let _ = call(&mut client, "fault:status:503", "req-503").await;

    let (code, logs) = gateway.stop().await;
    assert_eq!(code, Some(0));
    assert!(access_lines(&logs).is_empty(), "{logs:#?}");
    assert!(
        logs.iter().any(|line| line.contains("req-503")),
        "the other lines are still there"
    );
}

#[tokio::test]
async fn a_text_access_line_names_each_field_once_and_no_span() {
    let kgen = example_kgen().await;
    let gateway = gateway(&kgen, &["--access-log"], "debug", true).await;
    let mut client = client(&gateway).await;

    let _ = call(&mut client, "fault:status:503", "req-text").await;

    let (code, logs) = gateway.stop().await;
    assert_eq!(code, Some(0));
    let access: Vec<&String> = logs.iter().filter(|l| l.contains(ACCESS)).collect();
    assert_eq!(access.len(), 1, "{logs:#?}");
    let line = access[0];
    assert!(line.contains(" INFO "), "{line}");
    assert!(!line.contains("call{"), "outside the call span: {line}");
    for field in [
        "method=\"CreateSession\"",
        "grpc_code=\"Unavailable\"",
        "reason=\"UPSTREAM_UNAVAILABLE\"",
        "latency_ms=",
        "upstream_status=503",
        "attempts=1",
        "tenant=\"default\"",
        "caller=\"\"",
        "request_id=\"req-text\"",
        "peer=127.0.0.1:",
    ] {
        assert_eq!(line.matches(field).count(), 1, "{field} once in {line}");
    }
}

#[tokio::test]
async fn access_lines_of_a_good_and_a_failed_call_never_hold_secrets_tokens_or_contact_details() {
    let kgen = FakeKgen::start().await;
    answer_with_things_to_leak(&kgen);
    let gateway = gateway(&kgen, &["--access-log"], "debug", false).await;
    let mut client = client(&gateway).await;

    call(&mut client, "good-user", "req-good-1")
        .await
        .expect("ok");
    let _ = call(&mut client, "bad-user", "req-bad-2").await;

    let (code, logs) = gateway.stop().await;
    assert_eq!(code, Some(0));
    let lines = access_lines(&logs);
    assert_eq!(lines.len(), 2, "{logs:#?}");
    let all = logs.join("\n");
    for secret in MUST_NOT_LEAK {
        assert!(
            !all.contains(secret),
            "{secret} leaked into the logs:\n{all}"
        );
    }
    assert_eq!(line_of(&lines, "req-good-1")["grpc_code"], "OK");
    let bad = line_of(&lines, "req-bad-2");
    assert_eq!(bad["reason"], "UPSTREAM_INTERNAL_ERROR");
    assert_eq!(bad["upstream_status"], 500);
    // The access line names no user, and only the fields it documents.
    let fields: Vec<&str> = bad
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for field in &fields {
        assert!(
            [
                "timestamp",
                "level",
                "message",
                "target",
                "method",
                "grpc_code",
                "reason",
                "latency_ms",
                "upstream_status",
                "attempts",
                "tenant",
                "caller",
                "request_id",
                "peer",
            ]
            .contains(field),
            "unexpected field {field} in {bad}"
        );
    }
}

#[tokio::test]
async fn with_caller_tokens_the_access_line_names_the_caller_and_a_refused_call_has_one_too() {
    let scratch = Scratch::new("access-log-callers");
    let tokens = scratch.write("callers", "svc-access:tok-access-1\n");
    let kgen = example_kgen().await;
    let gateway = gateway(
        &kgen,
        &[
            "--access-log",
            "--caller-tokens-file",
            tokens.to_str().unwrap(),
        ],
        "info",
        false,
    )
    .await;
    let mut client = client(&gateway).await;

    let mut authenticated = Request::new(CreateSessionRequest {
        user_id: "good-user".into(),
    });
    let metadata = authenticated.metadata_mut();
    metadata.insert("x-request-id", "req-svc".parse().unwrap());
    metadata.insert("authorization", "Bearer tok-access-1".parse().unwrap());
    bounded("the session", client.create_session(authenticated))
        .await
        .expect("ok");
    let refused = call(&mut client, "good-user", "req-anonymous")
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated);

    let (code, logs) = gateway.stop().await;
    assert_eq!(code, Some(0));
    let lines = access_lines(&logs);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let ok = line_of(&lines, "req-svc");
    assert_eq!(ok["caller"], "svc-access");
    assert_eq!(ok["grpc_code"], "OK");
    let anonymous = line_of(&lines, "req-anonymous");
    assert_eq!(anonymous["method"], "CreateSession");
    assert_eq!(anonymous["grpc_code"], "Unauthenticated");
    assert_eq!(anonymous["reason"], "CALLER_UNAUTHENTICATED");
    assert_eq!(anonymous["caller"], "");
    assert_from_loopback(anonymous);
    assert!(!logs.join("\n").contains("tok-access-1"), "no token logged");
}
