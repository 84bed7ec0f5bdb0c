//! Prometheus metrics, under the names gRPC dashboards already read (go-grpc-prometheus style:
//! `grpc_server_started_total`, `grpc_server_handled_total`, `grpc_server_handling_seconds`) plus `kgen_upstream_*`
//! for the KGeN side, and the tower layer that counts every gRPC call whatever the service.
//!
//! Labels are `&'static str` picked from fixed tables, so counting a call allocates nothing, except the `tenant`
//! label of the `kgen_tenant_*` metrics: a configured tenant's name (unknown names are never recorded, so the
//! number of series stays bounded by the tenants file).

use std::{
    fmt::Write as _,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet, EncodeLabelValue, LabelValueEncoder},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tonic::Code;
use tower::{Layer, Service};

/// go-grpc-prometheus' default latency buckets (seconds).
const GRPC_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Finer buckets for KGeN's latency (seconds).
const UPSTREAM_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    grpc_type: &'static str,
    grpc_service: &'static str,
    grpc_method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandledLabels {
    grpc_type: &'static str,
    grpc_service: &'static str,
    grpc_method: &'static str,
    grpc_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallerLabels {
    caller: String,
    grpc_code: &'static str,
}

/// A label value that is shared rather than copied: a tenant's name, made once when the tenant is built, so that
/// counting a call clones a pointer instead of allocating a string.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord)]
pub struct LabelName(Arc<str>);

impl LabelName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for LabelName {
    fn from(name: &str) -> Self {
        Self(Arc::from(name))
    }
}

impl EncodeLabelValue for LabelName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&self.0)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantCallLabels {
    tenant: LabelName,
    grpc_code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantStatusLabels {
    tenant: LabelName,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SettingLabels {
    setting: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

/// The metrics of one listener's connection and call limits: handles whose clones share their values, updated by
/// the limits as connections and calls come and go.
#[derive(Clone, Debug, Default)]
pub struct ListenerMetrics {
    /// Connections held now.
    pub open: Gauge,
    /// The connection limit.
    pub max: Gauge,
    /// Idle connections closed to make room for new ones.
    pub evicted: Counter,
    /// New connections closed because every held connection had a call in flight.
    pub refused: Counter,
    /// Calls in flight.
    pub calls: Gauge,
}

/// One tenant's gauges, read at scrape time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantGauges {
    /// The tenant's name (a configured one).
    pub name: String,
    /// Its upstream calls in flight.
    pub in_flight: usize,
    /// Its circuit breaker.
    pub breaker: BreakerGauge,
}

/// The value of `kgen_upstream_breaker_state` (and its per-tenant twin).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerGauge {
    /// 0: calls flow.
    Closed = 0,
    /// 1: failing fast.
    Open = 1,
    /// 2: letting probe calls through.
    HalfOpen = 2,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every metric the gateway exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    started: Family<MethodLabels, Counter>,
    handled: Family<HandledLabels, Counter>,
    handling: Family<MethodLabels, Histogram, fn() -> Histogram>,
    upstream_responses: Family<StatusLabels, Counter>,
    upstream_seconds: Histogram,
    upstream_retries: Counter,
    created_after_ambiguous_retry: Family<TenantLabels, Counter>,
    upstream_in_flight: Gauge,
    breaker_state: Gauge,
    caller_calls: Family<CallerLabels, Counter>,
    tenant_calls: Family<TenantCallLabels, Counter>,
    tenant_upstream_responses: Family<TenantStatusLabels, Counter>,
    tenant_in_flight: Family<TenantLabels, Gauge>,
    tenant_breaker_state: Family<TenantLabels, Gauge>,
    connections_open: Family<ListenerLabels, Gauge>,
    connections_max: Family<ListenerLabels, Gauge>,
    connections_evicted: Family<ListenerLabels, Counter>,
    connections_refused: Family<ListenerLabels, Counter>,
    calls_in_flight: Family<ListenerLabels, Gauge>,
    request_buffered_bytes: Gauge,
    reload_failing: Family<SettingLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let started = Family::<MethodLabels, Counter>::default();
        let handled = Family::<HandledLabels, Counter>::default();
        let handling: Family<MethodLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(GRPC_BUCKETS));
        let upstream_responses = Family::<StatusLabels, Counter>::default();
        let upstream_seconds = Histogram::new(UPSTREAM_BUCKETS);
        let upstream_retries = Counter::default();
        let created_after_ambiguous_retry = Family::<TenantLabels, Counter>::default();
        let upstream_in_flight = Gauge::default();
        let breaker_state = Gauge::default();
        let caller_calls = Family::<CallerLabels, Counter>::default();
        let tenant_calls = Family::<TenantCallLabels, Counter>::default();
        let tenant_upstream_responses = Family::<TenantStatusLabels, Counter>::default();
        let tenant_in_flight = Family::<TenantLabels, Gauge>::default();
        let tenant_breaker_state = Family::<TenantLabels, Gauge>::default();
        let build_info = Family::<BuildLabels, Gauge>::default();
        let connections_open = Family::<ListenerLabels, Gauge>::default();
        let connections_max = Family::<ListenerLabels, Gauge>::default();
        let connections_evicted = Family::<ListenerLabels, Counter>::default();
        let connections_refused = Family::<ListenerLabels, Counter>::default();
        let calls_in_flight = Family::<ListenerLabels, Gauge>::default();
        let request_buffered_bytes = Gauge::default();
        let reload_failing = Family::<SettingLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);

        registry.register(
            "grpc_server_started",
            "RPCs started on the server",
            started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "RPCs completed on the server, whatever their status",
            handled.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Response latency of RPCs handled by the server",
            handling.clone(),
        );
        registry.register(
            "kgen_upstream_responses",
            "Upstream attempts by outcome: KGeN's HTTP status, or unreachable / tls_error / timeout",
            upstream_responses.clone(),
        );
        registry.register(
            "kgen_upstream_request_duration_seconds",
            "Latency of upstream attempts",
            upstream_seconds.clone(),
        );
        registry.register(
            "kgen_upstream_retries",
            "Upstream retries made",
            upstream_retries.clone(),
        );
        registry.register(
            "kgen_sessions_after_ambiguous_retry",
            "Sessions created after retrying an outcome KGeN may have acted on (--retry-on with 5xx, reset…): \
             is_new_user may be false for a new player",
            created_after_ambiguous_retry.clone(),
        );
        registry.register(
            "kgen_upstream_in_flight",
            "Upstream calls holding a concurrency slot",
            upstream_in_flight.clone(),
        );
        registry.register(
            "kgen_upstream_breaker_state",
            "Circuit breaker state: 0 closed, 1 open, 2 half-open",
            breaker_state.clone(),
        );
        registry.register(
            "kgen_caller_calls",
            "CreateSession calls by authenticated caller (with --caller-tokens-file) and status",
            caller_calls.clone(),
        );
        registry.register(
            "kgen_tenant_calls",
            "Session creations (CreateSession calls and batch items) by tenant and status",
            tenant_calls.clone(),
        );
        registry.register(
            "kgen_tenant_upstream_responses",
            "Upstream attempts by tenant and outcome (the status values of kgen_upstream_responses)",
            tenant_upstream_responses.clone(),
        );
        registry.register(
            "kgen_tenant_upstream_in_flight",
            "Upstream calls holding one of the tenant's concurrency slots",
            tenant_in_flight.clone(),
        );
        registry.register(
            "kgen_tenant_breaker_state",
            "The tenant's circuit breaker: 0 closed, 1 open, 2 half-open",
            tenant_breaker_state.clone(),
        );
        registry.register(
            "kgen_connections_open",
            "Client connections held, by listener (grpc, admin)",
            connections_open.clone(),
        );
        registry.register(
            "kgen_connections_max",
            "The connection limit of each listener (--max-connections for grpc)",
            connections_max.clone(),
        );
        registry.register(
            "kgen_connections_evicted",
            "Idle connections closed to make room for new ones at the connection limit",
            connections_evicted.clone(),
        );
        registry.register(
            "kgen_connections_refused",
            "New connections closed at the connection limit because every held connection had a call in flight",
            connections_refused.clone(),
        );
        registry.register(
            "kgen_calls_in_flight",
            "Calls (HTTP requests) in flight, by listener; the grpc listener's are capped by --max-concurrent-calls",
            calls_in_flight.clone(),
        );
        registry.register(
            "kgen_request_buffered_bytes",
            "Bytes of partly received request messages held (capped by --max-buffered-request-bytes)",
            request_buffered_bytes.clone(),
        );
        registry.register(
            "kgen_config_reload_failing",
            "1 while the newest content of a watched file (the setting named) is refused and the previous value stays \
             in force; 0 once it is read and in force",
            reload_failing.clone(),
        );
        registry.register(
            "kgen_gateway_build",
            "Build information (always 1)",
            build_info,
        );
        Self {
            registry,
            started,
            handled,
            handling,
            upstream_responses,
            upstream_seconds,
            upstream_retries,
            created_after_ambiguous_retry,
            upstream_in_flight,
            breaker_state,
            caller_calls,
            tenant_calls,
            tenant_upstream_responses,
            tenant_in_flight,
            tenant_breaker_state,
            connections_open,
            connections_max,
            connections_evicted,
            connections_refused,
            calls_in_flight,
            request_buffered_bytes,
            reload_failing,
        }
    }

    /// The gauge `kgen_config_reload_failing` of the file given by `setting` (e.g. `--tenants-file`), shown (as 0)
    /// from now on.
    pub fn reload_failing(&self, setting: &'static str) -> Gauge {
        let gauge = self
            .reload_failing
            .get_or_create(&SettingLabels { setting })
            .clone();
        gauge.set(0);
        gauge
    }

    /// The connection and call metrics of the listener named `listener`.
    pub fn listener(&self, listener: &'static str) -> ListenerMetrics {
        let labels = ListenerLabels { listener };
        ListenerMetrics {
            open: self.connections_open.get_or_create(&labels).clone(),
            max: self.connections_max.get_or_create(&labels).clone(),
            evicted: self.connections_evicted.get_or_create(&labels).clone(),
            refused: self.connections_refused.get_or_create(&labels).clone(),
            calls: self.calls_in_flight.get_or_create(&labels).clone(),
        }
    }

    /// Counts a call that a protocol in front of the native stack (Connect) answered itself, before the call reached
    /// the stack (a body that is not the method's message, too large, too slow; an unknown method; a stream), as
    /// the stack counts its own: started, then handled with `code`, under the path's method labels.
    pub fn refused_call(self: &Arc<Self>, path: &str, code: Code, started: Instant) {
        let labels = method_labels(path);
        self.started.get_or_create(&labels).inc();
        Recorder {
            metrics: Some(self.clone()),
            labels,
            started,
        }
        .finish(code);
    }

    /// The gauge of partly received request bytes held.
    pub fn request_buffered_bytes(&self) -> Gauge {
        self.request_buffered_bytes.clone()
    }

    /// Records one session creation (a `CreateSession` call or a batch item) for a configured tenant.
    pub fn tenant_call(&self, tenant: &LabelName, code: Code) {
        let labels = TenantCallLabels {
            tenant: tenant.clone(),
            grpc_code: code_name(code),
        };
        self.tenant_calls.get_or_create(&labels).inc();
    }

    /// Records a call by an authenticated caller (names come from the tokens file, so they are few).
    pub fn caller_call(&self, caller: &str, code: Code) {
        let labels = CallerLabels {
            caller: caller.to_owned(),
            grpc_code: code_name(code),
        };
        self.caller_calls.get_or_create(&labels).inc();
    }

    /// Records one upstream attempt of `tenant`.
    pub fn upstream_attempt(
        &self,
        tenant: &LabelName,
        outcome: &'static str,
        elapsed: std::time::Duration,
    ) {
        self.upstream_responses
            .get_or_create(&StatusLabels { status: outcome })
            .inc();
        self.tenant_upstream_responses
            .get_or_create(&TenantStatusLabels {
                tenant: tenant.clone(),
                status: outcome,
            })
            .inc();
        self.upstream_seconds.observe(elapsed.as_secs_f64());
    }

    /// Records one retry.
    pub fn upstream_retry(&self) {
        self.upstream_retries.inc();
    }

    /// Counts a session of `tenant` created after retrying an outcome KGeN may have acted on.
    pub fn created_after_ambiguous_retry(&self, tenant: &str) {
        self.created_after_ambiguous_retry
            .get_or_create(&TenantLabels {
                tenant: tenant.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition, with the per-tenant gauges read at scrape time. The unlabelled gauges sum
    /// the calls in flight and show the worst breaker (open, else half-open, else closed).
    pub fn encode(&self, tenants: &[TenantGauges]) -> String {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        // Tenants removed by a reload disappear from the gauges.
        self.tenant_in_flight.clear();
        self.tenant_breaker_state.clear();
        for tenant in tenants {
            let labels = TenantLabels {
                tenant: tenant.name.clone(),
            };
            self.tenant_in_flight
                .get_or_create(&labels)
                .set(gauge(tenant.in_flight));
            self.tenant_breaker_state
                .get_or_create(&labels)
                .set(tenant.breaker as i64);
        }
        self.upstream_in_flight
            .set(gauge(tenants.iter().map(|t| t.in_flight).sum()));
        let worst = tenants
            .iter()
            .map(|t| t.breaker)
            .max_by_key(|state| match state {
                BreakerGauge::Closed => 0,
                BreakerGauge::HalfOpen => 1,
                BreakerGauge::Open => 2,
            })
            .unwrap_or(BreakerGauge::Closed);
        self.breaker_state.set(worst as i64);
        let mut text = String::with_capacity(8 * 1024);
        if encode(&mut text, &self.registry).is_err() {
            let _ = writeln!(text, "# encoding failed");
        }
        text
    }
}

/// The label values of a known method, or of `unknown`.
fn method_labels(path: &str) -> MethodLabels {
    const KNOWN: [(&str, &str, &str, &str); 7] = [
        (
            "/kgen.session.v1.SessionService/CreateSession",
            "unary",
            "kgen.session.v1.SessionService",
            "CreateSession",
        ),
        (
            "/kgen.session.v1.SessionService/CreateSessions",
            "bidi_stream",
            "kgen.session.v1.SessionService",
            "CreateSessions",
        ),
        (
            "/kgen.session.v1.SessionService/CreateSessionBatch",
            "unary",
            "kgen.session.v1.SessionService",
            "CreateSessionBatch",
        ),
        (
            "/grpc.health.v1.Health/Check",
            "unary",
            "grpc.health.v1.Health",
            "Check",
        ),
        (
            "/grpc.health.v1.Health/Watch",
            "server_stream",
            "grpc.health.v1.Health",
            "Watch",
        ),
        (
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "bidi_stream",
            "grpc.reflection.v1.ServerReflection",
            "ServerReflectionInfo",
        ),
        (
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            "bidi_stream",
            "grpc.reflection.v1alpha.ServerReflection",
            "ServerReflectionInfo",
        ),
    ];
    KNOWN.iter().find(|(known, ..)| *known == path).map_or(
        MethodLabels {
            grpc_type: "unary",
            grpc_service: "unknown",
            grpc_method: "unknown",
        },
        |&(_, grpc_type, grpc_service, grpc_method)| MethodLabels {
            grpc_type,
            grpc_service,
            grpc_method,
        },
    )
}

/// grpc-go's names of the status codes, as dashboards expect them.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(Code::from_i32(value))
}

// === impl MetricsLayer ===

/// Counts every gRPC call: started when the request arrives, handled (with its code) when the response's
/// `grpc-status` is known, from the headers (trailers-only) or from the trailers.
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: Arc<Metrics>,
}

