//! The Connect protocol (`--connect`, on by default): unary calls as plain HTTP `POST`s of JSON or binary
//! messages, over HTTP/1.1 and h2c, answered through the same native stack (deadlines, error details, caller
//! authentication), and refused as Connect when switched off.

use base64::{engine::general_purpose::STANDARD_NO_PAD, Engine as _};
use kgen_gateway::proto::{CreateSessionRequest, CreateSessionResponse};
use prost::Message as _;
use serde_json::{json, Value};
use tonic_types::pb;

use crate::support::{
    app::{settings_from, TestApp, CLIENT_ID, CREATE_SESSION},
    files::Scratch,
    upstreams::example_kgen,
    wait::bounded,
};

/// An answer to a Connect call.
struct Answer {
    status: u16,
    version: reqwest::Version,
    headers: reqwest::header::HeaderMap,
    body: bytes::Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("a JSON body ({e}): {}", String::from_utf8_lossy(&self.body))
        })
    }

    fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The `details` entry of the error whose type is `type_name`.
    fn detail(&self, type_name: &str) -> Value {
        self.json()["details"]
            .as_array()
            .expect("details")
            .iter()
            .find(|d| d["type"] == type_name)
            .unwrap_or_else(|| panic!("a {type_name} detail in {}", self.json()))
            .clone()
    }
}

fn http1() -> reqwest::Client {
    reqwest::Client::builder().http1_only().build().unwrap()
}

fn h2c() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

/// POSTs `body` as `content_type` to `path` with `headers`, as curl would.
async fn post(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = client
        .post(format!("http://{}{path}", app.addr))
        .header("content-type", content_type)
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    bounded("the gateway to answer a Connect call", async {
        let response = request.send().await.expect("the gateway answers");
        Answer {
            status: response.status().as_u16(),
            version: response.version(),
            headers: response.headers().clone(),
            body: response.bytes().await.expect("a body"),
        }
    })
    .await
}

async fn create_json(app: &TestApp, user_id: &str, headers: &[(&str, &str)]) -> Answer {
    let body = json!({ "user_id": user_id }).to_string();
    post(
        &http1(),
        app,
        CREATE_SESSION,
        "application/json",
        body,
        headers,
    )
    .await
}

async fn gateway(extra: &[&str]) -> (TestApp, crate::support::fake_kgen::FakeKgen) {
    let kgen = example_kgen().await;
    let url = kgen.url();
    let mut args = vec![
        "--client-id",
        CLIENT_ID,
        "--upstream-url",
        &url,
        "--upstream-max-attempts",
        "1",
    ];
    args.extend_from_slice(extra);
    let app = TestApp::spawn(settings_from(&args)).await;
    (app, kgen)
}

#[tokio::test]
async fn a_json_call_answers_the_session_as_canonical_proto3_json() {
    // The sandbox's sessions have a non-zero `level` (the fake KGeN's example has none).
    let app = TestApp::spawn(settings_from(&["--sandbox"])).await;

    let answer = create_json(&app, "FTC_User1", &[("connect-protocol-version", "1")]).await;

    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.content_type(), "application/json");
    assert!(answer.headers.contains_key("x-request-id"));
    let session = answer.json();
    assert_eq!(session["userId"], "FTC_User1");
    assert!(session["level"].is_string(), "int64 as a string: {session}");
    let started = session["sessionStartedAt"].as_str().expect("a timestamp");
    assert!(
        chrono::DateTime::parse_from_rfc3339(started).is_ok(),
        "RFC 3339: {started}"
    );
    assert!(session.get("user_id").is_none(), "lowerCamelCase names");
}

#[tokio::test]
async fn a_binary_call_answers_the_binary_message() {
    let (app, _kgen) = gateway(&[]).await;
    let request = CreateSessionRequest {
        user_id: "FTC_User1".to_owned(),
    };

    let answer = post(
        &http1(),
        &app,
        CREATE_SESSION,
        "application/proto",
        request.encode_to_vec(),
        &[],
    )
    .await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type(), "application/proto");
    let session = CreateSessionResponse::decode(answer.body).expect("a CreateSessionResponse");
    assert_eq!(session.user_id, "FTC_User1");
}

#[tokio::test]
async fn an_invalid_user_id_is_invalid_argument_with_a_bad_request_detail() {
    let (app, kgen) = gateway(&[]).await;

    let answer = create_json(&app, "", &[]).await;

    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["code"], "invalid_argument");
    let detail = answer.detail("google.rpc.BadRequest");
    let value = STANDARD_NO_PAD
        .decode(detail["value"].as_str().unwrap())
        .expect("base64 without padding");
    let bad_request = pb::BadRequest::decode(value.as_slice()).expect("a BadRequest");
    assert_eq!(bad_request.field_violations[0].field, "user_id");
    assert_eq!(detail["debug"]["fieldViolations"][0]["field"], "user_id");
    assert_eq!(
        answer.detail("google.rpc.ErrorInfo")["debug"]["reason"],
        "INVALID_USER_ID"
    );
    assert!(kgen.received().is_empty());
}

