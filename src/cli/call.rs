//! `kgen-gateway call`: one `CreateSession` call from the command line, for a person trying a gateway.
//!
//! It exists because the generic tools (`buf curl`, `grpcurl`) show the gateway's `google.rpc` error details — the
//! `ErrorInfo` reason, the `RetryInfo` delay, the `BadRequest` field — only as the base64 of
//! `grpc-status-details-bin`, and those details are what tells a newcomer what to do. This command prints them
//! decoded, one line each, and a session as the proto3 JSON those tools print (from the contract's descriptor set,
//! so the names are the contract's). The tokens of a session are secrets: they are printed only with
//! `--show-tokens`, and the caller token is never printed at all.
//!
//! The session and the failure are this command's output, so they are written here; the binary only makes the
//! returned exit status the process's. Plaintext HTTP/2 (h2c) only: the crate's client has no TLS.

use std::{error::Error as _, fmt::Write as _, io};

use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use secrecy::ExposeSecret;
use tokio::time::{timeout_at, Instant};
use tonic::{
    metadata::MetadataValue, transport::Endpoint, Code, Request, Response, Status, TimeoutExpired,
};
use tonic_types::StatusExt;

use super::args::CallArgs;
use crate::{
    proto::{
        session_service_client::SessionServiceClient, CreateSessionRequest, CreateSessionResponse,
        FILE_DESCRIPTOR_SET,
    },
    support::headers,
};

/// Exit status when no gRPC answer came (nothing listening, not a gRPC server), or the session cannot be printed.
const EXIT_FAILURE: u8 = 1;
/// Exit status for a command line that cannot be used (clap's, and the binary's for bad settings).
const EXIT_USAGE: u8 = 2;
/// A failed call exits with this plus its gRPC status code (grpcurl's convention).
const EXIT_STATUS_BASE: u8 = 64;
/// What a token of the session is replaced with unless `--show-tokens`.
const REDACTED_TOKEN: &str = "[redacted: --show-tokens prints it]";
/// The message printed as JSON.
const RESPONSE_MESSAGE: &str = "kgen.session.v1.CreateSessionResponse";
/// The setting a transport problem points at.
const ADDR_SETTING: &str = "--addr / KGEN_GATEWAY_ADDR";

/// How one call ended.
#[derive(Debug)]
enum Outcome {
    /// A session, printed as JSON.
    Session {
        /// The session as pretty-printed proto3 JSON, its tokens redacted unless `--show-tokens`.
        json: String,
        /// The `kgen-retried-after-ambiguous` response metadata, when the gateway sent it.
        retried_after_ambiguous: Option<String>,
    },
    /// The gateway answered a status other than OK (or the deadline passed without an answer).
    Failed(Status),
    /// Not an answer of the gateway: the exit status, and one line saying what happened and what to check.
    Problem(u8, String),
}

// === impl CallArgs ===

impl CallArgs {
    /// Makes the call and prints what it came to: the session on stdout, or the failure on stderr. `Err` holds
    /// the exit status of a failure, which has been printed already.
    pub async fn run(self) -> Result<(), u8> {
        let outcome = self.call().await;
        print(outcome, &mut io::stdout().lock(), &mut io::stderr().lock())
    }

