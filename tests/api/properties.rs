//! Property tests of the two functions the fuzz targets cover (`fuzz/`) and of the client secret scrub, run
//! briefly on every `cargo test`.

use kgen_gateway::{
    parse_go_time, proto::CreateSessionResponse, sanitize_upstream_message, validate_user_id,
    Session, MAX_UPSTREAM_MESSAGE_CHARS,
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

/// Characters that may hide a secret from a plain search: C0 and C1 controls, DEL, white space of every kind,
/// invisible formatting characters.
fn splitter() -> impl Strategy<Value = char> {
    prop_oneof![
        (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap_or('\0')),
        (0x7fu32..0xa0).prop_map(|c| char::from_u32(c).unwrap_or('\0')),
        prop::sample::select(vec![
            ' ', '\u{a0}', '\u{2028}', '\u{2029}', '\u{3000}', '\u{200b}', '\u{200d}', '\u{202e}',
            '\u{2066}', '\u{feff}', '\u{ad}',
        ]),
    ]
}

/// Text around the secret: anything, with control characters and brackets (the marker's) common.
fn surrounding_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>(),
            2 => splitter(),
            2 => prop::sample::select(vec!['[', ']', 'd', 'r', 'e', 'a', 'c', 't']),
            4 => (0x20u8..0x7f).prop_map(char::from),
        ],
        0..300,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// A secret as configuration accepts it: 1-40 printable ASCII characters, no space at either end.
fn secret() -> impl Strategy<Value = String> {
    "[!-~]|[!-~][ -~]{0,38}[!-~]"
}

/// `secret` as an upstream might disguise it: some letters' case flipped, runs of `splitter` characters
/// inserted between its characters.
fn disguised(secret: &str, flips: &[bool], inserts: &[(usize, String)]) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        if i > 0 {
            for (_, run) in inserts.iter().filter(|(at, _)| at % chars.len() == i) {
                out.push_str(run);
            }
        }
        let flip = flips.get(i).copied().unwrap_or(false);
        out.push(if flip {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        } else {
            *c
        });
    }
    out
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
    fn a_sanitized_upstream_message_never_contains_the_secret_however_it_was_split(
        secret in secret(),
        before in surrounding_text(),
        after in surrounding_text(),
        flips in prop::collection::vec(any::<bool>(), 40),
        inserts in prop::collection::vec((1usize..40, prop::collection::vec(splitter(), 1..4)), 0..6),
        copies in 1usize..3,
    ) {
        let inserts: Vec<(usize, String)> =
            inserts.into_iter().map(|(at, run)| (at, run.into_iter().collect())).collect();
        let disguise = disguised(&secret, &flips, &inserts);
        let raw = format!("{before}{}{after}", vec![disguise.as_str(); copies].join(" "));

        let clean = sanitize_upstream_message(&raw, &secret);

        let lower = clean.to_ascii_lowercase();
        prop_assert!(!lower.contains(&secret.to_ascii_lowercase()), "{secret:?} in {clean:?} (from {raw:?})");
        let squeezed = |s: &str| s.replace(' ', "").to_ascii_lowercase();
        prop_assert!(
            !squeezed(&clean).contains(&squeezed(&secret)),
            "{secret:?} with spaces in {clean:?} (from {raw:?})"
        );
        prop_assert!(!clean.chars().any(char::is_control), "{clean:?}");
        prop_assert!(clean.chars().count() <= MAX_UPSTREAM_MESSAGE_CHARS);
        prop_assert_eq!(clean.trim(), clean.as_str());
    }

    #[test]
    fn a_message_that_cannot_contain_the_secret_is_only_cleaned_and_cut(
        secret in "[a-z]{1,40}",
        raw in "[0-9 .,:!?\t\r\n\x00-\x08\x7f]{0,400}",
    ) {
        let clean = sanitize_upstream_message(&raw, &secret);
        let words: Vec<String> = raw
            .split_whitespace()
            .map(|w| w.chars().filter(|c| !c.is_control()).collect::<String>())
            .filter(|w| !w.is_empty())
            .collect();
        let expected: String = words.join(" ").chars().take(MAX_UPSTREAM_MESSAGE_CHARS).collect();
        prop_assert_eq!(clean, expected.trim_end());
    }

    #[test]
    fn go_times_round_trip(secs in 0i64..4_102_444_800, nanos in 0u32..1_000_000_000) {
        let at = chrono::DateTime::from_timestamp(secs, nanos).unwrap();
        let raw = at.format("%Y-%m-%d %H:%M:%S%.9f +0000 UTC").to_string();
        let ts = parse_go_time(&raw).expect("Go format parses");
        prop_assert_eq!((ts.seconds, ts.nanos as u32), (secs, nanos));
    }
}
