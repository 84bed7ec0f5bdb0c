//! Calls `kgen.session.v1.SessionService/CreateSession` on a kgen-gateway and prints the session or the error.
//! Given `--user-id` more than once, it calls the batch RPC `CreateSessions` instead (one stream, one request per
//! user id) and prints each answer as it arrives, under a `== answer for "<user_id>"` line.
//!
//! ```sh
//! cargo run --example create_session -- --target http://127.0.0.1:50051 --user-id FTC_User1 [--timeout 10]
//! cargo run --example create_session -- --user-id FTC_User1 --user-id FTC_User2 --user-id ""
//! ```
//!
//! Uses the stubs the crate already generates (`kgen_gateway::proto`). On failure the gateway's machine-readable
//! details, carried in the `grpc-status-details-bin` trailer as a serialized `google.rpc.Status`, are decoded with
//! `tonic_types::StatusExt::get_error_details` and printed: `ErrorInfo` (reason, domain, metadata), `RetryInfo`
//! (how long to wait) and `BadRequest` (which field was wrong); a failed batch item carries the same
//! `google.rpc.Status` in its `error` field. Exit status: 0 on success, 1 when the call (or any batch item) failed,
//! 2 for bad usage.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test tool: a failure here should stop it loudly

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use kgen_gateway::proto::{
    create_sessions_response, session_service_client::SessionServiceClient, CreateSessionRequest,
    CreateSessionResponse,
};
use prost::Message;
use tonic::{
    transport::{Channel, Endpoint},
    Code, Request, Status,
};
use tonic_types::StatusExt;

const USAGE: &str =
    "usage: create_session --target http://HOST:PORT --user-id ID [--user-id ID ...] \
                     [--timeout SECONDS]";

struct Args {
    target: String,
    user_ids: Vec<String>,
    timeout: Duration,
}

/// `--flag value` pairs from `std::env::args` (no argument-parsing dependency).
fn parse_args() -> Result<Args, String> {
    let mut target = "http://127.0.0.1:50051".to_owned();
    let mut user_ids = Vec::new();
    let mut timeout = Duration::from_secs(10);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--target" => target = value,
            "--user-id" => user_ids.push(value),
            "--timeout" => {
                timeout = value
                    .parse::<f64>()
                    .ok()
                    .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        format!("--timeout: not a positive number of seconds: {value}")
                    })?;
            }
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    if !target.contains("://") {
        // The gateway serves plaintext h2c unless it was given --tls-cert.
        target = format!("http://{target}");
    }
    if user_ids.is_empty() {
        return Err("--user-id is required".to_owned());
    }
    Ok(Args {
        target,
        user_ids,
        timeout,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let endpoint = match Endpoint::from_shared(args.target.clone()) {
        Ok(endpoint) => endpoint.connect_timeout(Duration::from_secs(5)),
        Err(e) => {
            eprintln!("--target {}: {e}\n{USAGE}", args.target);
            return ExitCode::from(2);
        }
    };
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(e) => {
            eprintln!("cannot connect to {}: {e}", args.target);
            return ExitCode::FAILURE;
        }
    };
    let mut client = SessionServiceClient::new(channel);
    if args.user_ids.len() > 1 {
        return create_sessions(client, args.user_ids, args.timeout).await;
    }

    let mut request = Request::new(CreateSessionRequest {
        user_id: args.user_ids.swap_remove(0),
    });
    // Always set a deadline: it travels as `grpc-timeout`, and the gateway gives KGeN only the time left.
    request.set_timeout(args.timeout);
    let started = Instant::now();
    let outcome = client
        .create_session(request)
        .await
        .map_err(|status| client_deadline(status, started, args.timeout));
    match outcome {
        Ok(response) => {
            print_session(&response.into_inner());
            ExitCode::SUCCESS
        }
        Err(status) => {
            print_error(&status);
            ExitCode::FAILURE
        }
    }
}

/// tonic's channel also enforces the deadline on the client side, but reports its own expiry as CANCELLED
/// "Timeout expired"; the gRPC spec (and every other client) says DEADLINE_EXCEEDED, so that is what it becomes.
fn client_deadline(status: Status, started: Instant, timeout: Duration) -> Status {
    if status.code() == Code::Cancelled && started.elapsed() >= timeout {
        Status::deadline_exceeded(format!(
            "deadline of {timeout:?} exceeded in the client ({})",
            status.message()
        ))
    } else {
        status
    }
}

