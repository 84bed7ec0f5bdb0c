//! The fault matrix: each upstream fault gets the exact code and reason, and the same gateway still answers a
//! healthy call afterwards.

use std::{sync::Arc, time::Duration};

use kgen_gateway::{Cli, Settings};
use tokio_rustls::{
    rustls::{self, pki_types::PrivateKeyDer},
    TlsAcceptor,
};
use tonic::Code;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};
use tonic_types::StatusExt;

use crate::support::{
    app::{channel, settings_for, TestApp, CLIENT_SECRET},
    assertions::{assert_status, upstream_status_of},
    fake_kgen::{FakeKgen, HeldRequest},
    upstreams::DeadPort,
};

const HEALTHY: &str = "healthy-player";

async fn gateway_for(upstream: &FakeKgen) -> TestApp {
    TestApp::spawn(settings_for(&upstream.url())).await
}

#[track_caller]
fn attempts_of(details: &tonic_types::ErrorDetails) -> Option<String> {
    details
        .error_info()
        .and_then(|i| i.metadata.get("attempts").cloned())
}

async fn assert_still_healthy(app: &TestApp) {
    let session = app
        .create_session(HEALTHY)
        .await
        .expect("a healthy call succeeds after the fault");
    assert_eq!(session.session_id, format!("session-of-{HEALTHY}"));
}

