//! The composition root: builds every component from the settings, serves the gRPC port on a listener the caller
//! bound until the caller's shutdown future resolves, then drains. It owns the accept loop and each connection's
//! lifetime ([`connections`]) and the admin listener ([`admin`]).

mod admin;
mod application;
mod connections;
mod settings;
mod shutdown;

pub use admin::ADMIN_MAX_CONNECTIONS;
pub use application::{Application, StartupError};
pub use settings::{ServerSettings, Settings};
pub use shutdown::shutdown_signal;