/// The batch RPC `CreateSessions`: one stream, one request per user id, the answers printed as they arrive (in
/// completion order, each under the `user_id` it answers). The deadline covers the whole stream.
async fn create_sessions(
    mut client: SessionServiceClient<Channel>,
    user_ids: Vec<String>,
    timeout: Duration,
) -> ExitCode {
    let requests = user_ids
        .into_iter()
        .map(|user_id| CreateSessionRequest { user_id });
    let mut request = Request::new(tokio_stream::iter(requests));
    request.set_timeout(timeout);
    let started = Instant::now();
    let mut answers = match client.create_sessions(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            print_error(&client_deadline(status, started, timeout));
            return ExitCode::FAILURE;
        }
    };
    let mut all_succeeded = true;
    loop {
        let answer = match answers.message().await {
            Ok(Some(answer)) => answer,
            Ok(None) => break,
            Err(status) => {
                // The stream itself failed (deadline, shutdown, ...): the unanswered user ids got no answer.
                println!("== the stream ended early");
                print_error(&client_deadline(status, started, timeout));
                return ExitCode::FAILURE;
            }
        };
        println!("== answer for {:?}", answer.user_id);
        match answer.result {
            Some(create_sessions_response::Result::Session(session)) => print_session(&session),
            Some(create_sessions_response::Result::Error(status)) => {
                all_succeeded = false;
                // The item's google.rpc.Status is what a unary call carries in `grpc-status-details-bin`.
                let details = status.encode_to_vec().into();
                print_error(&Status::with_details(
                    Code::from(status.code),
                    status.message,
                    details,
                ));
            }
            None => {
                all_succeeded = false;
                println!("error: an answer without a result");
            }
        }
    }
    if all_succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One `name: value` line per field, in proto order; the tokens are secrets and are printed redacted.
fn print_session(s: &CreateSessionResponse) {
    let redacted = |token: &str| {
        format!(
            "[redacted, {} chars, {} parts]",
            token.len(),
            token.split('.').count()
        )
    };
    let strings = [
        ("session_id", &s.session_id),
        ("user_id", &s.user_id),
        ("name", &s.name),
        ("username", &s.username),
        ("email", &s.email),
        ("device_id", &s.device_id),
        ("phonenumber", &s.phonenumber),
    ];
    for (name, value) in strings {
        println!("{name}: {value:?}");
    }
    println!("level: {}", s.level);
    println!("rank: {}", s.rank);
    let strings = [
        ("date_joined", &s.date_joined),
        ("playertag", &s.playertag),
        ("location", &s.location),
        ("location_name", &s.location_name),
        ("device_model", &s.device_model),
        ("screen_height", &s.screen_height),
        ("screen_width", &s.screen_width),
        ("os_name", &s.os_name),
        ("os_version", &s.os_version),
        ("browser_name", &s.browser_name),
    ];
    for (name, value) in strings {
        println!("{name}: {value:?}");
    }
    match &s.indigg_id {
        Some(id) => println!("indigg_id: {id:?}"),
        None => println!("indigg_id: (unset)"),
    }
    let strings = [
        ("indigg_wallet_address", &s.indigg_wallet_address),
        ("third_party_client_id", &s.third_party_client_id),
        ("third_party_client_name", &s.third_party_client_name),
        (
            "namespaced_third_party_user_id",
            &s.namespaced_third_party_user_id,
        ),
        ("wallet_address", &s.wallet_address),
    ];
    for (name, value) in strings {
        println!("{name}: {value:?}");
    }
    println!("is_new_user: {}", s.is_new_user);
    println!("access_token: {}", redacted(&s.access_token));
    println!("refresh_token: {}", redacted(&s.refresh_token));
    println!("linked_phone: {:?}", s.linked_phone);
    println!("session_start_time: {:?}", s.session_start_time);
    match &s.session_started_at {
        // prost-types prints a Timestamp as RFC 3339.
        Some(ts) => println!("session_started_at: {ts}"),
        None => {
            println!("session_started_at: (unset: the gateway could not parse session_start_time)")
        }
    }
}

/// The status, then the `google.rpc` details decoded from `grpc-status-details-bin`.
fn print_error(status: &Status) {
    println!("error: {:?}: {}", status.code(), status.message());
    if status.details().is_empty() {
        println!("  (no grpc-status-details-bin trailer)");
        return;
    }
    let details = status.get_error_details();
    if let Some(info) = details.error_info() {
        let mut metadata: Vec<_> = info.metadata.iter().collect();
        metadata.sort();
        println!(
            "  ErrorInfo: reason={} domain={} metadata={metadata:?}",
            info.reason, info.domain
        );
    }
    if let Some(retry) = details.retry_info() {
        match retry.retry_delay {
            Some(delay) => println!("  RetryInfo: retry_delay={delay:?}"),
            None => println!("  RetryInfo: (no retry_delay)"),
        }
    }
    if let Some(bad_request) = details.bad_request() {
        for violation in &bad_request.field_violations {
            println!(
                "  BadRequest: field={} description={}",
                violation.field, violation.description
            );
        }
    }
}
