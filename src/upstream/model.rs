//! KGeN's JSON session, decoded leniently and safely, and its mapping onto the protobuf response.
//!
//! Lenient: unknown fields are ignored, `null` or a missing field becomes the field's default, numbers sent as
//! strings are accepted for numeric fields (and scalars of any kind for string fields). Safe: anything else of the
//! wrong shape is an error, the JSON nesting depth is bounded by `serde_json`, and a session without a
//! `session_id` is refused.

use std::{fmt, sync::LazyLock};

use chrono::{
    format::{Item, Parsed, StrftimeItems},
    DateTime,
};
use prost_types::Timestamp;
use serde::Deserialize;

use crate::proto::CreateSessionResponse;

/// One KGeN session as KGeN sends it. Field order and names follow KGeN's documentation.
#[derive(Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Session {
    /// KGeN's HTTP status (a 2xx), set by the client: not part of the body.
    #[serde(skip)]
    pub http_status: u16,
    #[serde(deserialize_with = "lenient::string")]
    pub session_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub user_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    #[serde(deserialize_with = "lenient::string")]
    pub username: String,
    #[serde(deserialize_with = "lenient::string")]
    pub email: String,
    #[serde(deserialize_with = "lenient::string")]
    pub device_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub phonenumber: String,
    #[serde(deserialize_with = "lenient::int")]
    pub level: i64,
    #[serde(deserialize_with = "lenient::int")]
    pub rank: i64,
    #[serde(deserialize_with = "lenient::string")]
    pub date_joined: String,
    #[serde(deserialize_with = "lenient::string")]
    pub playertag: String,
    #[serde(deserialize_with = "lenient::string")]
    pub location: String,
    #[serde(deserialize_with = "lenient::string")]
    pub location_name: String,
    #[serde(deserialize_with = "lenient::string")]
    pub device_model: String,
    #[serde(deserialize_with = "lenient::string")]
    pub screen_height: String,
    #[serde(deserialize_with = "lenient::string")]
    pub screen_width: String,
    #[serde(deserialize_with = "lenient::string")]
    pub os_name: String,
    #[serde(deserialize_with = "lenient::string")]
    pub os_version: String,
    #[serde(deserialize_with = "lenient::string")]
    pub browser_name: String,
    #[serde(deserialize_with = "lenient::optional_string")]
    pub indigg_id: Option<String>,
    #[serde(deserialize_with = "lenient::string")]
    pub indigg_wallet_address: String,
    #[serde(deserialize_with = "lenient::string")]
    pub third_party_client_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub third_party_client_name: String,
    #[serde(deserialize_with = "lenient::string")]
    pub namespaced_third_party_user_id: String,
    #[serde(deserialize_with = "lenient::string")]
    pub wallet_address: String,
    #[serde(deserialize_with = "lenient::boolean")]
    pub is_new_user: bool,
    #[serde(deserialize_with = "lenient::string")]
    pub access_token: String,
    #[serde(deserialize_with = "lenient::string")]
    pub refresh_token: String,
    #[serde(deserialize_with = "lenient::string")]
    pub linked_phone: String,
    #[serde(deserialize_with = "lenient::string")]
    pub session_start_time: String,
}

/// Why a 2xx body is not a session. Its `Display` never quotes the body (which holds tokens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON at all (or not UTF-8, or truncated).
    #[error("not JSON ({0})")]
    NotJson(String),
    /// JSON, but not a session object.
    #[error("wrong shape ({0})")]
    WrongShape(String),
    /// A session object without a `session_id`.
    #[error("no session_id")]
    NoSessionId,
}

/// Reads a body's pieces in order, as one stream.
struct ChunkReader<'a, B> {
    chunks: &'a [B],
    offset: usize,
}

impl<'a, B: AsRef<[u8]>> ChunkReader<'a, B> {
    fn new(chunks: &'a [B]) -> Self {
        Self { chunks, offset: 0 }
    }
}

impl<B: AsRef<[u8]>> std::io::Read for ChunkReader<'_, B> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while let Some((first, rest)) = self.chunks.split_first() {
            let remaining = first.as_ref().get(self.offset..).unwrap_or_default();
            if remaining.is_empty() {
                self.chunks = rest;
                self.offset = 0;
                continue;
            }
            let n = remaining.len().min(buf.len());
            buf[..n].copy_from_slice(&remaining[..n]);
            self.offset += n;
            return Ok(n);
        }
        Ok(0)
    }
}

