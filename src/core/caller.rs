//! Who is calling: the one `Caller` type, put on a call by caller authentication and read when its tenant is
//! chosen and its metrics are labelled.

use super::tenants::TenantGrant;

/// The authenticated calling service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The caller's name in the tokens file.
    pub name: String,
    /// The tenants it may use.
    pub tenants: TenantGrant,
}
