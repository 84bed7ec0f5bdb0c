//! Arbitrary bytes as a 2xx upstream body: `Session::decode` must never panic; a decoded session always has a
//! non-blank `session_id` and converts to the protobuf response without panicking. The same bytes, when they are
//! UTF-8, go through `parse_go_time`, whose `Timestamp` must have `nanos` in `0..1_000_000_000` (protobuf's rule).
#![no_main]

use kgen_gateway::proto::CreateSessionResponse;
use kgen_gateway::{parse_go_time, Session};
use libfuzzer_sys::fuzz_target;

fn check_time(raw: &str) {
    if let Some(ts) = parse_go_time(raw) {
        assert!(
            (0..1_000_000_000).contains(&ts.nanos),
            "parse_go_time({raw:?}) gave nanos {} outside 0..1_000_000_000 (seconds {})",
            ts.nanos,
            ts.seconds
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(session) = Session::decode(data) {
        assert!(
            !session.session_id.trim().is_empty(),
            "decode accepted a blank session_id: {:?}",
            session.session_id
        );
        check_time(&session.session_start_time);
        let response = CreateSessionResponse::from(session);
        if let Some(ts) = &response.session_started_at {
            assert!(
                (0..1_000_000_000).contains(&ts.nanos),
                "session_started_at nanos {}",
                ts.nanos
            );
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_time(text);
    }
});
