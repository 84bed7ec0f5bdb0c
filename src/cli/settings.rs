//! From arguments to settings, in a few short steps: check every flag, run the one file-loading step
//! ([`super::load`]), then hand each component its own settings. Nothing is bound or started here.

use reqwest::Url;
use std::time::Duration;

use super::{
    args::GatewayArgs,
    check::{ConfigError, Problems},
    load::{self, Loaded},
};
use crate::{
    app::{ServerSettings, Settings},
    core::{BreakerSettings, ResilienceSettings},
    grpc::{GrpcWebSettings, RequestLimitSettings, MAX_BATCH_CONCURRENCY},
    upstream::{parse_upstream_url, UpstreamSettings},
};

const URL: &str = "--upstream-url / KGEN_UPSTREAM_URL";
const ORIGINS: &str = "--grpc-web-allowed-origins / KGEN_GRPC_WEB_ALLOWED_ORIGINS";
const OTLP: &str = "--otlp-endpoint / KGEN_OTLP_ENDPOINT";

impl GatewayArgs {
    /// Validates the flags into settings, reading the files they name. `secret_env` is the value of
    /// `KGEN_CLIENT_SECRET`, passed in so tests need not touch the process environment. Every invalid setting is
    /// reported, not only the first.
    pub fn into_settings(self, secret_env: Option<String>) -> Result<Settings, ConfigError> {
        let mut problems = Problems::default();
        let url = problems.take(URL, parse_upstream_url(&self.upstream_url));
        self.check_ranges(&mut problems);
        let otlp_endpoint = self.otlp_endpoint(&mut problems);
        let grpc_web = self.grpc_web(&mut problems);
        let loaded = load::files(&self, url.as_ref(), secret_env, &mut problems);
        problems.finish()?;
        let Some(url) = url else {
            return Err(ConfigError::new(URL, "unusable"));
        };
        Ok(self.assemble(url, loaded, grpc_web, otlp_endpoint))
    }

    /// The flags whose values must fall in a range.
    fn check_ranges(&self, problems: &mut Problems) {
        problems.positive(
            self.upstream_timeout,
            "--upstream-timeout / KGEN_UPSTREAM_TIMEOUT",
        );
        problems.positive(
            self.connect_timeout,
            "--connect-timeout / KGEN_CONNECT_TIMEOUT",
        );
        problems.ensure(
            self.max_upstream_body >= 1024,
            "--max-upstream-body / KGEN_MAX_UPSTREAM_BODY",
            "must be at least 1KiB",
        );
        problems.ensure(
            (1..=10).contains(&self.upstream_max_attempts),
            "--upstream-max-attempts / KGEN_UPSTREAM_MAX_ATTEMPTS",
            "must be between 1 and 10",
        );
        problems.ensure(
            (0.0..=1000.0).contains(&self.retry_budget_percent),
            "--retry-budget-percent / KGEN_RETRY_BUDGET_PERCENT",
            "must be between 0 and 1000",
        );
        problems.ensure(
            self.retry_budget_min_per_sec <= 100_000,
            "--retry-budget-min-per-sec / KGEN_RETRY_BUDGET_MIN_PER_SEC",
            "must be at most 100000",
        );
        problems.ensure(
            (1..=1_000_000).contains(&self.max_concurrent_upstream),
            "--max-concurrent-upstream / KGEN_MAX_CONCURRENT_UPSTREAM",
            "must be between 1 and 1000000",
        );
        problems.ensure(
            (1..=MAX_BATCH_CONCURRENCY).contains(&self.batch_concurrency),
            "--batch-concurrency / KGEN_BATCH_CONCURRENCY",
            "must be between 1 and 256",
        );
        problems.ensure(
            self.breaker_failure_threshold > 0 && self.breaker_probes > 0,
            "--breaker-failure-threshold / --breaker-probes",
            "must be at least 1",
        );
        problems.positive(
            self.breaker_cool_down,
            "--breaker-cool-down / KGEN_BREAKER_COOL_DOWN",
        );
        problems.positive(
            self.breaker_window,
            "--breaker-window / KGEN_BREAKER_WINDOW",
        );
        problems.ensure(
            self.drain_delay <= Duration::from_secs(600),
            "--drain-delay / KGEN_DRAIN_DELAY",
            "must be at most 10m (a Kubernetes pod's terminationGracePeriodSeconds has to cover it and the grace)",
        );
        problems.ensure(
            self.max_concurrent_streams > 0,
            "--max-concurrent-streams / KGEN_MAX_CONCURRENT_STREAMS",
            "must be at least 1",
        );
        problems.ensure(
            self.max_request_size >= 1024,
            "--max-request-size / KGEN_MAX_REQUEST_SIZE",
            "must be at least 1KiB",
        );
        for (value, setting) in [
            (
                self.http2_keepalive_interval,
                "--http2-keepalive-interval / KGEN_HTTP2_KEEPALIVE_INTERVAL",
            ),
            (
                self.http2_keepalive_timeout,
                "--http2-keepalive-timeout / KGEN_HTTP2_KEEPALIVE_TIMEOUT",
            ),
            (self.tcp_keepalive, "--tcp-keepalive / KGEN_TCP_KEEPALIVE"),
            (
                self.max_connection_age,
                "--max-connection-age / KGEN_MAX_CONNECTION_AGE",
            ),
        ] {
            problems.positive(value, setting);
        }
        problems.ensure(
            self.max_concurrent_calls > 0,
            "--max-concurrent-calls / KGEN_MAX_CONCURRENT_CALLS",
            "must be at least 1",
        );
        problems.ensure(
            self.max_connections != Some(0),
            "--max-connections / KGEN_MAX_CONNECTIONS",
            "must be at least 1",
        );
        for (value, setting) in [
            (
                self.handshake_timeout,
                "--handshake-timeout / KGEN_HANDSHAKE_TIMEOUT",
            ),
            (
                self.max_connection_idle,
                "--max-connection-idle / KGEN_MAX_CONNECTION_IDLE",
            ),
            (
                self.request_body_timeout,
                "--request-body-timeout / KGEN_REQUEST_BODY_TIMEOUT",
            ),
            (
                self.stream_idle_timeout,
                "--stream-idle-timeout / KGEN_STREAM_IDLE_TIMEOUT",
            ),
        ] {
            problems.positive(value, setting);
        }
        problems.ensure(
            self.max_buffered_request_bytes >= self.max_request_size,
            "--max-buffered-request-bytes / KGEN_MAX_BUFFERED_REQUEST_BYTES",
            "must be at least --max-request-size",
        );
        problems.ensure(
            self.upstream_max_idle_connections >= 1,
            "--upstream-max-idle-connections / KGEN_UPSTREAM_MAX_IDLE_CONNECTIONS",
            "must be at least 1",
        );
    }

