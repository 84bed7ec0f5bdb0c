//! `kgen-gateway call`: the real binary calling a real `kgen-gateway --sandbox`, as a person would from a terminal.

use std::{
    process::{Output, Stdio},
    time::Duration,
};

use kgen_gateway::proto::{
    session_service_server::{SessionService, SessionServiceServer},
    CreateSessionRequest, CreateSessionResponse,
};
use tonic::{transport::server::TcpIncoming, Request, Response, Status};

use crate::support::{
    files::Scratch,
    process::{RunningBinary, BIN},
    wait::bounded,
};

const REDACTED: &str = "[redacted: --show-tokens prints it]";

/// Runs `kgen-gateway call ARGS` with only `env` (and `PATH`) in its environment; waits for its exit, bounded.
async fn call(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command
        .arg("call")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.stdin(Stdio::null()).kill_on_drop(true).output();
    bounded("kgen-gateway call to exit", output)
        .await
        .expect("binary runs")
}

/// `kgen-gateway call --addr <the gateway> ARGS`.
async fn call_gateway(gateway: &RunningBinary, args: &[&str], env: &[(&str, &str)]) -> Output {
    let addr = format!("http://{}", gateway.addr);
    let args: Vec<&str> = ["--addr", addr.as_str()]
        .iter()
        .chain(args)
        .copied()
        .collect();
    call(&args, env).await
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The session printed on stdout, which must be JSON.
fn printed_session(output: &Output) -> serde_json::Value {
    assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
    serde_json::from_str(&stdout(output))
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(output)))
}

#[tokio::test]
async fn a_session_is_printed_as_json_with_its_tokens_redacted_unless_show_tokens_is_given() {
    let gateway = RunningBinary::gateway(&["--sandbox"], &[]).await;

    let output = call_gateway(&gateway, &["newcomer-1"], &[]).await;
    let session = printed_session(&output);
    assert_eq!(session["userId"], "newcomer-1");
    assert_eq!(session["isNewUser"], true);
    assert_eq!(session["thirdPartyClientName"], "SANDBOX_SANDBOX_CLIENT");
    assert_eq!(session["accessToken"], REDACTED);
    assert_eq!(session["refreshToken"], REDACTED);
    assert!(
        !stdout(&output).contains("eyJ"),
        "no JWT: {}",
        stdout(&output)
    );
    assert_eq!(stderr(&output), "", "nothing on stderr on success");

    let output = call_gateway(&gateway, &["--show-tokens", "newcomer-1"], &[]).await;
    let session = printed_session(&output);
    assert_eq!(
        session["isNewUser"], false,
        "the second session of the player"
    );
    for token in ["accessToken", "refreshToken"] {
        let value = session[token].as_str().unwrap();
        assert!(
            value.starts_with("eyJ") && value.split('.').count() == 3,
            "{token} is the sandbox's JWT: {value}"
        );
    }
}

#[tokio::test]
async fn a_rate_limited_call_exits_72_with_its_reason_and_retry_delay_decoded() {
    let gateway = RunningBinary::gateway(&["--sandbox", "--upstream-max-attempts", "1"], &[]).await;

    let output = call_gateway(&gateway, &["fault:status:429"], &[]).await;

    assert_eq!(output.status.code(), Some(72), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    let stderr = stderr(&output);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines[0].starts_with("RESOURCE_EXHAUSTED: "), "{stderr}");
    for expected in [
        "  error info: reason=UPSTREAM_RATE_LIMITED domain=kgen-gateway metadata: attempts=1 upstream_status=429",
        "  retry info: retry after 1s",
    ] {
        assert!(lines.contains(&expected), "{expected:?} in {stderr}");
    }
    assert!(
        lines.last().unwrap().starts_with("  request id: ") && lines.last().unwrap().len() > 16,
        "{stderr}"
    );
}