    async fn call(&self) -> Outcome {
        // One deadline for the connection and the call, as a person expects of `--timeout`.
        let deadline = Instant::now() + self.timeout;
        let mut request = match self.request() {
            Ok(request) => request,
            Err(line) => return Outcome::Problem(EXIT_USAGE, line),
        };
        let channel = match timeout_at(deadline, Endpoint::from(self.addr.clone()).connect()).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(error)) => return Outcome::Problem(EXIT_FAILURE, self.unreachable(&error)),
            Err(_) => {
                return Outcome::Problem(
                    EXIT_FAILURE,
                    format!(
                        "no connection to the gateway at {} within --timeout {}; is the address right? \
                         (check {ADDR_SETTING})",
                        self.shown_addr(),
                        humantime::format_duration(self.timeout)
                    ),
                )
            }
        };
        // Sent as `grpc-timeout`, so the gateway gives KGeN only what is left; tonic's channel enforces it here too.
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        let mut client = SessionServiceClient::new(channel);
        // Bounded here too: tonic's own bound covers only the wait for the response headers, not the message.
        match timeout_at(deadline, client.create_session(request)).await {
            Ok(Ok(response)) => self.session(response),
            Ok(Err(status)) if caused_by::<TimeoutExpired>(&status) => {
                Outcome::Failed(self.no_answer_in_time())
            }
            // A status tonic made of a transport error (the gateway's own statuses have no source): no gRPC answer.
            Ok(Err(status)) if status.source().is_some() => {
                Outcome::Problem(EXIT_FAILURE, self.unreachable(&status))
            }
            Ok(Err(status)) => Outcome::Failed(status),
            Err(_) => Outcome::Failed(self.no_answer_in_time()),
        }
    }

    /// The deadline passed before the gateway answered. tonic's channel reports that as CANCELLED "Timeout
    /// expired"; the gRPC specification (and grpcurl, and buf curl) says DEADLINE_EXCEEDED. The gateway, which was
    /// given the same deadline, answers DEADLINE_EXCEEDED too (with its details); whichever comes first is printed.
    fn no_answer_in_time(&self) -> Status {
        Status::deadline_exceeded(format!(
            "no answer within --timeout {} (the call's deadline, sent to the gateway as grpc-timeout)",
            humantime::format_duration(self.timeout)
        ))
    }

    /// The request with its metadata; `Err` is a line for a token that could not be sent.
    fn request(&self) -> Result<Request<CreateSessionRequest>, String> {
        let mut request = Request::new(CreateSessionRequest {
            user_id: self.user_id.clone(),
        });
        if let Some(token) = &self.token {
            // What the gateway accepts; the value is not repeated, it is a secret.
            let unusable = || {
                "invalid value for --token / KGEN_CALLER_TOKEN: a caller token is printable ASCII without spaces \
                 (the value is not shown)"
                    .to_owned()
            };
            let token = token.expose_secret();
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(unusable());
            }
            let mut value =
                MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| unusable())?;
            value.set_sensitive(true);
            request.metadata_mut().insert(headers::AUTHORIZATION, value);
        }
        if let Some(tenant) = &self.tenant {
            let value = MetadataValue::try_from(tenant.as_str()).map_err(|_| {
                "invalid value for --tenant / KGEN_TENANT: expected printable ASCII without spaces".to_owned()
            })?;
            request.metadata_mut().insert(headers::TENANT, value);
        }
        Ok(request)
    }

    /// The session as JSON, its tokens redacted unless `--show-tokens`.
    fn session(&self, response: Response<CreateSessionResponse>) -> Outcome {
        let retried_after_ambiguous = response
            .metadata()
            .get(headers::RETRIED_AFTER_AMBIGUOUS)
            .map(|value| one_line(&String::from_utf8_lossy(value.as_bytes())));
        let mut session = response.into_inner();
        if !self.show_tokens {
            redact_tokens(&mut session);
        }
        match session_json(&session) {
            Ok(json) => Outcome::Session {
                json,
                retried_after_ambiguous,
            },
            Err(error) => Outcome::Problem(
                EXIT_FAILURE,
                format!(
                    "the gateway answered a session, but it cannot be printed as JSON: {error}"
                ),
            ),
        }
    }

    /// The address as it was given (`http://HOST:PORT`, without the `/` a URI's path adds).
    fn shown_addr(&self) -> String {
        match self.addr.authority() {
            Some(authority) => format!("http://{authority}"),
            None => self.addr.to_string(),
        }
    }

    /// One line for a connection (or a call) that got no gRPC answer: the address, the root cause, what to check.
    fn unreachable(&self, error: &(dyn std::error::Error + 'static)) -> String {
        let mut root = error;
        while let Some(source) = root.source() {
            root = source;
        }
        let refused = root
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::ConnectionRefused);
        let advice = if refused {
            "is the gateway running, and listening on that port?"
        } else {
            "is a kgen-gateway serving plaintext gRPC (h2c, no --tls-cert) there?"
        };
        format!(
            "cannot reach the gateway at {}: {}; {advice} (check {ADDR_SETTING})",
            self.shown_addr(),
            one_line(&root.to_string())
        )
    }
}

