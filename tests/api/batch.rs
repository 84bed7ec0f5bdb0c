//! The batch RPCs: `CreateSessions` (a bidirectional stream) and `CreateSessionBatch` (unary), against the KGeN
//! stand-in answering by `user_id` prefix ([`batch_kgen`]), which counts the upstream requests it sees and the most
//! it holds at once.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use kgen_gateway::{
    proto::{
        create_sessions_response::Result as ItemResult,
        session_service_client::SessionServiceClient, CreateSessionBatchRequest,
        CreateSessionRequest, CreateSessionsResponse,
    },
    DEFAULT_BATCH_CONCURRENCY, INVALID_BATCH_SIZE, MAX_BATCH_SIZE,
};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{transport::Endpoint, Code, Request, Status, Streaming};
use tonic_types::{pb, RpcStatusExt};

use crate::support::{
    app::{settings_for, single_attempt, TestApp},
    assertions::assert_status,
    fake_kgen::{Answer, FakeKgen, HeldRequest},
    upstreams::example_session,
    wait::bounded,
};

// === the KGeN stand-in ===

/// A [`FakeKgen`] answering by the `user_id`'s prefix (every item of a batch needs its own id, which the `fault:`
/// grammar cannot give), each answer after `hold` plus 0–4 ms chosen by the id (so answers complete out of request
/// order). [`FakeKgen::received`] counts the requests, [`FakeKgen::max_in_flight`] the most at once; a request the
/// gateway abandons stops counting as in flight when it closes the connection.
///
/// | prefix | answer | what `CreateSession` returns |
/// |---|---|---|
/// | `ok-` | 200, a session | the session |
/// | `rate-` | 429, `Retry-After: 7` | RESOURCE_EXHAUSTED / UPSTREAM_RATE_LIMITED + RetryInfo |
/// | `boom-` | 500 | INTERNAL / UPSTREAM_INTERNAL_ERROR |
/// | `bad-` | 400 | INVALID_ARGUMENT / UPSTREAM_REJECTED_REQUEST |
/// | `junk-` | 200, an HTML page | INTERNAL / UPSTREAM_BAD_RESPONSE |
async fn batch_kgen(hold: Duration) -> FakeKgen {
    let kgen = FakeKgen::start().await;
    kgen.answer_with(move |request| {
        let user_id = request.user_id().expect("the gateway sends a user_id");
        let jitter = user_id.bytes().map(u64::from).sum::<u64>() % 5;
        by_prefix(&user_id).after(hold + Duration::from_millis(jitter))
    });
    kgen
}

/// The answer of [`batch_kgen`] for `user_id`.
fn by_prefix(user_id: &str) -> Answer {
    let refusal = serde_json::json!({ "message": "as asked" });
    match user_id.split('-').next() {
        Some("rate") => Answer::json(429, refusal).with_header("retry-after", "7"),
        Some("boom") => Answer::json(500, refusal),
        Some("bad") => Answer::json(400, refusal),
        Some("junk") => Answer::raw(
            200,
            "text/html",
            "<html><body>Service Unavailable</body></html>",
        ),
        _ => {
            let mut session = example_session();
            session["user_id"] = user_id.into();
            session["session_id"] = format!("session-of-{user_id}").into();
            Answer::json(200, session)
        }
    }
}

/// The faults of the stand-in, with what `CreateSession` answers for each (`None`: a session).
const KINDS: [(&str, Option<(Code, &str)>); 5] = [
    ("ok", None),
    (
        "rate",
        Some((Code::ResourceExhausted, "UPSTREAM_RATE_LIMITED")),
    ),
    ("boom", Some((Code::Internal, "UPSTREAM_INTERNAL_ERROR"))),
    (
        "bad",
        Some((Code::InvalidArgument, "UPSTREAM_REJECTED_REQUEST")),
    ),
    ("junk", Some((Code::Internal, "UPSTREAM_BAD_RESPONSE"))),
];

// === helpers ===