impl MetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// See [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for MetricsService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body<Data = Bytes> + Unpin,
{
    type Response = http::Response<MetricsBody<ResBody>>;
    type Error = S::Error;
    type Future = MetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let labels = method_labels(request.uri().path());
        self.metrics.started.get_or_create(&labels).inc();
        let recorder = Recorder::new(self.metrics.clone(), labels);
        MetricsFuture {
            inner: self.inner.call(request),
            recorder: Some(recorder),
        }
    }
}

pin_project! {
    /// The inner service's response, its call recorded when the headers carry the code (trailers-only) or handed
    /// to the body to record at the trailers. Dropped before the response, the recorder counts `Canceled`.
    pub struct MetricsFuture<F> {
        #[pin]
        inner: F,
        recorder: Option<Recorder>,
    }
}

impl<F, ResBody, E> std::future::Future for MetricsFuture<F>
where
    F: std::future::Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = Result<http::Response<MetricsBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let recorder = match (this.recorder.take(), grpc_status(response.headers())) {
            (Some(recorder), Some(code)) => {
                recorder.finish(code);
                None
            }
            (recorder, _) => recorder,
        };
        Poll::Ready(Ok(response.map(|inner| MetricsBody { inner, recorder })))
    }
}

/// Records a call's end exactly once: with its code when known, or as `Canceled` when dropped first (the caller
/// went away before the response, or while it streamed).
#[derive(Debug)]
struct Recorder {
    metrics: Option<Arc<Metrics>>,
    labels: MethodLabels,
    started: Instant,
}

