//! Extension points other parts of the service fill in.

use crate::db::Tx;
use crate::error::ApiResult;
use ferro_wire::TenantId;

/// Called inside the transaction that creates a tenant, after its row and its first
/// Administrator are written. The tenant CA, image key and metadata key (DESIGN section 2) are
/// to be created here through the key store, so that a tenant never exists without its keys: an
/// error rolls the whole creation back. Keys must be generated before the database writes they
/// are referenced by, and never logged.
pub async fn tenant_created(_tx: &mut Tx, _tenant: TenantId) -> ApiResult<()> {
    Ok(())
}