fn requests(user_ids: &[String]) -> Vec<CreateSessionRequest> {
    user_ids
        .iter()
        .map(|user_id| CreateSessionRequest {
            user_id: user_id.clone(),
        })
        .collect()
}

/// `n` user ids cycling through [`KINDS`]: `ok-0`, `rate-1`, `boom-2`, …
fn mixed_user_ids(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{}-{i}", KINDS[i % KINDS.len()].0))
        .collect()
}

/// The `google.rpc.Status` a unary call's `grpc-status-details-bin` carries, with the call's code and message.
fn as_rpc_status(status: &Status) -> pb::Status {
    pb::Status {
        code: status.code().into(),
        message: status.message().to_owned(),
        details: pb::Status::decode(status.details())
            .expect("details decode")
            .details,
    }
}

/// A status with its details decoded, for comparing two statuses: an `ErrorInfo`'s metadata is a map, so its
/// encoding has no fixed order.
#[derive(Debug, PartialEq)]
struct Decoded {
    code: i32,
    message: String,
    details: Vec<Detail>,
}

#[derive(Debug, PartialEq)]
enum Detail {
    ErrorInfo(pb::ErrorInfo),
    RetryInfo(pb::RetryInfo),
    BadRequest(pb::BadRequest),
}

fn decoded(status: &pb::Status) -> Decoded {
    let details = status
        .details
        .iter()
        .map(|any| {
            let value = any.value.as_slice();
            match any.type_url.rsplit('/').next() {
                Some("google.rpc.ErrorInfo") => Detail::ErrorInfo(Message::decode(value).unwrap()),
                Some("google.rpc.RetryInfo") => Detail::RetryInfo(Message::decode(value).unwrap()),
                Some("google.rpc.BadRequest") => {
                    Detail::BadRequest(Message::decode(value).unwrap())
                }
                other => panic!("unexpected detail {other:?}"),
            }
        })
        .collect();
    Decoded {
        code: status.code,
        message: status.message.clone(),
        details,
    }
}

/// Asserts an item's status is the one the unary call answered: code, message and every detail.
#[track_caller]
fn assert_same_status(item: &pb::Status, unary: &pb::Status, what: &str) {
    assert_eq!(
        decoded(item),
        decoded(unary),
        "{what}: as the unary call answers"
    );
}

/// What the unary `CreateSession` answers for each fault of [`KINDS`], by kind.
async fn unary_statuses(app: &TestApp) -> HashMap<&'static str, pb::Status> {
    let mut statuses = HashMap::new();
    for (kind, expected) in KINDS {
        let Some((code, reason)) = expected else {
            continue;
        };
        let status = app
            .create_session(&format!("{kind}-unary"))
            .await
            .expect_err("a fault");
        assert_status(&status, code, reason);
        statuses.insert(kind, as_rpc_status(&status));
    }
    statuses
}

/// Reads a stream of answers to its end.
async fn read_all(mut answers: Streaming<CreateSessionsResponse>) -> Vec<CreateSessionsResponse> {
    bounded("the stream of answers to end", async {
        let mut all = Vec::new();
        while let Some(answer) = answers.message().await.expect("the stream ends OK") {
            all.push(answer);
        }
        all
    })
    .await
}

/// Asserts an item failed with `code` and an `ErrorInfo` with `reason`.
#[track_caller]
fn assert_item_status(status: &pb::Status, code: Code, reason: &str) {
    assert_eq!(Code::from(status.code), code, "{status:?}");
    let details = status.check_error_details().expect("details decode");
    let info = details
        .error_info()
        .expect("every item error carries ErrorInfo");
    assert_eq!(info.reason, reason);
    assert_eq!(info.domain, "kgen-gateway");
}

