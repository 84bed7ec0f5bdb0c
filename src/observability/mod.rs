//! What the operator sees: Prometheus metrics (a plain API; callers say what happened, in their own words, and
//! nothing here knows the gateway's types) and telemetry (log lines and, with the `otlp` feature, spans that
//! continue the caller's W3C trace context).

mod json_fields;
mod metrics;
mod telemetry;
mod trace_context;

pub use metrics::{
    code_name, BreakerGauge, LabelName, ListenerMetrics, Metrics, MetricsLayer, TenantGauges,
};
pub use telemetry::{init as init_telemetry, LogFormat, TelemetryGuard};
pub use trace_context::{continue_remote as continue_trace, propagation as trace_propagation};
