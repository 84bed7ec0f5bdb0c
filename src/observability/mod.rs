//! What the operator sees: Prometheus metrics (a plain API; callers say what happened, in their own words, and
//! nothing here knows the gateway's types) and telemetry (log lines and, with the `otlp` feature, spans).

mod json_fields;
mod metrics;
mod telemetry;

pub use metrics::{
    code_name, BreakerGauge, LabelName, ListenerMetrics, Metrics, MetricsLayer, TenantGauges,
};
pub use telemetry::{init as init_telemetry, LogFormat, TelemetryGuard};