/// Polls `count` until it has not changed for `quiet`; returns where it settled.
async fn settled(count: impl Fn() -> usize, quiet: Duration) -> usize {
    bounded("the count to settle", async {
        let mut last = count();
        let mut since = Instant::now();
        while since.elapsed() < quiet {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = count();
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
        last
    })
    .await
}

// === CreateSessions ===

#[tokio::test]
async fn a_stream_of_1000_mixed_faults_answers_each_user_id_as_the_unary_call_would_with_bounded_fan_out(
) {
    let upstream = batch_kgen(Duration::from_millis(3)).await;
    let mut settings = single_attempt(settings_for(&upstream.url()));
    settings.batch_concurrency = 8;
    let app = TestApp::spawn(settings).await;
    let unary = unary_statuses(&app).await;
    // The unary calls came one at a time, so the most in flight below is the batch's own.
    assert_eq!(upstream.in_flight(), 0, "the unary calls are answered");
    assert_eq!(
        upstream.max_in_flight(),
        1,
        "the unary calls came one at a time"
    );
    let before = upstream.received().len();
    let user_ids = mixed_user_ids(1000);

    let answers = app
        .client
        .clone()
        .create_sessions(tokio_stream::iter(requests(&user_ids)))
        .await
        .expect("the stream opens")
        .into_inner();
    let answers = read_all(answers).await;

    assert_eq!(answers.len(), 1000);
    let by_user: HashMap<_, _> = answers
        .into_iter()
        .map(|answer| {
            (
                answer.user_id,
                answer.result.expect("every answer has a result"),
            )
        })
        .collect();
    assert_eq!(by_user.len(), 1000, "one answer per user_id");
    for (i, user_id) in user_ids.iter().enumerate() {
        let (kind, expected) = KINDS[i % KINDS.len()];
        match (&by_user[user_id], expected) {
            (ItemResult::Session(session), None) => {
                assert_eq!(&session.user_id, user_id);
                assert_eq!(session.session_id, format!("session-of-{user_id}"));
            }
            (ItemResult::Error(status), Some((code, reason))) => {
                assert_item_status(status, code, reason);
                assert_same_status(status, &unary[kind], user_id);
            }
            (other, _) => panic!("{user_id}: unexpected {other:?}"),
        }
    }
    let retry = by_user["rate-1"].clone();
    let ItemResult::Error(retry) = retry else {
        panic!("rate-1 failed")
    };
    assert_eq!(
        retry.get_details_retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(7))
    );
    assert_eq!(
        upstream.received().len() - before,
        1000,
        "one attempt per item"
    );
    let max = upstream.max_in_flight();
    assert!(max <= 8, "at most --batch-concurrency in flight, saw {max}");
    assert!(max > 1, "the batch fans out, saw {max} at most");
}

