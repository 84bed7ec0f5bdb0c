//! Multi-tenant credentials (`--tenants-file`): routing by `x-kgen-tenant` to each tenant's upstream with its own
//! credentials, the default tenant, caller grants, per-tenant breakers and limits, and reloading the file.

use std::{path::PathBuf, time::Duration};

use kgen_gateway::proto::{CreateSessionBatchRequest, CreateSessionRequest, CreateSessionResponse};
use serde_json::json;
use tonic::{Code, Request, Status};

use crate::support::{
    app::{settings_from, TestApp, CLIENT_ID, CLIENT_SECRET},
    assertions::{assert_secret_absent, assert_status},
    fake_kgen::{Answer, FakeKgen},
    files::Scratch,
    process::RunningBinary,
    upstreams::secret_echoing_upstream,
    wait::{bounded, within_5s},
};

/// A KGeN stand-in that creates a session (with `session_id` telling who it was for) only for the credentials
/// it knows, and answers 401 to any other.
async fn upstream(accepts: &[(&str, &str, &str)]) -> FakeKgen {
    let accepts: Vec<(String, String, String)> = accepts
        .iter()
        .map(|&(id, secret, session_id)| (id.to_owned(), secret.to_owned(), session_id.to_owned()))
        .collect();
    let kgen = FakeKgen::start().await;
    kgen.answer_with(move |request| {
        let known = accepts.iter().find(|(id, secret, _)| {
            request.header("x-client-id") == Some(id.as_str())
                && request.header("x-client-secret") == Some(secret.as_str())
        });
        match known {
            Some((_, _, session_id)) => Answer::json(200, json!({ "session_id": session_id })),
            None => Answer::json(401, json!({ "message": "bad client" })),
        }
    });
    kgen
}

fn tenants_toml(default: Option<&str>, tenants: &[(&str, &str, &str, &str)]) -> String {
    let mut text = String::new();
    if let Some(default) = default {
        text.push_str(&format!("default_tenant = \"{default}\"\n"));
    }
    for (name, id, secret_file, url) in tenants {
        text.push_str(&format!(
            "\n[tenants.{name}]\nclient_id = \"{id}\"\nclient_secret_file = \"{secret_file}\"\nupstream_url = \"{url}\"\n"
        ));
    }
    text
}