impl Session {
    /// Decodes a 2xx body.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_chunks(&[body])
    }

    /// Decodes a 2xx body that arrived in several pieces, reading across them rather than joining them, so a
    /// large body is never held twice.
    pub fn decode_chunks<B: AsRef<[u8]>>(chunks: &[B]) -> Result<Self, DecodeError> {
        let whole = match chunks {
            [] => Some(&[][..]),
            [one] => Some(one.as_ref()),
            _ => None,
        };
        // serde's derive would also accept a JSON array as a struct; KGeN's session is always an object.
        let first = chunks
            .iter()
            .flat_map(AsRef::as_ref)
            .find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            let parsed: Result<serde::de::IgnoredAny, _> = match whole {
                Some(body) => serde_json::from_slice(body),
                None => serde_json::from_reader(ChunkReader::new(chunks)),
            };
            return Err(match parsed {
                Ok(_) => DecodeError::WrongShape("not a JSON object".to_owned()),
                Err(e) => DecodeError::NotJson(format!("line {} column {}", e.line(), e.column())),
            });
        }
        let parsed: Result<Session, _> = match whole {
            Some(body) => serde_json::from_slice(body),
            None => serde_json::from_reader(ChunkReader::new(chunks)),
        };
        let session = parsed.map_err(|e| {
            let at = format!("line {} column {}", e.line(), e.column());
            match e.classify() {
                serde_json::error::Category::Data => DecodeError::WrongShape(at),
                _ => DecodeError::NotJson(at),
            }
        })?;
        if session.session_id.trim().is_empty() {
            return Err(DecodeError::NoSessionId);
        }
        Ok(session)
    }
}

impl From<Session> for CreateSessionResponse {
    fn from(s: Session) -> Self {
        let session_started_at = parse_go_time(&s.session_start_time);
        CreateSessionResponse {
            session_id: s.session_id,
            user_id: s.user_id,
            name: s.name,
            username: s.username,
            email: s.email,
            device_id: s.device_id,
            phonenumber: s.phonenumber,
            level: s.level,
            rank: s.rank,
            date_joined: s.date_joined,
            playertag: s.playertag,
            location: s.location,
            location_name: s.location_name,
            device_model: s.device_model,
            screen_height: s.screen_height,
            screen_width: s.screen_width,
            os_name: s.os_name,
            os_version: s.os_version,
            browser_name: s.browser_name,
            indigg_id: s.indigg_id,
            indigg_wallet_address: s.indigg_wallet_address,
            third_party_client_id: s.third_party_client_id,
            third_party_client_name: s.third_party_client_name,
            namespaced_third_party_user_id: s.namespaced_third_party_user_id,
            wallet_address: s.wallet_address,
            is_new_user: s.is_new_user,
            access_token: s.access_token,
            refresh_token: s.refresh_token,
            linked_phone: s.linked_phone,
            session_start_time: s.session_start_time,
            session_started_at,
        }
    }
}

/// Tokens and contact details are never printed.
impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .field("is_new_user", &self.is_new_user)
            .field("third_party_client_id", &self.third_party_client_id)
            .field("session_start_time", &self.session_start_time)
            .finish_non_exhaustive()
    }
}

const NANOS_PER_SECOND: u32 = 1_000_000_000;

/// Parses the time format of Go's `time.Time.String()` (`2024-08-20 08:32:13.025599965 +0000 UTC`, optionally
/// followed by a monotonic clock reading ` m=+0.5`), and RFC 3339 in case KGeN ever switches. `None` if neither.
pub fn parse_go_time(raw: &str) -> Option<Timestamp> {
    let text = raw.trim();
    let text = text.find(" m=").map_or(text, |at| &text[..at]);
    // Go's `time.String()` ends in a zone abbreviation ("UTC", "IST", …) after the numeric offset, which is
    // authoritative: the abbreviation is dropped first, so the common case parses once.
    let without_abbreviation = text
        .rsplit_once(' ')
        .filter(|(_, last)| !last.is_empty() && last.bytes().all(|b| b.is_ascii_alphabetic()))
        .map(|(head, _)| head);
    let parsed = without_abbreviation
        .and_then(parse_go_layout)
        .or_else(|| parse_go_layout(text))
        .or_else(|| {
            // Any other last word (a numeric abbreviation such as "+03").
            let (head, _abbreviation) = text.rsplit_once(' ')?;
            parse_go_layout(head)
        })
        .or_else(|| DateTime::parse_from_rfc3339(text).ok())?;
    // chrono reports a leap second (`23:59:60.5`) as nanos ≥ 1e9; protobuf Timestamps have no leap seconds, so
    // it is carried into the next second (nanos must stay below 1e9 or strict clients reject the message).
    let (carry, nanos) = (
        parsed.timestamp_subsec_nanos() / NANOS_PER_SECOND,
        parsed.timestamp_subsec_nanos() % NANOS_PER_SECOND,
    );
    Some(Timestamp {
        seconds: parsed.timestamp().checked_add(i64::from(carry))?,
        nanos: i32::try_from(nanos).ok()?,
    })
}

