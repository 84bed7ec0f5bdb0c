//! The happy path: what is sent upstream, and what comes back.

use kgen_gateway::USER_AGENT;
use prost_types::Timestamp;
use serde_json::json;

use crate::support::{
    app::{TestApp, CLIENT_ID, CLIENT_SECRET},
    assertions::assert_status,
    fake_kgen::{Answer, FakeKgen},
    upstreams::example_kgen,
};

#[tokio::test]
async fn success_mirrors_every_field_of_the_documented_response() {
    let kgen = example_kgen().await;
    let app = TestApp::with_upstream(&kgen).await;

    let s = app.create_session("FTC_User1").await.expect("session");
    let received = kgen.received();
    assert_eq!(received.len(), 1, "one request");
    assert_eq!(
        (received[0].method.as_str(), received[0].path.as_str()),
        ("POST", "/s2s/session/")
    );

    assert_eq!(s.session_id, "3ab35108-1902-4a1f-4382998f305d");
    assert_eq!(s.user_id, "FTC_User1");
    for empty in [
        &s.name,
        &s.username,
        &s.email,
        &s.device_id,
        &s.phonenumber,
        &s.date_joined,
        &s.playertag,
        &s.location,
        &s.location_name,
        &s.device_model,
        &s.screen_height,
        &s.screen_width,
        &s.os_name,
        &s.os_version,
        &s.browser_name,
        &s.indigg_wallet_address,
        &s.linked_phone,
    ] {
        assert_eq!(empty, "");
    }
    assert_eq!((s.level, s.rank), (0, 0));
    assert_eq!(s.indigg_id, None, "null stays unset");
    assert_eq!(s.third_party_client_id, "20798813");
    assert_eq!(s.third_party_client_name, "ESPORTS_PROTOCOL_CALLBREAK");
    assert_eq!(s.namespaced_third_party_user_id, "20798813#FTC_User1");
    assert_eq!(s.wallet_address, "0xexamplewallet");
    assert!(!s.is_new_user);
    assert_eq!(s.access_token, "exampleToken1");
    assert_eq!(s.refresh_token, "exampleToken2");
    assert_eq!(
        s.session_start_time,
        "2024-08-20 08:32:13.025599965 +0000 UTC"
    );
    assert_eq!(
        s.session_started_at,
        Some(Timestamp {
            seconds: 1_724_142_733,
            nanos: 25_599_965
        })
    );
}

#[tokio::test]
async fn request_carries_credentials_and_json_headers() {
    let kgen = example_kgen().await;
    let app = TestApp::with_upstream(&kgen).await;

    app.create_session("FTC_User1")
        .await
        .expect("the request succeeds");

    let received = kgen.received();
    assert_eq!(received.len(), 1, "one request");
    let sent = &received[0];
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("POST", "/s2s/session/")
    );
    for (name, value) in [
        ("x-client-id", CLIENT_ID),
        ("x-client-secret", CLIENT_SECRET),
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("user-agent", USER_AGENT),
    ] {
        assert_eq!(sent.header(name), Some(value), "{name}");
    }
    let body: serde_json::Value = serde_json::from_slice(&sent.body).expect("a JSON body");
    assert_eq!(body, json!({ "user_id": "FTC_User1" }));
}

#[tokio::test]
async fn user_id_is_json_escaped_whatever_it_holds() {
    let tricky = r#"quote" back\slash {"user_id":"x"} é 🎮 </script>"#;
    let kgen = FakeKgen::start().await;
    kgen.answer(Answer::json(
        200,
        json!({ "session_id": "s-1", "user_id": tricky }),
    ));
    let app = TestApp::with_upstream(&kgen).await;

    let session = app.create_session(tricky).await.expect("session");
    assert_eq!(session.user_id, tricky);
    let received = kgen.received();
    assert_eq!(received.len(), 1, "one request");
    let body: serde_json::Value = serde_json::from_slice(&received[0].body).expect("a JSON body");
    assert_eq!(body, json!({ "user_id": tricky }));
}

#[tokio::test]
async fn lenient_fields_arrive_as_protobuf_defaults_and_numbers() {
    let kgen = FakeKgen::start().await;
    kgen.answer(Answer::json(
        200,
        json!({
            "session_id": "s-2", "level": "12", "rank": 3.0, "is_new_user": "true", "name": null,
            "indigg_id": "ig-9", "session_start_time": "not a time", "brand_new_field": {"a": 1}
        }),
    ));
    let app = TestApp::with_upstream(&kgen).await;

    let s = app.create_session("u").await.expect("session");
    assert_eq!((s.level, s.rank, s.is_new_user), (12, 3, true));
    assert_eq!(s.name, "");
    assert_eq!(s.indigg_id.as_deref(), Some("ig-9"));
    assert_eq!(s.session_start_time, "not a time", "raw string kept");
    assert_eq!(
        s.session_started_at, None,
        "unparsable time leaves the timestamp unset"
    );
}

#[tokio::test]
async fn connections_to_the_upstream_are_pooled_and_reused() {
    let upstream = FakeKgen::start().await;
    let app = TestApp::spawn(crate::support::app::settings_for(&upstream.url())).await;

    for _ in 0..5 {
        app.create_session("FTC_User1").await.expect("session");
    }

    assert_eq!(upstream.requests_for("FTC_User1"), 5);
    assert_eq!(
        upstream.connections(),
        1,
        "one keep-alive connection serves sequential calls"
    );
}

#[tokio::test]
async fn upstream_http2_prior_knowledge_speaks_h2c_to_the_upstream() {
    let h2c_capable = kgen_gateway::sandbox::spawn(kgen_gateway::sandbox::SandboxConfig::default())
        .await
        .expect("sandbox starts");
    let mut settings = crate::support::app::settings_for(h2c_capable.url().as_str());
    settings.upstream.client_id = "sandbox-client".into();
    settings.upstream.client_secret = "sandbox-secret".to_owned().into();
    settings.upstream.http2_prior_knowledge = true;
    let app = TestApp::spawn(settings.clone()).await;
    app.create_session("h2c-user")
        .await
        .expect("h2c upstream answers");

    // The same settings against an HTTP/1.1-only upstream fail: the flag really changes the protocol.
    let http1_only = FakeKgen::start().await;
    settings.upstream.url = http1_only.url().parse().unwrap();
    settings.resilience.max_attempts = 1;
    let app = TestApp::spawn(settings).await;
    let status = app
        .create_session("h2c-user")
        .await
        .expect_err("no h2c there");
    assert_status(&status, tonic::Code::Unavailable, "UPSTREAM_UNREACHABLE");
}
