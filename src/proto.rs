//! The generated `kgen.session.v1` contract, and the encoded descriptor set that server reflection serves.

use std::fmt;

#[allow(clippy::all, missing_docs)]
mod generated {
    tonic::include_proto!("kgen.session.v1");
}

pub use generated::*;

/// Encoded `FileDescriptorSet` of `proto/` (written by `build.rs`), so `grpcurl` and `buf curl` need no proto file.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/kgen_session_v1_descriptor.bin"));

/// Fully qualified name of the service, as health checks and reflection know it.
pub const SESSION_SERVICE_NAME: &str = "kgen.session.v1.SessionService";

const REDACTED: &str = "[redacted]";

/// Written by hand so a logged or panicking response never shows its tokens or the gamer's contact details.
impl fmt::Debug for CreateSessionResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateSessionResponse")
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("email", &REDACTED)
            .field("phonenumber", &REDACTED)
            .field("level", &self.level)
            .field("rank", &self.rank)
            .field("indigg_id", &self.indigg_id)
            .field("third_party_client_id", &self.third_party_client_id)
            .field("third_party_client_name", &self.third_party_client_name)
            .field(
                "namespaced_third_party_user_id",
                &self.namespaced_third_party_user_id,
            )
            .field("wallet_address", &self.wallet_address)
            .field("is_new_user", &self.is_new_user)
            .field("access_token", &REDACTED)
            .field("refresh_token", &REDACTED)
            .field("linked_phone", &REDACTED)
            .field("session_start_time", &self.session_start_time)
            .field("session_started_at", &self.session_started_at)
            .finish_non_exhaustive()
    }
}