fn request(
    user_id: &str,
    tenant: Option<&str>,
    token: Option<&str>,
) -> Request<CreateSessionRequest> {
    let mut request = Request::new(CreateSessionRequest {
        user_id: user_id.into(),
    });
    if let Some(tenant) = tenant {
        request
            .metadata_mut()
            .insert("x-kgen-tenant", tenant.parse().unwrap());
    }
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

async fn call(
    app: &TestApp,
    tenant: Option<&str>,
    token: Option<&str>,
) -> Result<CreateSessionResponse, Status> {
    bounded(
        "the gateway to answer CreateSession",
        app.client
            .clone()
            .create_session(request("u", tenant, token)),
    )
    .await
    .map(tonic::Response::into_inner)
}

/// Two upstreams: `alpha` (which also serves the flags' tenant) and `beta`, each knowing only its own clients.
struct Two {
    alpha: FakeKgen,
    beta: FakeKgen,
    scratch: Scratch,
    file: PathBuf,
}

async fn two_tenants(default: Option<&str>) -> Two {
    let alpha = upstream(&[
        ("alpha-id", "alpha-secret", "via-alpha"),
        (CLIENT_ID, CLIENT_SECRET, "via-default"),
    ])
    .await;
    let beta = upstream(&[("beta-id", "beta-secret", "via-beta")]).await;
    let scratch = Scratch::new("two");
    scratch.write("alpha.secret", "alpha-secret\n");
    scratch.write("beta.secret", "beta-secret\n");
    let file = scratch.write(
        "tenants.toml",
        &tenants_toml(
            default,
            &[
                ("alpha", "alpha-id", "alpha.secret", &alpha.url()),
                ("beta", "beta-id", "beta.secret", &beta.url()),
            ],
        ),
    );
    Two {
        alpha,
        beta,
        scratch,
        file,
    }
}

#[tokio::test]
async fn each_call_reaches_its_tenants_upstream_with_its_credentials_and_the_flags_are_the_default()
{
    let two = two_tenants(None).await;
    let settings = settings_from(&[
        "--client-id",
        CLIENT_ID,
        "--upstream-url",
        &two.alpha.url(),
        "--tenants-file",
        two.file.to_str().unwrap(),
    ]);
    let app = TestApp::spawn(settings).await;

    assert_eq!(
        call(&app, Some("alpha"), None).await.unwrap().session_id,
        "via-alpha"
    );
    assert_eq!(
        call(&app, Some("beta"), None).await.unwrap().session_id,
        "via-beta"
    );
    assert_eq!(
        call(&app, None, None).await.unwrap().session_id,
        "via-default",
        "no header: the --client-id flags' tenant"
    );
    assert_eq!(
        call(&app, Some("default"), None).await.unwrap().session_id,
        "via-default"
    );

    let beta_requests = two.beta.received();
    assert_eq!(beta_requests.len(), 1, "only beta's call went to beta");
    assert_eq!(beta_requests[0].headers["x-client-id"], "beta-id");

    // A batch uses the call's tenant for every item.
    let mut batch = Request::new(CreateSessionBatchRequest {
        user_ids: vec!["a".into(), "b".into()],
    });
    batch
        .metadata_mut()
        .insert("x-kgen-tenant", "beta".parse().unwrap());
    let results = app
        .client
        .clone()
        .create_session_batch(batch)
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 2);
    for item in results {
        assert!(
            matches!(
                item.result,
                Some(kgen_gateway::proto::create_sessions_response::Result::Session(ref s))
                    if s.session_id == "via-beta"
            ),
            "{item:?}"
        );
    }

    let (_, metrics) = app.admin_get("/metrics").await;
    for needle in [
        r#"kgen_tenant_calls_total{tenant="alpha",grpc_code="OK"} 1"#,
        r#"kgen_tenant_calls_total{tenant="beta",grpc_code="OK"} 3"#,
        r#"kgen_tenant_calls_total{tenant="default",grpc_code="OK"} 2"#,
        r#"kgen_tenant_upstream_responses_total{tenant="beta",status="2xx"} 3"#,
        r#"kgen_tenant_breaker_state{tenant="alpha"} 0"#,
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
    assert!(!metrics.contains("secret"), "no secret in metrics");
}

#[tokio::test]
async fn without_a_default_a_call_must_name_a_known_tenant() {
    let two = two_tenants(None).await;
    // Only the file: no --client-id, so no flags' tenant and no default.
    let settings = settings_from(&["--tenants-file", two.file.to_str().unwrap()]);
    let app = TestApp::spawn(settings).await;

    let status = call(&app, None, None).await.unwrap_err();
    let details = assert_status(&status, Code::InvalidArgument, "TENANT_REQUIRED");
    assert_eq!(
        details.bad_request().unwrap().field_violations[0].field,
        "x-kgen-tenant"
    );

    for unknown in ["gamma", "default", "not a name!"] {
        let status = call(&app, Some(unknown), None).await.unwrap_err();
        let details = assert_status(&status, Code::PermissionDenied, "TENANT_NOT_ALLOWED");
        let echoed = details
            .error_info()
            .unwrap()
            .metadata
            .get("tenant")
            .cloned();
        let expected = (unknown != "not a name!").then(|| unknown.to_owned());
        assert_eq!(echoed, expected, "{unknown}");
    }
    assert!(two.alpha.received().is_empty());
    assert_eq!(
        call(&app, Some("beta"), None).await.unwrap().session_id,
        "via-beta"
    );

    let (_, metrics) = app.admin_get("/metrics").await;
    assert!(
        !metrics.contains("gamma"),
        "unknown tenants are not recorded"
    );
}

#[tokio::test]
async fn default_tenant_in_the_file_serves_calls_without_the_header() {
    let two = two_tenants(Some("beta")).await;
    let settings = settings_from(&["--tenants-file", two.file.to_str().unwrap()]);
    let app = TestApp::spawn(settings).await;
    assert_eq!(call(&app, None, None).await.unwrap().session_id, "via-beta");
    assert_eq!(
        call(&app, Some("alpha"), None).await.unwrap().session_id,
        "via-alpha"
    );
}

#[tokio::test]
async fn a_caller_token_restricted_to_one_tenant_cannot_use_another() {
    let two = two_tenants(None).await;
    let tokens = two.scratch.write(
        "callers",
        "alpha-svc:tok-alpha tenants=alpha\nplain:tok-plain\nops:tok-ops tenants=*\n",
    );
    let settings = settings_from(&[
        "--client-id",
        CLIENT_ID,
        "--upstream-url",
        &two.alpha.url(),
        "--tenants-file",
        two.file.to_str().unwrap(),
        "--caller-tokens-file",
        tokens.to_str().unwrap(),
    ]);
    let app = TestApp::spawn(settings).await;

    let status = call(&app, Some("beta"), Some("tok-alpha"))
        .await
        .unwrap_err();
    assert_status(&status, Code::PermissionDenied, "TENANT_NOT_ALLOWED");
    assert_eq!(
        call(&app, None, Some("tok-alpha"))
            .await
            .unwrap()
            .session_id,
        "via-alpha",
        "its only tenant is used without the header"
    );
    assert_eq!(
        call(&app, Some("alpha"), Some("tok-alpha"))
            .await
            .unwrap()
            .session_id,
        "via-alpha"
    );

    // A plain `name:token` line: the default tenant only.
    assert_eq!(
        call(&app, None, Some("tok-plain"))
            .await
            .unwrap()
            .session_id,
        "via-default"
    );
    let status = call(&app, Some("alpha"), Some("tok-plain"))
        .await
        .unwrap_err();
    assert_status(&status, Code::PermissionDenied, "TENANT_NOT_ALLOWED");

    assert_eq!(
        call(&app, Some("beta"), Some("tok-ops"))
            .await
            .unwrap()
            .session_id,
        "via-beta"
    );
    assert!(two.beta.received().len() == 1);
}

#[tokio::test]
async fn one_tenants_open_breaker_does_not_affect_another() {
    let failing = FakeKgen::start().await;
    failing.answer(Answer::empty(503));
    let beta = upstream(&[("beta-id", "beta-secret", "via-beta")]).await;
    let scratch = Scratch::new("breaker");
    scratch.write("alpha.secret", "alpha-secret");
    scratch.write("beta.secret", "beta-secret");
    let file = scratch.write(
        "tenants.toml",
        &tenants_toml(
            None,
            &[
                ("alpha", "alpha-id", "alpha.secret", &failing.url()),
                ("beta", "beta-id", "beta.secret", &beta.url()),
            ],
        ),
    );
    let settings = settings_from(&[
        "--tenants-file",
        file.to_str().unwrap(),
        "--upstream-max-attempts",
        "1",
        "--breaker-failure-threshold",
        "2",
        "--breaker-cool-down",
        "30s",
    ]);
    let app = TestApp::spawn(settings).await;

    for _ in 0..2 {
        let status = call(&app, Some("alpha"), None).await.unwrap_err();
        assert_status(&status, Code::Unavailable, "UPSTREAM_UNAVAILABLE");
    }
    let status = call(&app, Some("alpha"), None).await.unwrap_err();
    assert_status(&status, Code::Unavailable, "UPSTREAM_CIRCUIT_OPEN");
    assert_eq!(failing.received().len(), 2);

    assert_eq!(
        call(&app, Some("beta"), None).await.unwrap().session_id,
        "via-beta"
    );
    let (_, metrics) = app.admin_get("/metrics").await;
    assert!(
        metrics.contains(r#"kgen_tenant_breaker_state{tenant="alpha"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"kgen_tenant_breaker_state{tenant="beta"} 0"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("kgen_upstream_breaker_state 1"),
        "the worst tenant's state"
    );
}

#[tokio::test]
async fn one_tenants_full_concurrency_limit_does_not_block_another() {
    let slow = FakeKgen::start().await;
    let beta = upstream(&[("beta-id", "beta-secret", "via-beta")]).await;
    let scratch = Scratch::new("limit");
    scratch.write("alpha.secret", "alpha-secret");
    scratch.write("beta.secret", "beta-secret");
    let file = scratch.write(
        "tenants.toml",
        &tenants_toml(
            None,
            &[
                ("alpha", "alpha-id", "alpha.secret", &slow.url()),
                ("beta", "beta-id", "beta.secret", &beta.url()),
            ],
        ),
    );
    let settings = settings_from(&[
        "--tenants-file",
        file.to_str().unwrap(),
        "--max-concurrent-upstream",
        "1",
        "--upstream-queue-timeout",
        "50ms",
    ]);
    let app = TestApp::spawn(settings).await;

    let holding = {
        let mut client = app.client.clone();
        tokio::spawn(async move {
            client
                .create_session(request("fault:delay:2000", Some("alpha"), None))
                .await
        })
    };
    slow.until_called().await;
    let status = call(&app, Some("alpha"), None).await.unwrap_err();
    assert_status(&status, Code::Unavailable, "OVERLOADED");

    let started = std::time::Instant::now();
    assert_eq!(
        call(&app, Some("beta"), None).await.unwrap().session_id,
        "via-beta"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "beta did not wait for alpha"
    );
    assert!(holding.await.unwrap().is_ok());
}

#[tokio::test]
async fn reloading_the_tenants_file_adds_tenants_and_rotates_secrets_within_5s() {
    let alpha = upstream(&[
        ("alpha-id", "alpha-secret", "via-alpha"),
        ("alpha-id", "alpha-secret-2", "via-alpha-2"),
    ])
    .await;
    let beta = upstream(&[("beta-id", "beta-secret", "via-beta")]).await;
    let scratch = Scratch::new("reload");
    scratch.write("alpha.secret", "alpha-secret");
    scratch.write("beta.secret", "beta-secret");
    let alpha_only = tenants_toml(None, &[("alpha", "alpha-id", "alpha.secret", &alpha.url())]);
    let file = scratch.write("tenants.toml", &alpha_only);
    let settings = settings_from(&["--tenants-file", file.to_str().unwrap()]);
    let app = TestApp::spawn(settings).await;
    assert_eq!(
        call(&app, Some("alpha"), None).await.unwrap().session_id,
        "via-alpha"
    );
    let status = call(&app, Some("beta"), None).await.unwrap_err();
    assert_status(&status, Code::PermissionDenied, "TENANT_NOT_ALLOWED");

    // A tenant added to the file.
    scratch.write(
        "tenants.toml",
        &tenants_toml(
            None,
            &[
                ("alpha", "alpha-id", "alpha.secret", &alpha.url()),
                ("beta", "beta-id", "beta.secret", &beta.url()),
            ],
        ),
    );
    assert!(
        within_5s(|| async { call(&app, Some("beta"), None).await.is_ok() }).await,
        "the new tenant is served within 5 s"
    );

    // A secret file named by the tenants file rotated (the tenants file itself unchanged).
    scratch.write("alpha.secret", "alpha-secret-2\n");
    assert!(
        within_5s(|| async {
            call(&app, Some("alpha"), None)
                .await
                .is_ok_and(|s| s.session_id == "via-alpha-2")
        })
        .await,
        "the rotated secret is used within 5 s"
    );

    // A bad new file is ignored: the tenants in force stay.
    scratch.write("tenants.toml", "[tenants.alpha\nthis is not TOML");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        call(&app, Some("beta"), None).await.unwrap().session_id,
        "via-beta"
    );
    assert_eq!(
        call(&app, Some("alpha"), None).await.unwrap().session_id,
        "via-alpha-2"
    );
}

/// Calls as `tenant` against [`secret_echoing_upstream`]: the status and the secret the upstream was sent.
async fn rejected(app: &TestApp, echo: &FakeKgen, tenant: Option<&str>) -> (Status, String) {
    let status = call(app, tenant, None).await.expect_err("the echo rejects");
    let sent = echo
        .received()
        .last()
        .and_then(|r| r.header("x-client-secret"))
        .unwrap_or_default()
        .to_owned();
    (status, sent)
}

#[tokio::test]
async fn every_tenants_own_current_secret_is_scrubbed_from_upstream_messages_however_disguised() {
    let echo = secret_echoing_upstream().await;
    let scratch = Scratch::new("scrub");
    let flag_secret = scratch.write("flag.secret", "flag-Secret-one\n");
    scratch.write("alpha.secret", "alpha-Secret-one\n");
    scratch.write("beta.secret", "beta-Secret-one\n");
    let file = scratch.write(
        "tenants.toml",
        &tenants_toml(
            None,
            &[
                ("alpha", "alpha-id", "alpha.secret", &echo.url()),
                ("beta", "beta-id", "beta.secret", &echo.url()),
            ],
        ),
    );
    let settings = settings_from(&[
        "--client-id",
        CLIENT_ID,
        "--upstream-url",
        &echo.url(),
        "--client-secret-file",
        flag_secret.to_str().unwrap(),
        "--tenants-file",
        file.to_str().unwrap(),
    ]);
    let app = TestApp::spawn(settings).await;
    let all_redacted =
        "KGeN answered HTTP 400: client secret [redacted] or [redacted] or [redacted] or \
                        [redacted] or [redacted] rejected";

    for (tenant, secret) in [
        (None, "flag-Secret-one"),
        (Some("alpha"), "alpha-Secret-one"),
        (Some("beta"), "beta-Secret-one"),
    ] {
        let (status, sent) = rejected(&app, &echo, tenant).await;
        assert_eq!(sent, secret, "{tenant:?} calls with its own secret");
        assert_status(&status, Code::InvalidArgument, "UPSTREAM_REJECTED_REQUEST");
        assert_secret_absent(&status, secret);
        assert_eq!(status.message(), all_redacted, "{tenant:?}");
    }

    // Rotated secrets (a tenant's secret file, the flags' secret file): the new one is scrubbed.
    scratch.write("alpha.secret", "alpha-Secret-two\n");
    scratch.write("flag.secret", "flag-Secret-two\n");
    for (tenant, secret) in [
        (Some("alpha"), "alpha-Secret-two"),
        (None, "flag-Secret-two"),
    ] {
        assert!(
            within_5s(|| async { rejected(&app, &echo, tenant).await.1 == secret }).await,
            "{tenant:?} rotates to {secret} within 5 s"
        );
        let (status, sent) = rejected(&app, &echo, tenant).await;
        assert_eq!(sent, secret);
        assert_secret_absent(&status, secret);
        assert_eq!(status.message(), all_redacted, "{tenant:?}");
    }
}

#[tokio::test]
async fn a_grant_naming_a_tenant_that_is_not_configured_is_a_warning_at_start_up() {
    let scratch = Scratch::new("unknown-grant");
    let tenants = scratch.write(
        "tenants.toml",
        "[tenants.alpha]\nclient_id = \"alpha\"\nclient_secret_env = \"KGEN_TEST_ALPHA_SECRET\"\n",
    );
    let tokens = scratch.write("tokens.txt", "game:game-token tenants=alpha,ghost\n");
    let gateway = RunningBinary::gateway(
        &[
            "--sandbox",
            "--tenants-file",
            tenants.to_str().unwrap(),
            "--caller-tokens-file",
            tokens.to_str().unwrap(),
        ],
        &[("KGEN_TEST_ALPHA_SECRET", "alpha-secret")],
    )
    .await;
    let (code, logs) = gateway.stop().await;

    assert_eq!(code, Some(0));
    let warnings: Vec<&String> = logs
        .iter()
        .filter(|line| line.contains("grant names a tenant that is not configured"))
        .collect();
    assert_eq!(warnings.len(), 1, "{logs:#?}");
    for expected in [
        r#""level":"WARN""#,
        r#""caller":"game""#,
        r#""tenant":"ghost""#,
    ] {
        assert!(
            warnings[0].contains(expected),
            "{expected}: {}",
            warnings[0]
        );
    }
    assert!(!warnings[0].contains("game-token"), "{}", warnings[0]);
}

#[tokio::test]
async fn a_tenants_file_that_stops_loading_is_a_metric_until_it_loads_again() {
    let alpha = upstream(&[("alpha-id", "alpha-secret", "via-alpha")]).await;
    let scratch = Scratch::new("reload-metric");
    scratch.write("alpha.secret", "alpha-secret");
    let good = tenants_toml(None, &[("alpha", "alpha-id", "alpha.secret", &alpha.url())]);
    let file = scratch.write("tenants.toml", &good);
    let app = TestApp::spawn(settings_from(&["--tenants-file", file.to_str().unwrap()])).await;
    let failing = |value: &'static str| {
        let app = &app;
        move || async move {
            let (_, text) = app.admin_get("/metrics").await;
            text.lines().any(|line| {
                line == format!("kgen_config_reload_failing{{setting=\"--tenants-file\"}} {value}")
            })
        }
    };
    assert!(within_5s(failing("0")).await, "0 while the file loads");

    scratch.write("tenants.toml", "[tenants.alpha\nthis is not TOML");
    assert!(
        within_5s(failing("1")).await,
        "1 once the new content is refused"
    );
    // The tenants in force stay meanwhile.
    assert_eq!(
        call(&app, Some("alpha"), None).await.unwrap().session_id,
        "via-alpha"
    );

    scratch.write("tenants.toml", &good);
    assert!(within_5s(failing("0")).await, "0 again once it loads");
}
