//! Serving TLS and mTLS, caller authentication, and rotating secrets without a restart.

use std::time::Duration;

use kgen_gateway::proto::{session_service_client::SessionServiceClient, CreateSessionRequest};
use serde_json::json;
use tonic::{
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
    Code, Request,
};
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

use crate::support::{
    app::{settings_from, TestApp, CLIENT_ID},
    assertions::assert_status,
    fake_kgen::{Answer, FakeKgen},
    files::Scratch,
    process::RunningBinary,
    upstreams::example_kgen,
    wait::{bounded, within_5s},
};

struct Pki {
    ca_pem: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let issue = |names: Vec<String>| {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = issue(vec!["localhost".into()]);
    let (client_cert, client_key) = issue(vec!["game-backend".into()]);
    Pki {
        ca_pem: ca.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

/// A gateway in front of `kgen` serving TLS with `pki`'s server certificate (written into `scratch`), plus `extra`
/// arguments.
async fn tls_gateway(kgen: &FakeKgen, pki: &Pki, scratch: &Scratch, extra: &[&str]) -> TestApp {
    let cert = scratch.write("tls.crt", &pki.server_cert);
    let key = scratch.write("tls.key", &pki.server_key);
    let url = kgen.url();
    let mut args = vec![
        "--client-id",
        CLIENT_ID,
        "--upstream-url",
        &url,
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    TestApp::spawn(settings_from(&args)).await
}

async fn tls_client(
    app: &TestApp,
    pki: &Pki,
    with_identity: bool,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    if with_identity {
        tls = tls.identity(Identity::from_pem(&pki.client_cert, &pki.client_key));
    }
    let endpoint = Channel::from_shared(format!("https://{}", app.addr))
        .unwrap()
        .tls_config(tls)?;
    bounded("a TLS connection to the gateway", endpoint.connect()).await
}

#[tokio::test]
async fn the_gateway_serves_grpc_over_tls() {
    let (kgen, pki, scratch) = (example_kgen().await, pki(), Scratch::new("tls"));
    let app = tls_gateway(&kgen, &pki, &scratch, &[]).await;

    let channel = tls_client(&app, &pki, false).await.expect("TLS handshake");
    let session = SessionServiceClient::new(channel)
        .create_session(CreateSessionRequest {
            user_id: "FTC_User1".into(),
        })
        .await
        .expect("session over TLS");
    assert_eq!(session.into_inner().user_id, "FTC_User1");
    assert!(
        app.create_session("FTC_User1").await.is_err(),
        "plaintext is refused on a TLS listener"
    );
}

#[tokio::test]
async fn with_a_client_ca_only_callers_presenting_a_certificate_get_in() {
    let (kgen, pki, scratch) = (example_kgen().await, pki(), Scratch::new("mtls"));
    let ca = scratch.write("client-ca.crt", &pki.ca_pem);
    let app = tls_gateway(
        &kgen,
        &pki,
        &scratch,
        &["--tls-client-ca", ca.to_str().unwrap()],
    )
    .await;

    let anonymous = match tls_client(&app, &pki, false).await {
        Err(_) => None,
        Ok(channel) => Some(
            SessionServiceClient::new(channel)
                .create_session(CreateSessionRequest {
                    user_id: "u".into(),
                })
                .await,
        ),
    };
    assert!(
        anonymous.is_none_or(|call| call.is_err()),
        "a caller without a client certificate is refused"
    );

    let channel = tls_client(&app, &pki, true).await.expect("mTLS handshake");
    SessionServiceClient::new(channel)
        .create_session(CreateSessionRequest {
            user_id: "u".into(),
        })
        .await
        .expect("a caller with a certificate from the client CA gets in");
}

fn bearer(user_id: &str, token: Option<&str>) -> Request<CreateSessionRequest> {
    let mut request = Request::new(CreateSessionRequest {
        user_id: user_id.into(),
    });
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

#[tokio::test]
async fn caller_tokens_gate_sessions_but_not_health_or_reflection() {
    let (kgen, scratch) = (example_kgen().await, Scratch::new("auth"));
    let tokens = scratch.write(
        "callers",
        "# who may call\nbilling:tok-billing-1\n\nmatchmaker:tok-match-2\n",
    );
    let settings = settings_from(&[
        "--client-id",
        CLIENT_ID,
        "--upstream-url",
        &kgen.url(),
        "--caller-tokens-file",
        tokens.to_str().unwrap(),
    ]);
    let app = TestApp::spawn(settings).await;
    let mut client = app.client.clone();

    for (token, why) in [
        (None, "no token"),
        (Some("tok-wrong"), "unknown token"),
        (Some("tok-billing"), "prefix"),
    ] {
        let status = client
            .create_session(bearer("u", token))
            .await
            .expect_err(why);
        assert_status(&status, Code::Unauthenticated, "CALLER_UNAUTHENTICATED");
        assert!(
            !status.message().contains("tok-"),
            "{why}: {}",
            status.message()
        );
    }
    assert!(kgen.received().is_empty(), "refused calls never reach KGeN");

    let session = client
        .create_session(bearer("u", Some("tok-billing-1")))
        .await
        .expect("billing may call");
    assert_eq!(session.into_inner().user_id, "FTC_User1");
    client
        .create_session(bearer("u", Some("tok-match-2")))
        .await
        .expect("matchmaker may call");

    let mut health = HealthClient::new(crate::support::app::channel(app.addr).await);
    health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health needs no token");

    let (_, metrics) = app.admin_get("/metrics").await;
    assert!(
        metrics.contains(r#"kgen_caller_calls_total{caller="billing",grpc_code="OK"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"kgen_caller_calls_total{caller="matchmaker",grpc_code="OK"} 1"#));
    assert!(!metrics.contains("tok-"), "tokens never reach metrics");
}

#[tokio::test]
async fn a_rotated_client_secret_reaches_the_upstream_without_a_restart_or_dropped_calls() {
    let scratch = Scratch::new("rotate");
    let secret_file = scratch.write("client-secret", "secret-one\n");
    let kgen = FakeKgen::start().await;
    // A session naming the secret it was asked with.
    kgen.answer_with(|request| match request.header("x-client-secret") {
        Some(secret @ ("secret-one" | "secret-two")) => {
            Answer::json(200, json!({ "session_id": format!("via-{secret}") }))
        }
        _ => Answer::json(404, json!({ "message": "no such secret" })),
    });
    let settings = settings_from(&[
        "--client-id",
        CLIENT_ID,
        "--upstream-url",
        &kgen.url(),
        "--client-secret-file",
        secret_file.to_str().unwrap(),
    ]);
    let app = TestApp::spawn(settings).await;
    assert_eq!(
        app.create_session("u").await.unwrap().session_id,
        "via-secret-one"
    );

    // A call in flight while the secret rotates finishes with the secret it started with.
    let in_flight = {
        let mut client = app.client.clone();
        tokio::spawn(async move { client.create_session(bearer("fault:delay:300", None)).await })
    };
    // Rotated only once that call has reached KGeN with its secret (before, it could start after the rotation).
    kgen.until_requested("fault:delay:300").await;
    scratch.write("client-secret", "secret-two\n");
    assert!(
        within_5s(|| async {
            app.create_session("u")
                .await
                .is_ok_and(|s| s.session_id == "via-secret-two")
        })
        .await,
        "the new secret is used within 5 s"
    );
    assert_eq!(
        in_flight
            .await
            .unwrap()
            .expect("not dropped")
            .into_inner()
            .session_id,
        "via-secret-one"
    );

    // A bad new file is ignored: the last good secret stays in use.
    scratch.write("client-secret", "   \n");
    tokio::time::sleep(Duration::from_millis(1500)).await; // more than one reload interval
    assert_eq!(
        app.create_session("u").await.unwrap().session_id,
        "via-secret-two"
    );
}

#[tokio::test]
async fn rotated_caller_tokens_take_effect_without_a_restart() {
    let (kgen, scratch) = (example_kgen().await, Scratch::new("rotate-tokens"));
    let tokens = scratch.write("callers", "billing:tok-old\n");
    let settings = settings_from(&[
        "--client-id",
        CLIENT_ID,
        "--upstream-url",
        &kgen.url(),
        "--caller-tokens-file",
        tokens.to_str().unwrap(),
    ]);
    let app = TestApp::spawn(settings).await;
    let client = app.client.clone();
    client
        .clone()
        .create_session(bearer("u", Some("tok-old")))
        .await
        .expect("old token works");

    scratch.write("callers", "billing:tok-new\n");
    assert!(
        within_5s(|| {
            let mut client = client.clone();
            async move {
                client
                    .create_session(bearer("u", Some("tok-new")))
                    .await
                    .is_ok()
            }
        })
        .await,
        "the new token is accepted within 5 s"
    );
    let status = client
        .clone()
        .create_session(bearer("u", Some("tok-old")))
        .await
        .expect_err("revoked");
    assert_status(&status, Code::Unauthenticated, "CALLER_UNAUTHENTICATED");

    scratch.write("callers", "this line has no separator\n");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client
        .clone()
        .create_session(bearer("u", Some("tok-new")))
        .await
        .expect("a bad file keeps the last good tokens");
}

#[tokio::test]
async fn a_refused_tls_handshake_is_one_warning_naming_the_peer_and_the_reason_and_start_up_names_mtls(
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (pki, scratch) = (pki(), Scratch::new("tls-warn"));
    let cert = scratch.write("tls.crt", &pki.server_cert);
    let key = scratch.write("tls.key", &pki.server_key);
    let ca = scratch.write("client-ca.crt", &pki.ca_pem);
    let gateway = RunningBinary::gateway(
        &[
            "--sandbox",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--tls-client-ca",
            ca.to_str().unwrap(),
        ],
        &[("RUST_LOG", "info")],
    )
    .await;
    let serving = gateway.logs.last().cloned().unwrap_or_default();

    // The commonest mistake: a plaintext gRPC client on the TLS port, twice.
    for _ in 0..2 {
        let mut socket = bounded(
            "a TCP connection",
            tokio::net::TcpStream::connect(gateway.addr),
        )
        .await
        .unwrap();
        socket
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 64];
        let _ = bounded("the gateway to end the handshake", socket.read(&mut answer)).await;
    }
    let (code, logs) = gateway.stop().await;

    assert_eq!(code, Some(0));
    assert!(serving.contains(r#""transport":"mTLS""#), "{serving}");
    let warnings: Vec<&String> = logs
        .iter()
        .filter(|line| line.contains("TLS handshake failed"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning for the run: {logs:#?}");
    for expected in [r#""level":"WARN""#, r#""peer":"127.0.0.1:"#, r#""error":""#] {
        assert!(
            warnings[0].contains(expected),
            "{expected}: {}",
            warnings[0]
        );
    }
}

#[tokio::test]
async fn connect_calls_are_served_over_tls_on_http1_and_h2_as_alpn_chooses() {
    let (kgen, pki, scratch) = (example_kgen().await, pki(), Scratch::new("tls-connect"));
    let app = tls_gateway(&kgen, &pki, &scratch, &[]).await;
    let client = |http1: bool| {
        let builder = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
            .resolve("localhost", app.addr);
        if http1 { builder.http1_only() } else { builder }
            .build()
            .unwrap()
    };

    for (http1, version) in [
        (true, reqwest::Version::HTTP_11),
        (false, reqwest::Version::HTTP_2),
    ] {
        let answer = bounded(
            "a Connect answer over TLS",
            client(http1)
                .post(format!(
                    "https://localhost:{}/kgen.session.v1.SessionService/CreateSession",
                    app.addr.port()
                ))
                .header("content-type", "application/json")
                .body(json!({ "user_id": "FTC_User1" }).to_string())
                .send(),
        )
        .await
        .expect("a TLS connection");

        assert_eq!(answer.version(), version);
        assert_eq!(answer.status(), 200);
        let session: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(session["userId"], "FTC_User1");
    }
}
