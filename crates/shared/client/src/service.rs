//! The security service's API, one method per route, wire types in and out. Grouped as the
//! OpenAPI document groups them; the route of each method is named in [`crate::routes::service`].
//!
//! Lists are paged: each list method takes the route's query (with `limit` and `continuation`)
//! and returns one [`Page`]; [`all_pages`] follows the continuation tokens.

use std::path::Path;

use ferro_wire::{
    AcceptInvitationRequest, ApiToken, ApiTokenId, AssignDevicesRequest, AttestationChallenge,
    AttestationChallengeRequest, AttestationEvidenceRequest, AttestationResult, AuditEvent,
    CaCertificate, CapabilityFileResponse, CapabilityType, CertificateFormatQuery,
    ChangePasswordRequest, ClaimDevicesRequest, ClaimDevicesResponse, CreateApiTokenRequest,
    CreateCapabilityRequest, CreateDeploymentRequest, CreateDeviceGroupRequest,
    CreateFirmwareReferenceRequest, CreateInvitationRequest, CreateProductRequest,
    CreateTenantRequest, CreateTransferRequest, CreateUserRequest, CreatedApiToken,
    CreatedInvitation, CreatedUser, Deployment, DeploymentId, Device, DeviceCount,
    DeviceCountQuery, DeviceDeploymentStatus, DeviceEventsUpload, DeviceGroup, DeviceGroupId,
    DeviceGroupQuery, DeviceId, DeviceQuery, DeviceReassigned, DeviceTargetSet, DeviceTransfer,
    DeviceTransferId, ErrorReportQuery, FirmwareReference, FirmwareReferenceId, Health, Image,
    ImageId, ImageQuery, Invitation, InvitationId, LoginRequest, LoginResponse, Me,
    OneTimePassword, OsFeed, OsFeedPolicy, OsRelease, OsReleaseQuery, Page, PageQuery, Product,
    ProductId, ProofOfPossessionRequest, PublishOsReleaseQuery, ReassignDeviceRequest,
    RegisterDevicesRequest, RegisterDevicesResponse, RegisterSigningKeyRequest,
    RegisteredSigningKey, RevokedCapabilities, RoleAssignment, RolloutStatus,
    SetOsFeedPolicyRequest, TargetedImages, Tenant, TenantId, TenantRole, UpdateDeviceGroupRequest,
    UpdateDeviceRequest, UpdateNowResult, UpdateProductRequest, UpdateRoleRequest, UpdateSignal,
    UpdateStatusReport, UpdateTenantRequest, User, UserId,
};
use serde::Serialize;

use crate::client::Client;
use crate::error::ClientError;
use crate::routes::service as route;

/// The content type of image packages (uploads and downloads).
const PACKAGE_TYPE: &str = "application/octet-stream";

/// Every item of a paged list: calls `page` with each continuation token (first `None`) until
/// the service sends none.
pub fn all_pages<T>(
    mut page: impl FnMut(Option<String>) -> Result<Page<T>, ClientError>,
) -> Result<Vec<T>, ClientError> {
    let mut items = Vec::new();
    let mut continuation = None;
    loop {
        let next = page(continuation)?;
        items.extend(next.items);
        match next.continuation_token {
            Some(token) if !token.is_empty() => continuation = Some(token),
            _ => return Ok(items),
        }
    }
}

/// A page query that starts at `continuation`, the service's default size.
pub fn page(continuation: Option<String>) -> PageQuery {
    PageQuery {
        limit: None,
        continuation,
    }
}

/// The query of `GET /v1/device/update-signal`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignalQuery<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) since: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) wait_seconds: Option<u64>,
}

/// Health and metrics.
impl Client {
    pub fn healthz(&self) -> Result<Health, ClientError> {
        self.call(&route::HEALTHZ, &[])?.fetch()
    }

    pub fn readyz(&self) -> Result<Health, ClientError> {
        self.call(&route::READYZ, &[])?.fetch()
    }

