//! gRPC-Web (`--grpc-web`): real gRPC-Web requests over plain HTTP/1.1 (framing, `-text`, CORS), the same
//! authentication, deadlines, error details, metrics and request ids as native gRPC, and the refusal when it is off.

use std::time::{Duration, Instant};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderName, HeaderValue};
use kgen_gateway::{
    proto::{CreateSessionRequest, CreateSessionResponse},
    Cli, GrpcWebSettings, Settings,
};
use prost::Message as _;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::support::{
    app::{settings_for, single_attempt, TestApp, CLIENT_SECRET, CREATE_SESSION},
    assertions::{assert_one_ok_and_one_invalid_create_session_counted, assert_status},
    fake_kgen::{Answer, FakeKgen},
    upstreams::example_session,
    wait::bounded,
};

const TOOLS: &str = "https://tools.example.com";

/// A gRPC-Web answer, split into its parts.
struct WebAnswer {
    status: u16,
    headers: HeaderMap,
    /// The payloads of the data frames (flag 0x00).
    messages: Vec<Bytes>,
    /// The trailer frame (flag 0x80), parsed, if there was one.
    trailers: Option<HeaderMap>,
}

impl WebAnswer {
    /// The gRPC status: from the trailer frame, or from the headers of a trailers-only answer.
    fn grpc_status(&self) -> Status {
        let source = self.trailers.as_ref().unwrap_or(&self.headers);
        Status::from_header_map(source).expect("a grpc-status in the trailers or the headers")
    }

    fn session(&self) -> CreateSessionResponse {
        assert_eq!(self.messages.len(), 1, "one response message");
        CreateSessionResponse::decode(self.messages[0].clone()).expect("a CreateSessionResponse")
    }
}

/// A plain HTTP/1.1 client: what a browser's `fetch` or an edge worker speaks.
fn http1() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("HTTP/1.1 client")
}

/// One gRPC-Web message frame: flag, big-endian length, payload.
fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
    let length = u32::try_from(payload.len()).expect("small message");
    [&[flag][..], &length.to_be_bytes(), payload].concat()
}

fn request_frame(user_id: &str) -> Vec<u8> {
    let request = CreateSessionRequest {
        user_id: user_id.to_owned(),
    };
    frame(0, &request.encode_to_vec())
}

/// POSTs a `CreateSession` gRPC-Web request (`application/grpc-web+proto`, or `-text` base64) with `headers`.
async fn call(app: &TestApp, user_id: &str, text: bool, headers: &[(&str, &str)]) -> WebAnswer {
    let (content_type, body) = if text {
        (
            "application/grpc-web-text",
            STANDARD.encode(request_frame(user_id)).into_bytes(),
        )
    } else {
        ("application/grpc-web+proto", request_frame(user_id))
    };
    let mut request = http1()
        .post(format!("http://{}{CREATE_SESSION}", app.addr))
        .header("content-type", content_type)
        // As grpc-web clients do: tonic-web picks the answer's encoding from `accept`.
        .header("accept", content_type)
        .header("x-grpc-web", "1")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (status, headers, body) = bounded("the gateway to answer a gRPC-Web call", async {
        let response = request.send().await.expect("the gateway answers");
        assert_eq!(response.version(), reqwest::Version::HTTP_11);
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.bytes().await.expect("a body"))
    })
    .await;
    let body = if text { decode_text(&body) } else { body };
    let (messages, trailers) = split_frames(body);
    WebAnswer {
        status,
        headers,
        messages,
        trailers,
    }
}

/// `application/grpc-web-text` answers are base64 per frame, each padded: decoded in 4-character groups.
fn decode_text(body: &[u8]) -> Bytes {
    assert_eq!(body.len() % 4, 0, "padded base64");
    let mut decoded = Vec::new();
    for group in body.chunks(4) {
        decoded.extend(STANDARD.decode(group).expect("base64"));
    }
    Bytes::from(decoded)
}

