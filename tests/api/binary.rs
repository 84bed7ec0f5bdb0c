//! The real `kgen-gateway` binary: configuration errors, `--sandbox`, and SIGTERM.

use std::process::{Command, Stdio};

use crate::support::{
    app::create_session_at,
    process::{RunningBinary, BIN},
};

fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in env {
        command.env(key, value);
    }
    command.stdin(Stdio::null()).output().expect("binary runs")
}

#[test]
fn missing_credentials_exit_2_with_one_line_naming_each_missing_setting() {
    let out = run_to_exit(&["--listen", "127.0.0.1:0"], &[]);

    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].contains("--client-id / KGEN_CLIENT_ID"),
        "{stderr}"
    );
    assert!(
        lines[1].contains("--client-secret-file / KGEN_CLIENT_SECRET_FILE / KGEN_CLIENT_SECRET"),
        "{stderr}"
    );
}

#[test]
fn several_invalid_settings_are_all_reported_in_one_start() {
    let out = run_to_exit(
        &[
            "--sandbox",
            "--listen",
            "127.0.0.1:0",
            "--upstream-timeout",
            "0s",
            "--max-concurrent-streams",
            "0",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
        ],
        &[],
    );

    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    for (line, setting) in lines.iter().zip([
        "--upstream-timeout",
        "--max-concurrent-streams",
        "--tls-cert / --tls-key",
    ]) {
        assert!(line.starts_with("kgen-gateway: invalid setting "), "{line}");
        assert!(line.contains(setting), "{line}");
    }
}

#[test]
fn missing_secret_exits_2_and_names_every_way_to_set_it() {
    let out = run_to_exit(&["--listen", "127.0.0.1:0"], &[("KGEN_CLIENT_ID", "game")]);

    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--client-secret-file / KGEN_CLIENT_SECRET_FILE / KGEN_CLIENT_SECRET"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--tenants-file"),
        "the other way to give credentials: {stderr}"
    );
}

#[test]
fn a_port_in_use_names_the_setting_and_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();

    let out = run_to_exit(&["--sandbox", "--listen", &addr], &[]);

    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim().lines().last().unwrap_or_default();
    for expected in [
        addr.as_str(),
        "--listen / KGEN_GATEWAY_LISTEN",
        "another process",
    ] {
        assert!(last.contains(expected), "{expected}: {stderr}");
    }
}

#[tokio::test]
async fn kgen_sandbox_takes_the_booleans_people_type() {
    for value in ["1", "true", "yes", "on"] {
        let gateway = RunningBinary::gateway(&[], &[("KGEN_SANDBOX", value)]).await;
        let (code, _) = gateway.stop().await;
        assert_eq!(code, Some(0), "KGEN_SANDBOX={value}");
    }
    let out = run_to_exit(&["--listen", "127.0.0.1:0"], &[("KGEN_SANDBOX", "0")]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "KGEN_SANDBOX=0 is off: credentials are missing"
    );
}

