//! How to reach KGeN: plain data the CLI fills in and the client reads.

use std::{path::PathBuf, time::Duration};

use reqwest::Url;
use secrecy::SecretString;

/// KGeN's staging platform, the default base URL.
pub const DEFAULT_UPSTREAM_URL: &str = "https://stage-platform-protocols.kgen.io";

/// How to reach KGeN.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Base URL; `/s2s/session/` is appended.
    pub url: Url,
    /// The game's KGeN client id.
    pub client_id: String,
    /// The game's KGeN client secret (never printed).
    pub client_secret: SecretString,
    /// Where the secret came from, when a file: re-read so a rotated secret is used without a restart.
    pub client_secret_file: Option<PathBuf>,
    /// Longest wait for one upstream answer.
    pub timeout: Duration,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Largest response body read.
    pub max_body: usize,
    /// Extra CA certificates trusted for KGeN's TLS.
    pub extra_roots: Vec<reqwest::Certificate>,
    /// HTTP/2 without negotiation (all calls multiplexed on few connections).
    pub http2_prior_knowledge: bool,
    /// Idle connections kept per upstream host.
    pub max_idle_connections: usize,
}

impl UpstreamSettings {
    /// Settings for `url` with the given credentials and the production defaults for everything else.
    pub fn new(url: Url, client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            url,
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
            client_secret_file: None,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            max_body: 1024 * 1024,
            extra_roots: Vec::new(),
            http2_prior_knowledge: false,
            max_idle_connections: 256,
        }
    }
}

/// Checks a KGeN base URL (the flag's, or a tenant's): http or https, a host, no query or fragment.
pub fn parse_upstream_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme must be https or http, not {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_owned());
    }
    // The gateway appends the session path itself: a URL that already ends in it would call
    // `/s2s/session/s2s/session/`, and every call would come back NOT_FOUND.
    if let Some(base) = url
        .path()
        .trim_end_matches('/')
        .strip_suffix("/s2s/session")
    {
        let mut suggestion = url.clone();
        suggestion.set_path(if base.is_empty() { "/" } else { base });
        return Err(format!(
            "already ends in the session path /s2s/session/, which the gateway appends: give the base URL, {}",
            suggestion.as_str().trim_end_matches('/')
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::parse_upstream_url;

    #[test]
    fn a_base_url_that_already_ends_in_the_session_path_is_refused_with_the_base_to_give() {
        for (raw, base) in [
            (
                "http://127.0.0.1:8080/s2s/session/",
                "http://127.0.0.1:8080",
            ),
            ("http://127.0.0.1:8080/s2s/session", "http://127.0.0.1:8080"),
            (
                "https://kgen.example/api/s2s/session/",
                "https://kgen.example/api",
            ),
        ] {
            let problem = parse_upstream_url(raw).expect_err(raw);
            assert!(
                problem.contains("already ends in the session path"),
                "{problem}"
            );
            assert!(
                problem.ends_with(&format!("give the base URL, {base}")),
                "{problem}"
            );
        }
    }

    #[test]
    fn base_urls_with_or_without_a_path_are_accepted() {
        for raw in [
            "https://kgen.example",
            "https://kgen.example/",
            "https://kgen.example/api/",
            "http://127.0.0.1:8080/s2s/",
            "http://127.0.0.1:8080/sessions/",
        ] {
            assert!(parse_upstream_url(raw).is_ok(), "{raw}");
        }
    }
}
