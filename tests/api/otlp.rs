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

/// The parts of OTLP's `ExportTraceServiceRequest` the tests read (prost skips every other field).
mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ExportTraceServiceRequest {
        #[prost(message, repeated, tag = "1")]
        pub resource_spans: Vec<ResourceSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ResourceSpans {
        #[prost(message, repeated, tag = "2")]
        pub scope_spans: Vec<ScopeSpans>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ScopeSpans {
        #[prost(message, repeated, tag = "2")]
        pub spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub span_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "4")]
        pub parent_span_id: Vec<u8>,
        #[prost(string, tag = "5")]
        pub name: String,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn the_call_span_continues_the_callers_trace_and_kgen_is_told_the_gateways_span() {
    use kgen_gateway::proto::{session_service_client::SessionServiceClient, CreateSessionRequest};
    use prost::Message;
    use tonic::Request;

    use crate::support::{
        app::{CLIENT_ID, CLIENT_SECRET},
        upstreams::example_kgen,
        wait::bounded,
    };

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CALLER_SPAN: &str = "00f067aa0ba902b7";
    let collector = FakeKgen::start().await;
    collector.answer(Answer::empty(200));
    let kgen = example_kgen().await;
    let (kgen_url, collector_url) = (kgen.url(), collector.url());
    let gateway = RunningBinary::gateway(
        &[
            "--upstream-url",
            &kgen_url,
            "--client-id",
            CLIENT_ID,
            "--otlp-endpoint",
            &collector_url,
        ],
        &[("KGEN_CLIENT_SECRET", CLIENT_SECRET)],
    )
    .await;
    let mut client = bounded(
        "a connection to the binary",
        SessionServiceClient::connect(format!("http://{}", gateway.addr)),
    )
    .await
    .unwrap();
    let mut request = Request::new(CreateSessionRequest {
        user_id: "traced-user".into(),
    });
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{CALLER_SPAN}-01").parse().unwrap(),
    );
    bounded("the session", client.create_session(request))
        .await
        .expect("session");
    let (code, _) = gateway.stop().await;
    assert_eq!(code, Some(0));

    let spans: Vec<wire::Span> = collector
        .received()
        .iter()
        .filter(|request| request.path == "/v1/traces")
        .flat_map(|request| {
            wire::ExportTraceServiceRequest::decode(request.body.as_slice())
                .expect("an OTLP export")
                .resource_spans
        })
        .flat_map(|resource| resource.scope_spans)
        .flat_map(|scope| scope.spans)
        .collect();
    let calls: Vec<&wire::Span> = spans.iter().filter(|span| span.name == "call").collect();
    assert_eq!(calls.len(), 1, "one call span: {spans:?}");
    let call = calls[0];
    assert_eq!(hex(&call.trace_id), TRACE_ID, "the caller's trace");
    assert_eq!(
        hex(&call.parent_span_id),
        CALLER_SPAN,
        "a child of the caller's span"
    );
    let received = kgen.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].header("traceparent"),
        Some(format!("00-{TRACE_ID}-{}-01", hex(&call.span_id)).as_str()),
        "KGeN's parent is the gateway's call span"
    );
}
