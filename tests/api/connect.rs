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
    assertions::assert_one_ok_and_one_invalid_create_session_counted,
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

fn gzipped(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzipped(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut plain)
        .expect("a gzip body");
    plain
}

#[tokio::test]
async fn gzip_is_served_both_ways_and_the_decompressed_size_is_bounded() {
    let (app, kgen) = gateway(&["--max-request-size", "1KiB"]).await;
    let request = json!({ "user_id": "FTC_User1" }).to_string();

    let answer = post(
        &http1(),
        &app,
        CREATE_SESSION,
        "application/json",
        gzipped(request.as_bytes()),
        &[("content-encoding", "gzip"), ("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.headers["content-encoding"], "gzip");
    let session: Value = serde_json::from_slice(&gunzipped(&answer.body)).unwrap();
    assert_eq!(session["userId"], "FTC_User1");

    // Without accept-encoding (or with gzip;q=0) the answer is plain.
    for accept in [None, Some("gzip;q=0, identity")] {
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        let answer = post(
            &http1(),
            &app,
            CREATE_SESSION,
            "application/json",
            request.clone(),
            &headers,
        )
        .await;
        assert_eq!(answer.status, 200, "{accept:?}");
        assert!(
            !answer.headers.contains_key("content-encoding"),
            "{accept:?}"
        );
        assert_eq!(answer.json()["userId"], "FTC_User1");
    }

    // Errors are never compressed.
    let answer = post(
        &h2c(),
        &app,
        CREATE_SESSION,
        "application/json",
        json!({ "user_id": "" }).to_string(),
        &[("accept-encoding", "gzip")],
    )
    .await;
    assert_eq!(answer.status, 400);
    assert!(!answer.headers.contains_key("content-encoding"));
    assert_eq!(answer.json()["code"], "invalid_argument");
    let calls_so_far = kgen.received().len();

    // 2 MiB of spaces gzip to about 2 KiB: the message is over the limit once inflated, and refused there.
    let bomb = gzipped(&vec![b' '; 2 << 20]);
    assert!(bomb.len() < 16 << 10);
    let answer = post(
        &http1(),
        &app,
        CREATE_SESSION,
        "application/json",
        bomb,
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.json()["code"], "resource_exhausted");

    let answer = post(
        &http1(),
        &app,
        CREATE_SESSION,
        "application/json",
        request.clone(),
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(answer.status, 400, "not gzip");
    assert_eq!(answer.json()["code"], "invalid_argument");

    let answer = post(
        &http1(),
        &app,
        CREATE_SESSION,
        "application/json",
        request,
        &[("content-encoding", "br")],
    )
    .await;
    assert_eq!(answer.status, 501);
    assert_eq!(answer.json()["code"], "unimplemented");
    assert_eq!(
        answer.headers["accept-encoding"], "gzip",
        "names what is served"
    );
    assert_eq!(
        kgen.received().len(),
        calls_so_far,
        "no refused body reached KGeN"
    );
}

#[tokio::test]
async fn a_callers_grpc_headers_cannot_change_how_the_translated_call_is_framed() {
    let (app, _kgen) = gateway(&[]).await;

    let answer = create_json(
        &app,
        "FTC_User1",
        &[
            ("grpc-encoding", "gzip"),
            ("grpc-accept-encoding", "gzip"),
            ("grpc-timeout", "1n"),
        ],
    )
    .await;

    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["userId"], "FTC_User1");
}

#[tokio::test]
async fn connect_calls_carry_request_ids_both_ways_and_count_under_the_grpc_method_labels() {
    let (app, kgen) = gateway(&[]).await;

    let ok = create_json(&app, "FTC_User1", &[("x-request-id", "connect-req-1")]).await;
    let invalid = post(
        &h2c(),
        &app,
        CREATE_SESSION,
        "application/proto",
        CreateSessionRequest::default().encode_to_vec(),
        &[],
    )
    .await;

    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers["x-request-id"], "connect-req-1");
    assert_eq!(invalid.status, 400);
    assert_eq!(
        invalid.content_type(),
        "application/json",
        "errors are JSON for either codec"
    );
    assert!(
        invalid.headers.contains_key("x-request-id"),
        "one is made up"
    );
    let received = kgen.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].headers["x-request-id"], "connect-req-1",
        "and sent upstream"
    );
    assert_one_ok_and_one_invalid_create_session_counted(&app).await;
}

