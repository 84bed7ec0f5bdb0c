//! The command line's checks, one behaviour per test.

use std::time::Duration;

use clap::Parser as _;
use http::HeaderValue;
use secrecy::ExposeSecret;

use super::{args::parse_size, *};
use crate::grpc::{AllowedOrigins, GrpcWebSettings};

fn args(extra: &[&str]) -> GatewayArgs {
    let mut argv = vec!["kgen-gateway"];
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv)
        .expect("valid command line")
        .gateway
}

#[test]
fn sizes_accept_plain_bytes_and_binary_units() {
    assert_eq!(parse_size("65536"), Ok(65536));
    assert_eq!(parse_size("64KiB"), Ok(64 * 1024));
    assert_eq!(parse_size("1MiB"), Ok(1 << 20));
    assert_eq!(parse_size("2 mb"), Ok(2 << 20));
    assert!(parse_size("lots").is_err());
    assert!(parse_size("1TiB").is_err());
    assert!(parse_size("99999999999999999999GiB").is_err());
}

#[test]
fn missing_client_id_without_sandbox_names_the_setting() {
    let err = args(&[]).into_settings(Some("s".into())).unwrap_err();
    assert_eq!(err.problems[0].setting, "--client-id / KGEN_CLIENT_ID");
}

#[test]
fn missing_secret_without_sandbox_names_the_setting() {
    let err = args(&["--client-id", "game"])
        .into_settings(None)
        .unwrap_err();
    assert!(
        err.problems[0].setting.contains("KGEN_CLIENT_SECRET"),
        "{err}"
    );
}

#[test]
fn secret_from_env_is_trimmed_and_never_printed() {
    let settings = args(&["--client-id", "game"])
        .into_settings(Some("hunter2-secret\n".into()))
        .unwrap();
    assert_eq!(
        settings.upstream.client_secret.expose_secret(),
        "hunter2-secret"
    );
    assert!(!format!("{settings:?}").contains("hunter2-secret"));
}

#[test]
fn unreadable_secret_file_is_reported_without_its_path_contents() {
    let err = args(&[
        "--client-id",
        "game",
        "--client-secret-file",
        "/nonexistent/secret",
    ])
    .into_settings(None)
    .unwrap_err();
    assert!(
        err.to_string().contains("cannot read /nonexistent/secret"),
        "{err}"
    );
}

#[test]
fn upstream_url_must_be_http_or_https() {
    let err = args(&["--sandbox", "--upstream-url", "ftp://example.com"])
        .into_settings(None)
        .unwrap_err();
    assert_eq!(
        err.problems[0].setting,
        "--upstream-url / KGEN_UPSTREAM_URL"
    );
    assert!(args(&["--sandbox", "--upstream-url", "not a url"])
        .into_settings(None)
        .is_err());
}

#[test]
fn zero_timeouts_are_rejected() {
    let err = args(&["--sandbox", "--upstream-timeout", "0s"])
        .into_settings(None)
        .unwrap_err();
    assert!(err.problems[0].setting.starts_with("--upstream-timeout"));
}

#[test]
fn sandbox_ignores_the_credentials_it_is_given_and_names_them_without_reading_them() {
    let settings = args(&[
        "--sandbox",
        "--client-id",
        "real-id",
        "--client-secret-file",
        "/nonexistent/secret",
    ])
    .into_settings(Some("real-secret".into()))
    .unwrap();
    assert_eq!(settings.upstream.client_id, "");
    assert_eq!(settings.upstream.client_secret.expose_secret(), "");
    assert_eq!(settings.upstream.client_secret_file, None);
    assert_eq!(
        settings.sandbox_ignores,
        [
            "--client-id / KGEN_CLIENT_ID",
            "--client-secret-file / KGEN_CLIENT_SECRET_FILE",
            "KGEN_CLIENT_SECRET"
        ]
    );
    assert!(!format!("{settings:?}").contains("real-secret"));
    assert!(args(&["--sandbox"])
        .into_settings(None)
        .unwrap()
        .sandbox_ignores
        .is_empty());
}

#[test]
fn sandbox_needs_no_credentials() {
    let settings = args(&["--sandbox"]).into_settings(None).unwrap();
    assert!(settings.sandbox);
    assert_eq!(settings.upstream.timeout, Duration::from_secs(5));
    assert_eq!(settings.upstream.max_body, 1 << 20);
    assert_eq!(settings.shutdown_grace, Duration::from_secs(10));
}