/// Writes the outcome: the session to `stdout`, anything else to `stderr`. `Err` holds the exit status.
fn print(
    outcome: Outcome,
    stdout: &mut impl io::Write,
    stderr: &mut impl io::Write,
) -> Result<(), u8> {
    // Nothing is left to tell anyone when stderr itself cannot be written, so its errors are ignored.
    match outcome {
        Outcome::Session {
            json,
            retried_after_ambiguous,
        } => {
            if let Some(outcome) = retried_after_ambiguous {
                let _ = writeln!(
                    stderr,
                    "note: the gateway retried after {outcome}, an outcome KGeN may have acted on; isNewUser may be \
                     false for a new player"
                );
            }
            writeln!(stdout, "{json}")
                .and_then(|()| stdout.flush())
                .map_err(|error| {
                    let _ = writeln!(
                        stderr,
                        "kgen-gateway: cannot write the session to stdout: {error}"
                    );
                    EXIT_FAILURE
                })
        }
        Outcome::Failed(status) => {
            let _ = stderr.write_all(report(&status).as_bytes());
            Err(exit_status(status.code()))
        }
        Outcome::Problem(exit, line) => {
            let _ = writeln!(stderr, "kgen-gateway: {line}");
            Err(exit)
        }
    }
}

/// Replaces the session's tokens (those it has) with [`REDACTED_TOKEN`].
fn redact_tokens(session: &mut CreateSessionResponse) {
    for token in [&mut session.access_token, &mut session.refresh_token] {
        if !token.is_empty() {
            *token = REDACTED_TOKEN.to_owned();
        }
    }
}

/// The session as pretty-printed proto3 JSON (camelCase names, every field, int64 as strings, timestamps in
/// RFC 3339), as `grpcurl -emit-defaults` prints it: a person sees the whole contract, `isNewUser: false` too.
fn session_json(session: &CreateSessionResponse) -> Result<String, String> {
    let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())?;
    let descriptor = pool
        .get_message_by_name(RESPONSE_MESSAGE)
        .ok_or_else(|| format!("{RESPONSE_MESSAGE} is not in the descriptor set"))?;
    let message = DynamicMessage::decode(descriptor, session.encode_to_vec().as_slice())
        .map_err(|e| e.to_string())?;
    let mut serializer = serde_json::Serializer::pretty(Vec::new());
    message
        .serialize_with_options(
            &mut serializer,
            &SerializeOptions::new().skip_default_fields(false),
        )
        .map_err(|e| e.to_string())?;
    String::from_utf8(serializer.into_inner()).map_err(|e| e.to_string())
}

/// A failed call for a person: `CODE: message`, then one indented line per detail (error info, retry info, each
/// bad-request field) and the call's `x-request-id`. Every line ends with a newline; text from the server has its
/// control characters escaped, so it can neither break the lines nor drive the terminal.
fn report(status: &Status) -> String {
    let mut out = String::new();
    let message = one_line(status.message());
    let code = code_name(status.code());
    // Writing to a String cannot fail.
    let _ = if message.is_empty() {
        writeln!(out, "{code}")
    } else {
        writeln!(out, "{code}: {message}")
    };
    match status.check_error_details() {
        Err(error) => {
            let _ = writeln!(out, "  details: cannot be decoded ({error})");
        }
        Ok(details) => {
            if let Some(info) = details.error_info() {
                let _ = write!(
                    out,
                    "  error info: reason={} domain={}",
                    one_line(&info.reason),
                    one_line(&info.domain)
                );
                let mut metadata: Vec<(&String, &String)> = info.metadata.iter().collect();
                metadata.sort();
                if !metadata.is_empty() {
                    out.push_str(" metadata:");
                }
                for (key, value) in metadata {
                    let _ = write!(out, " {}={}", one_line(key), one_line(value));
                }
                out.push('\n');
            }
            if let Some(retry) = details.retry_info() {
                let _ = match retry.retry_delay {
                    Some(delay) => writeln!(
                        out,
                        "  retry info: retry after {}",
                        humantime::format_duration(delay)
                    ),
                    None => writeln!(out, "  retry info: no delay given"),
                };
            }
            if let Some(bad_request) = details.bad_request() {
                for violation in &bad_request.field_violations {
                    let _ = writeln!(
                        out,
                        "  bad request: {}: {}",
                        one_line(&violation.field),
                        one_line(&violation.description)
                    );
                }
            }
        }
    }
    if let Some(id) = status.metadata().get(headers::REQUEST_ID) {
        let _ = writeln!(
            out,
            "  request id: {}",
            one_line(&String::from_utf8_lossy(id.as_bytes()))
        );
    }
    out
}

