//! Span export over OTLP/HTTP (only with `--features otlp`; CI runs it as its own step).
#![cfg(feature = "otlp")]

use crate::support::{
    app::create_session_at,
    fake_kgen::{Answer, FakeKgen},
    process::RunningBinary,
};

#[tokio::test]
async fn spans_of_calls_are_exported_to_the_otlp_collector() {
    // The stand-in records any HTTP/1.1 request, so it serves as the collector: 200 to an OTLP/HTTP export.
    let collector = FakeKgen::start().await;
    collector.answer_with(|request| {
        let export = request.method == "POST"
            && request.path == "/v1/traces"
            && request.header("content-type") == Some("application/x-protobuf");
        Answer::empty(if export { 200 } else { 404 })
    });
    let uri = collector.url();
    let gateway = RunningBinary::gateway(&["--sandbox", "--otlp-endpoint", &uri], &[]).await;
    create_session_at(gateway.addr, "traced-user")
        .await
        .expect("session");

    // Spans are batched; shutting down flushes them.
    let (code, _) = gateway.stop().await;
    assert_eq!(code, Some(0));

    let exported = collector.received();
    assert!(!exported.is_empty(), "spans reached the collector");
    let body: Vec<u8> = exported.iter().flat_map(|r| r.body.clone()).collect();
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"kgen-gateway"), "service name in the resource");
    assert!(has(b"traced-user"), "the call span's user_id attribute");
}
