//! What the integration tests share: the gateway in this process ([`app`]) or as the real binary ([`process`]),
//! the one KGeN stand-in ([`fake_kgen`]) and answers it is given ([`upstreams`]), assertions on the statuses the
//! gateway answers ([`assertions`]), scratch files ([`files`]), and the bound on every wait ([`wait`]).

pub mod app;
pub mod assertions;
pub mod fake_kgen;
pub mod files;
pub mod process;
pub mod upstreams;
pub mod wait;