#[tokio::test]
async fn an_invalid_user_id_exits_67_with_the_field_violation_printed() {
    let gateway = RunningBinary::gateway(&["--sandbox"], &[]).await;
    let too_long = "x".repeat(257);

    for (user_id, violation) in [
        (
            "",
            "  bad request: user_id: must not be empty or only white space",
        ),
        (
            &too_long,
            "  bad request: user_id: must be at most 256 bytes of UTF-8",
        ),
    ] {
        let output = call_gateway(&gateway, &[user_id], &[]).await;

        assert_eq!(output.status.code(), Some(67), "{}", stderr(&output));
        let stderr = stderr(&output);
        assert!(stderr.starts_with("INVALID_ARGUMENT: "), "{stderr}");
        assert!(stderr.contains("reason=INVALID_USER_ID"), "{stderr}");
        assert!(
            stderr.lines().any(|line| line == violation),
            "{violation:?} in {stderr}"
        );
    }
}

#[tokio::test]
async fn a_call_slower_than_the_timeout_exits_68_at_the_deadline() {
    let gateway = RunningBinary::gateway(&["--sandbox"], &[]).await;

    let started = std::time::Instant::now();
    let output = call_gateway(&gateway, &["--timeout", "300ms", "fault:delay:5000"], &[]).await;

    assert_eq!(output.status.code(), Some(68), "{}", stderr(&output));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "gave up at the deadline, not after KGeN's 5 s"
    );
    // The gateway's answer (with its details) or the command's own, whichever comes first: both are at the deadline.
    let stderr = stderr(&output);
    assert!(
        stderr.starts_with("DEADLINE_EXCEEDED: no answer within --timeout 300ms")
            || stderr.contains("reason=DEADLINE_EXCEEDED domain=kgen-gateway"),
        "{stderr}"
    );
}

/// A `SessionService` that answers every `CreateSession` with UNAVAILABLE, its message naming the metadata it got.
struct MetadataEcho;

#[tonic::async_trait]
impl SessionService for MetadataEcho {
    async fn create_session(
        &self,
        request: Request<CreateSessionRequest>,
    ) -> Result<Response<CreateSessionResponse>, Status> {
        let got = |key: &str| {
            request
                .metadata()
                .get(key)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("(none)")
                .to_owned()
        };
        Err(Status::unavailable(format!(
            "grpc-timeout={} authorization={} x-kgen-tenant={}",
            got("grpc-timeout"),
            got("authorization"),
            got("x-kgen-tenant")
        )))
    }
}

#[tokio::test]
async fn the_deadline_token_and_tenant_travel_as_grpc_timeout_authorization_and_x_kgen_tenant() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SessionServiceServer::new(MetadataEcho))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            }),
    );

    let output = call(
        &["--addr", &addr, "--timeout", "2m", "--tenant", "alpha", "u"],
        &[("KGEN_CALLER_TOKEN", "tok-echo")],
    )
    .await;
    let bare = call(&["--addr", &addr, "u"], &[]).await;

    assert_eq!(output.status.code(), Some(64 + 14), "{}", stderr(&output));
    let stderr_of_call = stderr(&output);
    let echoed = stderr_of_call.lines().next().unwrap_or_default();
    assert!(
        echoed.starts_with("UNAVAILABLE: grpc-timeout=")
            && echoed.contains("authorization=Bearer tok-echo x-kgen-tenant=alpha"),
        "{stderr_of_call}"
    );
    // tonic writes the deadline in the finest unit that fits 8 digits: what is left of 2 minutes.
    let timeout = echoed["UNAVAILABLE: grpc-timeout=".len()..]
        .split(' ')
        .next()
        .unwrap();
    let (number, unit) = timeout.split_at(timeout.len() - 1);
    let micros = number.parse::<u64>().unwrap()
        * match unit {
            "u" => 1,
            "m" => 1_000,
            "S" => 1_000_000,
            other => panic!("unit {other} of {timeout}"),
        };
    assert!((119_000_000..=120_000_000).contains(&micros), "{timeout}");
    assert!(
        stderr(&bare).starts_with("UNAVAILABLE: grpc-timeout=")
            && stderr(&bare).contains("authorization=(none) x-kgen-tenant=(none)"),
        "no token, no tenant unless given: {}",
        stderr(&bare)
    );
    let _ = stop.send(());
    bounded("the echo server to stop", server)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn nothing_listening_exits_1_with_one_line_naming_the_address() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let addr = format!("http://127.0.0.1:{port}");

    let output = call(&["--addr", &addr, "newcomer-1"], &[]).await;

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    let stderr = stderr(&output);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    for expected in [addr.as_str(), "--addr / KGEN_GATEWAY_ADDR", "refused"] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
}

