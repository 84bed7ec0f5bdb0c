//! Small pieces every layer may use and that use nothing of the gateway: the names of the headers the gateway
//! reads and writes, the handling of secrets, and the one file watcher that rotates files without a restart.

pub mod headers;
pub mod secrets;
pub mod watcher;