#[tokio::test]
async fn an_upstream_429_is_http_429_resource_exhausted_with_retry_info() {
    let (app, _kgen) = gateway(&[]).await;

    let answer = create_json(&app, "fault:status:429", &[]).await;

    assert_eq!(answer.status, 429);
    let error = answer.json();
    assert_eq!(error["code"], "resource_exhausted");
    assert!(
        error["message"].as_str().unwrap().contains("429"),
        "{error}"
    );
    let retry = answer.detail("google.rpc.RetryInfo");
    let value = STANDARD_NO_PAD
        .decode(retry["value"].as_str().unwrap())
        .unwrap();
    assert!(pb::RetryInfo::decode(value.as_slice())
        .unwrap()
        .retry_delay
        .is_some());
    assert!(retry["debug"]["retryDelay"].is_string(), "{retry}");
}

#[tokio::test]
async fn connect_timeout_ms_is_the_calls_deadline() {
    let (app, _kgen) = gateway(&[]).await;

    let started = std::time::Instant::now();
    let answer = create_json(&app, "fault:delay:3000", &[("connect-timeout-ms", "300")]).await;

    assert_eq!(answer.status, 504);
    assert_eq!(answer.json()["code"], "deadline_exceeded");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn malformed_json_is_invalid_argument() {
    let (app, kgen) = gateway(&[]).await;

    for body in ["{\"user_id\":", "{\"no_such_field\":1}", "[]"] {
        let answer = post(
            &http1(),
            &app,
            CREATE_SESSION,
            "application/json",
            body,
            &[],
        )
        .await;
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(answer.json()["code"], "invalid_argument", "{body}");
    }
    let answer = post(
        &http1(),
        &app,
        CREATE_SESSION,
        "application/proto",
        &b"\xff\xff"[..],
        &[],
    )
    .await;
    assert_eq!(answer.status, 400);
    assert!(kgen.received().is_empty());
}

#[tokio::test]
async fn unknown_methods_are_404_and_streaming_ones_unimplemented() {
    let (app, _kgen) = gateway(&[]).await;

    for path in [
        "/kgen.session.v1.SessionService/Nope",
        "/grpc.health.v1.Health/Check",
    ] {
        let answer = post(&http1(), &app, path, "application/json", "{}", &[]).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.json()["code"], "unimplemented", "{path}");
    }
    let answer = post(
        &http1(),
        &app,
        "/kgen.session.v1.SessionService/CreateSessions",
        "application/json",
        "{}",
        &[],
    )
    .await;
    assert_eq!(answer.status, 501);
    assert_eq!(answer.json()["code"], "unimplemented");
}

#[tokio::test]
async fn other_content_types_are_415_and_oversized_bodies_resource_exhausted() {
    let (app, _kgen) = gateway(&["--max-request-size", "1KiB"]).await;

    let answer = post(&http1(), &app, CREATE_SESSION, "text/plain", "{}", &[]).await;
    assert_eq!(answer.status, 415);
    let answer = post(&h2c(), &app, CREATE_SESSION, "text/plain", "{}", &[]).await;
    assert_eq!(answer.status, 415);
    assert_eq!(
        answer.headers["grpc-status"], "12",
        "the port's own refusal"
    );

    let big = json!({ "user_id": "x".repeat(2048) }).to_string();
    let answer = post(&http1(), &app, CREATE_SESSION, "application/json", big, &[]).await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.json()["code"], "resource_exhausted");
}

#[tokio::test]
async fn the_batch_rpc_is_served_over_h2c_too() {
    let (app, _kgen) = gateway(&[]).await;

    let answer = post(
        &h2c(),
        &app,
        "/kgen.session.v1.SessionService/CreateSessionBatch",
        "application/json",
        json!({ "user_ids": ["a", "b"] }).to_string(),
        &[],
    )
    .await;

    assert_eq!(answer.version, reqwest::Version::HTTP_2);
    assert_eq!(answer.status, 200);
    let results = answer.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["userId"], "a");
    assert_eq!(
        results[1]["session"]["userId"], "FTC_User1",
        "the fake KGeN's session"
    );
}

#[tokio::test]
async fn connect_false_no_longer_answers_connect() {
    let (app, kgen) = gateway(&["--connect=false"]).await;

    let answer = create_json(&app, "FTC_User1", &[]).await;
    assert_eq!(answer.status, 505, "HTTP/1.1 is gRPC-Web's only");
    let answer = post(
        &h2c(),
        &app,
        CREATE_SESSION,
        "application/json",
        json!({ "user_id": "FTC_User1" }).to_string(),
        &[],
    )
    .await;
    assert_eq!(answer.status, 415, "HTTP/2 needs application/grpc");
    assert!(answer.body.is_empty());
    assert!(kgen.received().is_empty());
}

#[tokio::test]
async fn caller_tokens_apply_to_connect_calls() {
    let scratch = Scratch::new("connect-auth");
    let tokens = scratch.write("callers", "billing:tok-billing-1\n");
    let (app, kgen) = gateway(&["--caller-tokens-file", tokens.to_str().unwrap()]).await;

    let answer = create_json(&app, "FTC_User1", &[]).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["code"], "unauthenticated");
    assert!(kgen.received().is_empty());

    let answer = create_json(
        &app,
        "FTC_User1",
        &[("authorization", "Bearer tok-billing-1")],
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["userId"], "FTC_User1");
}