fn split_frames(mut body: Bytes) -> (Vec<Bytes>, Option<HeaderMap>) {
    let (mut messages, mut trailers) = (Vec::new(), None);
    while body.has_remaining() {
        assert!(body.len() >= 5, "a whole frame header");
        let flag = body.get_u8();
        let length = body.get_u32() as usize;
        assert!(body.len() >= length, "a whole frame");
        let payload = body.split_to(length);
        match flag {
            0x00 => messages.push(payload),
            0x80 => {
                assert!(trailers.is_none(), "one trailer frame");
                assert!(!body.has_remaining(), "the trailer frame comes last");
                trailers = Some(parse_trailers(&payload));
            }
            other => panic!("unexpected frame flag {other:#x}"),
        }
    }
    (messages, trailers)
}

/// The trailer frame holds HTTP/1-style `name:value\r\n` lines.
fn parse_trailers(payload: &[u8]) -> HeaderMap {
    let text = std::str::from_utf8(payload).expect("ASCII trailers");
    let mut map = HeaderMap::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').expect("name:value");
        map.append(
            HeaderName::from_bytes(name.trim().as_bytes()).expect("header name"),
            HeaderValue::from_str(value.trim()).expect("header value"),
        );
    }
    map
}

fn with_grpc_web(mut settings: Settings, origins: &[&str]) -> Settings {
    settings.server.grpc_web = Some(GrpcWebSettings::allowing(origins).expect("valid origins"));
    settings
}

/// A fake KGeN answering [`example_session`] to `POST /s2s/session/` for `FTC_User1`, and 404 to anything else.
async fn session_kgen() -> FakeKgen {
    let kgen = FakeKgen::start().await;
    kgen.answer_with(|request| {
        if request.path == "/s2s/session/" && request.user_id().as_deref() == Some("FTC_User1") {
            Answer::json(200, example_session())
        } else {
            Answer::empty(404)
        }
    });
    kgen
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().expect("ASCII header"))
}

fn listed(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.to_str().expect("ASCII header").split(','))
        .map(|item| item.trim().to_ascii_lowercase())
        .collect()
}

#[tokio::test]
async fn a_grpc_web_call_over_http1_returns_the_session_and_a_trailer_frame_with_status_0() {
    let kgen = session_kgen().await;
    let app = TestApp::spawn(with_grpc_web(settings_for(&kgen.url()), &[])).await;

    let answer = call(&app, "FTC_User1", false, &[]).await;

    assert_eq!(answer.status, 200);
    assert_eq!(
        header(&answer.headers, "content-type"),
        Some("application/grpc-web+proto")
    );
    let session = answer.session();
    assert_eq!(session.session_id, "3ab35108-1902-4a1f-4382998f305d");
    assert_eq!(session.user_id, "FTC_User1");
    assert_eq!(session.namespaced_third_party_user_id, "20798813#FTC_User1");
    assert_eq!(session.access_token, "exampleToken1");
    assert_eq!(
        session.session_started_at.map(|t| t.seconds),
        Some(1_724_142_733)
    );
    let trailers = answer.trailers.as_ref().expect("a trailer frame");
    assert_eq!(header(trailers, "grpc-status"), Some("0"));
    assert_eq!(answer.grpc_status().code(), Code::Ok);
    assert_eq!(kgen.received().len(), 1);
}

#[tokio::test]
async fn an_invalid_user_id_over_grpc_web_is_invalid_argument_with_a_bad_request_in_the_headers() {
    let kgen = session_kgen().await;
    let app = TestApp::spawn(with_grpc_web(settings_for(&kgen.url()), &[])).await;

    let answer = call(&app, " ", false, &[]).await;

    assert_eq!(answer.status, 200);
    assert!(answer.messages.is_empty());
    // tonic answers errors trailers-only: the status and its details are HTTP headers, as gRPC-Web allows.
    assert!(answer.trailers.is_none(), "trailers-only");
    assert_eq!(header(&answer.headers, "grpc-status"), Some("3"));
    let status = answer.grpc_status();
    let details = assert_status(&status, Code::InvalidArgument, "INVALID_USER_ID");
    let bad_request = details.bad_request().expect("a BadRequest");
    assert_eq!(bad_request.field_violations[0].field, "user_id");
    assert!(status.check_error_details().is_ok());
    assert!(kgen.received().is_empty());
}

