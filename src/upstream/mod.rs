//! KGeN, as the gateway sees it: the one HTTP client, its settings, its lenient wire model and its own error type.
//! Nothing here knows about gRPC, tenants or retries.

mod client;
mod error;
mod message;
mod model;
mod settings;

pub use client::{BuildError, Correlation, UpstreamClient, USER_AGENT};
#[cfg(test)]
pub(crate) use error::status;
pub use error::{Delivery, Error, UpstreamStatus};
pub use message::{
    sanitize_upstream_message, MAX_UPSTREAM_MESSAGE_CHARS, WITHHELD_UPSTREAM_MESSAGE,
};
pub use model::{parse_go_time, DecodeError, Session};
pub use settings::{parse_upstream_url, UpstreamSettings, DEFAULT_UPSTREAM_URL};
