//! Which failed attempts are tried again (`--retry-on`, per tenant `retry_on`).
//!
//! `POST /s2s/session/` *creates* a session: the first for a user answers `is_new_user: true`. A retry after KGeN
//! acted on the request (created the session, then failed to answer) creates a second one, and the game is told
//! `is_new_user: false` for a new player. So, as gRPC's retry design (gRFC A6) and AIP-194 do for calls that are
//! not idempotent, the default retries only outcomes where KGeN provably did not act:
//!
//! - `connect-failure`: no connection (refused, DNS, a connect timeout): the request was never written;
//! - `refused-stream`: HTTP/2 `REFUSED_STREAM`, or a GOAWAY that excludes the stream: KGeN did not process it;
//! - `408`, `429`, `503`: KGeN (or its front) says it did not process the request.
//!
//! Everything else is ambiguous and answered at once unless the operator adds it, accepting the risk: `reset` (the
//! connection failed after the request may have been written, or while the answer was read), `5xx` (every 5xx
//! status), or single codes such as `502`. A call that succeeds after such a retry says so (see
//! [`Ambiguous`]); TLS failures, the gateway's own upstream timeout and bad answers are never retried.

use std::{collections::BTreeSet, fmt};

use crate::{
    core::Error,
    upstream::{self, Delivery},
};

/// The default policy: only what KGeN provably did not act on.
pub const DEFAULT_RETRY_ON: &str = "connect-failure,refused-stream,408,429,503";

/// The outcomes retried by default, because KGeN did not act on the request.
const SAFE_STATUSES: [u16; 3] = [408, 429, 503];

/// A retry policy: the outcomes of an attempt that are followed by another (within attempts, budget and deadline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOn {
    connect_failure: bool,
    refused_stream: bool,
    reset: bool,
    statuses: BTreeSet<u16>,
}

impl Default for RetryOn {
    fn default() -> Self {
        // The default text parses: a test below says so.
        Self::parse(DEFAULT_RETRY_ON).unwrap_or_else(|_| Self::none())
    }
}

/// An outcome that was retried although KGeN may have acted on it: the answer that finally came may describe a
/// session an earlier attempt created (`is_new_user` false for a new player).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ambiguous {
    /// The connection failed after the request may have been written.
    Reset,
    /// KGeN answered this status.
    Status(u16),
}

impl fmt::Display for Ambiguous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reset => f.write_str("reset"),
            Self::Status(code) => write!(f, "{code}"),
        }
    }
}

/// Whether to retry an outcome, and whether doing so is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not retried.
    Final,
    /// Retried; KGeN did not act on the request.
    RetrySafe,
    /// Retried because the policy says so, although KGeN may have acted.
    RetryAmbiguous(Ambiguous),
}

impl RetryOn {
    /// A policy that retries nothing.
    pub fn none() -> Self {
        Self {
            connect_failure: false,
            refused_stream: false,
            reset: false,
            statuses: BTreeSet::new(),
        }
    }

    /// Parses a comma-separated list of `connect-failure`, `refused-stream`, `reset`, `5xx` and status codes
    /// (400–599), or `none`. Errors name the offending item.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut policy = Self::none();
        let items: Vec<&str> = text.split(',').map(str::trim).collect();
        if items == ["none"] {
            return Ok(policy);
        }
        for item in items {
            match item {
                "connect-failure" => policy.connect_failure = true,
                "refused-stream" => policy.refused_stream = true,
                "reset" => policy.reset = true,
                "5xx" => policy.statuses.extend(500..=599),
                code => match code.parse::<u16>() {
                    Ok(code @ 400..=599) => {
                        policy.statuses.insert(code);
                    }
                    _ => {
                        return Err(format!(
                            "{item:?} is not connect-failure, refused-stream, reset, 5xx, a status code \
                             400-599 or none"
                        ))
                    }
                },
            }
        }
        Ok(policy)
    }

    /// Whether an attempt that failed with `error` is retried, and how safely.
    pub fn verdict(&self, error: &Error) -> Verdict {
        match error {
            Error::Upstream(upstream::Error::Unreachable { delivery, .. }) => match delivery {
                Delivery::NotSent if self.connect_failure => Verdict::RetrySafe,
                Delivery::Refused if self.refused_stream => Verdict::RetrySafe,
                Delivery::MaybeSent if self.reset => Verdict::RetryAmbiguous(Ambiguous::Reset),
                _ => Verdict::Final,
            },
            Error::Upstream(upstream::Error::HttpStatus(status))
                if self.statuses.contains(&status.code) =>
            {
                if SAFE_STATUSES.contains(&status.code) {
                    Verdict::RetrySafe
                } else {
                    Verdict::RetryAmbiguous(Ambiguous::Status(status.code))
                }
            }
            _ => Verdict::Final,
        }
    }
}