#[tokio::test]
async fn grpc_web_text_requests_are_answered_in_base64() {
    let kgen = session_kgen().await;
    let app = TestApp::spawn(with_grpc_web(settings_for(&kgen.url()), &[])).await;

    let answer = call(&app, "FTC_User1", true, &[]).await;

    assert_eq!(answer.status, 200);
    assert_eq!(
        header(&answer.headers, "content-type"),
        Some("application/grpc-web-text+proto")
    );
    assert_eq!(
        answer.session().session_id,
        "3ab35108-1902-4a1f-4382998f305d"
    );
    assert_eq!(answer.grpc_status().code(), Code::Ok);
}

#[tokio::test]
async fn cors_grants_listed_origins_only_and_exposes_the_grpc_status_headers() {
    let kgen = session_kgen().await;
    let app = TestApp::spawn(with_grpc_web(settings_for(&kgen.url()), &[TOOLS])).await;
    let preflight = |origin: &'static str| {
        http1()
            .request(
                reqwest::Method::OPTIONS,
                format!("http://{}{CREATE_SESSION}", app.addr),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-grpc-web")
            .send()
    };

    let allowed = preflight(TOOLS).await.expect("preflight answered");
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), Some(TOOLS));
    assert_eq!(listed(headers, "access-control-allow-methods"), ["post"]);
    let allowed_headers = listed(headers, "access-control-allow-headers");
    for needed in [
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "authorization",
        "x-request-id",
        "x-kgen-tenant",
        "traceparent",
        "tracestate",
    ] {
        assert!(
            allowed_headers.iter().any(|h| h == needed),
            "{needed}: {allowed_headers:?}"
        );
    }
    assert_eq!(header(headers, "access-control-max-age"), Some("7200"));
    assert!(header(headers, "access-control-allow-credentials").is_none());

    let refused = preflight("https://evil.example.com")
        .await
        .expect("preflight answered");
    assert!(header(refused.headers(), "access-control-allow-origin").is_none());

    let answer = call(&app, "FTC_User1", false, &[("origin", TOOLS)]).await;
    assert_eq!(answer.grpc_status().code(), Code::Ok);
    assert_eq!(
        header(&answer.headers, "access-control-allow-origin"),
        Some(TOOLS)
    );
    let exposed = listed(&answer.headers, "access-control-expose-headers");
    for needed in [
        "grpc-status",
        "grpc-message",
        "grpc-status-details-bin",
        "x-request-id",
    ] {
        assert!(exposed.iter().any(|h| h == needed), "{needed}: {exposed:?}");
    }

    // CORS is not access control: an unlisted origin's call is served, only its page may not read the answer.
    let unlisted = call(
        &app,
        "FTC_User1",
        false,
        &[("origin", "https://evil.example.com")],
    )
    .await;
    assert_eq!(unlisted.grpc_status().code(), Code::Ok);
    assert!(header(&unlisted.headers, "access-control-allow-origin").is_none());
}

