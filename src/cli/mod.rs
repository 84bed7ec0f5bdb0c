//! The command line and environment, the only place that names a flag or an environment variable. The flags are
//! parsed by clap ([`args`]), checked all at once ([`check`]), the files they name are read in one step ([`load`]),
//! and each component gets its own settings ([`settings`]) — all before any port is bound. One subcommand is a
//! client, not a server: `kgen-gateway call` ([`call`]) makes one call to a running gateway and prints the answer.

mod args;
mod call;
mod check;
mod load;
mod settings;
mod usage;

pub use args::{
    CallArgs, Cli, Command, GatewayArgs, SandboxArgs, ADMIN_LISTEN, CLIENT_SECRET_ENV, LISTEN,
    SANDBOX_LISTEN,
};
pub use check::{ConfigError, Invalid};
pub use usage::one_line as usage_error_line;

#[cfg(test)]
mod tests;