impl fmt::Display for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items: Vec<String> = Vec::new();
        if self.connect_failure {
            items.push("connect-failure".to_owned());
        }
        if self.refused_stream {
            items.push("refused-stream".to_owned());
        }
        if self.reset {
            items.push("reset".to_owned());
        }
        items.extend(self.statuses.iter().map(u16::to_string));
        if items.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&items.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::status;

    fn unreachable(delivery: Delivery) -> Error {
        Error::Upstream(upstream::Error::Unreachable {
            cause: "x".into(),
            delivery,
        })
    }

    #[test]
    fn the_default_retries_only_what_kgen_did_not_act_on() {
        let policy = RetryOn::default();
        assert_eq!(policy, RetryOn::parse(DEFAULT_RETRY_ON).unwrap());
        for safe in [408, 429, 503] {
            assert_eq!(policy.verdict(&status(safe)), Verdict::RetrySafe, "{safe}");
        }
        for ambiguous in [409, 500, 501, 502, 504, 400, 401, 404] {
            assert_eq!(
                policy.verdict(&status(ambiguous)),
                Verdict::Final,
                "{ambiguous}"
            );
        }
        assert_eq!(
            policy.verdict(&unreachable(Delivery::NotSent)),
            Verdict::RetrySafe
        );
        assert_eq!(
            policy.verdict(&unreachable(Delivery::Refused)),
            Verdict::RetrySafe
        );
        assert_eq!(
            policy.verdict(&unreachable(Delivery::MaybeSent)),
            Verdict::Final
        );
        assert_eq!(
            policy.verdict(&Error::Upstream(upstream::Error::Tls("x".into()))),
            Verdict::Final
        );
        assert_eq!(
            policy.verdict(&Error::UpstreamTimeout(std::time::Duration::from_secs(5))),
            Verdict::Final
        );
        assert_eq!(policy.to_string(), DEFAULT_RETRY_ON);
    }

    #[test]
    fn an_operator_may_add_ambiguous_outcomes_which_are_then_marked() {
        let policy = RetryOn::parse("connect-failure, 5xx ,reset").unwrap();
        assert_eq!(
            policy.verdict(&status(502)),
            Verdict::RetryAmbiguous(Ambiguous::Status(502))
        );
        assert_eq!(policy.verdict(&status(503)), Verdict::RetrySafe);
        assert_eq!(policy.verdict(&status(429)), Verdict::Final);
        assert_eq!(
            policy.verdict(&unreachable(Delivery::MaybeSent)),
            Verdict::RetryAmbiguous(Ambiguous::Reset)
        );
        assert_eq!(
            policy.verdict(&unreachable(Delivery::Refused)),
            Verdict::Final
        );
        assert_eq!(Ambiguous::Status(502).to_string(), "502");
        assert_eq!(Ambiguous::Reset.to_string(), "reset");
    }

    #[test]
    fn none_retries_nothing_and_bad_items_are_named() {
        let none = RetryOn::parse("none").unwrap();
        assert_eq!(none.verdict(&status(503)), Verdict::Final);
        assert_eq!(none.to_string(), "none");
        for bad in ["", "5xx,", "600", "200", "retry", "4xx", "none,503"] {
            let error = RetryOn::parse(bad).expect_err(bad);
            assert!(error.contains("is not connect-failure"), "{bad}: {error}");
        }
    }
}