#[tokio::test]
async fn a_browser_page_on_a_listed_origin_may_call_over_connect_with_grpc_webs_cors_policy() {
    const PAGE: &str = "https://tools.example.com";
    let (app, _kgen) = gateway(&["--grpc-web", "--grpc-web-allowed-origins", PAGE]).await;

    let preflight = bounded(
        "a preflight answer",
        http1()
            .request(
                reqwest::Method::OPTIONS,
                format!("http://{}{CREATE_SESSION}", app.addr),
            )
            .header("origin", PAGE)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,connect-protocol-version,connect-timeout-ms,content-encoding",
            )
            .send(),
    )
    .await
    .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], PAGE);
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for needed in [
        "connect-protocol-version",
        "connect-timeout-ms",
        "content-encoding",
    ] {
        assert!(
            allowed.split(',').any(|h| h.trim() == needed),
            "{needed}: {allowed}"
        );
    }

    let ok = create_json(&app, "FTC_User1", &[("origin", PAGE)]).await;
    let failed = create_json(&app, "", &[("origin", PAGE)]).await;
    let elsewhere = create_json(&app, "FTC_User1", &[("origin", "https://evil.example.com")]).await;

    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers["access-control-allow-origin"], PAGE);
    assert_eq!(failed.status, 400);
    assert_eq!(
        failed.headers["access-control-allow-origin"], PAGE,
        "errors too"
    );
    assert_eq!(elsewhere.status, 200, "CORS is not access control");
    assert!(!elsewhere
        .headers
        .contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn a_connect_stream_is_answered_unimplemented_in_an_end_of_stream_message() {
    let (app, kgen) = gateway(&[]).await;
    let path = "/kgen.session.v1.SessionService/CreateSessions";
    // One enveloped message: flags 0, length, `{"user_id":"a"}`.
    let message = br#"{"user_id":"a"}"#;
    let mut envelope = vec![0u8];
    envelope.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    envelope.extend_from_slice(message);

    for client in [http1(), h2c()] {
        let answer = post(
            &client,
            &app,
            path,
            "application/connect+json",
            envelope.clone(),
            &[("x-request-id", "stream-1")],
        )
        .await;

        assert_eq!(answer.status, 200, "errors travel in the stream");
        assert_eq!(answer.content_type(), "application/connect+json");
        assert_eq!(answer.headers["x-request-id"], "stream-1");
        let body = &answer.body;
        assert_eq!(body[0], 0x02, "the end-of-stream flag");
        let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        assert_eq!(body.len(), 5 + length);
        let end: Value = serde_json::from_slice(&body[5..]).unwrap();
        assert_eq!(end["error"]["code"], "unimplemented", "{end}");
    }
    assert!(kgen.received().is_empty());
}

#[tokio::test]
async fn refusals_made_before_the_call_carry_the_request_id_too() {
    let (app, _kgen) = gateway(&[]).await;
    /// Path, content type, body, the request's other headers.
    type Refusal<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)]);
    let refusals: [Refusal; 5] = [
        (CREATE_SESSION, "application/json", "{", &[]),
        (
            "/kgen.session.v1.SessionService/Nope",
            "application/json",
            "{}",
            &[],
        ),
        (
            CREATE_SESSION,
            "application/json",
            "{}",
            &[("content-encoding", "br")],
        ),
        (
            CREATE_SESSION,
            "application/json",
            "{}",
            &[("connect-timeout-ms", "soon")],
        ),
        (CREATE_SESSION, "text/plain", "{}", &[]),
    ];

    for (path, content_type, body, extra) in refusals {
        let mut headers = vec![("x-request-id", "refused-1")];
        headers.extend_from_slice(extra);
        let answer = post(&http1(), &app, path, content_type, body, &headers).await;
        assert!(
            answer.status >= 400,
            "{path} {content_type} {extra:?}: {}",
            answer.status
        );
        assert_eq!(
            answer.headers["x-request-id"], "refused-1",
            "{path} {content_type} {extra:?}"
        );

        let answer = post(&http1(), &app, path, content_type, body, extra).await;
        let made_up = answer.headers["x-request-id"].to_str().unwrap();
        assert_eq!(made_up.len(), 36, "a fresh UUID: {made_up}");
    }
}