/// 64 plus the gRPC code (1 for a code outside 0–16, which tonic does not produce).
fn exit_status(code: Code) -> u8 {
    u8::try_from(i32::from(code))
        .ok()
        .and_then(|number| EXIT_STATUS_BASE.checked_add(number))
        .unwrap_or(EXIT_FAILURE)
}

/// The code's name as the gRPC specification spells it (and grpcurl and buf curl print it).
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Whether an `E` is in the source chain of `status`.
fn caused_by<E: std::error::Error + 'static>(status: &Status) -> bool {
    let mut cause = status.source();
    while let Some(error) = cause {
        if error.is::<E>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// `text` with its control characters (newlines, escape sequences) escaped.
fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, time::Duration};

    use secrecy::SecretString;
    use tonic::metadata::MetadataMap;
    use tonic_types::ErrorDetails;

    use super::*;

    fn rate_limited() -> Status {
        let mut details = ErrorDetails::new();
        details
            .set_error_info(
                "UPSTREAM_RATE_LIMITED",
                "kgen-gateway",
                HashMap::from([
                    ("upstream_status".to_owned(), "429".to_owned()),
                    ("attempts".to_owned(), "3".to_owned()),
                ]),
            )
            .set_retry_info(Some(Duration::from_millis(1500)));
        let mut metadata = MetadataMap::new();
        metadata.insert(headers::REQUEST_ID, "req-7".parse().unwrap());
        Status::with_error_details_and_metadata(
            Code::ResourceExhausted,
            "KGeN answered HTTP 429: slow down",
            details,
            metadata,
        )
    }

    #[test]
    fn a_failure_is_its_code_name_and_message_then_one_line_per_detail_with_metadata_keys_sorted() {
        assert_eq!(
            report(&rate_limited()),
            "RESOURCE_EXHAUSTED: KGeN answered HTTP 429: slow down\n\
             \x20 error info: reason=UPSTREAM_RATE_LIMITED domain=kgen-gateway metadata: attempts=3 upstream_status=429\n\
             \x20 retry info: retry after 1s 500ms\n\
             \x20 request id: req-7\n"
        );
    }

    #[test]
    fn each_field_violation_gets_its_line() {
        let status = Status::with_error_details(
            Code::InvalidArgument,
            "invalid user_id",
            ErrorDetails::with_bad_request_violation("user_id", "must not be empty"),
        );
        assert_eq!(
            report(&status),
            "INVALID_ARGUMENT: invalid user_id\n  bad request: user_id: must not be empty\n"
        );
    }

    #[test]
    fn server_text_cannot_break_lines_or_drive_the_terminal() {
        let status = Status::new(Code::Internal, "two\nlines \u{1b}[31mred");
        assert_eq!(report(&status), "INTERNAL: two\\nlines \\u{1b}[31mred\n");
    }

    #[test]
    fn undecodable_details_are_said_to_be_so() {
        let status = Status::with_details(Code::Unknown, "", vec![0xff, 0xff].into());
        let report = report(&status);
        assert!(
            report.starts_with("UNKNOWN\n  details: cannot be decoded"),
            "{report}"
        );
    }

    #[test]
    fn the_exit_status_is_64_plus_the_grpc_code() {
        assert_eq!(exit_status(Code::InvalidArgument), 67);
        assert_eq!(exit_status(Code::ResourceExhausted), 72);
        assert_eq!(exit_status(Code::Unauthenticated), 80);
    }

    fn session() -> CreateSessionResponse {
        CreateSessionResponse {
            session_id: "s-1".to_owned(),
            user_id: "newcomer-1".to_owned(),
            level: 7,
            access_token: "eyJ.access.sig".to_owned(),
            refresh_token: "eyJ.refresh.sig".to_owned(),
            session_started_at: Some(prost_types::Timestamp {
                seconds: 1_724_142_733,
                nanos: 0,
            }),
            ..CreateSessionResponse::default()
        }
    }

    #[test]
    fn a_session_is_proto3_json_with_every_field_and_its_tokens_redacted() {
        let mut session = session();
        redact_tokens(&mut session);
        let json = session_json(&session).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["userId"], "newcomer-1");
        assert_eq!(value["level"], "7", "int64 is a string in proto3 JSON");
        assert_eq!(value["isNewUser"], false, "default values are shown");
        assert_eq!(value["sessionStartedAt"], "2024-08-20T08:32:13Z");
        assert_eq!(value["accessToken"], REDACTED_TOKEN);
        assert_eq!(value["refreshToken"], REDACTED_TOKEN);
        assert!(!json.contains("eyJ"), "{json}");
        assert!(
            json.contains("\n  \"sessionId\": \"s-1\""),
            "pretty-printed: {json}"
        );
    }

    fn args(token: Option<&str>, tenant: Option<&str>) -> CallArgs {
        CallArgs {
            user_id: "u".to_owned(),
            addr: "http://127.0.0.1:50051".parse().unwrap(),
            token: token.map(SecretString::from),
            tenant: tenant.map(str::to_owned),
            timeout: Duration::from_secs(10),
            show_tokens: false,
        }
    }

    #[test]
    fn the_token_is_sent_as_a_sensitive_bearer_value_and_the_tenant_as_x_kgen_tenant() {
        let request = args(Some("tok-1"), Some("alpha")).request().unwrap();
        let authorization = request.metadata().get("authorization").unwrap();
        assert_eq!(authorization, "Bearer tok-1");
        assert!(authorization.is_sensitive(), "kept out of HPACK tables");
        assert_eq!(request.metadata().get("x-kgen-tenant").unwrap(), "alpha");

        let bare = args(None, None).request().unwrap();
        assert!(bare.metadata().is_empty());
    }

    #[test]
    fn a_token_that_cannot_be_sent_is_refused_without_being_repeated() {
        for token in ["", "two words", "tab\there", "ünïcode"] {
            let line = args(Some(token), None).request().unwrap_err();
            assert!(
                line.starts_with("invalid value for --token / KGEN_CALLER_TOKEN"),
                "{line}"
            );
            assert!(token.is_empty() || !line.contains(token), "{line}");
        }
    }

    #[test]
    fn missing_tokens_are_not_said_to_be_redacted() {
        let mut session = CreateSessionResponse::default();
        redact_tokens(&mut session);
        assert_eq!(session.access_token, "");
    }

    #[test]
    fn a_session_goes_to_stdout_and_a_failure_to_stderr_with_its_exit_status() {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let printed = print(
            Outcome::Session {
                json: "{}".to_owned(),
                retried_after_ambiguous: None,
            },
            &mut stdout,
            &mut stderr,
        );
        assert_eq!(
            (printed, &stdout[..], &stderr[..]),
            (Ok(()), &b"{}\n"[..], &b""[..])
        );

        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let printed = print(Outcome::Failed(rate_limited()), &mut stdout, &mut stderr);
        assert_eq!(printed, Err(72));
        assert!(stdout.is_empty());
        assert!(String::from_utf8(stderr)
            .unwrap()
            .starts_with("RESOURCE_EXHAUSTED: "));

        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let printed = print(
            Outcome::Problem(1, "no".to_owned()),
            &mut stdout,
            &mut stderr,
        );
        assert_eq!((printed, &stderr[..]), (Err(1), &b"kgen-gateway: no\n"[..]));
    }
}
