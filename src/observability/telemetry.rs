//! Logs: tracing-subscriber writing text or one JSON object per line to stderr, filtered by `RUST_LOG`
//! (default `info`). With the `otlp` cargo feature and `--otlp-endpoint`, spans are also exported to an
//! OpenTelemetry collector over OTLP/HTTP.

use std::io::IsTerminal;

use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

use super::json_fields::SpanFields;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Keeps span export alive; dropping it flushes the spans still buffered.
#[derive(Default)]
pub struct TelemetryGuard {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard").finish_non_exhaustive()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("kgen-gateway: flushing spans to the OTLP collector failed: {error}");
            }
        }
    }
}

/// Installs the global subscriber (a second call, as in tests, leaves the first in place). `otlp_endpoint` is the
/// collector's base URL (`http://collector:4318`); it is only honoured when built with the `otlp` feature.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> Result<TelemetryGuard, String> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(SpanFields)
            .boxed(),
    };
    let mut guard = TelemetryGuard::default();
    let otel = otlp_layer(otlp_endpoint, &mut guard)?;
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    Ok(guard)
}

#[cfg(feature = "otlp")]
fn otlp_layer<S>(
    endpoint: Option<&str>,
    guard: &mut TelemetryGuard,
) -> Result<Option<Box<dyn Layer<S> + Send + Sync>>, String>
where
    S: tracing::Subscriber
        + for<'span> tracing_subscriber::registry::LookupSpan<'span>
        + Send
        + Sync,
{
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;

    let Some(endpoint) = endpoint else {
        return Ok(None);
    };
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(traces)
        .build()
        .map_err(|e| format!("--otlp-endpoint: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("kgen-gateway")
        .build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("kgen-gateway");
    guard.provider = Some(provider);
    Ok(Some(
        tracing_opentelemetry::layer().with_tracer(tracer).boxed(),
    ))
}

#[cfg(not(feature = "otlp"))]
fn otlp_layer<S>(
    endpoint: Option<&str>,
    _guard: &mut TelemetryGuard,
) -> Result<Option<Box<dyn Layer<S> + Send + Sync>>, String>
where
    S: tracing::Subscriber,
{
    match endpoint {
        Some(_) => Err("--otlp-endpoint needs a build with `--features otlp`".to_owned()),
        None => Ok(None),
    }
}
