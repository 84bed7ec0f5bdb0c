//! The `fault:` grammar: what the stand-in does with one request.

use std::time::Duration;

use super::{Answer, Received, Shared};

/// The prefix of every magic `user_id`, as the sandbox spells it.
const PREFIX: &str = "fault:";
/// The sandbox's longest injected delay.
const MAX_DELAY: Duration = Duration::from_secs(60);

/// What to do with one request.
pub(super) enum Action {
    /// Write this answer.
    Respond(Vec<u8>),
    /// Write these bytes, then reset the connection.
    ResetAfter(Vec<u8>),
    /// Write these bytes, then close the connection.
    CloseAfter(Vec<u8>),
    /// Write these headers, then one body byte every 100 ms.
    Trickle(Vec<u8>),
    /// Write this head, then the body in 64-byte chunks.
    Chunked(Vec<u8>, Vec<u8>),
    /// Write a chunked head, then spaces until the gateway hangs up.
    Endless,
    /// Wait this long (or until the gateway hangs up), then do the rest.
    Delay(Duration, Box<Action>),
    /// Never answer.
    Hold,
}

/// The key of a `fault:flaky:<n>:<key>[:<code>]` user id.
pub(super) fn flaky_key(user_id: &str) -> Option<String> {
    let spec = user_id.strip_prefix(PREFIX)?;
    match spec.split(':').collect::<Vec<_>>().as_slice() {
        ["flaky", _, key] | ["flaky", _, key, _] => Some((*key).to_owned()),
        _ => None,
    }
}

/// Decides what to do with `request`, which has already been recorded in `shared`.
pub(super) fn decide(request: &Received, shared: &Shared) -> Action {
    let user_id = request.user_id().unwrap_or_default();
    let usual = || respond(&shared.usual_answer(request));
    let Some(spec) = user_id.strip_prefix(PREFIX) else {
        return usual();
    };
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        // The sandbox's rows.
        ["status", code] => match sandbox_status(code, None) {
            Some(answer) => Action::Respond(encode(&answer)),
            None => Action::Respond(unknown_fault()),
        },
        ["status", code, secs] => match secs
            .parse::<u64>()
            .ok()
            .and_then(|s| sandbox_status(code, Some(s)))
        {
            Some(answer) => Action::Respond(encode(&answer)),
            None => Action::Respond(unknown_fault()),
        },
        ["delay", ms] => match ms.parse::<u64>() {
            Ok(ms) => Action::Delay(Duration::from_millis(ms).min(MAX_DELAY), Box::new(usual())),
            Err(_) => Action::Respond(unknown_fault()),
        },
        ["malformed"] => Action::Respond(encode(&Answer::raw(
            200,
            "text/html",
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        ))),
        ["no-session-id"] => {
            let mut session = session_json(&user_id);
            if let Some(fields) = session.as_object_mut() {
                fields.remove("session_id");
            }
            Action::Respond(encode(&Answer::json(200, session)))
        }
        ["oversized"] => {
            let mut session = session_json(&user_id);
            session["padding"] = serde_json::json!("x".repeat(2 * 1024 * 1024));
            Action::Respond(encode(&Answer::json(200, session)))
        }
        // The transport rows.
        ["reset-headers"] => Action::ResetAfter(b"HTTP/1.1 200 O".to_vec()),
        ["reset-body"] => Action::ResetAfter(
            [
                head(200, "application/json", Some(500), &[]),
                b"{\"session_id\":\"s".to_vec(),
            ]
            .concat(),
        ),
        ["hang-up"] => Action::CloseAfter(Vec::new()),
        ["truncated"] => Action::CloseAfter(
            [
                head(200, "application/json", Some(1000), &[]),
                b"{\"session_".to_vec(),
            ]
            .concat(),
        ),
        ["slow-headers"] => Action::Delay(Duration::from_secs(30), Box::new(usual())),
        ["trickle"] => Action::Trickle(head(200, "application/json", Some(100_000), &[])),
        ["chunked"] => {
            let answer = shared.usual_answer(request);
            let mut headers = answer.headers.clone();
            headers.push(("transfer-encoding".to_owned(), "chunked".to_owned()));
            after(
                answer.delay,
                Action::Chunked(head_of(answer.status, None, &headers), answer.body),
            )
        }
        ["endless"] => Action::Endless,
        ["hold"] => Action::Hold,
        ["flaky", n, key] => flaky(shared, n, key, "503", usual),
        ["flaky", n, key, code] => flaky(shared, n, key, code, usual),
        ["invalid-utf8"] => Action::Respond(encode(&Answer::raw(
            200,
            "application/json",
            b"{\"session_id\":\"\xff\xfe\"}".to_vec(),
        ))),
        ["nested"] => Action::Respond(encode(&Answer::raw(
            200,
            "application/json",
            format!(
                "{{\"session_id\":{}1{}}}",
                "[".repeat(100_000),
                "]".repeat(100_000)
            ),
        ))),
        _ => Action::Respond(unknown_fault()),
    }
}