#[test]
fn a_bad_value_from_the_environment_names_the_variable_and_what_is_expected() {
    // Each is refused while parsing, before anything is bound.
    for (args, env, value, expected) in [
        (
            &[][..],
            "KGEN_SANDBOX",
            "maybe",
            "expected a boolean: true or false, 1 or 0",
        ),
        (
            &["--sandbox"],
            "KGEN_GRPC_WEB",
            "sure",
            "expected a boolean",
        ),
        (
            &["--sandbox"],
            "KGEN_GATEWAY_LISTEN",
            "localhost:1",
            "expected IP:PORT",
        ),
        (
            &["--sandbox"],
            "KGEN_MAX_CONCURRENT_CALLS",
            "lots",
            "invalid digit",
        ),
    ] {
        let out = run_to_exit(args, &[(env, value)]);

        assert_eq!(out.status.code(), Some(2), "{env}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        for needle in [
            expected,
            &format!("the value comes from the environment variable {env}"),
        ] {
            assert!(stderr.contains(needle), "{env}={value}: {needle}: {stderr}");
        }
    }
    // Given on the command line, the flag is the source; the variable is not blamed.
    let out = run_to_exit(
        &["--sandbox", "--listen", "localhost:1"],
        &[("KGEN_GATEWAY_LISTEN", "127.0.0.1:0")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr.contains("environment variable"), "{stderr}");
    // The sandbox subcommand's --listen has a variable of its own.
    let out = run_to_exit(&["sandbox"], &[("KGEN_SANDBOX_LISTEN", "nowhere")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("KGEN_SANDBOX_LISTEN"), "{stderr}");
}

#[test]
fn invalid_settings_exit_2_before_binding() {
    for (args, needle) in [
        (
            &["--sandbox", "--upstream-timeout", "soon"][..],
            "--upstream-timeout",
        ),
        (&["--sandbox", "--listen", "not-an-address"], "--listen"),
        (
            &["--sandbox", "--listen", "localhost:50051"],
            "a host name such as localhost is not accepted",
        ),
        (
            &["--sandbox", "--max-upstream-body", "12XB"],
            "--max-upstream-body",
        ),
        (
            &["--sandbox", "--upstream-url", "ftp://x"],
            "--upstream-url",
        ),
        (
            &[
                "--sandbox",
                "--upstream-url",
                "http://127.0.0.1:9/s2s/session/",
            ],
            "give the base URL, http://127.0.0.1:9",
        ),
        (&["--sandbox", "--log-format", "xml"], "--log-format"),
        (&["--sandbox", "--tls-cert", "/tmp/x.pem"], "--tls-key"),
        (&["--sandbox", "--no-such-flag"], "--no-such-flag"),
        (&["--sandbox", "--worker-threads", "0"], "--worker-threads"),
        (
            &["--sandbox", "--tenants-file", "/nonexistent/tenants.toml"],
            "--tenants-file",
        ),
        (
            &["--sandbox", "--tenants-file", "/nonexistent/tenants.toml"],
            "cannot read /nonexistent/tenants.toml: No such file or directory",
        ),
        (&["sandbox", "--worker-threads", "many"], "--worker-threads"),
        (
            &[
                "--sandbox",
                "--grpc-web",
                "--grpc-web-allowed-origins",
                "https://x.example/app",
            ],
            "--grpc-web-allowed-origins",
        ),
    ] {
        let out = run_to_exit(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    }
}

#[test]
fn a_bad_tenants_file_exits_2_with_one_line_naming_the_file_and_the_problem() {
    let dir = std::env::temp_dir().join(format!("kgen-bad-tenants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            "[tenants.a]\nclient_id = \"a\"\nclient_secret = \"inline-secret\"\n",
            "unknown field",
        ),
        (
            "[tenants.a]\nclient_id = \"a\"\nclient_secret_env = \"KGEN_TEST_UNSET_VAR\"\n",
            "KGEN_TEST_UNSET_VAR is not set",
        ),
        ("[tenants.a\n", "line 1"),
    ];
    for (i, (content, needle)) in cases.into_iter().enumerate() {
        let path = dir.join(format!("tenants-{i}.toml"));
        std::fs::write(&path, content).unwrap();
        let out = run_to_exit(
            &["--sandbox", "--tenants-file", path.to_str().unwrap()],
            &[],
        );
        assert_eq!(out.status.code(), Some(2), "{content}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        for expected in ["--tenants-file", path.to_str().unwrap(), needle] {
            assert!(stderr.contains(expected), "{expected}: {stderr}");
        }
        assert!(!stderr.contains("inline-secret"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_secret_is_never_echoed_in_errors() {
    let out = run_to_exit(
        &["--listen", "127.0.0.1:0", "--upstream-url", "gopher://x"],
        &[
            ("KGEN_CLIENT_ID", "game"),
            ("KGEN_CLIENT_SECRET", "very-secret-value"),
        ],
    );

    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("very-secret-value"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("very-secret-value"));
}

#[tokio::test]
async fn sandbox_binary_serves_sessions_and_exits_0_on_sigterm() {
    let gateway = RunningBinary::gateway(
        &[
            "--sandbox",
            "--shutdown-grace",
            "2s",
            "--worker-threads",
            "1",
        ],
        // The gateway sizes its runtime itself: tokio's own variable (which would panic tokio) is ignored.
        &[("TOKIO_WORKER_THREADS", "not-a-number")],
    )
    .await;
    let addr = gateway.addr;
    let saw_sandbox_warning = gateway.logs.iter().any(|line| {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        event["level"] == "WARN"
            && event["message"]
                .as_str()
                .is_some_and(|m| m.contains("SANDBOX"))
    });
    assert!(
        saw_sandbox_warning,
        "a loud warning says the responses are fake"
    );

    let session = create_session_at(addr, "binary-user")
        .await
        .expect("sandbox session");
    assert_eq!(session.user_id, "binary-user");
    assert!(session.is_new_user);

    let (code, rest) = gateway.stop().await;
    assert_eq!(code, Some(0), "graceful shutdown exits 0");
    assert!(
        rest.iter().any(|l| l.contains("SIGTERM received")),
        "{rest:?}"
    );
    assert!(
        rest.iter().all(|l| !l.contains("sandbox-secret")),
        "secret never logged"
    );
}

#[tokio::test]
async fn standalone_sandbox_subcommand_serves_http_and_exits_0_on_sigterm() {
    let sandbox =
        RunningBinary::sandbox(&["sandbox", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .await;
    let addr = sandbox.addr;

    let response = reqwest::Client::new()
        .post(format!("http://{addr}/s2s/session/"))
        .header("x-client-id", "sandbox-client")
        .header("x-client-secret", "sandbox-secret")
        .header("content-type", "application/json")
        .body(r#"{"user_id":"FTC_User1"}"#)
        .send()
        .await
        .expect("sandbox answers");
    assert_eq!(response.status(), 200);
    let session: serde_json::Value = response.json().await.expect("JSON session");
    assert_eq!(
        session["namespaced_third_party_user_id"],
        format!(
            "{}#FTC_User1",
            session["third_party_client_id"].as_str().unwrap()
        )
    );

    let (code, _) = sandbox.stop().await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn sandbox_binary_warns_once_naming_the_ignored_credentials_without_their_values() {
    let gateway = RunningBinary::gateway(
        &[
            "--sandbox",
            "--upstream-url",
            "http://127.0.0.1:9",
            "--worker-threads",
            "1",
        ],
        &[
            ("KGEN_CLIENT_ID", "real-client-id"),
            ("KGEN_CLIENT_SECRET", "real-secret-value"),
        ],
    )
    .await;
    let warnings: Vec<serde_json::Value> = gateway
        .logs
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["level"] == "WARN" && !event["ignored"].is_null())
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", gateway.logs);
    let ignored = warnings[0]["ignored"].as_str().unwrap_or_default();
    for setting in [
        "--upstream-url / KGEN_UPSTREAM_URL",
        "--client-id / KGEN_CLIENT_ID",
        "KGEN_CLIENT_SECRET",
    ] {
        assert!(ignored.contains(setting), "{setting} not in {ignored}");
    }

    let session = create_session_at(gateway.addr, "binary-user")
        .await
        .expect("a sandbox session, not a call to 127.0.0.1:9");
    assert_eq!(session.third_party_client_name, "SANDBOX_SANDBOX_CLIENT");

    let (code, logs) = gateway.stop().await;
    assert_eq!(code, Some(0));
    assert!(
        logs.iter()
            .all(|l| !l.contains("real-secret-value") && !l.contains("real-client-id")),
        "values never logged"
    );
}
