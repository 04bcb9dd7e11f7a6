//! Every route the clients call, in one table: the only place a path of the service's API or of
//! the local device API is written down. Each typed method names its route by constant
//! (`route::NAME`); a unit test below finds a method for every constant, and `tests/routes.rs`
//! checks the service's table against its OpenAPI document, so a route can be neither
//! forgotten nor invented.

use std::fmt;

use reqwest::Url;

use crate::error::ClientError;

/// The HTTP methods the APIs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    /// The lowercase name, as OpenAPI documents key operations.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    pub(crate) fn method(self) -> reqwest::Method {
        match self {
            Verb::Get => reqwest::Method::GET,
            Verb::Post => reqwest::Method::POST,
            Verb::Put => reqwest::Method::PUT,
            Verb::Patch => reqwest::Method::PATCH,
            Verb::Delete => reqwest::Method::DELETE,
        }
    }
}

/// One route: a method and a path template whose `{name}` segments are filled in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub verb: Verb,
    pub template: &'static str,
}

impl Route {
    /// `base` with this route's path, each `{name}` segment replaced by the next of `params`
    /// (percent-encoded: a parameter cannot leave its segment).
    pub(crate) fn url(&self, base: &Url, params: &[&dyn fmt::Display]) -> Result<Url, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: format!("{base}{}", self.template.trim_start_matches('/')),
            reason,
        };
        let mut url = base.clone();
        let mut params = params.iter();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| invalid("the base URL cannot take a path".to_string()))?;
            segments.pop_if_empty();
            for segment in self.template.trim_start_matches('/').split('/') {
                if segment.starts_with('{') {
                    let value = params
                        .next()
                        .ok_or_else(|| invalid(format!("no value for {segment}")))?;
                    segments.push(&value.to_string());
                } else {
                    segments.push(segment);
                }
            }
        }
        if params.next().is_some() {
            return Err(invalid("more values than the path takes".to_string()));
        }
        Ok(url)
    }
}

