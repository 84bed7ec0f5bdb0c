//! Metrics scraped after real calls, probes, request ids and trace context, and logs that never leak.

use std::time::Duration;

use kgen_gateway::proto::{session_service_client::SessionServiceClient, CreateSessionRequest};
use tonic::{Code, Request};

use crate::support::{
    app::{settings_for, single_attempt, TestApp, CLIENT_ID, CLIENT_SECRET},
    fake_kgen::{Answer, FakeKgen},
    process::RunningBinary,
    upstreams::{answer_with_things_to_leak, example_kgen, MUST_NOT_LEAK},
    wait::bounded,
};

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_real_calls_by_method_code_and_upstream_status() {
    let kgen = example_kgen().await;
    let app = TestApp::spawn(single_attempt(settings_for(&kgen.url()))).await;

    app.create_session("good").await.expect("ok");
    app.create_session("good").await.expect("ok");
    app.create_session("fault:status:503")
        .await
        .expect_err("503");
    app.create_session("").await.expect_err("invalid");

    let (status, text) = app.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let labels = r#"grpc_type="unary",grpc_service="kgen.session.v1.SessionService",grpc_method="CreateSession""#;
    assert_eq!(
        metric(&text, &format!("grpc_server_started_total{{{labels}}}")),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            &format!("grpc_server_handled_total{{{labels},grpc_code=\"OK\"}}")
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            &format!("grpc_server_handled_total{{{labels},grpc_code=\"Unavailable\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            &format!("grpc_server_handled_total{{{labels},grpc_code=\"InvalidArgument\"}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            &format!("grpc_server_handling_seconds_count{{{labels}}}")
        ),
        Some(4.0)
    );
    assert_eq!(
        metric(&text, "kgen_upstream_responses_total{status=\"2xx\"}"),
        Some(2.0)
    );
    assert_eq!(
        metric(&text, "kgen_upstream_responses_total{status=\"503\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "kgen_upstream_request_duration_seconds_count"),
        Some(3.0)
    );
    assert_eq!(metric(&text, "kgen_upstream_in_flight"), Some(0.0));
    assert_eq!(metric(&text, "kgen_upstream_breaker_state"), Some(0.0));
    assert!(text.contains("kgen_gateway_build{version=\""), "build info");
}

#[tokio::test]
async fn retries_and_an_open_breaker_show_in_the_metrics() {
    let kgen = FakeKgen::start().await;
    kgen.answer(Answer::empty(503));
    let app = TestApp::with_upstream(&kgen).await; // 3 attempts, breaker after 5 failures

    for _ in 0..3 {
        let _ = app.create_session("u").await;
    }

    let (_, text) = app.admin_get("/metrics").await;
    assert!(
        metric(&text, "kgen_upstream_retries_total").is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "kgen_upstream_breaker_state"),
        Some(1.0),
        "open after 5 failures"
    );
}

#[tokio::test]
async fn probes_answer_on_the_admin_listener() {
    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;

    assert_eq!(app.admin_get("/healthz").await.0, 200);
    assert_eq!(app.admin_get("/readyz").await.0, 200);
    assert_eq!(app.admin_get("/nope").await.0, 404);
}

#[tokio::test]
async fn readiness_turns_503_while_the_gateway_drains() {
    let kgen = example_kgen().await;
    let mut settings = settings_for(&kgen.url());
    settings.shutdown_grace = Duration::from_secs(5);
    let mut app = TestApp::spawn(settings).await;
    let in_flight = app.spawn_call("fault:delay:800");
    kgen.until_called().await;

    let _ = app.shutdown_handle().send(());
    let mut saw_not_ready = false;
    for _ in 0..100 {
        if app.admin_get("/readyz").await.0 == 503 {
            saw_not_ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(saw_not_ready, "/readyz turned 503 during the drain");
    in_flight
        .await
        .unwrap()
        .expect("the in-flight call still completes");
}

#[tokio::test]
async fn the_callers_request_id_and_trace_context_travel_upstream_and_back() {
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let kgen = example_kgen().await;
    let app = TestApp::with_upstream(&kgen).await;

    let mut request = Request::new(CreateSessionRequest {
        user_id: "FTC_User1".into(),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "req-abc-123".parse().unwrap());
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    request
        .metadata_mut()
        .insert("tracestate", "vendor=opaque".parse().unwrap());
    let response = app
        .client
        .clone()
        .create_session(request)
        .await
        .expect("session");

    assert_eq!(
        response.metadata().get("x-request-id").unwrap(),
        "req-abc-123"
    );
    let received = kgen.received();
    assert_eq!(received.len(), 1, "one request");
    for (name, value) in [
        ("x-request-id", "req-abc-123"),
        ("traceparent", traceparent),
        ("tracestate", "vendor=opaque"),
    ] {
        assert_eq!(
            received[0].header(name),
            Some(value),
            "{name} travels upstream"
        );
    }
}

#[tokio::test]
async fn a_request_id_is_generated_when_absent_and_returned_on_errors_too() {
    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;

    let status = app
        .create_session("fault:status:404")
        .await
        .expect_err("404");

    assert_eq!(status.code(), Code::NotFound);
    let id = status
        .metadata()
        .get("x-request-id")
        .expect("x-request-id on an error")
        .to_str()
        .unwrap();
    assert_eq!(id.len(), 36, "a fresh UUID: {id}");
    let received = kgen.received();
    assert_eq!(received.len(), 1, "one request");
    let sent = &received[0];
    assert_eq!(
        sent.headers.get("x-request-id").unwrap().to_str().unwrap(),
        id,
        "the same id went upstream"
    );
}

/// Runs the real binary with JSON debug logs against `kgen`, makes `calls`, stops it, returns its log lines.
async fn logs_of_binary(kgen: &FakeKgen, calls: &[(&str, &str)]) -> Vec<String> {
    logs_of_binary_at("debug", kgen, calls).await
}

/// [`logs_of_binary`] with `RUST_LOG=rust_log`.
async fn logs_of_binary_at(rust_log: &str, kgen: &FakeKgen, calls: &[(&str, &str)]) -> Vec<String> {
    let uri = kgen.url();
    let gateway = RunningBinary::gateway(
        &[
            "--upstream-url",
            &uri,
            "--client-id",
            CLIENT_ID,
            "--upstream-max-attempts",
            "1",
        ],
        &[
            ("KGEN_CLIENT_SECRET", CLIENT_SECRET),
            ("RUST_LOG", rust_log),
        ],
    )
    .await;
    let mut client = bounded(
        "a connection to the binary",
        SessionServiceClient::connect(format!("http://{}", gateway.addr)),
    )
    .await
    .unwrap();
    for (user_id, request_id) in calls {
        let mut request = Request::new(CreateSessionRequest {
            user_id: (*user_id).into(),
        });
        request
            .metadata_mut()
            .insert("x-request-id", request_id.parse().unwrap());
        let _ = bounded(
            "the binary to answer CreateSession",
            client.create_session(request),
        )
        .await;
    }
    let (code, logs) = gateway.stop().await;
    assert_eq!(code, Some(0));
    logs
}

#[tokio::test]
async fn logs_of_a_good_and_a_failed_call_never_hold_secrets_tokens_or_contact_details() {
    let kgen = FakeKgen::start().await;
    answer_with_things_to_leak(&kgen);

    let logs = logs_of_binary(
        &kgen,
        &[("good-user", "req-good-1"), ("bad-user", "req-bad-2")],
    )
    .await;
    let all = logs.join("\n");

    for secret in MUST_NOT_LEAK {
        assert!(
            !all.contains(secret),
            "{secret} leaked into the logs:\n{all}"
        );
    }
    // The logs are still useful: each call's lines carry its request id, user, code and attempts.
    let good: Vec<_> = logs.iter().filter(|l| l.contains("req-good-1")).collect();
    assert!(
        good.iter().any(|l| l.contains("session created")
            && l.contains("good-user")
            && l.contains("\"grpc_code\":\"OK\"")),
        "{good:?}"
    );
    let bad: Vec<_> = logs.iter().filter(|l| l.contains("req-bad-2")).collect();
    assert!(
        bad.iter().any(|l| l.contains("call failed")
            && l.contains("bad-user")
            && l.contains("UPSTREAM_INTERNAL_ERROR")
            && l.contains("\"upstream_status\":500")),
        "{bad:?}"
    );
}

#[tokio::test]
async fn a_run_of_404s_from_kgen_is_one_warning_at_info_that_points_at_the_upstream_url() {
    let kgen = FakeKgen::start().await;
    let calls = [
        ("fault:status:404", "nf-1"),
        ("fault:status:404", "nf-2"),
        ("fault:status:404", "nf-3"),
    ];

    let logs = logs_of_binary_at("info", &kgen, &calls).await;

    let warnings: Vec<&String> = logs
        .iter()
        .filter(|line| line.contains("404 Not Found on its session endpoint"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning for the run: {logs:#?}");
    assert!(warnings[0].contains(r#""level":"WARN""#), "{}", warnings[0]);
    assert!(warnings[0].contains("--upstream-url"), "{}", warnings[0]);
}

#[tokio::test]
async fn a_retried_call_names_kgens_status_and_each_field_once_in_the_text_log_line_people_read() {
    let kgen = FakeKgen::start().await;
    let uri = kgen.url();
    let gateway = RunningBinary::gateway_with_text_logs(
        &["--upstream-url", &uri, "--client-id", CLIENT_ID],
        &[("KGEN_CLIENT_SECRET", CLIENT_SECRET)],
    )
    .await;
    let mut client = bounded(
        "a connection to the binary",
        SessionServiceClient::connect(format!("http://{}", gateway.addr)),
    )
    .await
    .unwrap();

    // 408 is retried by default: three attempts, each answered 408.
    let status = bounded(
        "the binary to answer CreateSession",
        client.create_session(CreateSessionRequest {
            user_id: "fault:status:408".into(),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(kgen.received().len(), 3, "three attempts");

    let (code, logs) = gateway.stop().await;
    assert_eq!(code, Some(0));
    let failed: Vec<&String> = logs.iter().filter(|l| l.contains("call failed")).collect();
    assert_eq!(failed.len(), 1, "{logs:#?}");
    assert_eq!(
        failed[0].matches("upstream_status=").count(),
        1,
        "{}",
        failed[0]
    );
    assert!(failed[0].contains("upstream_status=408"), "{}", failed[0]);
    for field in ["attempts=3", "reason=\"UPSTREAM_TIMEOUT\""] {
        assert_eq!(failed[0].matches(field).count(), 1, "{}", failed[0]);
    }
}