/// `2024-08-20 08:32:13.025599965 +0000`: Go's layout without the zone abbreviation. The format is parsed into
/// chrono's items once, not on every call.
fn parse_go_layout(text: &str) -> Option<DateTime<chrono::FixedOffset>> {
    static ITEMS: LazyLock<Vec<Item<'static>>> = LazyLock::new(|| {
        StrftimeItems::new("%Y-%m-%d %H:%M:%S%.f %z")
            .parse()
            .unwrap_or_default()
    });
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, text, ITEMS.iter()).ok()?;
    parsed.to_datetime().ok()
}

/// serde `deserialize_with` helpers that accept what KGeN plausibly sends for a field, and nothing else.
mod lenient {
    use std::fmt;

    use serde::de::{self, Deserializer, Visitor};

    /// Any JSON scalar, as text; `null` → `""`.
    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        d.deserialize_any(StringVisitor)
    }

    /// `null` → `None`; any other scalar → its text.
    pub fn optional_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(OptionalStringVisitor)
    }

    /// An integer, an integral float, or a string holding one; `null` or `""` → 0.
    pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        d.deserialize_any(IntVisitor)
    }

    /// A boolean, `0`/`1`, or the strings `true`/`false`/`1`/`0`; `null` or `""` → false.
    pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        d.deserialize_any(BoolVisitor)
    }

    struct StringVisitor;

    impl<'de> Visitor<'de> for StringVisitor {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, number, boolean or null")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_unit<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
    }

    struct OptionalStringVisitor;

    impl<'de> Visitor<'de> for OptionalStringVisitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, number, boolean or null")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            StringVisitor.visit_str(v).map(Some)
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            StringVisitor.visit_i64(v).map(Some)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            StringVisitor.visit_u64(v).map(Some)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            StringVisitor.visit_f64(v).map(Some)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            StringVisitor.visit_bool(v).map(Some)
        }
    }

    struct IntVisitor;

    impl<'de> Visitor<'de> for IntVisitor {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer, a string holding one, or null")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom("integer out of range"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
            // Integral and inside i64's range (2^63 is exactly representable as f64).
            if v.fract() == 0.0
                && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&v)
            {
                Ok(v as i64)
            } else {
                Err(E::custom("not an integer"))
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(0);
            }
            match v.parse::<i64>() {
                Ok(n) => Ok(n),
                Err(_) => {
                    let float: f64 = v.parse().map_err(|_| E::custom("not an integer"))?;
                    self.visit_f64(float)
                }
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<i64, E> {
            Ok(0)
        }
        fn visit_none<E: de::Error>(self) -> Result<i64, E> {
            Ok(0)
        }
    }

    struct BoolVisitor;

    impl<'de> Visitor<'de> for BoolVisitor {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean, 0 or 1, or null")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
            match v {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(E::custom("not a boolean")),
            }
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
            self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
            match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" | "" => Ok(false),
                _ => Err(E::custom("not a boolean")),
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_none<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../tests/fixtures/session-response.example.json");

    #[test]
    fn a_body_split_anywhere_decodes_as_the_whole_body() {
        let whole = Session::decode(EXAMPLE.as_bytes()).unwrap();
        let bytes = EXAMPLE.as_bytes();
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            assert_eq!(
                Session::decode_chunks(&[a, b]).unwrap(),
                whole,
                "split at {at}"
            );
        }
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(Session::decode_chunks(&bytewise).unwrap(), whole);
        let with_empties: Vec<&[u8]> = vec![b"", &bytes[..10], b"", &bytes[10..], b""];
        assert_eq!(Session::decode_chunks(&with_empties).unwrap(), whole);
    }

    #[test]
    fn a_split_body_is_refused_for_the_same_reasons_as_a_whole_one() {
        for body in [
            &b"[1, 2]"[..],
            b"{\"session_id\": 1",
            b"{\"session_id\": \"s\"} trailing",
            b"   ",
            b"{\"level\": 3}",
        ] {
            let halves: Vec<&[u8]> = body.chunks(body.len().div_ceil(2).max(1)).collect();
            assert_eq!(
                Session::decode_chunks(&halves),
                Session::decode(body),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn documented_example_decodes_into_every_field() {
        let s = Session::decode(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(s.session_id, "3ab35108-1902-4a1f-4382998f305d");
        assert_eq!(s.user_id, "FTC_User1");
        assert_eq!(s.level, 0);
        assert_eq!(s.indigg_id, None);
        assert_eq!(s.third_party_client_id, "20798813");
        assert_eq!(s.third_party_client_name, "ESPORTS_PROTOCOL_CALLBREAK");
        assert_eq!(s.namespaced_third_party_user_id, "20798813#FTC_User1");
        assert_eq!(s.wallet_address, "0xexamplewallet");
        assert!(!s.is_new_user);
        assert_eq!(s.access_token, "exampleToken1");
        assert_eq!(s.refresh_token, "exampleToken2");
        let proto = CreateSessionResponse::from(s);
        assert_eq!(
            proto.session_started_at,
            Some(Timestamp {
                seconds: 1_724_142_733,
                nanos: 25_599_965
            })
        );
        assert_eq!(
            proto.session_start_time,
            "2024-08-20 08:32:13.025599965 +0000 UTC"
        );
    }

    #[test]
    fn unknown_fields_are_ignored_and_nulls_become_defaults() {
        let s = Session::decode(
            br#"{"session_id":"s1","name":null,"level":null,"is_new_user":null,"future":{"x":[1,2]},"indigg_id":"ig-1"}"#,
        )
        .unwrap();
        assert_eq!(s.name, "");
        assert_eq!(s.level, 0);
        assert!(!s.is_new_user);
        assert_eq!(s.indigg_id.as_deref(), Some("ig-1"));
        assert_eq!(s.email, "", "missing fields default");
    }

    #[test]
    fn numbers_sent_as_strings_are_accepted_for_numeric_fields() {
        let s = Session::decode(
            br#"{"session_id":"s1","level":"12","rank":" 7 ","is_new_user":"true","third_party_client_id":20798813}"#,
        )
        .unwrap();
        assert_eq!((s.level, s.rank, s.is_new_user), (12, 7, true));
        assert_eq!(s.third_party_client_id, "20798813");
        let s = Session::decode(br#"{"session_id":"s1","level":3.0,"rank":"","is_new_user":1}"#)
            .unwrap();
        assert_eq!((s.level, s.rank, s.is_new_user), (3, 0, true));
    }

    #[test]
    fn wrong_shapes_are_errors_that_do_not_quote_the_body() {
        for body in [
            &br#"{"session_id":"s1","level":"twelve"}"#[..],
            br#"{"session_id":"s1","level":1.5}"#,
            br#"{"session_id":"s1","level":99999999999999999999}"#,
            br#"{"session_id":"s1","is_new_user":"maybe"}"#,
            br#"{"session_id":{"nested":true}}"#,
            br#"{"session_id":"s1","access_token":["secret-token"]}"#,
            br#"["s1"]"#,
        ] {
            let result = Session::decode(body);
            assert!(
                matches!(result, Err(DecodeError::WrongShape(_))),
                "{result:?}"
            );
            let err = result.unwrap_err();
            assert!(!err.to_string().contains("secret-token"));
            assert!(!err.to_string().contains("twelve"));
        }
    }

    #[test]
    fn non_json_bodies_are_errors() {
        for body in [
            &b"<html>oops</html>"[..],
            b"",
            b"{\"session_id\":\"s1\"",
            b"\xff\xfe{}",
            b"[[[",
        ] {
            let result = Session::decode(body);
            assert!(matches!(result, Err(DecodeError::NotJson(_))), "{result:?}");
        }
    }

    #[test]
    fn deeply_nested_json_never_exhausts_the_stack() {
        let open = "[".repeat(100_000);
        let close = "]".repeat(100_000);
        for refused in [
            format!("{{\"session_id\":\"s1\",\"x\":{open}"),
            format!("{{\"session_id\":{open}1{close}}}"),
            format!("{open}{close}"),
        ] {
            let result = Session::decode(refused.as_bytes());
            assert!(result.is_err(), "{:?}", result.map(|s| s.session_id));
        }
        // An unknown field is skipped iteratively, however deep it is.
        let ignored = format!("{{\"session_id\":\"s1\",\"x\":{open}1{close}}}");
        assert_eq!(
            Session::decode(ignored.as_bytes()).map(|s| s.session_id),
            Ok("s1".to_owned())
        );
    }

    #[test]
    fn a_session_needs_a_session_id() {
        assert_eq!(Session::decode(b"{}"), Err(DecodeError::NoSessionId));
        assert_eq!(
            Session::decode(br#"{"session_id":"  "}"#),
            Err(DecodeError::NoSessionId)
        );
        assert_eq!(
            Session::decode(br#"{"session_id":null}"#),
            Err(DecodeError::NoSessionId)
        );
    }

    #[test]
    fn go_times_parse_with_any_zone_and_precision() {
        let ts = |s, n| {
            Some(Timestamp {
                seconds: s,
                nanos: n,
            })
        };
        assert_eq!(
            parse_go_time("2024-08-20 08:32:13.025599965 +0000 UTC"),
            ts(1_724_142_733, 25_599_965)
        );
        assert_eq!(
            parse_go_time("2024-08-20 08:32:13 +0000 UTC"),
            ts(1_724_142_733, 0)
        );
        assert_eq!(
            parse_go_time("2024-08-20 14:02:13.5 +0530 IST"),
            ts(1_724_142_733, 500_000_000)
        );
        assert_eq!(
            parse_go_time("2024-08-20 08:32:13.025599965 +0000 UTC m=+0.000123"),
            ts(1_724_142_733, 25_599_965)
        );
        assert_eq!(
            parse_go_time("2024-08-20T08:32:13.5Z"),
            ts(1_724_142_733, 500_000_000)
        );
        // Without an abbreviation, and with Go's numeric one for zones that have no name.
        assert_eq!(
            parse_go_time("2024-08-20 08:32:13 +0000"),
            ts(1_724_142_733, 0)
        );
        assert_eq!(
            parse_go_time("2024-08-20 11:32:13 +0300 +03"),
            ts(1_724_142_733, 0)
        );
    }

    #[test]
    fn the_go_layout_is_parsed_by_its_items() {
        // An empty item list would accept anything and fail at `to_datetime`: the items must be real.
        assert!(parse_go_layout("2024-08-20 08:32:13.5 +0000").is_some());
        assert!(parse_go_layout("2024-08-20 08:32:13.5").is_none());
    }

    #[test]
    fn a_leap_second_is_carried_into_the_next_second() {
        let ts = |s, n| {
            Some(Timestamp {
                seconds: s,
                nanos: n,
            })
        };
        assert_eq!(
            parse_go_time("2016-12-31 23:59:60.5 +0000 UTC"),
            ts(1_483_228_800, 500_000_000)
        );
        assert_eq!(
            parse_go_time("2016-12-31 23:59:60 +0000 UTC"),
            ts(1_483_228_800, 0)
        );
    }

    #[test]
    fn unparsable_times_are_unset() {
        for raw in [
            "",
            "yesterday",
            "2024-13-40 99:99:99 +0000 UTC",
            "2024-08-20 08:32:13",
        ] {
            assert_eq!(parse_go_time(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn debug_never_prints_tokens_or_contact_details() {
        let body = br#"{"session_id":"s1","access_token":"tok-A","refresh_token":"tok-R","email":"a@b.c","phonenumber":"+911234","linked_phone":"+915678"}"#;
        let s = Session::decode(body).unwrap();
        let proto = CreateSessionResponse::from(Session::decode(body).unwrap());
        for printed in [
            format!("{s:?}"),
            format!("{proto:?}"),
            format!("{proto:#?}"),
        ] {
            for secret in ["tok-A", "tok-R", "a@b.c", "+911234", "+915678"] {
                assert!(!printed.contains(secret), "{printed}");
            }
        }
    }
}
