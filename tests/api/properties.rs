//! Property tests of the two functions the fuzz targets cover (`fuzz/`), run briefly on every `cargo test`.

use kgen_gateway::{
    proto::CreateSessionResponse,
    service::validate_user_id,
    upstream::{parse_go_time, Session},
};
use proptest::prelude::*;

fn rule(user_id: &str) -> bool {
    !user_id.trim().is_empty() && user_id.len() <= 256 && !user_id.chars().any(char::is_control)
}

/// JSON values of any shape, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::hash_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "session_id",
    "user_id",
    "level",
    "rank",
    "is_new_user",
    "indigg_id",
    "access_token",
    "session_start_time",
    "third_party_client_id",
    "email",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn validation_accepts_exactly_what_the_rule_allows(user_id in any::<String>()) {
        prop_assert_eq!(validate_user_id(&user_id).is_ok(), rule(&user_id));
    }

    #[test]
    fn validation_rule_holds_near_the_edges(user_id in "[ \\t\\na-zé\\x00-\\x1f\\x7f]{0,300}") {
        prop_assert_eq!(validate_user_id(&user_id).is_ok(), rule(&user_id));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics_and_never_yields_a_session_without_id(body in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(session) = Session::decode(&body) {
            prop_assert!(!session.session_id.trim().is_empty());
            let _ = CreateSessionResponse::from(session);
        }
    }

    #[test]
    fn decoding_session_shaped_objects_never_panics(
        fields in prop::collection::hash_map(prop::sample::select(FIELDS), json_value(), 0..8)
    ) {
        let object: serde_json::Map<String, serde_json::Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let body = serde_json::to_vec(&object).unwrap();
        match Session::decode(&body) {
            Ok(session) => {
                prop_assert!(!session.session_id.trim().is_empty());
                let response = CreateSessionResponse::from(session);
                if let Some(ts) = response.session_started_at {
                    prop_assert!((0..1_000_000_000).contains(&ts.nanos));
                }
            }
            Err(error) => {
                // Errors never quote the body.
                let text = error.to_string();
                for value in object.values() {
                    if let Some(s) = value.as_str().filter(|s| s.len() > 8) {
                        prop_assert!(!text.contains(s), "{text} quotes {s}");
                    }
                }
            }
        }
    }

    #[test]
    fn go_time_parsing_never_panics(raw in ".{0,64}") {
        if let Some(ts) = parse_go_time(&raw) {
            prop_assert!((0..1_000_000_000).contains(&ts.nanos));
        }
    }

    #[test]
    fn leap_seconds_never_yield_invalid_nanos(day in 0i64..20_000, frac in 0u32..1_000_000_000) {
        let midnight = chrono::DateTime::from_timestamp(day * 86_400 - 1, 0).unwrap();
        let raw = format!("{} 23:59:60.{frac:09} +0000 UTC", midnight.format("%Y-%m-%d"));
        if let Some(ts) = parse_go_time(&raw) {
            prop_assert!((0..1_000_000_000).contains(&ts.nanos), "{raw} -> {ts:?}");
        }
    }

    #[test]
    fn go_times_round_trip(secs in 0i64..4_102_444_800, nanos in 0u32..1_000_000_000) {
        let at = chrono::DateTime::from_timestamp(secs, nanos).unwrap();
        let raw = at.format("%Y-%m-%d %H:%M:%S%.9f +0000 UTC").to_string();
        let ts = parse_go_time(&raw).expect("Go format parses");
        prop_assert_eq!((ts.seconds, ts.nanos as u32), (secs, nanos));
    }
}