#[tokio::test]
async fn with_grpc_web_and_no_origins_non_browser_callers_work_but_no_origin_is_granted() {
    let kgen = session_kgen().await;
    let app = TestApp::spawn(with_grpc_web(settings_for(&kgen.url()), &[])).await;

    let answer = call(&app, "FTC_User1", false, &[("origin", TOOLS)]).await;

    assert_eq!(answer.grpc_status().code(), Code::Ok);
    assert!(header(&answer.headers, "access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_wildcard_allow_list_grants_every_origin_without_credentials() {
    let kgen = session_kgen().await;
    let app = TestApp::spawn(with_grpc_web(settings_for(&kgen.url()), &["*"])).await;

    let answer = call(
        &app,
        "FTC_User1",
        false,
        &[("origin", "http://localhost:5173")],
    )
    .await;

    assert_eq!(answer.grpc_status().code(), Code::Ok);
    assert_eq!(
        header(&answer.headers, "access-control-allow-origin"),
        Some("*")
    );
    assert!(header(&answer.headers, "access-control-allow-credentials").is_none());
}

#[tokio::test]
async fn with_grpc_web_off_a_grpc_web_request_is_refused_with_415_and_never_reaches_kgen() {
    let kgen = session_kgen().await;
    let app = TestApp::with_upstream(&kgen).await;

    for text in [false, true] {
        let answer = call(&app, "FTC_User1", text, &[("origin", TOOLS)]).await;

        assert_eq!(answer.status, 415, "unsupported media type");
        assert!(answer.messages.is_empty() && answer.trailers.is_none());
        assert_eq!(header(&answer.headers, "grpc-status"), Some("12"));
        assert!(header(&answer.headers, "access-control-allow-origin").is_none());
    }
    assert!(kgen.received().is_empty(), "not served as a call");
    // Native gRPC is unaffected.
    app.create_session("FTC_User1").await.expect("native call");
}

#[tokio::test]
async fn native_grpc_still_works_on_the_same_port_with_grpc_web_on() {
    let kgen = session_kgen().await;
    let app = TestApp::spawn(with_grpc_web(settings_for(&kgen.url()), &[TOOLS])).await;

    let session = app.create_session("FTC_User1").await.expect("native call");
    let raw = app
        .raw_client()
        .create_session(CreateSessionRequest {
            user_id: "FTC_User1".into(),
        })
        .await
        .expect("native call over a plain HTTP/2 connection");
    let web = call(&app, "FTC_User1", false, &[]).await;

    assert_eq!(session.session_id, "3ab35108-1902-4a1f-4382998f305d");
    assert_eq!(raw.into_inner(), session);
    assert_eq!(web.session(), session);
    let status = app.create_session(" ").await.expect_err("invalid");
    assert_status(&status, Code::InvalidArgument, "INVALID_USER_ID");
}

#[tokio::test]
async fn grpc_web_calls_need_the_caller_token_like_native_calls() {
    let kgen = session_kgen().await;
    let tokens = std::env::temp_dir().join(format!(
        "kgen-grpc-web-tokens-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::write(&tokens, "browser-tools:tok-web-1\n").unwrap();
    let cli = <Cli as clap::Parser>::try_parse_from([
        "kgen-gateway",
        "--client-id",
        "test-client",
        "--upstream-url",
        &kgen.url(),
        "--caller-tokens-file",
        tokens.to_str().unwrap(),
        "--grpc-web",
        "--grpc-web-allowed-origins",
        TOOLS,
    ])
    .expect("valid flags");
    let settings = cli
        .gateway
        .into_settings(Some(CLIENT_SECRET.to_owned()))
        .expect("valid settings");
    let app = TestApp::spawn(settings).await;

    let refused = call(
        &app,
        "FTC_User1",
        false,
        &[("authorization", "Bearer tok-nope")],
    )
    .await;
    let accepted = call(
        &app,
        "FTC_User1",
        false,
        &[("authorization", "Bearer tok-web-1")],
    )
    .await;
    let _ = std::fs::remove_file(&tokens);

    assert_status(
        &refused.grpc_status(),
        Code::Unauthenticated,
        "CALLER_UNAUTHENTICATED",
    );
    assert_eq!(accepted.grpc_status().code(), Code::Ok);
    assert_eq!(accepted.session().user_id, "FTC_User1");
    assert_eq!(
        kgen.received().len(),
        1,
        "only the authenticated call reached KGeN"
    );
}

#[tokio::test]
async fn grpc_web_calls_honour_grpc_timeout_with_the_gateways_own_deadline_exceeded() {
    let kgen = FakeKgen::start().await;
    let app = TestApp::spawn(with_grpc_web(
        single_attempt(settings_for(&kgen.url())),
        &[],
    ))
    .await;

    let started = Instant::now();
    let answer = call(&app, "fault:delay:5000", false, &[("grpc-timeout", "200m")]).await;

    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_status(
        &answer.grpc_status(),
        Code::DeadlineExceeded,
        "DEADLINE_EXCEEDED",
    );
}

#[tokio::test]
async fn grpc_web_calls_are_counted_in_the_metrics_and_echo_the_request_id() {
    let kgen = session_kgen().await;
    let app = TestApp::spawn(with_grpc_web(settings_for(&kgen.url()), &[])).await;

    let ok = call(&app, "FTC_User1", false, &[("x-request-id", "web-req-1")]).await;
    let invalid = call(&app, " ", true, &[]).await;

    assert_eq!(header(&ok.headers, "x-request-id"), Some("web-req-1"));
    assert!(header(&invalid.headers, "x-request-id").is_some_and(|id| !id.is_empty()));
    let received = &kgen.received()[0];
    assert_eq!(
        received
            .headers
            .get("x-request-id")
            .map(|v| v.to_str().unwrap()),
        Some("web-req-1"),
        "the id goes upstream too"
    );
    assert_one_ok_and_one_invalid_create_session_counted(&app).await;
}