macro_rules! routes {
    ($table:ident: $($(#[$doc:meta])* $name:ident = $verb:ident $template:literal;)*) => {
        $(
            $(#[$doc])*
            pub(crate) const $name: Route = Route { verb: Verb::$verb, template: $template };
        )*
        /// Every route of this API, for drift checks against its description.
        pub const $table: &[(&str, Route)] = &[$((stringify!($name), $name)),*];
    };
}

/// The security service's API (`openapi/ferrosphere.json`).
pub mod service {
    use super::{Route, Verb};

    routes! { ROUTES:
        HEALTHZ = Get "/healthz";
        READYZ = Get "/readyz";
        METRICS = Get "/metrics";

        LOGIN = Post "/v1/auth/login";
        LOGOUT = Post "/v1/auth/logout";
        CHANGE_PASSWORD = Post "/v1/auth/change-password";
        GET_ME = Get "/v1/me";
        LIST_TOKENS = Get "/v1/me/tokens";
        CREATE_TOKEN = Post "/v1/me/tokens";
        REVOKE_TOKEN = Delete "/v1/me/tokens/{tokenId}";
        LIST_USERS = Get "/v1/users";
        CREATE_USER = Post "/v1/users";
        DELETE_USER = Delete "/v1/users/{userId}";
        RESET_PASSWORD = Post "/v1/users/{userId}/one-time-password";

        LIST_TENANTS = Get "/v1/tenants";
        CREATE_TENANT = Post "/v1/tenants";
        GET_TENANT = Get "/v1/tenants/{tenantId}";
        UPDATE_TENANT = Patch "/v1/tenants/{tenantId}";
        AUDIT_LOG = Get "/v1/tenants/{tenantId}/audit-log";
        ERROR_REPORT = Get "/v1/tenants/{tenantId}/error-report";
        LIST_ROLES = Get "/v1/tenants/{tenantId}/roles";
        GET_ROLE = Get "/v1/tenants/{tenantId}/roles/{userId}";
        UPDATE_ROLE = Patch "/v1/tenants/{tenantId}/roles/{userId}";
        DELETE_ROLE = Delete "/v1/tenants/{tenantId}/roles/{userId}";
        LIST_INVITATIONS = Get "/v1/tenants/{tenantId}/invitations";
        CREATE_INVITATION = Post "/v1/tenants/{tenantId}/invitations";
        REVOKE_INVITATION = Delete "/v1/tenants/{tenantId}/invitations/{invitationId}";
        ACCEPT_INVITATION = Post "/v1/invitations/accept";

        LIST_PRODUCTS = Get "/v1/tenants/{tenantId}/products";
        CREATE_PRODUCT = Post "/v1/tenants/{tenantId}/products";
        GET_PRODUCT = Get "/v1/tenants/{tenantId}/products/{productId}";
        UPDATE_PRODUCT = Patch "/v1/tenants/{tenantId}/products/{productId}";
        DELETE_PRODUCT = Delete "/v1/tenants/{tenantId}/products/{productId}";
        CREATE_DEFAULTS = Post "/v1/tenants/{tenantId}/products/{productId}/device-groups/create-defaults";
        LIST_FIRMWARE_REFERENCES = Get "/v1/tenants/{tenantId}/products/{productId}/firmware-references";
        CREATE_FIRMWARE_REFERENCE = Post "/v1/tenants/{tenantId}/products/{productId}/firmware-references";
        DELETE_FIRMWARE_REFERENCE = Delete "/v1/tenants/{tenantId}/products/{productId}/firmware-references/{referenceId}";
        LIST_GROUPS = Get "/v1/tenants/{tenantId}/device-groups";
        CREATE_GROUP = Post "/v1/tenants/{tenantId}/device-groups";
        GET_GROUP = Get "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}";
        UPDATE_GROUP = Patch "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}";
        DELETE_GROUP = Delete "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}";
        GROUP_UPDATE_NOW = Post "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/update-now";
        LIST_DEPLOYMENTS = Get "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments";
        CREATE_DEPLOYMENT = Post "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments";
        GET_DEPLOYMENT = Get "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments/{deploymentId}";
        GET_ROLLOUT = Get "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments/{deploymentId}/rollout";
        PAUSE_ROLLOUT = Post "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments/{deploymentId}/rollout/pause";
        RESUME_ROLLOUT = Post "/v1/tenants/{tenantId}/device-groups/{deviceGroupId}/deployments/{deploymentId}/rollout/resume";

        LIST_DEVICES = Get "/v1/tenants/{tenantId}/devices";
        COUNT_DEVICES = Get "/v1/tenants/{tenantId}/devices/count";
        CLAIM = Post "/v1/tenants/{tenantId}/devices/claim";
        GET_DEVICE = Get "/v1/tenants/{tenantId}/devices/{deviceId}";
        UPDATE_DEVICE = Patch "/v1/tenants/{tenantId}/devices/{deviceId}";
        CREATE_CAPABILITY = Post "/v1/tenants/{tenantId}/devices/{deviceId}/capabilities";
        REVOKE_CAPABILITIES = Delete "/v1/tenants/{tenantId}/devices/{deviceId}/capabilities/{capabilityType}";
        DEPLOYMENT_STATUS = Get "/v1/tenants/{tenantId}/devices/{deviceId}/deployment-status";
        TARGETED_IMAGES = Get "/v1/tenants/{tenantId}/devices/{deviceId}/targeted-images";
        DEVICE_UPDATE_NOW = Post "/v1/tenants/{tenantId}/devices/{deviceId}/update-now";
        CREATE_TRANSFER = Post "/v1/tenants/{tenantId}/devices/{deviceId}/transfers";
        LIST_TRANSFERS = Get "/v1/tenants/{tenantId}/device-transfers";
        ACCEPT_TRANSFER = Post "/v1/tenants/{tenantId}/device-transfers/{transferId}/accept";
        CANCEL_TRANSFER = Post "/v1/tenants/{tenantId}/device-transfers/{transferId}/cancel";
        LIST_CAS = Get "/v1/tenants/{tenantId}/ca-certificates";
        GET_CHAIN = Get "/v1/tenants/{tenantId}/ca-certificates/chain";
        GET_CA = Get "/v1/tenants/{tenantId}/ca-certificates/{serial}";
        CREATE_PROOF = Post "/v1/tenants/{tenantId}/ca-certificates/{serial}/proof";

        LIST_IMAGES = Get "/v1/tenants/{tenantId}/images";
        UPLOAD_IMAGE = Post "/v1/tenants/{tenantId}/images";
        GET_IMAGE = Get "/v1/tenants/{tenantId}/images/{imageId}";
        DELETE_IMAGE = Delete "/v1/tenants/{tenantId}/images/{imageId}";
        GET_IMAGE_CONTENT = Get "/v1/tenants/{tenantId}/images/{imageId}/content";
        LIST_DEVELOPER_KEYS = Get "/v1/tenants/{tenantId}/developer-keys";
        ADD_DEVELOPER_KEY = Post "/v1/tenants/{tenantId}/developer-keys";
        DELETE_DEVELOPER_KEY = Delete "/v1/tenants/{tenantId}/developer-keys/{keyId}";

        REGISTER = Post "/v1/manufacturing/registrations";
        ASSIGN = Post "/v1/manufacturing/assignments";
        REASSIGN = Post "/v1/manufacturing/devices/{deviceId}/reassign";

        LIST_OS_RELEASES = Get "/v1/os-releases";
        PUBLISH_OS_RELEASE = Post "/v1/os-releases";
        GET_OS_RELEASE = Get "/v1/os-releases/{imageId}";
        GET_OS_RELEASE_CONTENT = Get "/v1/os-releases/{imageId}/content";
        PROMOTE_OS_RELEASE = Post "/v1/os-releases/{imageId}/promote";
        REVOKE_OS_RELEASE = Post "/v1/os-releases/{imageId}/revoke";
        LIST_OS_FEEDS = Get "/v1/os-feeds";
        SET_OS_FEED_POLICY = Patch "/v1/os-feeds/{feed}";
        LIST_OS_RELEASE_KEYS = Get "/v1/os-release-keys";
        ADD_OS_RELEASE_KEY = Post "/v1/os-release-keys";
        DELETE_OS_RELEASE_KEY = Delete "/v1/os-release-keys/{keyId}";
        KEY_LIST = Get "/v1/platform/key-list";
        ROOT_CERTIFICATE = Get "/v1/platform/root-certificate";

        CHALLENGE = Post "/v1/attestation/challenge";
        EVIDENCE = Post "/v1/attestation/evidence";
        DEVICE_TARGET_SET = Get "/v1/device/target-set";
        DEVICE_IMAGE = Get "/v1/device/images/{packageSha256}";
        DEVICE_UPDATE_SIGNAL = Get "/v1/device/update-signal";
        DEVICE_UPDATE_STATUS = Post "/v1/device/update-status";
        DEVICE_EVENTS = Post "/v1/device/events";
    }
}

/// The local device API (`ferro_wire::device_api`), served on the device's Unix socket.
pub mod device {
    use super::{Route, Verb};

    routes! { ROUTES:
        SHOW_DEVICE = Get "/v1/device";
        RESTART = Post "/v1/device/restart";
        APPLY_CAPABILITY = Put "/v1/capability";
        REMOVE_CAPABILITY = Delete "/v1/capability";
        LIST_IMAGES = Get "/v1/images";
        SIDELOAD = Post "/v1/sideload";
        DELETE_SIDELOADED = Delete "/v1/sideload/{component}";
        LIST_APPS = Get "/v1/apps";
        APP_STATUS = Get "/v1/apps/{component}";
        START_APP = Post "/v1/apps/{component}/start";
        STOP_APP = Post "/v1/apps/{component}/stop";
        APP_QUOTA = Get "/v1/apps/{component}/quota";
        APP_MEMORY = Get "/v1/apps/{component}/memory";
        APP_LOGS = Get "/v1/apps/{component}/logs";
        BOARD = Get "/v1/board";
        PRESS_BUTTON = Put "/v1/board/buttons/{name}";
        SET_TEMPERATURE = Put "/v1/board/temperature";
        UART_PEER = Post "/v1/board/uarts/{name}/peer";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(text: &str) -> Url {
        Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parameters_fill_their_segments_encoded() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("/v1/tenants", &[], "https://h:1/v1/tenants"),
            (
                "/v1/tenants/{tenantId}/devices/{deviceId}",
                &["t", "a/b?c"],
                "https://h:1/v1/tenants/t/devices/a%2Fb%3Fc",
            ),
            (
                "/v1/os-feeds/{feed}",
                &["a b#"],
                "https://h:1/v1/os-feeds/a%20b%23",
            ),
        ];
        for (template, params, expected) in cases {
            let route = Route {
                verb: Verb::Get,
                template,
            };
            let params: Vec<&dyn fmt::Display> =
                params.iter().map(|p| p as &dyn fmt::Display).collect();
            let url = route.url(&base("https://h:1"), &params);
            assert_eq!(url.map(|u| u.to_string()).ok().as_deref(), Some(*expected));
        }
    }

    #[test]
    fn a_wrong_number_of_parameters_is_refused() {
        let route = Route {
            verb: Verb::Get,
            template: "/v1/tenants/{tenantId}",
        };
        assert!(route.url(&base("http://localhost"), &[]).is_err());
        assert!(route.url(&base("http://localhost"), &[&1, &2]).is_err());
    }

    /// Each route is called by a method: its constant appears as `route::NAME` in the module
    /// of its API.
    #[test]
    fn every_route_has_a_method() {
        let apis = [
            (service::ROUTES, include_str!("service.rs")),
            (device::ROUTES, include_str!("device_api.rs")),
        ];
        for (table, source) in apis {
            for (name, _) in table {
                assert!(
                    source.contains(&format!("route::{name},")),
                    "no method calls the route {name}"
                );
            }
        }
    }

    #[test]
    fn route_names_are_unique_and_paths_start_at_the_root() {
        for table in [service::ROUTES, device::ROUTES] {
            let mut names = std::collections::HashSet::new();
            let mut routes = std::collections::HashSet::new();
            for (name, route) in table {
                assert!(names.insert(*name), "{name} twice");
                assert!(routes.insert((route.verb, route.template)), "{name}: twice");
                assert!(route.template.starts_with('/'), "{name}");
            }
        }
    }
}
