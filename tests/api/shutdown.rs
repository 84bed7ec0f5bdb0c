//! Graceful shutdown: NOT_SERVING (for a drain delay while still accepting, if set), no new calls, in-flight calls
//! finish within the grace period.

use std::time::Duration;

use kgen_gateway::proto::{session_service_client::SessionServiceClient, CreateSessionRequest};

use crate::support::{
    app::{channel, settings_for, TestApp},
    assertions::assert_status,
    fake_kgen::{Answer, FakeKgen},
    wait::bounded,
};
use tokio_stream::StreamExt;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

#[tokio::test]
async fn in_flight_calls_finish_and_health_turns_not_serving_on_shutdown() {
    let kgen = FakeKgen::start().await;
    kgen.answer(Answer::json(200, serde_json::json!({ "session_id": "s" })));
    let mut settings = settings_for(&kgen.url());
    settings.shutdown_grace = Duration::from_secs(1);
    let mut app = TestApp::spawn(settings).await;
    let mut health = HealthClient::new(channel(app.addr).await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("watch starts")
        .into_inner();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );

    let in_flight = app.spawn_call("fault:delay:700");
    // Shut down only once the call has reached the upstream.
    kgen.until_called().await;
    let server = app.take_server();
    let _ = app.shutdown_handle().send(());

    assert_eq!(
        watch.next().await.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );
    let refused = app
        .create_session("late-caller")
        .await
        .expect_err("no new calls while draining");
    // The transport refuses it (GOAWAY, then no listener): tonic's client reports that as UNAVAILABLE or CANCELLED.
    assert!(
        matches!(
            refused.code(),
            tonic::Code::Unavailable | tonic::Code::Cancelled
        ),
        "{refused:?}"
    );
    let finished = in_flight.await.unwrap();
    assert_eq!(
        finished
            .expect("in-flight call completes")
            .into_inner()
            .session_id,
        "s"
    );
    // The open health watch holds its connection: the server gives up on it when the grace period ends.
    let stopped = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stops within grace");
    stopped.unwrap().expect("clean exit");
    let reached_upstream = kgen.received().len();
    assert_eq!(
        reached_upstream, 1,
        "only the in-flight call reached the upstream"
    );
    assert!(
        tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
            .unwrap()
            .connect()
            .await
            .is_err(),
        "no new connections after shutdown"
    );
}

#[tokio::test]
async fn shutdown_with_nothing_in_flight_is_immediate() {
    let kgen = FakeKgen::start().await;
    let app = TestApp::with_upstream(&kgen).await;
    let started = std::time::Instant::now();

    app.shutdown().await.expect("clean exit");

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait for the 10s grace"
    );
}

#[tokio::test]
async fn calls_still_running_when_the_grace_period_ends_are_cut_off() {
    let kgen = FakeKgen::start().await;
    let mut settings = settings_for(&kgen.url());
    settings.shutdown_grace = Duration::from_millis(300);
    settings.upstream.timeout = Duration::from_secs(60);
    let app = TestApp::spawn(settings).await;
    let in_flight = app.spawn_call("fault:delay:30000");
    kgen.until_called().await;

    let started = std::time::Instant::now();
    app.shutdown().await.expect("clean exit");

    assert!(
        started.elapsed() < Duration::from_secs(5),
        "grace of 300ms honoured"
    );
    let cut_off = in_flight
        .await
        .unwrap()
        .expect_err("the cut-off call fails instead of hanging");
    assert_status(&cut_off, tonic::Code::Unavailable, "GATEWAY_SHUTTING_DOWN");
}

#[tokio::test]
async fn with_a_drain_delay_new_connections_are_told_not_serving_and_still_served_until_the_listener_closes(
) {
    let kgen = FakeKgen::start().await;
    kgen.answer(Answer::json(200, serde_json::json!({ "session_id": "s" })));
    let mut settings = settings_for(&kgen.url());
    settings.drain_delay = Duration::from_millis(1500);
    let mut app = TestApp::spawn(settings).await;
    let server = app.take_server();
    let signalled = std::time::Instant::now();
    let _ = app.shutdown_handle().send(());

    // A connection made after the signal (as grpc-health-probe and a kubelet make one per check) is accepted, and
    // told NOT_SERVING as soon as the gateway has seen the signal.
    let status = bounded(
        "a new connection's health check to say NOT_SERVING",
        async {
            loop {
                let status = HealthClient::new(channel(app.addr).await)
                    .check(HealthCheckRequest {
                        service: "kgen.session.v1.SessionService".into(),
                    })
                    .await
                    .expect("health answers during the drain delay")
                    .into_inner()
                    .status();
                if status == ServingStatus::NotServing {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        },
    )
    .await;
    assert_eq!(status, ServingStatus::NotServing);
    // Calls are still served meanwhile, on new connections too.
    let mut late = SessionServiceClient::new(channel(app.addr).await);
    let session = late
        .create_session(CreateSessionRequest {
            user_id: "during-the-delay".into(),
        })
        .await
        .expect("served during the drain delay");
    assert_eq!(session.into_inner().session_id, "s");

    // Then the listener closes, and with nothing in flight the gateway stops.
    bounded("the gateway to stop after the drain delay", server)
        .await
        .unwrap()
        .expect("clean exit");
    assert!(signalled.elapsed() >= Duration::from_millis(1500));
    assert!(
        tonic::transport::Channel::from_shared(format!("http://{}", app.addr))
            .unwrap()
            .connect()
            .await
            .is_err(),
        "no new connections after the drain delay"
    );
}
