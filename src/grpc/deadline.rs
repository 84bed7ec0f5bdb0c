//! The caller's deadline, read from the `grpc-timeout` request header.
//!
//! tonic's own `Server::timeout` answers `CANCELLED` and hides the remaining time from handlers, so the gateway
//! reads the header itself and hands the upstream call only the time the caller is still waiting.

use std::time::Duration;

use tokio::time::Instant;
use tonic::metadata::MetadataMap;

use crate::support::headers::GRPC_TIMEOUT;

/// The instant the caller stops waiting, if it sent a valid `grpc-timeout`. `received` is when the call arrived.
pub fn from_metadata(metadata: &MetadataMap, received: Instant) -> Option<Instant> {
    let raw = metadata.get(GRPC_TIMEOUT)?.to_str().ok()?;
    let timeout = parse_grpc_timeout(raw)?;
    Some(received.checked_add(timeout).unwrap_or_else(far_future))
}

/// Parses a `grpc-timeout` value such as `100m` or `5S`; `None` when malformed.
pub fn parse_grpc_timeout(raw: &str) -> Option<Duration> {
    let unit = raw.chars().last()?;
    let digits = &raw[..raw.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(value * 3600),
        'M' => Duration::from_secs(value * 60),
        'S' => Duration::from_secs(value),
        'm' => Duration::from_millis(value),
        'u' => Duration::from_micros(value),
        'n' => Duration::from_nanos(value),
        _ => return None,
    })
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_of_the_spec_is_understood() {
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(
            parse_grpc_timeout("30000000u"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_grpc_timeout("0n"), Some(Duration::ZERO));
    }

    #[test]
    fn malformed_values_are_ignored() {
        for raw in ["", "m", "10", "10x", "123456789S", "-1S", "1.5S", "1é"] {
            assert_eq!(parse_grpc_timeout(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn deadline_is_counted_from_arrival() {
        let mut metadata = MetadataMap::new();
        metadata.insert(GRPC_TIMEOUT, "250m".parse().unwrap());
        let now = Instant::now();
        assert_eq!(
            from_metadata(&metadata, now),
            Some(now + Duration::from_millis(250))
        );
        assert_eq!(from_metadata(&MetadataMap::new(), now), None);
    }
}
