//! Certificates: every field checked with x509-parser, chains checked with the `openssl` CLI
//! (an independent X.509 implementation), a TLS handshake with `openssl s_server`/`s_client`.

use std::path::Path;
use std::process::Command;

use ferro_pki::time::{Duration, OffsetDateTime, macros::datetime};
use ferro_pki::*;
use ferro_signing::{DeviceId, SoftwareSigningKey};
use uuid::Uuid;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

const T0: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

fn tenant(n: u128) -> Uuid {
    Uuid::from_u128(0x1111_2222_3333_4444_8555_0000_0000_0000 + n)
}

struct Env {
    _tmp: tempfile::TempDir,
    store: FileKeyStore,
    work: std::path::PathBuf,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileKeyStore::open(&tmp.path().join("keys")).unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    Env {
        _tmp: tmp,
        store,
        work,
    }
}

fn write(dir: &Path, name: &str, data: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// `openssl verify` at a fixed time (`-attime`), partial chains off, X.509 strict.
fn openssl_verify(ca: &Path, cert: &Path, at: OffsetDateTime, purpose: Option<&str>) -> bool {
    let mut cmd = Command::new("openssl");
    cmd.arg("verify")
        .arg("-x509_strict")
        .arg("-attime")
        .arg(at.unix_timestamp().to_string())
        .arg("-CAfile")
        .arg(ca);
    if let Some(p) = purpose {
        cmd.arg("-purpose").arg(p);
    }
    let out = cmd
        .arg(cert)
        .output()
        .expect("the openssl CLI is installed");
    if !out.status.success() {
        eprintln!(
            "openssl verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}

fn parsed(der: &[u8]) -> X509Certificate<'_> {
    let (rest, c) = X509Certificate::from_der(der).unwrap();
    assert!(rest.is_empty());
    c
}

fn cn(c: &X509Certificate<'_>) -> String {
    c.subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

fn org(c: &X509Certificate<'_>) -> String {
    c.subject()
        .iter_organization()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

fn eku(c: &X509Certificate<'_>) -> (bool, bool) {
    match c.extended_key_usage().unwrap() {
        Some(e) => (e.value.server_auth, e.value.client_auth),
        None => (false, false),
    }
}

fn check_ecdsa_p256_sha256(c: &X509Certificate<'_>) {
    assert_eq!(
        c.signature_algorithm.algorithm,
        x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
    );
    assert_eq!(c.version(), x509_parser::x509::X509Version::V3);
}

#[test]
fn platform_root_and_service_tls_certificates() {
    let e = env();
    e.store.create(&KeyName::platform_root()).unwrap();
    let root_signer = e.store.signer(&KeyName::platform_root()).unwrap();
    let root = issue_platform_root_certificate(root_signer.as_ref(), T0).unwrap();
    let r = parsed(root.der());
    check_ecdsa_p256_sha256(&r);
    assert!(cn(&r).starts_with("Ferrosphere platform root "));
    assert_eq!(org(&r), "Ferrosphere");
    assert_eq!(r.subject().as_raw(), r.issuer().as_raw());
    let bc = r.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca);
    assert_eq!(bc.value.path_len_constraint, Some(0));
    let ku = r.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
    assert_eq!(root.not_before(), T0);
    assert_eq!(root.not_after(), T0 + PLATFORM_ROOT_VALIDITY);
    assert_eq!(
        r.tbs_certificate.subject_pki.raw,
        root_signer.public_key().to_spki_der()
    );

    let tls_key = e.store.create(&KeyName::platform_service_tls()).unwrap();
    let tls = issue_service_tls_certificate(
        root_signer.as_ref(),
        &root,
        &tls_key,
        &["localhost", "ferro.example", "127.0.0.1", "::1"],
        T0,
        SERVICE_TLS_VALIDITY,
    )
    .unwrap();
    let t = parsed(tls.der());
    check_ecdsa_p256_sha256(&t);
    assert_eq!(cn(&t), "localhost");
    assert_eq!(t.issuer().as_raw(), r.subject().as_raw());
    assert_eq!(eku(&t), (true, false));
    let bc = t.basic_constraints().unwrap().unwrap();
    assert!(!bc.value.ca);
    assert!(t.key_usage().unwrap().unwrap().value.digital_signature());
    let sans: Vec<String> = t
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(ip) => format!("ip:{}", ip.len()),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(sans, ["localhost", "ferro.example", "ip:4", "ip:16"]);
    assert_eq!(t.tbs_certificate.subject_pki.raw, tls_key.to_spki_der());
    assert_eq!(tls.not_after(), T0 + SERVICE_TLS_VALIDITY);
    verify_certificate_signature(tls.der(), root_signer.public_key()).unwrap();

    let root_pem = write(&e.work, "root.pem", &root.pem());
    let tls_pem = write(&e.work, "tls.pem", &tls.pem());
    let at = T0 + Duration::days(1);
    assert!(openssl_verify(&root_pem, &root_pem, at, None));
    assert!(openssl_verify(&root_pem, &tls_pem, at, Some("sslserver")));
    assert!(!openssl_verify(&root_pem, &tls_pem, at, Some("sslclient")));
    assert!(!openssl_verify(
        &root_pem,
        &tls_pem,
        T0 + SERVICE_TLS_VALIDITY + Duration::days(1),
        None
    ));

    for bad in [
        &[][..],
        &["*.example.com"][..],
        &["UPPER.example"][..],
        &["-bad.example"][..],
        &["a..b"][..],
        &["sp ace"][..],
    ] {
        let err = issue_service_tls_certificate(
            root_signer.as_ref(),
            &root,
            &tls_key,
            bad,
            T0,
            SERVICE_TLS_VALIDITY,
        )
        .unwrap_err();
        assert!(
            matches!(err, CertError::InvalidServiceName { .. }),
            "{bad:?}: {err}"
        );
    }
    // A signer that is not the root's key is refused.
    let other = SoftwareSigningKey::generate();
    assert!(
        issue_service_tls_certificate(&other, &root, &tls_key, &["x"], T0, SERVICE_TLS_VALIDITY)
            .is_err()
    );
}

/// A real TLS 1.3 handshake: `openssl s_server` with the issued certificate and the store's key
/// file, `openssl s_client` trusting only the platform root and checking the host name.
#[cfg(unix)]
#[test]
fn service_tls_certificate_completes_a_tls_handshake() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let e = env();
    e.store.create(&KeyName::platform_root()).unwrap();
    let root_signer = e.store.signer(&KeyName::platform_root()).unwrap();
    let now = OffsetDateTime::now_utc() - Duration::minutes(5);
    let root = issue_platform_root_certificate(root_signer.as_ref(), now).unwrap();
    let tls_key = e.store.create(&KeyName::platform_service_tls()).unwrap();
    let tls = issue_service_tls_certificate(
        root_signer.as_ref(),
        &root,
        &tls_key,
        &["localhost", "127.0.0.1"],
        now,
        SERVICE_TLS_VALIDITY,
    )
    .unwrap();
    let root_pem = write(&e.work, "root.pem", &root.pem());
    let tls_pem = write(&e.work, "tls.pem", &tls.pem());
    let key_file = e.store.dir().join("platform/service-tls.pem");

    // Port 0: s_server binds a port of its own and names it (`ACCEPT 127.0.0.1:PORT`), so no
    // other process can take it between a probe and the bind.
    let mut server = Command::new("openssl")
        .args(["s_server", "-www", "-tls1_3", "-naccept", "1", "-accept"])
        .arg("127.0.0.1:0")
        .arg("-cert")
        .arg(&tls_pem)
        .arg("-key")
        .arg(&key_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    // s_server prints ACCEPT once it listens (bounded: it exits after one connection).
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let port: u16 = lines
        .by_ref()
        .find_map(|line| {
            line.unwrap()
                .strip_prefix("ACCEPT ")
                .and_then(|addr| addr.rsplit_once(':'))
                .and_then(|(_, port)| port.trim().parse().ok())
        })
        .expect("s_server names the port it listens on");
    let client = Command::new("openssl")
        .args([
            "s_client",
            "-tls1_3",
            "-verify_return_error",
            "-brief",
            "-connect",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-verify_hostname", "localhost", "-CAfile"])
        .arg(&root_pem)
        .stdin(Stdio::null())
        .output()
        .expect("openssl s_client");
    let _ = server.kill();
    let _ = server.wait();
    let text = String::from_utf8_lossy(&client.stderr).to_string()
        + &String::from_utf8_lossy(&client.stdout);
    assert!(client.status.success(), "{text}");
    assert!(text.contains("Verification: OK"), "{text}");
}

#[test]
fn tenant_ca_profile_thumbprints_and_reload() {
    let e = env();
    let ca = create_tenant_ca(&e.store, tenant(1), "Contoso\n  Ltd\u{7}", T0).unwrap();
    assert_eq!(ca.tenant_id(), tenant(1));
    assert_eq!(
        ca.key_name(),
        &KeyName::tenant_ca(tenant(1), &ca.serial_hex()).unwrap()
    );
    assert!(e.store.exists(ca.key_name()).unwrap());
    let c = parsed(ca.der());
    check_ecdsa_p256_sha256(&c);
    assert_eq!(cn(&c), format!("Ferrosphere tenant CA {}", tenant(1)));
    assert_eq!(org(&c), "Contoso Ltd");
    assert_eq!(c.subject().as_raw(), c.issuer().as_raw());
    let bc = c.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca);
    assert_eq!(bc.value.path_len_constraint, Some(0));
    let ku = c.key_usage().unwrap().unwrap();
    assert!(ku.critical && ku.value.key_cert_sign() && ku.value.crl_sign());
    assert_eq!(ca.not_before(), T0);
    assert_eq!(ca.not_after(), T0 + TENANT_CA_VALIDITY);
    assert_eq!(ca.serial_hex().len(), 32);
    assert_eq!(hex::encode(c.raw_serial()), ca.serial_hex());
    assert!(c.iter_extensions().any(|x| matches!(
        x.parsed_extension(),
        ParsedExtension::SubjectKeyIdentifier(_)
    )));

    // Thumbprints: uppercase hex, as `openssl x509 -fingerprint` computes them.
    assert_eq!(ca.sha1_thumbprint().len(), 40);
    assert_eq!(ca.sha256_thumbprint().len(), 64);
    let pem = write(&e.work, "ca.pem", ca.pem());
    for (alg, ours) in [
        ("-sha1", ca.sha1_thumbprint()),
        ("-sha256", ca.sha256_thumbprint()),
    ] {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", alg, "-in"])
            .arg(&pem)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let theirs: String = text.trim().rsplit('=').next().unwrap().replace(':', "");
        assert_eq!(theirs, ours);
    }
    assert!(openssl_verify(&pem, &pem, T0 + Duration::days(1), None));

    let reloaded = TenantCa::from_der(ca.der()).unwrap();
    assert_eq!(reloaded, ca);
    // Not tenant CAs: garbage, trailing bytes, a platform root, a device certificate.
    let mut trailing = ca.der().to_vec();
    trailing.push(0);
    assert!(TenantCa::from_der(&trailing).is_err());
    assert!(TenantCa::from_der(b"junk").is_err());
    let root_key = SoftwareSigningKey::generate();
    let root = issue_platform_root_certificate(&root_key, T0).unwrap();
    assert!(TenantCa::from_der(root.der()).is_err());

    assert_eq!(sanitize_organization(" \t\n"), "Ferrosphere tenant");
    assert_eq!(sanitize_organization(&"x".repeat(100)).len(), 64);
    assert_eq!(sanitize_organization("Zürich AG"), "Zürich AG");
}

fn device(store: &FileKeyStore, ca: &TenantCa, at: OffsetDateTime) -> (DeviceId, Certificate) {
    let key = SoftwareSigningKey::generate();
    let id = DeviceId::from_public_key(key.public_key());
    let cert = issue_device_certificate(
        ca,
        store,
        &id,
        ca.tenant_id(),
        key.public_key(),
        at,
        DEVICE_CERT_VALIDITY,
    )
    .unwrap();
    // Key matches the device key.
    let c = parsed(cert.der());
    assert_eq!(
        c.tbs_certificate.subject_pki.raw,
        key.public_key().to_spki_der()
    );
    (id, cert)
}

#[test]
fn device_certificates_chain_to_their_tenant_ca_only() {
    let e = env();
    let ca_a = create_tenant_ca(&e.store, tenant(1), "Tenant A", T0).unwrap();
    let ca_b = create_tenant_ca(&e.store, tenant(2), "Tenant B", T0).unwrap();
    let at = T0 + Duration::days(10);
    let (id_a, cert_a) = device(&e.store, &ca_a, at);
    let (_, cert_b) = device(&e.store, &ca_b, at);
    let (_, cert_a2) = device(&e.store, &ca_a, at);

    let c = parsed(cert_a.der());
    check_ecdsa_p256_sha256(&c);
    assert_eq!(cn(&c), id_a.to_string());
    assert_eq!(cn(&c).len(), 128);
    assert_eq!(org(&c), tenant(1).to_string());
    assert_eq!(c.issuer().as_raw(), parsed(ca_a.der()).subject().as_raw());
    assert_eq!(eku(&c), (false, true));
    let ku = c.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    assert!(!c.basic_constraints().unwrap().unwrap().value.ca);
    assert_eq!(cert_a.not_before(), at);
    assert_eq!(cert_a.not_after(), at + Duration::hours(24));
    assert_ne!(cert_a.serial(), cert_a2.serial());
    assert_eq!(cert_a.serial().len(), 16);

    let a = write(&e.work, "a.pem", ca_a.pem());
    let b = write(&e.work, "b.pem", ca_b.pem());
    let da = write(&e.work, "da.pem", &cert_a.pem());
    let db = write(&e.work, "db.pem", &cert_b.pem());
    let during = at + Duration::hours(1);
    assert!(openssl_verify(&a, &da, during, Some("sslclient")));
    assert!(openssl_verify(&b, &db, during, Some("sslclient")));
    assert!(
        !openssl_verify(&a, &db, during, None),
        "B's device under A's CA"
    );
    assert!(
        !openssl_verify(&b, &da, during, None),
        "A's device under B's CA"
    );
    assert!(!openssl_verify(&a, &da, during, Some("sslserver")));
    assert!(
        !openssl_verify(&a, &da, at + Duration::hours(25), None),
        "expired"
    );
}

#[test]
fn device_certificate_refusals() {
    let e = env();
    let ca = create_tenant_ca(&e.store, tenant(1), "A", T0).unwrap();
    let key = SoftwareSigningKey::generate();
    let id = DeviceId::from_public_key(key.public_key());
    let other_id = DeviceId::from_public_key(SoftwareSigningKey::generate().public_key());
    let at = T0 + Duration::days(1);
    let issue = |id: &DeviceId, t: Uuid, at: OffsetDateTime, v: Duration| {
        issue_device_certificate(&ca, &e.store, id, t, key.public_key(), at, v)
    };
    assert!(matches!(
        issue(&other_id, tenant(1), at, DEVICE_CERT_VALIDITY),
        Err(CertError::DeviceKeyMismatch(_))
    ));
    assert!(matches!(
        issue(&id, tenant(2), at, DEVICE_CERT_VALIDITY),
        Err(CertError::TenantMismatch { .. })
    ));
    assert!(matches!(
        issue(
            &id,
            tenant(1),
            T0 - Duration::seconds(1),
            DEVICE_CERT_VALIDITY
        ),
        Err(CertError::CaNotValid { .. })
    ));
    assert!(matches!(
        issue(&id, tenant(1), ca.not_after(), DEVICE_CERT_VALIDITY),
        Err(CertError::CaNotValid { .. })
    ));
    assert!(matches!(
        issue(&id, tenant(1), at, Duration::ZERO),
        Err(CertError::InvalidValidity(_))
    ));
    // Clamped to the CA's notAfter.
    let late = ca.not_after() - Duration::hours(2);
    let cert = issue(&id, tenant(1), late, DEVICE_CERT_VALIDITY).unwrap();
    assert_eq!(cert.not_after(), ca.not_after());
    // Fractions of a second are dropped, consistently with the certificate.
    let cert = issue(
        &id,
        tenant(1),
        at + Duration::milliseconds(700),
        DEVICE_CERT_VALIDITY,
    )
    .unwrap();
    assert_eq!(cert.not_before(), at);

    // A store whose key is not the CA certificate's key is refused.
    let other = env();
    other.store.create(ca.key_name()).unwrap();
    let err = issue_device_certificate(
        &ca,
        &other.store,
        &id,
        tenant(1),
        key.public_key(),
        at,
        DEVICE_CERT_VALIDITY,
    )
    .unwrap_err();
    assert!(matches!(err, CertError::CaKeyMismatch(_)), "{err}");
    // And a store without the key.
    let empty = env();
    assert!(matches!(
        issue_device_certificate(
            &ca,
            &empty.store,
            &id,
            tenant(1),
            key.public_key(),
            at,
            DEVICE_CERT_VALIDITY
        ),
        Err(CertError::KeyStore(KeyStoreError::NotFound(_)))
    ));
}

#[test]
fn proof_of_possession_certificate() {
    let e = env();
    let ca = create_tenant_ca(&e.store, tenant(3), "C", T0).unwrap();
    let code = "3A7F09C2D1E4B5A6978877665544332211AABBCCDDEEFF00";
    let at = T0 + Duration::days(3);
    let pop = issue_proof_of_possession_certificate(&ca, &e.store, code, at).unwrap();
    let c = parsed(pop.der());
    check_ecdsa_p256_sha256(&c);
    assert_eq!(cn(&c), code);
    assert_eq!(c.issuer().as_raw(), parsed(ca.der()).subject().as_raw());
    assert!(!c.basic_constraints().unwrap().unwrap().value.ca);
    assert_eq!(pop.not_after(), at + PROOF_OF_POSSESSION_VALIDITY);
    let ca_pem = write(&e.work, "ca.pem", ca.pem());
    let pop_pem = write(&e.work, "pop.pem", &pop.pem());
    assert!(openssl_verify(
        &ca_pem,
        &pop_pem,
        at + Duration::hours(1),
        None
    ));

    let long = "A".repeat(65);
    for bad in [
        "",
        "has space",
        "semi;colon",
        "CN=x,O=y",
        "ünï",
        long.as_str(),
    ] {
        assert!(matches!(
            issue_proof_of_possession_certificate(&ca, &e.store, bad, at),
            Err(CertError::InvalidVerificationCode(_))
        ));
    }
    validate_verification_code(&"a".repeat(64)).unwrap();
}

#[test]
fn tenant_ca_rotation_and_download_chain() {
    let e = env();
    let t = tenant(9);
    assert!(tenant_ca_rotation_due(&[], T0));
    assert!(current_tenant_ca(&[], T0).is_none());
    assert_eq!(tenant_ca_chain_pem(&[], T0), "");

    let first = create_tenant_ca(&e.store, t, "T", T0).unwrap();
    let cas = vec![first.clone()];
    assert!(!tenant_ca_rotation_due(&cas, T0));
    let rotate_at = first.not_after() - TENANT_CA_ROTATION_MARGIN;
    assert!(!tenant_ca_rotation_due(
        &cas,
        rotate_at - Duration::seconds(1)
    ));
    assert!(tenant_ca_rotation_due(&cas, rotate_at));
    assert_eq!(current_tenant_ca(&cas, rotate_at), Some(&first));

    // The service makes the next CA when rotation is due.
    let second = create_tenant_ca(&e.store, t, "T", rotate_at).unwrap();
    let cas = vec![second.clone(), first.clone()];
    assert!(!tenant_ca_rotation_due(&cas, rotate_at));
    // The old CA keeps issuing until the cutover margin, then the new one takes over.
    assert_eq!(current_tenant_ca(&cas, rotate_at), Some(&first));
    let cutover = first.not_after() - TENANT_CA_CUTOVER_MARGIN;
    assert_eq!(
        current_tenant_ca(&cas, cutover - Duration::seconds(1)),
        Some(&first)
    );
    assert_eq!(current_tenant_ca(&cas, cutover), Some(&second));
    assert_eq!(current_tenant_ca(&cas, first.not_after()), Some(&second));

    // download-chain: current first, then the other unexpired CA.
    let chain = tenant_ca_chain_pem(&cas, rotate_at);
    assert_eq!(chain, first.pem().to_owned() + second.pem());
    assert_eq!(
        tenant_ca_chain_pem(&cas, cutover),
        second.pem().to_owned() + first.pem()
    );
    assert_eq!(tenant_ca_chain_pem(&cas, first.not_after()), second.pem());

    // A device certificate from either CA verifies against the downloaded bundle.
    let bundle = write(&e.work, "chain.pem", &chain);
    let (_, from_first) = device(&e.store, &first, rotate_at);
    let (_, from_second) = device(&e.store, &second, rotate_at);
    let d1 = write(&e.work, "d1.pem", &from_first.pem());
    let d2 = write(&e.work, "d2.pem", &from_second.pem());
    let at = rotate_at + Duration::hours(1);
    assert!(openssl_verify(&bundle, &d1, at, None));
    assert!(openssl_verify(&bundle, &d2, at, None));
}

#[test]
fn debug_output_carries_no_key_material() {
    let e = env();
    let ca = create_tenant_ca(&e.store, tenant(4), "D", T0).unwrap();
    let text = format!("{ca:?} {:?}", ca.certificate());
    assert!(text.contains(&ca.serial_hex()));
    let file =
        std::fs::read_to_string(e.store.dir().join(format!("{}.pem", ca.key_name()))).unwrap();
    let body: String = file.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!text.contains(&body[..40]));
}