    /// The Prometheus text exposition.
    pub fn metrics(&self) -> Result<String, ClientError> {
        let bytes = self.call(&route::METRICS, &[])?.bytes()?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Accounts: sessions, the caller, API tokens, users.
impl Client {
    pub fn login(&self, request: &LoginRequest) -> Result<LoginResponse, ClientError> {
        self.call(&route::LOGIN, &[])?.json(request).fetch()
    }

    pub fn logout(&self) -> Result<(), ClientError> {
        self.call(&route::LOGOUT, &[])?.no_content()
    }

    pub fn change_password(&self, request: &ChangePasswordRequest) -> Result<(), ClientError> {
        self.call(&route::CHANGE_PASSWORD, &[])?
            .json(request)
            .no_content()
    }

    pub fn me(&self) -> Result<Me, ClientError> {
        self.call(&route::GET_ME, &[])?.fetch()
    }

    pub fn list_tokens(&self, query: &PageQuery) -> Result<Page<ApiToken>, ClientError> {
        self.call(&route::LIST_TOKENS, &[])?.query(query).fetch()
    }

    pub fn create_token(
        &self,
        request: &CreateApiTokenRequest,
    ) -> Result<CreatedApiToken, ClientError> {
        self.call(&route::CREATE_TOKEN, &[])?.json(request).fetch()
    }

    pub fn revoke_token(&self, token: ApiTokenId) -> Result<(), ClientError> {
        self.call(&route::REVOKE_TOKEN, &[&token])?.no_content()
    }

    pub fn list_users(&self, query: &PageQuery) -> Result<Page<User>, ClientError> {
        self.call(&route::LIST_USERS, &[])?.query(query).fetch()
    }

    pub fn create_user(&self, request: &CreateUserRequest) -> Result<CreatedUser, ClientError> {
        self.call(&route::CREATE_USER, &[])?.json(request).fetch()
    }

    pub fn delete_user(&self, user: UserId) -> Result<(), ClientError> {
        self.call(&route::DELETE_USER, &[&user])?.no_content()
    }

    pub fn reset_password(&self, user: UserId) -> Result<OneTimePassword, ClientError> {
        self.call(&route::RESET_PASSWORD, &[&user])?
            .json(&serde_json::Map::new())
            .fetch()
    }
}

/// Tenants, their roles and invitations, audit log and error report.
impl Client {
    pub fn list_tenants(&self, query: &PageQuery) -> Result<Page<Tenant>, ClientError> {
        self.call(&route::LIST_TENANTS, &[])?.query(query).fetch()
    }

    pub fn create_tenant(&self, request: &CreateTenantRequest) -> Result<Tenant, ClientError> {
        self.call(&route::CREATE_TENANT, &[])?.json(request).fetch()
    }

    pub fn get_tenant(&self, tenant: TenantId) -> Result<Tenant, ClientError> {
        self.call(&route::GET_TENANT, &[&tenant])?.fetch()
    }

    pub fn update_tenant(
        &self,
        tenant: TenantId,
        request: &UpdateTenantRequest,
    ) -> Result<Tenant, ClientError> {
        self.call(&route::UPDATE_TENANT, &[&tenant])?
            .json(request)
            .fetch()
    }

    pub fn audit_log(
        &self,
        tenant: TenantId,
        query: &PageQuery,
    ) -> Result<Page<AuditEvent>, ClientError> {
        self.call(&route::AUDIT_LOG, &[&tenant])?
            .query(query)
            .fetch()
    }

    /// The tenant's error report (CSV by default).
    pub fn error_report(
        &self,
        tenant: TenantId,
        query: &ErrorReportQuery,
    ) -> Result<Vec<u8>, ClientError> {
        self.call(&route::ERROR_REPORT, &[&tenant])?
            .query(query)
            .bytes()
    }

    pub fn list_roles(
        &self,
        tenant: TenantId,
        query: &PageQuery,
    ) -> Result<Page<RoleAssignment>, ClientError> {
        self.call(&route::LIST_ROLES, &[&tenant])?
            .query(query)
            .fetch()
    }

    pub fn get_role(&self, tenant: TenantId, user: UserId) -> Result<RoleAssignment, ClientError> {
        self.call(&route::GET_ROLE, &[&tenant, &user])?.fetch()
    }

    pub fn update_role(
        &self,
        tenant: TenantId,
        user: UserId,
        request: &UpdateRoleRequest,
    ) -> Result<RoleAssignment, ClientError> {
        self.call(&route::UPDATE_ROLE, &[&tenant, &user])?
            .json(request)
            .fetch()
    }

    pub fn delete_role(&self, tenant: TenantId, user: UserId) -> Result<(), ClientError> {
        self.call(&route::DELETE_ROLE, &[&tenant, &user])?
            .no_content()
    }

    pub fn list_invitations(
        &self,
        tenant: TenantId,
        query: &PageQuery,
    ) -> Result<Page<Invitation>, ClientError> {
        self.call(&route::LIST_INVITATIONS, &[&tenant])?
            .query(query)
            .fetch()
    }

    pub fn create_invitation(
        &self,
        tenant: TenantId,
        request: &CreateInvitationRequest,
    ) -> Result<CreatedInvitation, ClientError> {
        self.call(&route::CREATE_INVITATION, &[&tenant])?
            .json(request)
            .fetch()
    }

    pub fn revoke_invitation(
        &self,
        tenant: TenantId,
        invitation: InvitationId,
    ) -> Result<(), ClientError> {
        self.call(&route::REVOKE_INVITATION, &[&tenant, &invitation])?
            .no_content()
    }

    pub fn accept_invitation(
        &self,
        request: &AcceptInvitationRequest,
    ) -> Result<TenantRole, ClientError> {
        self.call(&route::ACCEPT_INVITATION, &[])?
            .json(request)
            .fetch()
    }
}

/// Products and device groups, deployments and rollouts.
impl Client {
    pub fn list_products(
        &self,
        tenant: TenantId,
        query: &PageQuery,
    ) -> Result<Page<Product>, ClientError> {
        self.call(&route::LIST_PRODUCTS, &[&tenant])?
            .query(query)
            .fetch()
    }

    pub fn create_product(
        &self,
        tenant: TenantId,
        request: &CreateProductRequest,
    ) -> Result<Product, ClientError> {
        self.call(&route::CREATE_PRODUCT, &[&tenant])?
            .json(request)
            .fetch()
    }

    pub fn get_product(
        &self,
        tenant: TenantId,
        product: ProductId,
    ) -> Result<Product, ClientError> {
        self.call(&route::GET_PRODUCT, &[&tenant, &product])?
            .fetch()
    }

    pub fn update_product(
        &self,
        tenant: TenantId,
        product: ProductId,
        request: &UpdateProductRequest,
    ) -> Result<Product, ClientError> {
        self.call(&route::UPDATE_PRODUCT, &[&tenant, &product])?
            .json(request)
            .fetch()
    }

    pub fn delete_product(&self, tenant: TenantId, product: ProductId) -> Result<(), ClientError> {
        self.call(&route::DELETE_PRODUCT, &[&tenant, &product])?
            .no_content()
    }

    /// Creates the product's default device groups (as azsphere does).
    pub fn create_default_groups(
        &self,
        tenant: TenantId,
        product: ProductId,
    ) -> Result<Vec<DeviceGroup>, ClientError> {
        self.call(&route::CREATE_DEFAULTS, &[&tenant, &product])?
            .json(&serde_json::Map::new())
            .fetch()
    }

    /// The product's firmware (stage 0) reference values.
    pub fn list_firmware_references(
        &self,
        tenant: TenantId,
        product: ProductId,
    ) -> Result<Vec<FirmwareReference>, ClientError> {
        self.call(&route::LIST_FIRMWARE_REFERENCES, &[&tenant, &product])?
            .fetch()
    }

    /// Registers a firmware reference value (PCRs 0-7) for the product's devices.
    pub fn create_firmware_reference(
        &self,
        tenant: TenantId,
        product: ProductId,
        request: &CreateFirmwareReferenceRequest,
    ) -> Result<FirmwareReference, ClientError> {
        self.call(&route::CREATE_FIRMWARE_REFERENCE, &[&tenant, &product])?
            .json(request)
            .fetch()
    }

    pub fn delete_firmware_reference(
        &self,
        tenant: TenantId,
        product: ProductId,
        reference: FirmwareReferenceId,
    ) -> Result<(), ClientError> {
        self.call(
            &route::DELETE_FIRMWARE_REFERENCE,
            &[&tenant, &product, &reference],
        )?
        .no_content()
    }

    pub fn list_groups(
        &self,
        tenant: TenantId,
        query: &DeviceGroupQuery,
    ) -> Result<Page<DeviceGroup>, ClientError> {
        self.call(&route::LIST_GROUPS, &[&tenant])?
            .query(query)
            .fetch()
    }

    pub fn create_group(
        &self,
        tenant: TenantId,
        request: &CreateDeviceGroupRequest,
    ) -> Result<DeviceGroup, ClientError> {
        self.call(&route::CREATE_GROUP, &[&tenant])?
            .json(request)
            .fetch()
    }

    pub fn get_group(
        &self,
        tenant: TenantId,
        group: DeviceGroupId,
    ) -> Result<DeviceGroup, ClientError> {
        self.call(&route::GET_GROUP, &[&tenant, &group])?.fetch()
    }

    pub fn update_group(
        &self,
        tenant: TenantId,
        group: DeviceGroupId,
        request: &UpdateDeviceGroupRequest,
    ) -> Result<DeviceGroup, ClientError> {
        self.call(&route::UPDATE_GROUP, &[&tenant, &group])?
            .json(request)
            .fetch()
    }

    pub fn delete_group(&self, tenant: TenantId, group: DeviceGroupId) -> Result<(), ClientError> {
        self.call(&route::DELETE_GROUP, &[&tenant, &group])?
            .no_content()
    }

    /// Tells the group's devices to check for updates now.
    pub fn group_update_now(
        &self,
        tenant: TenantId,
        group: DeviceGroupId,
    ) -> Result<UpdateNowResult, ClientError> {
        self.call(&route::GROUP_UPDATE_NOW, &[&tenant, &group])?
            .json(&serde_json::Map::new())
            .fetch()
    }

    pub fn list_deployments(
        &self,
        tenant: TenantId,
        group: DeviceGroupId,
        query: &PageQuery,
    ) -> Result<Page<Deployment>, ClientError> {
        self.call(&route::LIST_DEPLOYMENTS, &[&tenant, &group])?
            .query(query)
            .fetch()
    }

    pub fn create_deployment(
        &self,
        tenant: TenantId,
        group: DeviceGroupId,
        request: &CreateDeploymentRequest,
    ) -> Result<Deployment, ClientError> {
        self.call(&route::CREATE_DEPLOYMENT, &[&tenant, &group])?
            .json(request)
            .fetch()
    }

    pub fn get_deployment(
        &self,
        tenant: TenantId,
        group: DeviceGroupId,
        deployment: DeploymentId,
    ) -> Result<Deployment, ClientError> {
        self.call(&route::GET_DEPLOYMENT, &[&tenant, &group, &deployment])?
            .fetch()
    }

    pub fn get_rollout(
        &self,
        tenant: TenantId,
        group: DeviceGroupId,
        deployment: DeploymentId,
    ) -> Result<RolloutStatus, ClientError> {
        self.call(&route::GET_ROLLOUT, &[&tenant, &group, &deployment])?
            .fetch()
    }

    pub fn pause_rollout(
        &self,
        tenant: TenantId,
        group: DeviceGroupId,
        deployment: DeploymentId,
    ) -> Result<RolloutStatus, ClientError> {
        self.call(&route::PAUSE_ROLLOUT, &[&tenant, &group, &deployment])?
            .json(&serde_json::Map::new())
            .fetch()
    }

    pub fn resume_rollout(
        &self,
        tenant: TenantId,
        group: DeviceGroupId,
        deployment: DeploymentId,
    ) -> Result<RolloutStatus, ClientError> {
        self.call(&route::RESUME_ROLLOUT, &[&tenant, &group, &deployment])?
            .json(&serde_json::Map::new())
            .fetch()
    }
}

/// A tenant's devices, their capabilities, updates and transfers, and the tenant's CA.
/// Device IDs are [`DeviceId`]s, parsed by the caller (either case in, lower case in the path).
impl Client {
    pub fn list_devices(
        &self,
        tenant: TenantId,
        query: &DeviceQuery,
    ) -> Result<Page<Device>, ClientError> {
        self.call(&route::LIST_DEVICES, &[&tenant])?
            .query(query)
            .fetch()
    }

    pub fn count_devices(
        &self,
        tenant: TenantId,
        query: &DeviceCountQuery,
    ) -> Result<DeviceCount, ClientError> {
        self.call(&route::COUNT_DEVICES, &[&tenant])?
            .query(query)
            .fetch()
    }

    pub fn claim_devices(
        &self,
        tenant: TenantId,
        request: &ClaimDevicesRequest,
    ) -> Result<ClaimDevicesResponse, ClientError> {
        self.call(&route::CLAIM, &[&tenant])?.json(request).fetch()
    }

    pub fn get_device(&self, tenant: TenantId, device: &DeviceId) -> Result<Device, ClientError> {
        self.call(&route::GET_DEVICE, &[&tenant, &device])?.fetch()
    }

    pub fn update_device(
        &self,
        tenant: TenantId,
        device: &DeviceId,
        request: &UpdateDeviceRequest,
    ) -> Result<Device, ClientError> {
        self.call(&route::UPDATE_DEVICE, &[&tenant, &device])?
            .json(request)
            .fetch()
    }

    pub fn create_capability(
        &self,
        tenant: TenantId,
        device: &DeviceId,
        request: &CreateCapabilityRequest,
    ) -> Result<CapabilityFileResponse, ClientError> {
        self.call(&route::CREATE_CAPABILITY, &[&tenant, &device])?
            .json(request)
            .fetch()
    }

    pub fn revoke_capabilities(
        &self,
        tenant: TenantId,
        device: &DeviceId,
        capability: CapabilityType,
    ) -> Result<RevokedCapabilities, ClientError> {
        self.call(
            &route::REVOKE_CAPABILITIES,
            &[&tenant, &device, &capability.as_str()],
        )?
        .json(&serde_json::Map::new())
        .fetch()
    }

    pub fn deployment_status(
        &self,
        tenant: TenantId,
        device: &DeviceId,
    ) -> Result<DeviceDeploymentStatus, ClientError> {
        self.call(&route::DEPLOYMENT_STATUS, &[&tenant, &device])?
            .fetch()
    }

    pub fn targeted_images(
        &self,
        tenant: TenantId,
        device: &DeviceId,
    ) -> Result<TargetedImages, ClientError> {
        self.call(&route::TARGETED_IMAGES, &[&tenant, &device])?
            .fetch()
    }

    /// Tells the device to check for updates now.
    pub fn device_update_now(
        &self,
        tenant: TenantId,
        device: &DeviceId,
    ) -> Result<UpdateNowResult, ClientError> {
        self.call(&route::DEVICE_UPDATE_NOW, &[&tenant, &device])?
            .json(&serde_json::Map::new())
            .fetch()
    }

    pub fn create_transfer(
        &self,
        tenant: TenantId,
        device: &DeviceId,
        request: &CreateTransferRequest,
    ) -> Result<DeviceTransfer, ClientError> {
        self.call(&route::CREATE_TRANSFER, &[&tenant, &device])?
            .json(request)
            .fetch()
    }

    pub fn list_transfers(&self, tenant: TenantId) -> Result<Vec<DeviceTransfer>, ClientError> {
        self.call(&route::LIST_TRANSFERS, &[&tenant])?.fetch()
    }

    pub fn accept_transfer(
        &self,
        tenant: TenantId,
        transfer: DeviceTransferId,
    ) -> Result<DeviceTransfer, ClientError> {
        self.call(&route::ACCEPT_TRANSFER, &[&tenant, &transfer])?
            .json(&serde_json::Map::new())
            .fetch()
    }

    pub fn cancel_transfer(
        &self,
        tenant: TenantId,
        transfer: DeviceTransferId,
    ) -> Result<DeviceTransfer, ClientError> {
        self.call(&route::CANCEL_TRANSFER, &[&tenant, &transfer])?
            .json(&serde_json::Map::new())
            .fetch()
    }

    pub fn list_ca_certificates(
        &self,
        tenant: TenantId,
    ) -> Result<Vec<CaCertificate>, ClientError> {
        self.call(&route::LIST_CAS, &[&tenant])?.fetch()
    }

    /// The tenant's CA certificate chain (PEM).
    pub fn ca_certificate_chain(&self, tenant: TenantId) -> Result<Vec<u8>, ClientError> {
        self.call(&route::GET_CHAIN, &[&tenant])?.bytes()
    }

    /// One CA certificate, in the format the query asks for.
    pub fn ca_certificate(
        &self,
        tenant: TenantId,
        serial: &str,
        query: &CertificateFormatQuery,
    ) -> Result<Vec<u8>, ClientError> {
        self.call(&route::GET_CA, &[&tenant, &serial])?
            .query(query)
            .bytes()
    }

    /// A proof-of-possession certificate (PEM) for the verification code.
    pub fn ca_certificate_proof(
        &self,
        tenant: TenantId,
        serial: &str,
        request: &ProofOfPossessionRequest,
    ) -> Result<Vec<u8>, ClientError> {
        self.call(&route::CREATE_PROOF, &[&tenant, &serial])?
            .json(request)
            .bytes()
    }
}

/// Images and developer keys.
impl Client {
    pub fn list_images(
        &self,
        tenant: TenantId,
        query: &ImageQuery,
    ) -> Result<Page<Image>, ClientError> {
        self.call(&route::LIST_IMAGES, &[&tenant])?
            .query(query)
            .fetch()
    }

    /// Uploads an image package from `file`, streamed; `progress` gets the bytes sent so far.
    pub fn upload_image(
        &self,
        tenant: TenantId,
        file: &Path,
        progress: impl Fn(u64) + Send + 'static,
    ) -> Result<Image, ClientError> {
        self.call(&route::UPLOAD_IMAGE, &[&tenant])?
            .upload(file, PACKAGE_TYPE, progress)
    }

    pub fn get_image(&self, tenant: TenantId, image: ImageId) -> Result<Image, ClientError> {
        self.call(&route::GET_IMAGE, &[&tenant, &image])?.fetch()
    }

    /// Deletes an image (refused with `image_in_use` while a device is or may still be given it,
    /// or runs it; superseded deployments keep it in their history); returns the deleted image.
    pub fn delete_image(&self, tenant: TenantId, image: ImageId) -> Result<Image, ClientError> {
        self.call(&route::DELETE_IMAGE, &[&tenant, &image])?.fetch()
    }

    /// Downloads an image package into `destination` (whole or not at all); `progress` gets
    /// (bytes so far, total if known). Returns the size.
    pub fn download_image(
        &self,
        tenant: TenantId,
        image: ImageId,
        destination: &Path,
        progress: impl Fn(u64, Option<u64>),
    ) -> Result<u64, ClientError> {
        self.call(&route::GET_IMAGE_CONTENT, &[&tenant, &image])?
            .download(destination, progress)
    }

    pub fn list_developer_keys(
        &self,
        tenant: TenantId,
        query: &PageQuery,
    ) -> Result<Page<RegisteredSigningKey>, ClientError> {
        self.call(&route::LIST_DEVELOPER_KEYS, &[&tenant])?
            .query(query)
            .fetch()
    }

    pub fn add_developer_key(
        &self,
        tenant: TenantId,
        request: &RegisterSigningKeyRequest,
    ) -> Result<RegisteredSigningKey, ClientError> {
        self.call(&route::ADD_DEVELOPER_KEY, &[&tenant])?
            .json(request)
            .fetch()
    }

    pub fn delete_developer_key(&self, tenant: TenantId, key_id: &str) -> Result<(), ClientError> {
        self.call(&route::DELETE_DEVELOPER_KEY, &[&tenant, &key_id])?
            .no_content()
    }
}

/// Manufacturing: registration, assignment to tenants, reassignment.
impl Client {
    pub fn register_devices(
        &self,
        request: &RegisterDevicesRequest,
    ) -> Result<RegisterDevicesResponse, ClientError> {
        self.call(&route::REGISTER, &[])?.json(request).fetch()
    }

    pub fn assign_devices(
        &self,
        request: &AssignDevicesRequest,
    ) -> Result<ClaimDevicesResponse, ClientError> {
        self.call(&route::ASSIGN, &[])?.json(request).fetch()
    }

    pub fn reassign_device(
        &self,
        device: &DeviceId,
        request: &ReassignDeviceRequest,
    ) -> Result<DeviceReassigned, ClientError> {
        self.call(&route::REASSIGN, &[&device])?
            .json(request)
            .fetch()
    }
}

/// The platform: OS releases, feeds and their keys, the key list, the root certificate.
impl Client {
    pub fn list_os_releases(&self, query: &OsReleaseQuery) -> Result<Page<OsRelease>, ClientError> {
        self.call(&route::LIST_OS_RELEASES, &[])?
            .query(query)
            .fetch()
    }

    /// Publishes an OS image package from `file` to a feed, streamed.
    pub fn publish_os_release(
        &self,
        query: &PublishOsReleaseQuery,
        file: &Path,
        progress: impl Fn(u64) + Send + 'static,
    ) -> Result<OsRelease, ClientError> {
        self.call(&route::PUBLISH_OS_RELEASE, &[])?
            .query(query)
            .upload(file, PACKAGE_TYPE, progress)
    }

    pub fn get_os_release(&self, image: ImageId) -> Result<OsRelease, ClientError> {
        self.call(&route::GET_OS_RELEASE, &[&image])?.fetch()
    }

    /// Downloads an OS release's package into `destination` (whole or not at all).
    pub fn download_os_release(
        &self,
        image: ImageId,
        destination: &Path,
        progress: impl Fn(u64, Option<u64>),
    ) -> Result<u64, ClientError> {
        self.call(&route::GET_OS_RELEASE_CONTENT, &[&image])?
            .download(destination, progress)
    }

    pub fn promote_os_release(&self, image: ImageId) -> Result<OsRelease, ClientError> {
        self.call(&route::PROMOTE_OS_RELEASE, &[&image])?
            .json(&serde_json::Map::new())
            .fetch()
    }

    pub fn revoke_os_release(&self, image: ImageId) -> Result<OsRelease, ClientError> {
        self.call(&route::REVOKE_OS_RELEASE, &[&image])?
            .json(&serde_json::Map::new())
            .fetch()
    }

    pub fn list_os_feeds(&self) -> Result<Vec<OsFeedPolicy>, ClientError> {
        self.call(&route::LIST_OS_FEEDS, &[])?.fetch()
    }

    pub fn set_os_feed_policy(
        &self,
        feed: OsFeed,
        request: &SetOsFeedPolicyRequest,
    ) -> Result<OsFeedPolicy, ClientError> {
        self.call(&route::SET_OS_FEED_POLICY, &[&feed.as_str()])?
            .json(request)
            .fetch()
    }

    pub fn list_os_release_keys(
        &self,
        query: &PageQuery,
    ) -> Result<Page<RegisteredSigningKey>, ClientError> {
        self.call(&route::LIST_OS_RELEASE_KEYS, &[])?
            .query(query)
            .fetch()
    }

    pub fn add_os_release_key(
        &self,
        request: &RegisterSigningKeyRequest,
    ) -> Result<RegisteredSigningKey, ClientError> {
        self.call(&route::ADD_OS_RELEASE_KEY, &[])?
            .json(request)
            .fetch()
    }

    pub fn delete_os_release_key(&self, key_id: &str) -> Result<(), ClientError> {
        self.call(&route::DELETE_OS_RELEASE_KEY, &[&key_id])?
            .no_content()
    }

    /// The signed key list (COSE), as devices fetch it.
    pub fn key_list(&self) -> Result<Vec<u8>, ClientError> {
        self.call(&route::KEY_LIST, &[])?.bytes()
    }

    /// The platform root certificate (PEM).
    pub fn root_certificate(&self) -> Result<Vec<u8>, ClientError> {
        self.call(&route::ROOT_CERTIFICATE, &[])?.bytes()
    }
}

/// The device-facing routes (a device authenticates with its certificate).
impl Client {
    pub fn attestation_challenge(
        &self,
        request: &AttestationChallengeRequest,
    ) -> Result<AttestationChallenge, ClientError> {
        self.call(&route::CHALLENGE, &[])?.json(request).fetch()
    }

    pub fn attestation_evidence(
        &self,
        request: &AttestationEvidenceRequest,
    ) -> Result<AttestationResult, ClientError> {
        self.call(&route::EVIDENCE, &[])?.json(request).fetch()
    }

    pub fn device_target_set(&self) -> Result<DeviceTargetSet, ClientError> {
        self.call(&route::DEVICE_TARGET_SET, &[])?.fetch()
    }

    /// A package the device's target set names, by its SHA-256 (hex), from byte `from` on.
    pub fn device_image(&self, package_sha256: &str, from: u64) -> Result<Vec<u8>, ClientError> {
        let call = self.call(&route::DEVICE_IMAGE, &[&package_sha256])?;
        let call = if from > 0 {
            call.header("range", &format!("bytes={from}-"))
        } else {
            call
        };
        call.bytes()
    }

    /// The newest update signal after `since`, waiting up to `wait_seconds` for one; `None`
    /// when none came.
    pub fn device_update_signal(
        &self,
        since: Option<&str>,
        wait_seconds: Option<u64>,
    ) -> Result<Option<UpdateSignal>, ClientError> {
        self.call(&route::DEVICE_UPDATE_SIGNAL, &[])?
            .query(&SignalQuery {
                since,
                wait_seconds,
            })
            .fetch_optional()
    }

    pub fn device_update_status(&self, report: &UpdateStatusReport) -> Result<(), ClientError> {
        self.call(&route::DEVICE_UPDATE_STATUS, &[])?
            .json(report)
            .no_content()
    }

    pub fn device_events(&self, upload: &DeviceEventsUpload) -> Result<(), ClientError> {
        self.call(&route::DEVICE_EVENTS, &[])?
            .json(upload)
            .no_content()
    }
}
