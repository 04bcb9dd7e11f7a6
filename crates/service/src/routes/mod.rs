//! HTTP handlers, one module per area. Each handler carries its `#[utoipa::path]`, from which
//! both the router and the OpenAPI document are built (they cannot drift).

pub mod auth;
pub mod me;
pub mod ops;
pub mod products;
pub mod tenants;
pub mod users;