impl Recorder {
    fn new(metrics: Arc<Metrics>, labels: MethodLabels) -> Self {
        Self {
            metrics: Some(metrics),
            labels,
            started: Instant::now(),
        }
    }

    fn finish(mut self, code: Code) {
        self.record(code);
    }

    fn record(&mut self, code: Code) {
        let Some(metrics) = self.metrics.take() else {
            return;
        };
        let MethodLabels {
            grpc_type,
            grpc_service,
            grpc_method,
        } = self.labels.clone();
        metrics
            .handled
            .get_or_create(&HandledLabels {
                grpc_type,
                grpc_service,
                grpc_method,
                grpc_code: code_name(code),
            })
            .inc();
        metrics
            .handling
            .get_or_create(&self.labels)
            .observe(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.record(Code::Cancelled);
    }
}

/// A response body that records the call when its trailers pass (dropped unfinished, its recorder counts the call
/// as `Canceled`).
#[derive(Debug)]
pub struct MetricsBody<B> {
    inner: B,
    recorder: Option<Recorder>,
}

impl<B: Body<Data = Bytes> + Unpin> Body for MetricsBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        let code = match &frame {
            Some(Ok(frame)) => frame
                .trailers_ref()
                .map(|t| grpc_status(t).unwrap_or(Code::Unknown)),
            Some(Err(_)) => Some(Code::Unknown),
            None => Some(Code::Unknown),
        };
        if let Some(code) = code {
            if let Some(recorder) = this.recorder.take() {
                recorder.finish(code);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_uses_the_standard_names() {
        let metrics = Arc::new(Metrics::new());
        let labels = method_labels("/kgen.session.v1.SessionService/CreateSession");
        metrics.started.get_or_create(&labels).inc();
        Recorder::new(metrics.clone(), labels.clone()).finish(Code::Ok);
        drop(Recorder::new(metrics.clone(), labels)); // the caller went away before an answer
        let cb = LabelName::from("cb");
        metrics.upstream_attempt(&cb, "200", std::time::Duration::from_millis(3));
        metrics.upstream_retry();
        metrics.tenant_call(&cb, Code::Ok);
        let gauges = |name: &str, in_flight, breaker| TenantGauges {
            name: name.to_owned(),
            in_flight,
            breaker,
        };
        let text = metrics.encode(&[
            gauges("cb", 4, BreakerGauge::Open),
            gauges("ludo", 3, BreakerGauge::HalfOpen),
        ]);
        for needle in [
            "grpc_server_started_total{grpc_type=\"unary\",grpc_service=\"kgen.session.v1.SessionService\",grpc_method=\"CreateSession\"} 1",
            "grpc_code=\"OK\"} 1",
            "grpc_code=\"Canceled\"} 1",
            "kgen_upstream_responses_total{status=\"200\"} 1",
            "kgen_upstream_request_duration_seconds_bucket{le=\"0.005\"} 1",
            "kgen_upstream_retries_total 1",
            "kgen_upstream_in_flight 7",
            "kgen_upstream_breaker_state 1",
            "kgen_gateway_build{version=\"",
            "kgen_tenant_calls_total{tenant=\"cb\",grpc_code=\"OK\"} 1",
            "kgen_tenant_upstream_responses_total{tenant=\"cb\",status=\"200\"} 1",
            "kgen_tenant_upstream_in_flight{tenant=\"ludo\"} 3",
            "kgen_tenant_breaker_state{tenant=\"cb\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }

    #[test]
    fn unknown_paths_share_one_label_set() {
        assert_eq!(method_labels("/evil/path").grpc_service, "unknown");
        let stream = method_labels("/kgen.session.v1.SessionService/CreateSessions");
        assert_eq!(
            (stream.grpc_type, stream.grpc_method),
            ("bidi_stream", "CreateSessions")
        );
        let batch = method_labels("/kgen.session.v1.SessionService/CreateSessionBatch");
        assert_eq!(
            (batch.grpc_type, batch.grpc_method),
            ("unary", "CreateSessionBatch")
        );
        assert_eq!(
            method_labels("/grpc.health.v1.Health/Watch").grpc_type,
            "server_stream"
        );
    }
}
