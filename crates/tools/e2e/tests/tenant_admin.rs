//! A tenant administrator's first hour, through the real CLI against the real service: log in
//! (changing the one-time password), create a tenant and a product, manage device groups, invite
//! a Reader, and see each role's limits.

use ferro_e2e::{Service, User};

const ADMIN_PASSWORD: &str = "correct horse battery staple";
const READER_PASSWORD: &str = "a reader's long passphrase";

#[test]
fn tenant_administrator_workflow() {
    let service = Service::start(&[]);
    let admin = User::new();

    // First login: the one-time password must be replaced.
    let output = admin.login(
        &service,
        &service.admin_login,
        &[&service.one_time_password, ADMIN_PASSWORD],
    );
    assert!(
        output.status.success(),
        "login failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let me = admin.json(&["show-user"]);
    assert_eq!(me["user"]["login"], service.admin_login.as_str());

    // The one-time password no longer works; a wrong password says so without a token.
    let other = User::new();
    let output = other.login(
        &service,
        &service.admin_login,
        &[&service.one_time_password],
    );
    assert!(!output.status.success());
    assert!(other.fails(&["show-user"]).contains("ferro login"));

    // Tenant: created and selected.
    let tenant = admin.json(&["tenant", "create", "--name", "Contoso"]);
    assert_eq!(tenant["role"], "Administrator");
    let selected = admin.json(&["tenant", "show-selected"]);
    assert_eq!(selected["id"], tenant["id"]);

    // Product with its five default device groups.
    admin.json(&[
        "product",
        "create",
        "--name",
        "Coffee Maker",
        "--description",
        "Espresso",
    ]);
    let groups = admin.json(&[
        "product",
        "device-group",
        "list",
        "--product",
        "Coffee Maker",
    ]);
    let names: Vec<&str> = groups
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    for expected in [
        "Development",
        "Field Test",
        "Production",
        "Production OS Evaluation",
        "Field Test OS Evaluation",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }

    // Device groups by PRODUCT/GROUP, as azsphere users name them.
    let group = admin.json(&[
        "device-group",
        "create",
        "--product",
        "Coffee Maker",
        "--name",
        "Beta",
        "--os-feed",
        "RetailEval",
        "--update-policy",
        "UpdateAll",
    ]);
    assert_eq!(group["osFeed"], "RetailEval");
    let updated = admin.json(&[
        "device-group",
        "update",
        "--device-group",
        "Coffee Maker/Beta",
        "--new-description",
        "Beta testers",
        "--allow-crash-dumps-collection",
        "true",
    ]);
    assert_eq!(updated["description"], "Beta testers");
    assert_eq!(updated["allowCrashDumpsCollection"], true);
    let shown = admin.json(&[
        "device-group",
        "show",
        "--device-group",
        "Coffee Maker/Beta",
    ]);
    assert_eq!(shown["id"], group["id"]);
    let stderr = admin.fails(&[
        "device-group",
        "show",
        "--device-group",
        "Coffee Maker/Gamma",
    ]);
    assert!(stderr.contains("Gamma"), "{stderr}");
    let stderr = admin.fails(&[
        "device-group",
        "create",
        "--product",
        "Coffee Maker",
        "--name",
        "Bad;Name",
    ]);
    assert!(stderr.contains("name"), "{stderr}");
    let bad_feed = admin.fails(&[
        "device-group",
        "create",
        "--product",
        "Coffee Maker",
        "--name",
        "X",
        "--os-feed",
        "Nightly",
    ]);
    assert!(bad_feed.contains("Retail or RetailEval"), "{bad_feed}");
    admin.run(&[
        "device-group",
        "delete",
        "--device-group",
        "Coffee Maker/Beta",
    ]);
    admin.fails(&[
        "device-group",
        "show",
        "--device-group",
        "Coffee Maker/Beta",
    ]);

    // A Reader: the operator makes her account (a one-time password that expires), the
    // tenant's Administrator invites her, she accepts with her own login; she can read, not write.
    let created = admin.json(&[
        "user",
        "create",
        "--login",
        "reader@example.com",
        "--display-name",
        "Rita Reader",
    ]);
    assert!(created["expiresAt"].is_string(), "{created}");
    let reader_otp = created["oneTimePassword"]
        .as_str()
        .expect("one-time password")
        .to_string();
    let reader = User::new();
    let output = reader.login(
        &service,
        "reader@example.com",
        &[&reader_otp, READER_PASSWORD],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Only platform operators make tenants here (the default).
    let stderr = reader.fails(&["tenant", "create", "--name", "Rita's"]);
    assert!(stderr.contains("platform operators"), "{stderr}");
    let invitation = admin.json(&[
        "role",
        "add",
        "--user",
        "reader@example.com",
        "--role",
        "Reader",
    ]);
    let code = invitation["code"].as_str().expect("code").to_string();
    let pending = admin.json(&["role", "list-invitations"]);
    assert_eq!(pending.as_array().map(Vec::len), Some(1));
    assert!(
        !pending.to_string().contains(&code),
        "listings never show codes"
    );
    let stderr = reader.fails(&["role", "accept", "--code", "fsi_not-the-code"]);
    assert!(
        stderr.contains("ask the tenant's Administrator"),
        "{stderr}"
    );
    let joined = reader.json(&["role", "accept", "--code", &code]);
    assert_eq!(joined["role"], "Reader");
    let products = reader.json(&["product", "list"]);
    assert_eq!(products.as_array().map(Vec::len), Some(1));
    let stderr = reader.fails(&["product", "create", "--name", "Toaster"]);
    assert!(stderr.contains("403"), "{stderr}");

    let roles = admin.json(&["role", "list"]);
    assert_eq!(roles.as_array().map(Vec::len), Some(2));
    let rita = admin.json(&["role", "show", "--user", "reader@example.com"]);
    assert_eq!(rita["role"], "Reader");

    // Removing the role closes the tenant to her: it answers as if it did not exist.
    let removed = admin.run(&["role", "delete", "--user", "reader@example.com"]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let stderr = reader.fails(&["product", "list"]);
    assert!(stderr.contains("404"), "{stderr}");

    // Renaming the tenant; logging out forgets the token.
    let renamed = admin.json(&["tenant", "update", "--new-name", "Contoso Ltd"]);
    assert_eq!(renamed["name"], "Contoso Ltd");
    assert!(admin.run(&["logout"]).status.success());
    assert!(admin.fails(&["show-user"]).contains("ferro login"));
}
