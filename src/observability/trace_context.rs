//! W3C trace context across the gateway. With the `otlp` feature and span export on, a call's span continues the
//! caller's trace ([`continue_remote`]), and the upstream request names that span ([`propagation`]), so one trace
//! runs caller → gateway → KGeN. Otherwise both do nothing and the caller's headers are forwarded as they came.

use tracing::Span;

/// Makes `span` (not entered yet) a child of the caller's `traceparent` (with its `tracestate`). Nothing happens
/// without a valid `traceparent`, or when `span` is not exported.
#[cfg(feature = "otlp")]
pub fn continue_remote(span: &Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    use opentelemetry::{propagation::TextMapPropagator, trace::TraceContextExt};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    if traceparent.is_none() {
        return;
    }
    let caller = TraceContextPropagator::new().extract(&Carrier {
        traceparent,
        tracestate,
    });
    if caller.span().span_context().is_valid() {
        // Fails only when the span is not exported (no OpenTelemetry layer, or filtered out): nothing to join.
        let _ = span.set_parent(caller);
    }
}

/// See the `otlp` build.
#[cfg(not(feature = "otlp"))]
pub fn continue_remote(_span: &Span, _traceparent: Option<&str>, _tracestate: Option<&str>) {}

/// The `traceparent` (and `tracestate`, if any) naming `span` as the parent of a request made inside it; `None`
/// when `span` is not exported.
#[cfg(feature = "otlp")]
pub fn propagation(span: &Span) -> Option<(String, Option<String>)> {
    use std::collections::HashMap;

    use opentelemetry::{propagation::TextMapPropagator, trace::TraceContextExt};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut headers = HashMap::with_capacity(2);
    TraceContextPropagator::new().inject_context(&context, &mut headers);
    let traceparent = headers.remove(crate::support::headers::TRACEPARENT)?;
    let tracestate = headers
        .remove(crate::support::headers::TRACESTATE)
        .filter(|state| !state.is_empty());
    Some((traceparent, tracestate))
}

/// See the `otlp` build.
#[cfg(not(feature = "otlp"))]
pub fn propagation(_span: &Span) -> Option<(String, Option<String>)> {
    None
}

/// The caller's two trace headers, as the propagator reads them.
#[cfg(feature = "otlp")]
struct Carrier<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

#[cfg(feature = "otlp")]
impl opentelemetry::propagation::Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            crate::support::headers::TRACEPARENT => self.traceparent,
            crate::support::headers::TRACESTATE => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![
            crate::support::headers::TRACEPARENT,
            crate::support::headers::TRACESTATE,
        ]
    }
}
