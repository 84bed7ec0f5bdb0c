//! Small pieces every layer may use and that use nothing of the gateway: the names of the headers the gateway
//! reads and writes, the handling of secrets, the one file watcher that rotates files without a restart, and the
//! throttle that rate-limits warnings which could repeat on every call.

pub mod headers;
pub mod secrets;
pub mod throttle;
pub mod watcher;