/// `fault:status:<code>[:<secs>]` as the sandbox answers it; `None` for a code outside 200–599.
fn sandbox_status(code: &str, retry_after: Option<u64>) -> Option<Answer> {
    let code = code
        .parse::<u16>()
        .ok()
        .filter(|c| (200..=599).contains(c))?;
    let retry_after = retry_after.or_else(|| matches!(code, 429 | 503).then_some(1));
    let answer = Answer::json(
        code,
        serde_json::json!({ "message": format!("sandbox fault: HTTP {code}") }),
    );
    Some(match retry_after {
        Some(secs) => answer.with_header("retry-after", &secs.to_string()),
        None => answer,
    })
}

fn unknown_fault() -> Vec<u8> {
    encode(&Answer::json(
        400,
        serde_json::json!({ "message": "unknown sandbox fault" }),
    ))
}

fn flaky(
    shared: &Shared,
    n: &str,
    key: &str,
    code: &str,
    usual: impl FnOnce() -> Action,
) -> Action {
    let (Ok(n), Ok(code)) = (n.parse::<usize>(), code.parse::<u16>()) else {
        return Action::Respond(unknown_fault());
    };
    let seen = super::lock(&shared.received)
        .iter()
        .filter(|request| request.key() == key)
        .count();
    if seen <= n {
        Action::Respond(encode(&Answer::json(
            code,
            serde_json::json!({ "message": "flaky" }),
        )))
    } else {
        usual()
    }
}

/// Writes `answer`, once its [`Answer::after`] delay has passed.
fn respond(answer: &Answer) -> Action {
    after(answer.delay, Action::Respond(encode(answer)))
}

/// `action`, after `delay` if there is one.
fn after(delay: Duration, action: Action) -> Action {
    if delay.is_zero() {
        action
    } else {
        Action::Delay(delay, Box::new(action))
    }
}

/// The stand-in's own small session for `user_id`.
pub(super) fn session_json(user_id: &str) -> serde_json::Value {
    serde_json::json!({ "session_id": format!("session-of-{user_id}"), "user_id": user_id })
}

/// Whether an answer with `status` carries no body at all (RFC 9110: 1xx, 204, 304).
fn bodiless(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// `answer` on the wire, with a `content-length`.
fn encode(answer: &Answer) -> Vec<u8> {
    if bodiless(answer.status) {
        return head_of(answer.status, None, &answer.headers);
    }
    [
        head_of(answer.status, Some(answer.body.len()), &answer.headers),
        answer.body.clone(),
    ]
    .concat()
}

fn head(
    status: u16,
    content_type: &str,
    content_length: Option<usize>,
    extra: &[(String, String)],
) -> Vec<u8> {
    let mut headers = vec![("content-type".to_owned(), content_type.to_owned())];
    headers.extend_from_slice(extra);
    head_of(status, content_length, &headers)
}

/// A status line and headers, ending in the blank line.
pub(super) fn head_of(
    status: u16,
    content_length: Option<usize>,
    headers: &[(String, String)],
) -> Vec<u8> {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("X");
    let mut text = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(length) = content_length {
        text.push_str(&format!("content-length: {length}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}
