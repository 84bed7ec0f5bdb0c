//! What the integration tests share: the gateway in this process ([`app`]) or as the real binary ([`process`]),
//! KGeN stand-ins ([`upstreams`], [`fault_upstream`]), assertions on the statuses it answers ([`assertions`]),
//! scratch files ([`files`]), and the bound on every wait ([`wait`]).

pub mod app;
pub mod assertions;
pub mod fault_upstream;
pub mod files;
pub mod process;
pub mod upstreams;
pub mod wait;