#[tokio::test]
async fn bad_command_lines_exit_2_with_one_line() {
    for (args, needle) in [
        (
            &["--addr", "https://127.0.0.1:50051", "u"][..],
            "TLS is not supported",
        ),
        (&[][..], "<USER_ID>"),
        (&["--timeout", "0s", "u"], "--timeout"),
        (
            &["--token", "two words", "u"],
            "--token / KGEN_CALLER_TOKEN",
        ),
    ] {
        let output = call(args, &[]).await;

        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        let stderr = stderr(&output);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("two words"),
            "the token is not echoed: {stderr}"
        );
    }
}

#[tokio::test]
async fn with_caller_tokens_a_call_without_the_token_is_unauthenticated_and_one_with_it_succeeds() {
    let scratch = Scratch::new("call-tokens");
    let tokens = scratch.write("callers", "svc:tok-call-1\n");
    let gateway = RunningBinary::gateway(
        &[
            "--sandbox",
            "--caller-tokens-file",
            tokens.to_str().unwrap(),
        ],
        &[],
    )
    .await;

    for (args, env) in [
        (&["newcomer-2"][..], &[][..]),
        (&["--token", "tok-wrong", "newcomer-2"], &[]),
    ] {
        let output = call_gateway(&gateway, args, env).await;
        assert_eq!(
            output.status.code(),
            Some(80),
            "{args:?}: {}",
            stderr(&output)
        );
        let stderr = stderr(&output);
        assert!(stderr.starts_with("UNAUTHENTICATED: "), "{stderr}");
        assert!(stderr.contains("reason=CALLER_UNAUTHENTICATED"), "{stderr}");
        assert!(!stderr.contains("tok-"), "no token echoed: {stderr}");
    }

    let with_flag = call_gateway(&gateway, &["--token", "tok-call-1", "newcomer-2"], &[]).await;
    assert_eq!(printed_session(&with_flag)["userId"], "newcomer-2");
    let with_env = call_gateway(
        &gateway,
        &["newcomer-2"],
        &[("KGEN_CALLER_TOKEN", "tok-call-1")],
    )
    .await;
    assert_eq!(printed_session(&with_env)["userId"], "newcomer-2");
    for output in [with_flag, with_env] {
        assert!(!stdout(&output).contains("tok-call-1"));
        assert!(!stderr(&output).contains("tok-call-1"));
    }
}

#[tokio::test]
async fn the_tenant_is_sent_as_the_tenant_metadata_key() {
    let scratch = Scratch::new("call-tenants");
    scratch.write("alpha.secret", "alpha-secret\n");
    let tenants = scratch.write(
        "tenants.toml",
        "[tenants.alpha]\nclient_id = \"alpha-id\"\nclient_secret_file = \"alpha.secret\"\n",
    );
    let gateway = RunningBinary::gateway(
        &["--sandbox", "--tenants-file", tenants.to_str().unwrap()],
        &[],
    )
    .await;

    let output = call_gateway(&gateway, &["--tenant", "alpha", "newcomer-3"], &[]).await;
    assert_eq!(printed_session(&output)["userId"], "newcomer-3");

    let output = call_gateway(&gateway, &["newcomer-3"], &[("KGEN_TENANT", "gamma")]).await;
    assert_eq!(output.status.code(), Some(64 + 7), "{}", stderr(&output));
    let stderr = stderr(&output);
    assert!(stderr.starts_with("PERMISSION_DENIED: "), "{stderr}");
    assert!(stderr.contains("reason=TENANT_NOT_ALLOWED"), "{stderr}");
}