/// Writes one HTTP/1.1 request on `tcp` and reads its answer (whose length is given), returning the status line.
async fn exchange(
    tcp: &mut tokio::net::TcpStream,
    path: &str,
    extra_header: &str,
    body: &str,
) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n{extra_header}content-length: {}\r\n\r\n",
        body.len()
    );
    bounded("the request to be written", async {
        tcp.write_all(request.as_bytes()).await.unwrap();
        // The body after a pause, as a client that sends headers first does.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        tcp.write_all(body.as_bytes()).await.unwrap();
    })
    .await;
    bounded("an answer on the same connection", async {
        let mut seen = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "the connection was closed: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&seen).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .expect("a content-length");
                if seen.len() >= end + 4 + length {
                    assert!(
                        !text[..end]
                            .to_ascii_lowercase()
                            .contains("connection: close"),
                        "{text}"
                    );
                    return text.lines().next().unwrap().to_owned();
                }
            }
        }
    })
    .await
}

#[tokio::test]
async fn over_http1_a_refused_request_leaves_the_connection_usable_for_the_next_call() {
    let (app, _kgen) = gateway(&[]).await;
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let call = r#"{"user_id":"FTC_User1"}"#;

    let refusals = [
        ("/kgen.session.v1.SessionService/Nope", "", "HTTP/1.1 404"),
        (CREATE_SESSION, "content-encoding: br\r\n", "HTTP/1.1 501"),
        (
            CREATE_SESSION,
            "connect-timeout-ms: soon\r\n",
            "HTTP/1.1 400",
        ),
        (
            "/kgen.session.v1.SessionService/CreateSessions",
            "",
            "HTTP/1.1 501",
        ),
    ];
    for (path, header, status) in refusals {
        assert!(
            exchange(&mut tcp, path, header, call)
                .await
                .starts_with(status),
            "{path} {header}"
        );
        assert!(
            exchange(&mut tcp, CREATE_SESSION, "", call)
                .await
                .starts_with("HTTP/1.1 200"),
            "the call after {path} {header}"
        );
    }
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_deadline_exceeded_after_the_request_body_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (app, kgen) = gateway(&["--request-body-timeout", "300ms"]).await;
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();

    // 100 bytes announced, 10 sent, then nothing.
    let head = format!(
        "POST {CREATE_SESSION} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"user_id\""
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = bounded("an answer to the stalled body", tcp.read(&mut answer))
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);

    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains(r#""code":"deadline_exceeded""#), "{answer}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(250));
    assert!(kgen.received().is_empty());
}

#[tokio::test]
async fn calls_connect_refuses_itself_are_counted_as_the_native_stack_counts_its_own() {
    let (app, kgen) = gateway(&["--max-request-size", "1KiB"]).await;

    post(&http1(), &app, CREATE_SESSION, "application/json", "{", &[]).await;
    let big = json!({ "user_id": "x".repeat(2048) }).to_string();
    post(&http1(), &app, CREATE_SESSION, "application/json", big, &[]).await;
    post(
        &h2c(),
        &app,
        "/kgen.session.v1.SessionService/CreateSessions",
        "application/connect+json",
        "",
        &[],
    )
    .await;
    post(
        &http1(),
        &app,
        "/kgen.session.v1.SessionService/Nope",
        "application/json",
        "{}",
        &[],
    )
    .await;
    // A content type nobody speaks is no call, over gRPC as over Connect.
    post(&http1(), &app, CREATE_SESSION, "text/plain", "{}", &[]).await;

    assert!(kgen.received().is_empty());
    let (_, text) = app.admin_get("/metrics").await;
    let service = r#"grpc_service="kgen.session.v1.SessionService""#;
    for series in [
        format!(r#"grpc_server_started_total{{grpc_type="unary",{service},grpc_method="CreateSession"}} 2"#),
        format!(r#"grpc_server_handled_total{{grpc_type="unary",{service},grpc_method="CreateSession",grpc_code="InvalidArgument"}} 1"#),
        format!(r#"grpc_server_handled_total{{grpc_type="unary",{service},grpc_method="CreateSession",grpc_code="ResourceExhausted"}} 1"#),
        format!(r#"grpc_server_handled_total{{grpc_type="bidi_stream",{service},grpc_method="CreateSessions",grpc_code="Unimplemented"}} 1"#),
        r#"grpc_server_handled_total{grpc_type="unary",grpc_service="unknown",grpc_method="unknown",grpc_code="Unimplemented"} 1"#.to_owned(),
    ] {
        assert!(text.lines().any(|line| line == series), "{series} missing from\n{text}");
    }
}
