//! Automation without `ferro login`: an API token in FERRO_TOKEN, the service in FERRO_SERVICE,
//! its CA in FERRO_CA_FILE. Such a session is never written to disk, and revoking the token
//! ends it.

use ferro_e2e::{Service, User};

#[test]
fn api_token_drives_the_cli_from_the_environment() {
    let service = Service::start(&[]);
    let admin = User::new();
    admin.login_as_admin(&service, "correct horse battery staple");
    admin.json(&["tenant", "create", "--name", "Contoso"]);
    admin.json(&["product", "create", "--name", "Coffee Maker"]);

    let created = admin.json(&[
        "api-token",
        "create",
        "--name",
        "pipeline",
        "--expires-in-days",
        "7",
    ]);
    let secret = created["secret"].as_str().expect("secret").to_string();
    let token_id = created["token"]["id"].as_str().expect("id").to_string();
    let listed = admin.json(&["api-token", "list"]);
    assert!(
        !listed.to_string().contains(&secret),
        "listing never shows secrets"
    );

    let root = service.platform_root_pem();
    let pipeline = User::new()
        .with_env("FERRO_SERVICE", &service.url)
        .with_env("FERRO_TOKEN", &secret)
        .with_env("FERRO_CA_FILE", root.to_str().expect("path"))
        .with_env("FERRO_TENANT", "Contoso");
    let products = pipeline.json(&["product", "list"]);
    assert_eq!(products.as_array().map(Vec::len), Some(1));
    pipeline.json(&["tenant", "create", "--name", "Pipeline Tenant"]);
    assert!(
        !pipeline.config_dir.path().join("cli.json").exists(),
        "an environment session is never saved"
    );

    // Without the CA file, HTTPS cannot be verified: refused with advice.
    let no_ca = User::new()
        .with_env("FERRO_SERVICE", &service.url)
        .with_env("FERRO_TOKEN", &secret);
    assert!(
        no_ca
            .fails(&["product", "list", "--tenant", "Contoso"])
            .contains("--ca-file")
    );

    // Revoked: the token stops working.
    assert!(
        admin
            .run(&["api-token", "delete", "--token-id", &token_id])
            .status
            .success()
    );
    let stderr = pipeline.fails(&["product", "list"]);
    assert!(stderr.contains("401"), "{stderr}");
}