#[test]
fn resilience_and_server_flags_reach_the_settings() {
    let settings = args(&[
        "--sandbox",
        "--upstream-max-attempts",
        "1",
        "--retry-budget-percent",
        "50",
        "--max-concurrent-upstream",
        "8",
        "--batch-concurrency",
        "4",
        "--breaker-cool-down",
        "2s",
        "--max-connection-age",
        "1m",
    ])
    .into_settings(None)
    .unwrap();
    assert_eq!(settings.resilience.max_attempts, 1);
    assert!((settings.resilience.retry_budget_ratio - 0.5).abs() < f32::EPSILON);
    assert_eq!(settings.resilience.max_concurrent_upstream, 8);
    assert_eq!(settings.batch_concurrency, 4);
    assert_eq!(
        settings.resilience.breaker.cool_down,
        Duration::from_secs(2)
    );
    assert_eq!(settings.server.max_connection_age, Duration::from_secs(60));
    assert_eq!(
        args(&["--sandbox"])
            .into_settings(None)
            .unwrap()
            .resilience
            .max_attempts,
        3
    );
}

#[test]
fn out_of_range_resilience_flags_are_rejected() {
    for flags in [
        &["--sandbox", "--upstream-max-attempts", "0"][..],
        &["--sandbox", "--upstream-max-attempts", "11"],
        &["--sandbox", "--retry-budget-percent", "-1"],
        &["--sandbox", "--max-concurrent-upstream", "0"],
        &["--sandbox", "--batch-concurrency", "0"],
        &["--sandbox", "--batch-concurrency", "257"],
        &["--sandbox", "--breaker-failure-threshold", "0"],
        &["--sandbox", "--max-concurrent-streams", "0"],
        &["--sandbox", "--max-connection-age", "0s"],
    ] {
        let parsed =
            Cli::try_parse_from(std::iter::once("kgen-gateway").chain(flags.iter().copied()));
        let rejected = parsed.map_or(true, |cli| cli.gateway.into_settings(None).is_err());
        assert!(rejected, "{flags:?}");
    }
}

#[test]
fn every_invalid_setting_is_reported_at_once_one_line_each() {
    let err = args(&[
        "--upstream-url",
        "ftp://example.com",
        "--client-id",
        "id",
        "--upstream-timeout",
        "0s",
        "--max-concurrent-streams",
        "0",
        "--batch-concurrency",
        "0",
    ])
    .into_settings(None)
    .unwrap_err();

    let settings: Vec<&str> = err.problems.iter().map(|p| p.setting).collect();
    assert_eq!(
        settings,
        [
            "--upstream-url / KGEN_UPSTREAM_URL",
            "--upstream-timeout / KGEN_UPSTREAM_TIMEOUT",
            "--batch-concurrency / KGEN_BATCH_CONCURRENCY",
            "--max-concurrent-streams / KGEN_MAX_CONCURRENT_STREAMS",
            "--client-secret-file / KGEN_CLIENT_SECRET_FILE / KGEN_CLIENT_SECRET",
        ]
    );
    let text = err.to_string();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(
        text.lines().all(|l| l.starts_with("invalid setting ")),
        "{text}"
    );
}

#[test]
fn a_ca_file_that_is_not_pem_is_rejected() {
    let path = std::env::temp_dir().join(format!("kgen-not-a-ca-{}.pem", std::process::id()));
    std::fs::write(&path, "not a certificate").unwrap();
    let err = args(&["--sandbox", "--upstream-ca-file", path.to_str().unwrap()])
        .into_settings(None)
        .unwrap_err();
    let _ = std::fs::remove_file(&path);
    assert!(
        err.problems[0].setting.starts_with("--upstream-ca-file"),
        "{err}"
    );
}

#[test]
fn the_access_log_is_off_by_default_and_on_with_its_switch() {
    let off = args(&["--sandbox"]).into_settings(None).unwrap();
    assert!(!off.server.access_log);
    let on = args(&["--sandbox", "--access-log"])
        .into_settings(None)
        .unwrap();
    assert!(on.server.access_log);
}

#[test]
fn connect_is_on_by_default_and_off_when_set_false() {
    let on = args(&["--sandbox"]).into_settings(None).unwrap();
    assert!(on.server.connect, "on by default");
    for off in ["--connect=false", "--connect=off", "--connect=0"] {
        let settings = args(&["--sandbox", off]).into_settings(None).unwrap();
        assert!(!settings.server.connect, "{off}");
    }
    let explicit = args(&["--sandbox", "--connect"])
        .into_settings(None)
        .unwrap();
    assert!(explicit.server.connect);
}

#[test]
fn grpc_web_is_off_by_default_and_grants_no_origin_when_enabled_without_a_list() {
    let off = args(&["--sandbox"]).into_settings(None).unwrap();
    assert_eq!(off.server.grpc_web, None);
    let on = args(&["--sandbox", "--grpc-web"])
        .into_settings(None)
        .unwrap();
    assert_eq!(
        on.server.grpc_web,
        Some(GrpcWebSettings {
            allowed_origins: AllowedOrigins::List(Vec::new())
        })
    );
}