#[tokio::test]
async fn a_slow_reader_stops_the_gateway_from_starting_upstream_calls_until_it_reads() {
    const ITEMS: usize = 5000;
    const WINDOW: u32 = 64 * 1024;
    let upstream = batch_kgen(Duration::ZERO).await;
    let mut settings = settings_for(&upstream.url());
    settings.batch_concurrency = 8;
    let app = TestApp::spawn(settings).await;
    let channel = Endpoint::from_shared(format!("http://{}", app.addr))
        .expect("valid URI")
        .initial_stream_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .connect()
        .await
        .expect("gateway accepts connections");
    let user_ids: Vec<String> = (0..ITEMS).map(|i| format!("ok-{i}")).collect();

    let mut answers = SessionServiceClient::new(channel)
        .create_sessions(tokio_stream::iter(requests(&user_ids)))
        .await
        .expect("the stream opens")
        .into_inner();
    // Read nothing: once the caller's window is full the gateway must stop pulling requests.
    let stalled = settled(|| upstream.received().len(), Duration::from_millis(500)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = upstream.received().len();

    // What flow control lets the gateway produce for a reader that does not read: a window's worth of answers
    // (sent, sitting in the client's receive buffer), the rest of the chunk h2 queued when the window ran out and
    // the next chunk hyper holds while it waits for capacity (tonic encodes chunks of up to 32 KiB), and the
    // `--batch-concurrency` items in flight plus as many finished but not yet taken. Measured: about 325 calls,
    // where a window holds 307 answers.
    let mut one = example_session();
    one["user_id"] = "ok-4999".into();
    one["session_id"] = "session-of-ok-4999".into();
    let answer_len = 5 + CreateSessionsResponse {
        user_id: "ok-4999".into(),
        result: Some(ItemResult::Session(
            kgen_gateway::Session::decode(one.to_string().as_bytes())
                .expect("a session")
                .into(),
        )),
    }
    .encoded_len();
    let bound = (WINDOW as usize + 2 * 32 * 1024) / answer_len + 2 * 8;
    eprintln!(
        "slow reader: {stalled} upstream calls before the gateway stopped ({answer_len} B per answer, bound {bound})"
    );
    assert!(stalled > 0, "the gateway started the batch");
    assert!(
        stalled <= bound,
        "{stalled} upstream calls for an unread stream, more than the {bound} flow control allows"
    );
    assert_eq!(still, stalled, "no upstream call starts while nobody reads");

    let mut read = 0;
    while let Some(answer) = answers.message().await.expect("the stream ends OK") {
        assert!(matches!(answer.result, Some(ItemResult::Session(_))));
        read += 1;
    }
    assert_eq!(read, ITEMS);
    assert_eq!(upstream.received().len(), ITEMS);
}

#[tokio::test]
async fn the_callers_deadline_ends_the_stream_with_deadline_exceeded_and_drops_the_upstream_calls()
{
    let mut upstream = FakeKgen::start().await;
    let mut settings = settings_for(&upstream.url());
    settings.upstream.timeout = Duration::from_secs(30);
    settings.batch_concurrency = 4;
    let app = TestApp::spawn(settings).await;
    let user_ids = vec!["fault:hold".to_owned(); 20];
    let mut request = Request::new(tokio_stream::iter(requests(&user_ids)));
    request.set_timeout(Duration::from_millis(300));

    let started = Instant::now();
    // The raw client only sends the deadline: what ends the stream is the gateway's own answer.
    let mut answers = app
        .raw_client()
        .create_sessions(request)
        .await
        .expect("the stream opens")
        .into_inner();
    let status = answers.message().await.expect_err("the deadline ends it");
    let elapsed = started.elapsed();

    assert_status(&status, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    assert!(
        elapsed >= Duration::from_millis(290) && elapsed < Duration::from_secs(3),
        "ended after {elapsed:?}"
    );
    let mut events = Vec::new();
    while let Some(event) = upstream.next_held_event(Duration::from_secs(1)).await {
        events.push(event);
    }
    let accepted = events
        .iter()
        .filter(|e| **e == HeldRequest::Arrived)
        .count();
    let closed = events.iter().filter(|e| **e == HeldRequest::Closed).count();
    assert_eq!(
        accepted, 4,
        "only --batch-concurrency calls started: {events:?}"
    );
    assert_eq!(closed, 4, "each dropped at the deadline: {events:?}");
}

#[tokio::test]
async fn a_caller_that_cancels_mid_stream_stops_every_upstream_call() {
    let mut upstream = FakeKgen::start().await;
    let mut settings = settings_for(&upstream.url());
    settings.upstream.timeout = Duration::from_secs(30);
    settings.batch_concurrency = 4;
    let app = TestApp::spawn(settings).await;
    let (requests, inbound) = mpsc::channel(64);
    for _ in 0..10 {
        let request = CreateSessionRequest {
            user_id: "fault:hold".to_owned(),
        };
        requests.send(request).await.expect("queued");
    }

    let answers = app
        .client
        .clone()
        .create_sessions(ReceiverStream::new(inbound))
        .await
        .expect("the stream opens")
        .into_inner();
    for _ in 0..4 {
        let event = upstream.next_held_event(Duration::from_secs(5)).await;
        assert_eq!(event, Some(HeldRequest::Arrived));
    }
    // The caller goes away: it drops its end of the call.
    drop(answers);
    drop(requests);

    for _ in 0..4 {
        let event = upstream.next_held_event(Duration::from_secs(2)).await;
        assert_eq!(
            event,
            Some(HeldRequest::Closed),
            "dropped long before the 30 s upstream timeout"
        );
    }
    assert_eq!(
        upstream.next_held_event(Duration::from_secs(1)).await,
        None,
        "no upstream call starts after the cancellation"
    );
}

#[tokio::test]
async fn an_invalid_user_id_in_a_stream_fails_only_its_own_item() {
    let upstream = batch_kgen(Duration::ZERO).await;
    let app = TestApp::spawn(settings_for(&upstream.url())).await;
    let unary_empty = as_rpc_status(&app.create_session("").await.expect_err("invalid"));
    let user_ids: Vec<String> = ["ok-a", "", "ok-b", "bad\u{0}id", "ok-c"]
        .map(str::to_owned)
        .to_vec();

    let answers = app
        .client
        .clone()
        .create_sessions(tokio_stream::iter(requests(&user_ids)))
        .await
        .expect("the stream opens")
        .into_inner();
    let by_user: HashMap<_, _> = read_all(answers)
        .await
        .into_iter()
        .map(|answer| (answer.user_id, answer.result.expect("a result")))
        .collect();

    assert_eq!(by_user.len(), 5);
    for ok in ["ok-a", "ok-b", "ok-c"] {
        assert!(
            matches!(by_user[ok], ItemResult::Session(_)),
            "{ok}: {:?}",
            by_user[ok]
        );
    }
    for invalid in ["", "bad\u{0}id"] {
        let ItemResult::Error(status) = &by_user[invalid] else {
            panic!("{invalid:?} succeeded")
        };
        assert_item_status(status, Code::InvalidArgument, "INVALID_USER_ID");
        let details = status.get_error_details();
        let bad = details.bad_request().expect("BadRequest");
        assert_eq!(bad.field_violations[0].field, "user_id");
    }
    let ItemResult::Error(empty) = &by_user[""] else {
        panic!("empty user_id succeeded")
    };
    assert_same_status(empty, &unary_empty, "\"\"");
    assert_eq!(
        upstream.received().len(),
        3,
        "invalid user ids never reach KGeN"
    );
}

#[tokio::test]
async fn a_stream_still_running_when_the_grace_period_ends_is_cut_off_with_unavailable() {
    let mut upstream = FakeKgen::start().await;
    let mut settings = settings_for(&upstream.url());
    settings.upstream.timeout = Duration::from_secs(60);
    settings.shutdown_grace = Duration::from_millis(300);
    let app = TestApp::spawn(settings).await;
    let user_ids = vec!["fault:hold".to_owned()];
    let mut answers = app
        .client
        .clone()
        .create_sessions(tokio_stream::iter(requests(&user_ids)))
        .await
        .expect("the stream opens")
        .into_inner();
    assert_eq!(
        upstream.next_held_event(Duration::from_secs(5)).await,
        Some(HeldRequest::Arrived)
    );

    let reading = tokio::spawn(async move { answers.message().await });
    app.shutdown().await.expect("clean exit");

    let status = reading
        .await
        .expect("reader did not panic")
        .expect_err("cut off");
    assert_status(&status, Code::Unavailable, "GATEWAY_SHUTTING_DOWN");
}

// === CreateSessionBatch ===

#[tokio::test]
async fn a_unary_batch_answers_in_request_order_with_each_items_own_status() {
    let upstream = batch_kgen(Duration::from_millis(1)).await;
    let app = TestApp::spawn(single_attempt(settings_for(&upstream.url()))).await;
    let unary = unary_statuses(&app).await;
    let mut user_ids = mixed_user_ids(MAX_BATCH_SIZE - 1);
    user_ids.insert(7, String::new());

    let results = app
        .client
        .clone()
        .create_session_batch(CreateSessionBatchRequest {
            user_ids: user_ids.clone(),
        })
        .await
        .expect("the batch is answered")
        .into_inner()
        .results;

    assert_eq!(results.len(), MAX_BATCH_SIZE);
    let answered: Vec<_> = results.iter().map(|r| r.user_id.clone()).collect();
    assert_eq!(answered, user_ids, "results in request order");
    for result in &results {
        let user_id = &result.user_id;
        let kind = user_id.split('-').next().unwrap_or_default();
        match result.result.as_ref().expect("a result") {
            ItemResult::Session(session) if kind == "ok" => assert_eq!(&session.user_id, user_id),
            ItemResult::Error(status) if user_id.is_empty() => {
                assert_item_status(status, Code::InvalidArgument, "INVALID_USER_ID");
            }
            ItemResult::Error(status) => assert_same_status(status, &unary[kind], user_id),
            other => panic!("{user_id}: unexpected {other:?}"),
        }
    }
    let max = upstream.max_in_flight();
    assert!(
        max <= DEFAULT_BATCH_CONCURRENCY,
        "at most --batch-concurrency in flight, saw {max}"
    );
}

#[tokio::test]
async fn a_unary_batch_over_the_cap_is_invalid_argument_naming_user_ids() {
    let upstream = batch_kgen(Duration::ZERO).await;
    let app = TestApp::spawn(settings_for(&upstream.url())).await;

    let status = app
        .client
        .clone()
        .create_session_batch(CreateSessionBatchRequest {
            user_ids: mixed_user_ids(MAX_BATCH_SIZE + 1),
        })
        .await
        .expect_err("too many");

    let details = assert_status(&status, Code::InvalidArgument, INVALID_BATCH_SIZE);
    let bad = details.bad_request().expect("BadRequest");
    assert_eq!(bad.field_violations[0].field, "user_ids");
    assert!(upstream.received().is_empty(), "nothing reaches KGeN");
}

#[tokio::test]
async fn an_empty_unary_batch_is_invalid_argument_naming_user_ids() {
    let upstream = batch_kgen(Duration::ZERO).await;
    let app = TestApp::spawn(settings_for(&upstream.url())).await;

    let status = app
        .client
        .clone()
        .create_session_batch(CreateSessionBatchRequest::default())
        .await
        .expect_err("empty");

    let details = assert_status(&status, Code::InvalidArgument, INVALID_BATCH_SIZE);
    let bad = details.bad_request().expect("BadRequest");
    assert_eq!(bad.field_violations[0].field, "user_ids");
}

#[tokio::test]
async fn reflection_describes_the_batch_rpcs_and_the_google_rpc_status_they_carry() {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let upstream = batch_kgen(Duration::ZERO).await;
    let app = TestApp::spawn(settings_for(&upstream.url())).await;
    let mut client = ServerReflectionClient::new(crate::support::app::channel(app.addr).await);
    let ask = |request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };

    let mut replies = client
        .server_reflection_info(tokio_stream::iter([
            ask(MessageRequest::FileContainingSymbol(
                "kgen.session.v1.SessionService.CreateSessions".into(),
            )),
            ask(MessageRequest::FileByFilename(
                "google/rpc/status.proto".into(),
            )),
        ]))
        .await
        .expect("reflection answers")
        .into_inner();

    let mut files = Vec::new();
    for _ in 0..2 {
        let reply = replies.message().await.expect("a reply").expect("a reply");
        let Some(MessageResponse::FileDescriptorResponse(response)) = reply.message_response else {
            panic!(
                "expected file descriptors, got {:?}",
                reply.message_response
            )
        };
        for raw in response.file_descriptor_proto {
            files.push(prost_types::FileDescriptorProto::decode(raw.as_slice()).expect("decodes"));
        }
    }
    let session = files
        .iter()
        .find(|f| f.name() == "kgen/session/v1/session.proto")
        .expect("the session contract");
    let methods: Vec<_> = session.service[0].method.iter().map(|m| m.name()).collect();
    assert_eq!(
        methods,
        ["CreateSession", "CreateSessions", "CreateSessionBatch"]
    );
    assert!(session
        .dependency
        .contains(&"google/rpc/status.proto".to_owned()));
    let status = files
        .iter()
        .find(|f| f.name() == "google/rpc/status.proto")
        .expect("the imported google.rpc.Status is served too");
    assert_eq!(status.message_type[0].name(), "Status");
}
