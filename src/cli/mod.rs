//! The command line and environment, the only place that names a flag or an environment variable. The flags are
//! parsed by clap ([`args`]), checked all at once ([`check`]), the files they name are read in one step ([`load`]),
//! and each component gets its own settings ([`settings`]) — all before any port is bound.

mod args;
mod check;
mod load;
mod settings;
mod usage;

pub use args::{
    Cli, Command, GatewayArgs, SandboxArgs, ADMIN_LISTEN, CLIENT_SECRET_ENV, LISTEN, SANDBOX_LISTEN,
};
pub use check::{ConfigError, Invalid};
pub use usage::one_line as usage_error_line;

#[cfg(test)]
mod tests;
