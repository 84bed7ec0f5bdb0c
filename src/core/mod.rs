//! What the gateway does, free of any transport: create a session for a caller (validate, choose the tenant,
//! budget the deadline, attempt, retry), the reasons a call fails, the tenants with their credentials, and the
//! resilience that keeps a failing KGeN from taking the gateway down. No tonic, hyper or clap type appears here.

mod call;
mod caller;
pub(crate) mod error;
mod resilience;
mod tenants;

pub use call::{validate_user_id, Created, Sessions, MAX_BATCH_SIZE, MAX_USER_ID_BYTES};
pub use caller::Caller;
pub use error::{CallError, Error};
pub use resilience::{
    BreakerSettings, BreakerState, ResilienceSettings, RetryOn, DEFAULT_RETRY_ON,
};
pub use tenants::{
    watch as watch_tenants, Tenant, TenantGrant, Tenants, TenantsConfig, UpstreamPin,
};