    /// The OTLP collector, in a build that can export to one.
    fn otlp_endpoint(&self, problems: &mut Problems) -> Option<String> {
        match &self.otlp_endpoint {
            Some(_) if !cfg!(feature = "otlp") => {
                problems.add(
                    OTLP,
                    "this build has no OTLP export (build with `--features otlp`)",
                );
                None
            }
            Some(raw) => problems
                .take(OTLP, parse_upstream_url(raw))
                .map(|url| url.to_string()),
            None => None,
        }
    }

    /// gRPC-Web and its allowed origins.
    fn grpc_web(&self, problems: &mut Problems) -> Option<GrpcWebSettings> {
        if self.grpc_web {
            return problems.take(
                ORIGINS,
                GrpcWebSettings::allowing(&self.grpc_web_allowed_origins),
            );
        }
        // An empty value (an unset variable in a manifest, say) is fine; origins without gRPC-Web are not.
        problems.ensure(
            self.grpc_web_allowed_origins
                .iter()
                .all(|o| o.trim().is_empty()),
            ORIGINS,
            "needs --grpc-web / KGEN_GRPC_WEB=true",
        );
        None
    }

    /// Hands each component its own settings.
    fn assemble(
        self,
        url: Url,
        loaded: Loaded,
        grpc_web: Option<GrpcWebSettings>,
        otlp_endpoint: Option<String>,
    ) -> Settings {
        let mut upstream = UpstreamSettings::new(url, loaded.client_id, loaded.client_secret);
        upstream.timeout = self.upstream_timeout;
        upstream.connect_timeout = self.connect_timeout;
        upstream.max_body = self.max_upstream_body;
        upstream.extra_roots = loaded.extra_roots;
        upstream.http2_prior_knowledge = self.upstream_http2_prior_knowledge;
        upstream.max_idle_connections = self.upstream_max_idle_connections;
        upstream.client_secret_file = loaded.secret_file;
        let resilience = ResilienceSettings {
            max_attempts: self.upstream_max_attempts,
            retry_budget_ratio: self.retry_budget_percent / 100.0,
            retry_budget_min_per_sec: self.retry_budget_min_per_sec,
            max_concurrent_upstream: self.max_concurrent_upstream,
            queue_timeout: self.upstream_queue_timeout,
            breaker: BreakerSettings {
                failure_threshold: self.breaker_failure_threshold,
                window: self.breaker_window,
                cool_down: self.breaker_cool_down,
                probes: self.breaker_probes,
            },
            retry_on: self.retry_on,
        };
        let server = ServerSettings {
            max_concurrent_streams: self.max_concurrent_streams,
            max_concurrent_calls: self.max_concurrent_calls,
            max_request_size: self.max_request_size,
            http2_keepalive_interval: self.http2_keepalive_interval,
            http2_keepalive_timeout: self.http2_keepalive_timeout,
            tcp_keepalive: self.tcp_keepalive,
            max_connection_age: self.max_connection_age,
            max_connection_age_grace: self.max_connection_age_grace,
            max_connections: self.max_connections,
            handshake_timeout: self.handshake_timeout,
            max_connection_idle: self.max_connection_idle,
            request_limits: RequestLimitSettings {
                body_timeout: self.request_body_timeout,
                stream_idle_timeout: self.stream_idle_timeout,
                max_buffered_bytes: self.max_buffered_request_bytes,
            },
            tls: loaded.tls,
            grpc_web,
            connect: self.connect,
            access_log: self.access_log,
        };
        Settings {
            listen: self.listen,
            admin_listen: self.admin_listen,
            upstream,
            resilience,
            batch_concurrency: self.batch_concurrency,
            server,
            shutdown_grace: self.shutdown_grace,
            drain_delay: self.drain_delay,
            log_format: self.log_format.into(),
            sandbox: self.sandbox,
            sandbox_ignores: loaded.sandbox_ignores,
            otlp_endpoint,
            caller_tokens: loaded.caller_tokens,
            tenants: loaded.tenants,
        }
    }
}