#[tokio::test]
async fn refused_connection_is_unreachable_after_three_attempts_then_recovers() {
    let dead = DeadPort::new();
    let app = TestApp::spawn(settings_for(&dead.url())).await;

    let status = app
        .create_session(HEALTHY)
        .await
        .expect_err("nothing listens");
    let details = assert_status(&status, Code::Unavailable, "UPSTREAM_UNREACHABLE");
    assert_eq!(
        attempts_of(&details).as_deref(),
        Some("3"),
        "refused connections are retried"
    );

    let _upstream = FakeKgen::start_at(dead.release()).await; // KGeN comes back on the same address
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn connection_reset_mid_headers_is_unreachable() {
    let upstream = FakeKgen::start().await;
    let app = gateway_for(&upstream).await;

    let status = app
        .create_session("fault:reset-headers")
        .await
        .expect_err("reset");
    let details = assert_status(&status, Code::Unavailable, "UPSTREAM_UNREACHABLE");
    // KGeN read the request before the reset: it may have created the session, so it is not retried.
    assert_eq!(attempts_of(&details).as_deref(), Some("1"));
    assert_eq!(upstream.requests_for("fault:reset-headers"), 1);
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn connection_reset_mid_body_is_unreachable() {
    let upstream = FakeKgen::start().await;
    let app = gateway_for(&upstream).await;

    let status = app
        .create_session("fault:reset-body")
        .await
        .expect_err("reset");
    assert_status(&status, Code::Unavailable, "UPSTREAM_UNREACHABLE");
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn truncated_body_shorter_than_its_content_length_is_unreachable() {
    let upstream = FakeKgen::start().await;
    let app = gateway_for(&upstream).await;

    let status = app
        .create_session("fault:truncated")
        .await
        .expect_err("fault:truncated");
    assert_status(&status, Code::Unavailable, "UPSTREAM_UNREACHABLE");
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn slow_headers_past_the_deadline_are_deadline_exceeded() {
    let upstream = FakeKgen::start().await;
    let app = gateway_for(&upstream).await;

    let status = app
        .create_session_within("fault:slow-headers", Duration::from_millis(300))
        .await
        .expect_err("slow");
    assert_status(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn a_body_trickling_past_the_deadline_is_deadline_exceeded() {
    let upstream = FakeKgen::start().await;
    let app = gateway_for(&upstream).await;

    let status = app
        .create_session_within("fault:trickle", Duration::from_millis(400))
        .await
        .expect_err("fault:trickle");
    assert_status(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn a_burst_of_5xx_that_recovers_is_retried_into_success() {
    let upstream = FakeKgen::start().await;
    let app = gateway_for(&upstream).await;

    let session = app
        .create_session("fault:flaky:2:burst")
        .await
        .expect("third attempt succeeds");
    assert_eq!(session.user_id, "fault:flaky:2:burst");
    assert_eq!(upstream.requests_for("burst"), 3, "two 503s, then the 200");

    let status = app
        .create_session("fault:flaky:5:longer")
        .await
        .expect_err("outlasts the attempts");
    let details = assert_status(&status, Code::Unavailable, "UPSTREAM_UNAVAILABLE");
    assert_eq!(attempts_of(&details).as_deref(), Some("3"));
    assert_eq!(upstream.requests_for("longer"), 3);
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn a_429_whose_retry_after_outlasts_the_deadline_is_not_retried() {
    let upstream = FakeKgen::start().await;
    let app = gateway_for(&upstream).await;

    let status = app
        .create_session_within("fault:status:429:30", Duration::from_secs(5))
        .await
        .expect_err("rate limited");
    let details = assert_status(&status, Code::ResourceExhausted, "UPSTREAM_RATE_LIMITED");
    assert_eq!(
        details.retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(30))
    );
    assert_eq!(attempts_of(&details).as_deref(), Some("1"));
    assert_eq!(upstream.requests_for("fault:status:429:30"), 1);
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn non_retryable_statuses_are_sent_once() {
    let upstream = FakeKgen::start().await;
    let app = gateway_for(&upstream).await;

    for (user_id, code, reason) in [
        (
            "fault:status:400",
            Code::InvalidArgument,
            "UPSTREAM_REJECTED_REQUEST",
        ),
        (
            "fault:status:401",
            Code::Internal,
            "UPSTREAM_CREDENTIALS_REJECTED",
        ),
        ("fault:status:404", Code::NotFound, "UPSTREAM_NOT_FOUND"),
        (
            "fault:status:422",
            Code::InvalidArgument,
            "UPSTREAM_REJECTED_REQUEST",
        ),
    ] {
        let status = app.create_session(user_id).await.expect_err("rejected");
        let details = assert_status(&status, code, reason);
        assert_eq!(attempts_of(&details).as_deref(), Some("1"), "{user_id}");
        assert_eq!(upstream.requests_for(user_id), 1, "{user_id}");
    }
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn an_html_error_page_with_200_is_a_bad_response() {
    let upstream = FakeKgen::start().await;
    let app = gateway_for(&upstream).await;

    let status = app
        .create_session("fault:malformed")
        .await
        .expect_err("html");
    let details = assert_status(&status, Code::Internal, "UPSTREAM_BAD_RESPONSE");
    assert_eq!(upstream_status_of(&details), None);
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let upstream = FakeKgen::start().await;
    let app = gateway_for(&upstream).await;

    let status = app
        .create_session("fault:oversized")
        .await
        .expect_err("too large");
    assert_status(&status, Code::Internal, "UPSTREAM_RESPONSE_TOO_LARGE");
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn an_invalid_utf8_body_is_a_bad_response() {
    let upstream = FakeKgen::start().await;
    let app = gateway_for(&upstream).await;

    let status = app
        .create_session("fault:invalid-utf8")
        .await
        .expect_err("not UTF-8");
    assert_status(&status, Code::Internal, "UPSTREAM_BAD_RESPONSE");
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn deeply_nested_json_is_a_bad_response_not_a_stack_overflow() {
    let upstream = FakeKgen::start().await;
    let app = gateway_for(&upstream).await;

    let status = app
        .create_session("fault:nested")
        .await
        .expect_err("too deep");
    assert_status(&status, Code::Internal, "UPSTREAM_BAD_RESPONSE");
    assert_still_healthy(&app).await;
}

/// A CA, and a `localhost` certificate it signed, served by a TLS acceptor.
struct Pki {
    ca_pem: String,
    acceptor: TlsAcceptor,
}

fn pki(self_signed: bool) -> Pki {
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    let (leaf, ca_pem) = if self_signed {
        let leaf = leaf_params.self_signed(&leaf_key).unwrap();
        let pem = leaf.pem();
        (leaf, pem)
    } else {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        (leaf_params.signed_by(&leaf_key, &ca).unwrap(), ca.pem())
    };
    let key = PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    Pki {
        ca_pem,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    }
}

#[tokio::test]
async fn a_self_signed_upstream_certificate_is_rejected_as_a_tls_error() {
    let upstream = FakeKgen::start_tls(pki(true).acceptor).await;
    let app = TestApp::spawn(settings_for(&upstream.https_url())).await;

    let status = app
        .create_session(HEALTHY)
        .await
        .expect_err("untrusted certificate");
    let details = assert_status(&status, Code::Unavailable, "UPSTREAM_TLS_ERROR");
    assert_eq!(
        attempts_of(&details).as_deref(),
        Some("1"),
        "TLS failures are not retried"
    );
    assert_eq!(
        upstream.requests_for(HEALTHY),
        0,
        "no request crossed the failed handshake"
    );

    // The gateway itself stays healthy: it answers health checks and input errors as before.
    let mut health = HealthClient::new(channel(app.addr).await);
    let reply = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.status(), ServingStatus::Serving);
    let invalid = app.create_session("").await.expect_err("still validates");
    assert_status(&invalid, Code::InvalidArgument, "INVALID_USER_ID");
}

#[tokio::test]
async fn a_private_ca_passed_with_upstream_ca_file_is_trusted() {
    let pki = pki(false);
    let upstream = FakeKgen::start_tls(pki.acceptor).await;
    let ca_file = std::env::temp_dir().join(format!(
        "kgen-test-ca-{}-{}.pem",
        std::process::id(),
        upstream.addr.port()
    ));
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let cli = <Cli as clap::Parser>::try_parse_from([
        "kgen-gateway",
        "--client-id",
        "test-client",
        "--upstream-url",
        &upstream.https_url(),
        "--upstream-ca-file",
        ca_file.to_str().unwrap(),
    ])
    .unwrap();
    let settings: Settings = cli
        .gateway
        .into_settings(Some(CLIENT_SECRET.to_owned()))
        .expect("valid settings");
    let _ = std::fs::remove_file(&ca_file);
    let app = TestApp::spawn(settings).await;

    assert_still_healthy(&app).await;
    assert_eq!(upstream.requests_for(HEALTHY), 1);
}

#[tokio::test]
async fn the_circuit_opens_on_a_run_of_failures_fails_fast_then_closes_after_probes() {
    let upstream = FakeKgen::start().await;
    let mut settings = settings_for(&upstream.url());
    settings.resilience.max_attempts = 1;
    settings.resilience.breaker.failure_threshold = 3;
    settings.resilience.breaker.cool_down = Duration::from_millis(300);
    settings.resilience.breaker.probes = 1;
    let app = TestApp::spawn(settings).await;

    for _ in 0..3 {
        let status = app
            .create_session("fault:status:503")
            .await
            .expect_err("503");
        assert_status(&status, Code::Unavailable, "UPSTREAM_UNAVAILABLE");
    }
    let open = app.create_session(HEALTHY).await.expect_err("breaker open");
    let details = assert_status(&open, Code::Unavailable, "UPSTREAM_CIRCUIT_OPEN");
    let retry_in = details
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo");
    assert!(retry_in <= Duration::from_millis(300), "{retry_in:?}");
    assert_eq!(
        upstream.requests_for(HEALTHY),
        0,
        "failing fast: KGeN was not called"
    );

    tokio::time::sleep(retry_in + Duration::from_millis(20)).await; // the cool-down itself is what is tested
    assert_still_healthy(&app).await; // the probe
    assert_still_healthy(&app).await; // closed again
    assert_eq!(upstream.requests_for(HEALTHY), 2);
}

#[tokio::test]
async fn with_the_defaults_a_dead_upstream_trips_the_breaker_within_20_calls() {
    let dead = DeadPort::new();
    let app = TestApp::spawn(settings_for(&dead.url())).await;

    let mut tripped_at = None;
    for call in 1..=20 {
        let status = app
            .create_session(HEALTHY)
            .await
            .expect_err("dead upstream");
        let reason = status
            .check_error_details()
            .unwrap()
            .error_info()
            .unwrap()
            .reason
            .clone();
        if reason == "UPSTREAM_CIRCUIT_OPEN" {
            tripped_at = Some(call);
            break;
        }
        assert_eq!(reason, "UPSTREAM_UNREACHABLE");
    }
    let tripped_at = tripped_at.expect("the breaker opened within 20 calls");
    assert!(tripped_at <= 20);
}

#[tokio::test]
async fn overload_is_answered_at_once_while_admitted_calls_keep_succeeding() {
    let mut upstream = FakeKgen::start().await;
    let mut settings = settings_for(&upstream.url());
    settings.resilience.max_concurrent_upstream = 3;
    settings.resilience.queue_timeout = Duration::from_millis(50);
    let app = TestApp::spawn(settings).await;

    // Two calls hold two of the three upstream slots.
    let held: Vec<_> = (0..2)
        .map(|_| {
            let mut client = app.client.clone();
            tokio::spawn(async move {
                client
                    .create_session(kgen_gateway::proto::CreateSessionRequest {
                        user_id: "fault:hold".into(),
                    })
                    .await
            })
        })
        .collect();
    for _ in 0..2 {
        assert_eq!(
            upstream.next_held_event(Duration::from_secs(5)).await,
            Some(HeldRequest::Arrived)
        );
    }

    // A burst of ten 200 ms calls shares the one slot left: some are admitted, the rest are shed quickly.
    let started = std::time::Instant::now();
    let burst: Vec<_> = (0..10)
        .map(|_| {
            let mut client = app.client.clone();
            tokio::spawn(async move {
                client
                    .create_session(kgen_gateway::proto::CreateSessionRequest {
                        user_id: "fault:delay:200".into(),
                    })
                    .await
            })
        })
        .collect();
    let (mut ok, mut shed) = (0, 0);
    for call in burst {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(status) => {
                let details = assert_status(&status, Code::Unavailable, "OVERLOADED");
                assert!(
                    details.retry_info().is_some(),
                    "OVERLOADED carries RetryInfo"
                );
                shed += 1;
            }
        }
    }
    assert!(ok >= 1, "the free slot kept serving");
    assert!(shed >= 1, "the excess was shed");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "nothing queued without limit"
    );

    for call in held {
        call.abort();
    }
    assert_still_healthy(&app).await;
}

#[tokio::test]
async fn caller_cancellation_frees_the_upstream_connection() {
    let mut upstream = FakeKgen::start().await;
    let app = gateway_for(&upstream).await;

    let mut call = Box::pin(app.create_session("fault:hold"));
    tokio::select! {
        _ = &mut call => panic!("held calls never finish"),
        event = upstream.next_held_event(Duration::from_secs(5)) => assert_eq!(event, Some(HeldRequest::Arrived)),
    }
    drop(call);

    assert_eq!(
        upstream.next_held_event(Duration::from_secs(3)).await,
        Some(HeldRequest::Closed),
        "the upstream request was dropped"
    );
    assert_still_healthy(&app).await;
}
