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
    Ok(url)
}
