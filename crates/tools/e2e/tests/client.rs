//! The typed client against a real `ferro-service` (started by `ferro-e2e`, over HTTPS anchored
//! on the platform root): a representative set of routes, each decoding its wire type, the
//! service's errors arriving as `ClientError::Api` with their stable codes, and paging.
//!
//! Needs the service binary: `cargo build -p ferro-service` first (the harness says so). The
//! drift check of the client's routes against the OpenAPI document is in ferro-client itself.

use ferro_client::{Client, ClientError, ServiceTrust, Token, all_pages};
use ferro_e2e::Service;
use ferro_wire::{
    ChangePasswordRequest, CreateProductRequest, CreateTenantRequest, CreateUserRequest,
    DeviceGroupQuery, ErrorReportQuery, LoginRequest, PageQuery, TenantId, UpdateTenantRequest,
};

const NEW_PASSWORD: &str = "a long enough password";

fn api_error<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (u16, String) {
    match result {
        Err(ClientError::Api { status, code, .. }) => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// An anonymous client trusting the service's platform root, and one signed in as its admin.
fn clients(service: &Service) -> (Client, Client) {
    let pem = std::fs::read(service.platform_root_pem()).expect("platform root");
    let trust = ServiceTrust::from_pem(&pem).expect("trust");
    let anonymous = Client::new(&service.url, Some(&trust), None).expect("client");
    let first = LoginRequest {
        login: service.admin_login.clone(),
        password: service.one_time_password.clone(),
    };
    assert_eq!(
        api_error(anonymous.login(&first)),
        (403, "password_change_required".to_string())
    );
    anonymous
        .change_password(&ChangePasswordRequest {
            login: service.admin_login.clone(),
            current_password: service.one_time_password.clone(),
            new_password: NEW_PASSWORD.to_string(),
            keep_api_tokens: false,
        })
        .expect("change password");
    let session = anonymous
        .login(&LoginRequest {
            login: service.admin_login.clone(),
            password: NEW_PASSWORD.to_string(),
        })
        .expect("login");
    let admin = anonymous.with_token(Token::new(session.token));
    (anonymous, admin)
}

#[test]
fn typed_calls_against_a_running_service() {
    let service = Service::start(&[]);
    assert!(service.url.starts_with("https://"), "{}", service.url);
    let (anonymous, admin) = clients(&service);

    assert_eq!(anonymous.healthz().expect("healthz").status, "ok");
    assert!(anonymous.readyz().is_ok());
    assert!(
        String::from_utf8_lossy(&anonymous.root_certificate().expect("root"))
            .contains("BEGIN CERTIFICATE")
    );
    assert!(!anonymous.key_list().expect("key list").is_empty());
    assert_eq!(api_error(anonymous.me()).0, 401);

    let me = admin.me().expect("me");
    assert_eq!(me.user.login, service.admin_login);

    // Tenants, paged one at a time.
    let contoso = admin
        .create_tenant(&CreateTenantRequest {
            name: "Contoso".into(),
        })
        .expect("create tenant");
    let fabrikam = admin
        .create_tenant(&CreateTenantRequest {
            name: "Fabrikam".into(),
        })
        .expect("create tenant");
    let one_a_page = all_pages(|continuation| {
        admin.list_tenants(&PageQuery {
            limit: Some(1),
            continuation,
        })
    })
    .expect("list tenants");
    let mut ids: Vec<TenantId> = one_a_page.iter().map(|t| t.id).collect();
    ids.sort();
    let mut expected = vec![contoso.id, fabrikam.id];
    expected.sort();
    assert_eq!(ids, expected);
    let renamed = admin
        .update_tenant(
            fabrikam.id,
            &UpdateTenantRequest {
                name: Some("Fabrikam Inc".into()),
            },
        )
        .expect("rename");
    assert_eq!(
        admin.get_tenant(fabrikam.id).expect("get").name,
        renamed.name
    );
    assert_eq!(
        api_error(admin.get_tenant(TenantId::new())),
        (404, "not_found".to_string())
    );

    // A product and its default device groups, found by the product query.
    let product = admin
        .create_product(
            contoso.id,
            &CreateProductRequest {
                name: "Coffee Maker".into(),
                description: String::new(),
                no_default_device_groups: false,
            },
        )
        .expect("product");
    let groups = admin
        .list_groups(
            contoso.id,
            &DeviceGroupQuery {
                product: Some(product.id),
                ..DeviceGroupQuery::default()
            },
        )
        .expect("groups");
    assert!(!groups.items.is_empty());
    assert!(groups.items.iter().all(|g| g.product_id == product.id));

    // Device routes take a parsed `DeviceId` (a malformed one never leaves the caller); a
    // well-formed ID of no device of the tenant is the service's 404.
    assert!("xyz".parse::<ferro_wire::DeviceId>().is_err());
    let unknown: ferro_wire::DeviceId = "AB".repeat(64).parse().expect("device ID");
    assert_eq!(
        api_error(admin.deployment_status(contoso.id, &unknown)),
        (404, "not_found".to_string())
    );
    let count = admin
        .count_devices(contoso.id, &Default::default())
        .expect("count");
    assert_eq!(count.count, 0);
    let cas = admin.list_ca_certificates(contoso.id).expect("cas");
    assert!(!cas.is_empty());
    assert!(
        String::from_utf8_lossy(&admin.ca_certificate_chain(contoso.id).expect("chain"))
            .contains("BEGIN CERTIFICATE")
    );
    let report = admin
        .error_report(contoso.id, &ErrorReportQuery::default())
        .expect("report");
    assert!(!report.is_empty());
    assert!(!admin.list_os_feeds().expect("feeds").is_empty());

    // Users: created with a one-time password, reset, deleted.
    let user = admin
        .create_user(&CreateUserRequest {
            login: "rita@example.com".into(),
            display_name: "Rita".into(),
            platform_operator: false,
        })
        .expect("user");
    let reset = admin.reset_password(user.user.id).expect("reset");
    assert_ne!(reset.one_time_password, user.one_time_password);
    admin.delete_user(user.user.id).expect("delete user");
    assert_eq!(
        api_error(admin.delete_user(user.user.id)),
        (404, "not_found".to_string())
    );

    // Logged out, the token no longer works.
    admin.logout().expect("logout");
    assert_eq!(api_error(admin.me()).0, 401);
}