#[test]
fn grpc_web_origins_are_normalized_the_way_browsers_send_them() {
    let settings = args(&[
        "--sandbox",
        "--grpc-web",
        "--grpc-web-allowed-origins",
        "https://Tools.Example.com:443, http://localhost:5173,,https://tools.example.com",
    ])
    .into_settings(None)
    .unwrap();
    assert_eq!(
        settings.server.grpc_web.unwrap().allowed_origins,
        AllowedOrigins::List(vec![
            HeaderValue::from_static("https://tools.example.com"),
            HeaderValue::from_static("http://localhost:5173"),
        ])
    );
    assert_eq!(
        GrpcWebSettings::allowing(["*"]).unwrap().allowed_origins,
        AllowedOrigins::Any
    );
}

#[test]
fn grpc_web_origins_that_are_not_bare_origins_are_rejected() {
    for bad in [
        "tools.example.com",
        "https://tools.example.com/",
        "https://tools.example.com/app",
        "https://tools.example.com?x=1",
        "https://user@tools.example.com",
        "ftp://tools.example.com",
        "null",
        "https://",
    ] {
        let err = args(&["--sandbox", "--grpc-web", "--grpc-web-allowed-origins", bad])
            .into_settings(None)
            .unwrap_err();
        assert_eq!(
            err.problems[0].setting, "--grpc-web-allowed-origins / KGEN_GRPC_WEB_ALLOWED_ORIGINS",
            "{bad}"
        );
    }
    assert!(GrpcWebSettings::allowing(["*", "https://tools.example.com"]).is_err());
}

#[test]
fn grpc_web_origins_need_grpc_web_unless_blank() {
    let err = args(&[
        "--sandbox",
        "--grpc-web-allowed-origins",
        "https://tools.example.com",
    ])
    .into_settings(None)
    .unwrap_err();
    assert!(err.to_string().contains("needs --grpc-web"), "{err}");
    let blank = args(&["--sandbox", "--grpc-web-allowed-origins", ""])
        .into_settings(None)
        .unwrap();
    assert_eq!(blank.server.grpc_web, None);
}

#[test]
fn secrets_with_control_characters_are_rejected() {
    let err = args(&["--client-id", "game"])
        .into_settings(Some("bad\u{7}secret".into()))
        .unwrap_err();
    assert!(err.to_string().contains("printable ASCII"));
    assert!(!err.to_string().contains("bad"));
}

fn call_args(extra: &[&str]) -> Result<CallArgs, clap::Error> {
    let argv = ["kgen-gateway", "call"]
        .into_iter()
        .chain(extra.iter().copied());
    match Cli::try_parse_from(argv)?.command {
        Some(Command::Call(args)) => Ok(args),
        other => panic!("not a call: {other:?}"),
    }
}

#[test]
fn call_takes_a_gateway_address_with_or_without_its_scheme() {
    let default = call_args(&["u"]).unwrap();
    assert_eq!(default.addr.to_string(), "http://127.0.0.1:50051/");
    assert_eq!(default.timeout, Duration::from_secs(10));
    let bare = call_args(&["--addr", "127.0.0.1:7000", "u"]).unwrap();
    assert_eq!(bare.addr.to_string(), "http://127.0.0.1:7000/");
    let named = call_args(&["--addr", "http://gateway.internal:50051", "u"]).unwrap();
    assert_eq!(named.addr.host(), Some("gateway.internal"));
}

#[test]
fn call_refuses_tls_addresses_paths_and_a_zero_timeout_naming_the_flag() {
    for (flags, needle) in [
        (
            &["--addr", "https://gw:443", "u"][..],
            "TLS is not supported",
        ),
        (&["--addr", "http://gw:50051/kgen", "u"], "without a path"),
        (&["--addr", "ftp://gw", "u"], "expected http://HOST:PORT"),
        (&["--timeout", "0s", "u"], "greater than zero"),
        (&["--timeout", "soon", "u"], "--timeout"),
        (&["--tenant", "two words", "u"], "--tenant"),
    ] {
        let err = call_args(flags).unwrap_err().to_string();
        assert!(err.contains(needle), "{flags:?}: {err}");
    }
}

#[test]
fn the_caller_token_never_shows_in_debug_output_or_errors() {
    let args = call_args(&["--token", "tok-very-secret", "u"]).unwrap();
    assert!(!format!("{args:?}").contains("tok-very-secret"));
    let err = call_args(&["--token", "tok-very-secret", "--token", "again", "u"])
        .unwrap_err()
        .to_string();
    assert!(!err.contains("tok-very-secret"), "{err}");
}

#[test]
fn a_call_runs_on_one_worker_thread_unless_told_otherwise() {
    let cli = Cli::try_parse_from(["kgen-gateway", "call", "u"]).unwrap();
    assert_eq!(cli.worker_threads(), 1);
    let cli = Cli::try_parse_from(["kgen-gateway", "call", "--worker-threads", "3", "u"]).unwrap();
    assert_eq!(cli.worker_threads(), 3);
}
