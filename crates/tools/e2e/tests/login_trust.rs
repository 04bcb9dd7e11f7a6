//! Trust on first use, attacked: `ferro login` pins the platform root only when the user
//! confirms its fingerprint, and a pinned session refuses a service with another root (an
//! impostor on the same address), before any credential is sent.

use ferro_e2e::{Service, User};

#[test]
fn login_pins_only_the_confirmed_platform_root() {
    let service = Service::start(&[]);
    let fingerprint = service
        .root_fingerprint
        .clone()
        .expect("init prints the platform root's fingerprint");
    assert!(service.url.starts_with("https://"), "{}", service.url);
    let user = User::new();

    // A fingerprint that is not the service's: refused, nothing saved.
    let wrong = fingerprint.replace(
        &fingerprint[..2],
        if &fingerprint[..2] == "00" {
            "11"
        } else {
            "00"
        },
    );
    let output = user.run_with_input(
        &[
            "login",
            "--service",
            &service.url,
            "--login",
            &service.admin_login,
            "--password-stdin",
            "--accept-fingerprint",
            &wrong,
        ],
        &format!("{}\n", service.one_time_password),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("fingerprint"), "{stderr}");
    assert!(!user.config_dir.path().join("cli.json").exists());

    // No terminal to ask and no fingerprint given: refused with advice.
    let output = user.run_with_input(
        &[
            "login",
            "--service",
            &service.url,
            "--login",
            &service.admin_login,
            "--password-stdin",
        ],
        &format!("{}\n", service.one_time_password),
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--accept-fingerprint"));

    // The right fingerprint: pinned; the session works.
    let output = user.login(
        &service,
        &service.admin_login,
        &[&service.one_time_password, "correct horse battery staple"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let saved =
        std::fs::read_to_string(user.config_dir.path().join("cli.json")).expect("session saved");
    assert!(saved.contains("BEGIN CERTIFICATE"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(user.config_dir.path().join("cli.json"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the session file holds a token");
    }
    assert!(user.run(&["show-user"]).status.success());

    // An impostor (another platform root) at the address the session names: refused by TLS.
    let impostor = Service::start(&[]);
    let mut session: serde_json::Value = serde_json::from_str(&saved).expect("session JSON");
    session["service"] = serde_json::Value::String(impostor.url.clone());
    std::fs::write(user.config_dir.path().join("cli.json"), session.to_string()).expect("write");
    let stderr = user.fails(&["show-user"]);
    assert!(
        stderr.contains("certificate")
            || stderr.contains("UnknownIssuer")
            || stderr.contains("TLS"),
        "{stderr}"
    );
}
