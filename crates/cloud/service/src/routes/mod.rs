//! HTTP handlers, one module per area. Each handler carries its `#[utoipa::path]`, from which
//! both the router and the OpenAPI document are built (they cannot drift).

pub mod attestation;
pub mod auth;
pub mod ca;
pub mod capabilities;
pub mod deployments;
pub mod developer_keys;
pub mod device_events;
pub mod device_groups;
pub mod device_updates;
pub mod devices;
pub mod error_report;
pub mod firmware_references;
pub mod images;
pub mod invitations;
pub mod me;
pub mod ops;
pub mod os_feeds;
pub mod os_release_keys;
pub mod os_releases;
pub mod ownership;
pub mod pki;
pub mod products;
pub mod registrations;
pub mod tenants;
pub mod updates;
pub mod users;
