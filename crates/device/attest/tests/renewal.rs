//! Renewal timing and the certificate store of `ferro-attest` (docs/attestation.md, "Certificate
//! and renewal"), with real certificates: a tenant CA created by ferro-pki in a temporary
//! `FileKeyStore` issues device certificates for software roots of trust. Nothing is mocked.

use ferro_attest::{
    AttestError, AttestationOutcome, CERT_FILE, CertificateManager, DeviceCertificate,
    LEGACY_CHAIN_FILE, RenewalPolicy, check_certificate,
};
use ferro_pki::{FileKeyStore, TenantCa, create_tenant_ca, issue_device_certificate};
use ferro_trust::{RootOfTrust, SoftwareRootOfTrust};
use std::collections::HashSet;
use std::time::Duration;
use time::OffsetDateTime;

const SAMPLES: usize = 300;

/// A tenant CA (valid from 30 days ago) in a private key store under a temporary directory.
struct Tenant {
    _dir: tempfile::TempDir,
    store: FileKeyStore,
    ca: TenantCa,
    id: uuid::Uuid,
}

fn tenant() -> Tenant {
    let dir = tempfile::tempdir().unwrap();
    let store = FileKeyStore::open(&dir.path().join("keys")).unwrap();
    let id = uuid::Uuid::new_v4();
    let ca = create_tenant_ca(
        &store,
        id,
        "Renewal tests",
        OffsetDateTime::now_utc() - time::Duration::days(30),
    )
    .unwrap();
    Tenant {
        _dir: dir,
        store,
        ca,
        id,
    }
}

struct Device {
    _dir: tempfile::TempDir,
    rot: SoftwareRootOfTrust,
}

fn device() -> Device {
    let dir = tempfile::tempdir().unwrap();
    let rot = SoftwareRootOfTrust::open(dir.path().join("rot")).unwrap();
    Device { _dir: dir, rot }
}

/// A certificate for `dev` valid from `not_before` for `validity`, checked as `attest` would.
fn certificate(
    t: &Tenant,
    dev: &Device,
    not_before: OffsetDateTime,
    validity: time::Duration,
) -> DeviceCertificate {
    let cert = issue_device_certificate(
        &t.ca,
        &t.store,
        &dev.rot.device_id(),
        t.id,
        &dev.rot.public_key(),
        not_before,
        validity,
    )
    .unwrap();
    check_certificate(&dev.rot, &cert.pem(), t.ca.pem()).unwrap()
}

/// A tenant, a device, an empty certificate directory, now, and a 24-hour certificate from now.
fn fresh() -> (
    Tenant,
    Device,
    tempfile::TempDir,
    OffsetDateTime,
    DeviceCertificate,
) {
    let t = tenant();
    let dev = device();
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let cert = certificate(&t, &dev, now, ferro_pki::DEVICE_CERT_VALIDITY);
    (t, dev, dir, now, cert)
}

fn trusted(certificate: DeviceCertificate) -> Result<AttestationOutcome, AttestError> {
    Ok(AttestationOutcome::Trusted {
        certificate,
        service_time: OffsetDateTime::now_utc(),
    })
}

fn untrusted() -> Result<AttestationOutcome, AttestError> {
    Ok(AttestationOutcome::Untrusted {
        reasons: vec![ferro_wire::AttestationReason {
            code: "unknown_measurement".into(),
            message: "test".into(),
        }],
        service_time: OffsetDateTime::now_utc(),
    })
}

fn transport_error() -> Result<AttestationOutcome, AttestError> {
    Err(AttestError::Transport("connection refused".into()))
}

fn ms(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap()
}

#[test]
fn renew_at_is_half_life_less_at_most_ten_percent_jitter() {
    let policy = RenewalPolicy::default();
    let nb = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    for life in [
        time::Duration::hours(24),
        time::Duration::hours(1),
        time::Duration::seconds(10),
        time::Duration::milliseconds(12_345),
    ] {
        let na = nb + life;
        let half = nb + life / 2;
        let earliest = nb + life * 0.4;
        let mut seen = HashSet::new();
        for _ in 0..SAMPLES {
            let at = policy.renew_at(nb, na);
            // Millisecond arithmetic: allow one millisecond of rounding at the lower bound.
            assert!(
                at <= half && at >= earliest - time::Duration::milliseconds(1),
                "life {life}: {at} outside [{earliest}, {half}]"
            );
            seen.insert(at);
        }
        assert!(
            seen.len() > 1,
            "life {life}: no jitter in {SAMPLES} samples"
        );
    }
    // A 24 h certificate spreads renewals over ~2.4 h: a fleet that attested together does not
    // renew together (both ends of the window are reached).
    let na = nb + time::Duration::hours(24);
    let samples: Vec<_> = (0..SAMPLES).map(|_| policy.renew_at(nb, na)).collect();
    let (lo, hi) = (
        *samples.iter().min().unwrap(),
        *samples.iter().max().unwrap(),
    );
    assert!(hi - lo > time::Duration::hours(2), "spread {}", hi - lo);
    // Degenerate validity (empty or inverted) renews at once, never in the past of not_before.
    assert_eq!(policy.renew_at(nb, nb), nb);
    assert_eq!(policy.renew_at(nb, nb - time::Duration::hours(1)), nb);
    // Without jitter the fraction is exact.
    let exact = RenewalPolicy {
        renew_at_percent: 80,
        jitter_percent: 0,
        ..RenewalPolicy::default()
    };
    assert_eq!(exact.renew_at(nb, na), nb + time::Duration::hours(24) * 0.8);
    // Out-of-range percentages are clamped: never after not_after.
    let wild = RenewalPolicy {
        renew_at_percent: 250,
        jitter_percent: 0,
        ..RenewalPolicy::default()
    };
    assert_eq!(wild.renew_at(nb, na), na);
}

#[test]
fn backoff_is_exponential_from_5s_capped_at_1h_jittered_and_never_zero() {
    let policy = RenewalPolicy::default();
    assert_eq!(policy.initial_backoff, Duration::from_secs(5));
    assert_eq!(policy.max_backoff, Duration::from_secs(3600));
    let hour = Duration::from_secs(3600);
    for failures in 1..=40u32 {
        let base = Duration::from_secs(5)
            .saturating_mul(1u32 << (failures - 1).min(30))
            .min(hour);
        let mut seen = HashSet::new();
        for _ in 0..SAMPLES {
            let d = policy.backoff(failures);
            assert!(d > Duration::ZERO, "failure {failures}: zero backoff");
            // Equal jitter: at least half the base, at most the base.
            assert!(
                d >= base / 2 && d <= base,
                "failure {failures}: {d:?} outside [{:?}, {base:?}]",
                base / 2
            );
            seen.insert(d);
        }
        assert!(seen.len() > 1, "failure {failures}: no jitter");
    }
    // Exponential: every retry waits at least as long as the previous one could have, until
    // the cap (5 s, 10 s, 20 s, ... 2560 s, then 1 h).
    for failures in 1..=9u32 {
        let floor = Duration::from_millis(2500) * (1u32 << (failures - 1));
        let ceiling = Duration::from_secs(5) * (1u32 << (failures - 1));
        let min = (0..SAMPLES)
            .map(|_| policy.backoff(failures))
            .min()
            .unwrap();
        let next_min = (0..SAMPLES)
            .map(|_| policy.backoff(failures + 1))
            .min()
            .unwrap();
        assert!(min >= floor && next_min >= ceiling, "{failures}");
    }
    // Capped at one hour, however many failures (no overflow).
    for failures in [13, 31, 32, 1000, u32::MAX] {
        let d = policy.backoff(failures);
        assert!(
            d <= hour && d >= hour / 2,
            "failure {failures}: {d:?} not within [30 min, 1 h]"
        );
    }
    // Failure 0 (never called so by the manager) behaves as the first.
    let d = policy.backoff(0);
    assert!(d >= Duration::from_millis(2500) && d <= Duration::from_secs(5));
    // A millisecond initial backoff still never retries immediately.
    let tiny = RenewalPolicy {
        initial_backoff: Duration::from_millis(1),
        ..RenewalPolicy::default()
    };
    for _ in 0..SAMPLES {
        assert!(tiny.backoff(1) > Duration::ZERO);
    }
}

#[test]
fn no_certificate_means_attest_now() {
    let dir = tempfile::tempdir().unwrap();
    let mgr =
        CertificateManager::open(&dir.path().join("certs"), RenewalPolicy::default()).unwrap();
    assert!(dir.path().join("certs").is_dir(), "open creates the dir");
    let now = OffsetDateTime::now_utc();
    assert!(mgr.current().is_none());
    assert!(mgr.valid_at(now).is_none());
    assert_eq!(mgr.next_attempt(now), now);
    assert_eq!(mgr.failures(), 0);
}

#[test]
fn an_expired_certificate_never_locks_the_device_out() {
    let t = tenant();
    let dev = device();
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let expired = certificate(
        &t,
        &dev,
        now - time::Duration::days(3),
        time::Duration::hours(24),
    );
    assert!(expired.not_after < now);
    let mut mgr = CertificateManager::open(dir.path(), RenewalPolicy::default()).unwrap();
    mgr.store(expired.clone()).unwrap();
    assert_eq!(mgr.current(), Some(&expired), "kept, though expired");
    assert!(mgr.valid_at(now).is_none());
    assert_eq!(mgr.next_attempt(now), now, "expired: attest now");
    // After a restart too.
    let mgr = CertificateManager::open(dir.path(), RenewalPolicy::default()).unwrap();
    assert_eq!(mgr.current(), Some(&expired));
    assert_eq!(mgr.next_attempt(now), now);
    // Expiring at exactly `now` counts as expired.
    assert_eq!(mgr.next_attempt(expired.not_after), expired.not_after);
    // A stored certificate that does not parse is ignored: attest now.
    std::fs::write(dir.path().join(CERT_FILE), "not a certificate").unwrap();
    let mgr = CertificateManager::open(dir.path(), RenewalPolicy::default()).unwrap();
    assert!(mgr.current().is_none());
    assert_eq!(mgr.next_attempt(now), now);
}

#[test]
fn a_valid_certificate_is_renewed_at_renew_at() {
    let (_, _, dir, now, cert) = fresh();
    let mut mgr = CertificateManager::open(dir.path(), RenewalPolicy::default()).unwrap();
    let next = mgr.record(now, &trusted(cert.clone())).unwrap();
    assert_eq!(mgr.current(), Some(&cert));
    assert_eq!(mgr.valid_at(now), Some(&cert));
    let life = cert.not_after - cert.not_before;
    let half = cert.not_before + life / 2;
    assert!(
        next <= half && next >= cert.not_before + life * 0.4 - time::Duration::milliseconds(1),
        "{next} vs half-life {half}"
    );
    // Stable: asking again gives the same time; before it nothing is due.
    assert_eq!(mgr.next_attempt(now), next);
    assert_eq!(mgr.next_attempt(next - time::Duration::seconds(1)), next);
    assert!(mgr.next_attempt(now) > now);
    // The one file on disk is the certificate returned, then its chain.
    assert_eq!(
        std::fs::read_to_string(dir.path().join(CERT_FILE)).unwrap(),
        format!("{}{}", cert.certificate_pem, cert.ca_chain_pem)
    );
    // No temporary files left behind by the atomic write.
    assert_eq!(names(dir.path()), [CERT_FILE.to_string()].into());
}

fn names(dir: &std::path::Path) -> HashSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// A device left with the layout before one file (a leaf-only certificate file beside the chain
/// file) keeps its certificate; the next store replaces both with the one file.
#[test]
fn the_two_file_layout_is_read_and_replaced_by_one_file_at_the_next_store() {
    let (t, dev, dir, now, cert) = fresh();
    std::fs::write(dir.path().join(CERT_FILE), &cert.certificate_pem).unwrap();
    std::fs::write(dir.path().join(LEGACY_CHAIN_FILE), &cert.ca_chain_pem).unwrap();
    let mut mgr = CertificateManager::open(dir.path(), RenewalPolicy::default()).unwrap();
    assert_eq!(mgr.current(), Some(&cert));
    // A leaf-only file without its chain file is no certificate: attest now.
    let alone = tempfile::tempdir().unwrap();
    std::fs::write(alone.path().join(CERT_FILE), &cert.certificate_pem).unwrap();
    let lone = CertificateManager::open(alone.path(), RenewalPolicy::default()).unwrap();
    assert!(lone.current().is_none());
    assert_eq!(lone.next_attempt(now), now);

    let renewed = certificate(&t, &dev, now, time::Duration::hours(24));
    mgr.store(renewed.clone()).unwrap();
    assert_eq!(names(dir.path()), [CERT_FILE.to_string()].into());
    let reopened = CertificateManager::open(dir.path(), RenewalPolicy::default()).unwrap();
    assert_eq!(reopened.current(), Some(&renewed));
}

#[test]
fn failures_schedule_exponential_backoff_and_success_resets_it() {
    let (t, dev, dir, now, cert) = fresh();
    let mut mgr = CertificateManager::open(dir.path(), RenewalPolicy::default()).unwrap();
    mgr.store(cert.clone()).unwrap();
    // Failed renewals (error, then Untrusted) while the certificate is valid: retry after the
    // backoff, keep the old certificate.
    let mut at = now;
    for (i, outcome) in [transport_error(), untrusted(), transport_error()]
        .iter()
        .enumerate()
    {
        let n = u32::try_from(i).unwrap() + 1;
        let next = mgr.record(at, outcome).unwrap();
        let base = ms(Duration::from_secs(5) * (1 << (n - 1)));
        assert!(
            next > at && next >= at + base / 2 && next <= at + base,
            "failure {n}: {next} after {at}"
        );
        assert_eq!(mgr.failures(), n);
        assert_eq!(mgr.next_attempt(at), next, "the backoff decides");
        assert_eq!(mgr.current(), Some(&cert), "the old certificate stays");
        at = next;
    }
    // Many failures: capped at one hour.
    for _ in 0..50 {
        let next = mgr.record(at, &transport_error()).unwrap();
        assert!(next > at && next <= at + time::Duration::HOUR);
        at = next;
    }
    let next = mgr.record(at, &untrusted()).unwrap();
    assert!(
        next >= at + time::Duration::minutes(30),
        "{next} after {at}"
    );
    // A Trusted outcome resets the count and schedules the renewal of the new certificate.
    let renewed = certificate(&t, &dev, now, ferro_pki::DEVICE_CERT_VALIDITY);
    let next = mgr.record(now, &trusted(renewed.clone())).unwrap();
    assert_eq!(mgr.failures(), 0);
    assert_eq!(mgr.current(), Some(&renewed));
    assert!(next <= renewed.not_before + (renewed.not_after - renewed.not_before) / 2);
    let again = mgr.record(now, &transport_error()).unwrap();
    assert!(again <= now + time::Duration::seconds(5), "back to 5 s");

    // Without a certificate, a failure still returns the backoff to wait for (the device loop
    // sleeps until then); next_attempt stays "now" so no stale schedule ever locks it out.
    let empty = tempfile::tempdir().unwrap();
    let mut mgr = CertificateManager::open(empty.path(), RenewalPolicy::default()).unwrap();
    let next = mgr.record(now, &transport_error()).unwrap();
    assert!(
        next >= now + time::Duration::milliseconds(2500)
            && next <= now + time::Duration::seconds(5)
    );
    assert_eq!(mgr.next_attempt(now), now);
    assert!(mgr.current().is_none());
}

#[test]
fn a_rate_limited_attempt_waits_for_the_services_retry_after() {
    let (_, _, dir, now, cert) = fresh();
    let mut mgr = CertificateManager::open(dir.path(), RenewalPolicy::default()).unwrap();
    mgr.store(cert.clone()).unwrap();
    let limited = |secs| -> Result<AttestationOutcome, AttestError> {
        Err(AttestError::RateLimited {
            retry_after: Duration::from_secs(secs),
        })
    };
    // The first backoff is at most 5 s; the service asked for 2 minutes.
    let next = mgr.record(now, &limited(120)).unwrap();
    assert!(
        next >= now + time::Duration::seconds(120) && next <= now + time::Duration::seconds(121),
        "{next} after {now}"
    );
    assert_eq!(mgr.failures(), 1);
    assert_eq!(mgr.current(), Some(&cert), "the old certificate stays");
    // A shorter Retry-After never shortens a longer backoff.
    let mut at = next;
    for _ in 0..10 {
        at = mgr.record(at, &transport_error()).unwrap();
    }
    let next = mgr.record(at, &limited(1)).unwrap();
    assert!(
        next >= at + time::Duration::minutes(30),
        "{next} after {at}"
    );
}

#[test]
fn state_survives_a_restart() {
    let (t, dev, dir, now, cert) = fresh();
    {
        let mut mgr = CertificateManager::open(dir.path(), RenewalPolicy::default()).unwrap();
        mgr.record(now, &trusted(cert.clone())).unwrap();
    }
    let mgr = CertificateManager::open(dir.path(), RenewalPolicy::default()).unwrap();
    assert_eq!(mgr.current(), Some(&cert));
    assert_eq!(mgr.valid_at(now), Some(&cert));
    assert_eq!(mgr.failures(), 0);
    let next = mgr.next_attempt(now);
    let half = cert.not_before + (cert.not_after - cert.not_before) / 2;
    assert!(next > now && next <= half, "{next} vs {half}");
    // The reloaded certificate still checks against the device's key and chain.
    let reloaded = check_certificate(
        &dev.rot,
        &mgr.current().unwrap().certificate_pem,
        &mgr.current().unwrap().ca_chain_pem,
    )
    .unwrap();
    assert_eq!(&reloaded, mgr.current().unwrap());
    // TLS chain: the leaf, then the tenant CA that signed it.
    let chain = reloaded.chain_der().unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1].as_ref(), t.ca.der());
}

#[test]
fn check_certificate_refuses_another_key_and_another_ca() {
    let t = tenant();
    let dev = device();
    let other = device();
    let now = OffsetDateTime::now_utc();
    let cert = issue_device_certificate(
        &t.ca,
        &t.store,
        &other.rot.device_id(),
        t.id,
        &other.rot.public_key(),
        now,
        ferro_pki::DEVICE_CERT_VALIDITY,
    )
    .unwrap();
    // Genuine certificate from the right CA, but for another device's key.
    match check_certificate(&dev.rot, &cert.pem(), t.ca.pem()) {
        Err(AttestError::BadCertificate(m)) => assert!(m.contains("another key"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(check_certificate(&other.rot, &cert.pem(), t.ca.pem()).is_ok());
    // Right key, but the returned chain does not contain the issuer (another tenant's CA).
    let stranger = tenant();
    match check_certificate(&other.rot, &cert.pem(), stranger.ca.pem()) {
        Err(AttestError::BadCertificate(m)) => assert!(m.contains("no CA"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A chain with both CAs is fine (rotation), in either order.
    let both = format!("{}{}", stranger.ca.pem(), t.ca.pem());
    assert!(check_certificate(&other.rot, &cert.pem(), &both).is_ok());
    // Garbage.
    assert!(matches!(
        check_certificate(&other.rot, "junk", t.ca.pem()),
        Err(AttestError::BadCertificate(_))
    ));
    assert!(check_certificate(&other.rot, &cert.pem(), "junk").is_err());
    // A CA certificate presented as the leaf is for the CA's key, not the device's.
    assert!(matches!(
        check_certificate(&other.rot, t.ca.pem(), t.ca.pem()),
        Err(AttestError::BadCertificate(_))
    ));
}

/// docs/device.md: `certs/` is 0700 and its files 0600 when the manager creates them, even
/// under a permissive umask and over a temporary file a crash left with mode 0644.
#[cfg(unix)]
#[test]
fn the_certificate_store_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let (_t, _dev, dir, now, cert) = fresh();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let certs = dir.path().join("certs");
    let mut mgr = CertificateManager::open(&certs, RenewalPolicy::default()).unwrap();
    // A leftover temporary file, readable by everyone.
    let stale = certs.join(CERT_FILE).with_extension("tmp");
    std::fs::write(&stale, "stale").unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
    mgr.record(now, &trusted(cert)).unwrap();
    assert_eq!(mode(&certs), 0o700, "certs/");
    assert_eq!(mode(&certs.join(CERT_FILE)), 0o600, "{CERT_FILE}");
}

/// A certificate refused on a device route (the device moved to another tenant) brings the next
/// attestation forward to now, but not while a failure backoff decides.
#[test]
fn a_refused_certificate_brings_the_next_attestation_forward() {
    let (_, _, dir, now, cert) = fresh();
    let mut mgr = CertificateManager::open(dir.path(), RenewalPolicy::default()).unwrap();
    mgr.record(now, &trusted(cert)).unwrap();
    let later = now + time::Duration::minutes(5);
    assert!(mgr.next_attempt(later) > later + time::Duration::hours(1));
    assert!(mgr.attest_again_soon(later));
    assert_eq!(mgr.next_attempt(later), later);
    // After a failed attempt the backoff decides, not further refusals.
    let next = mgr.record(later, &transport_error()).unwrap();
    assert!(next > later);
    assert!(!mgr.attest_again_soon(later + time::Duration::seconds(1)));
    assert_eq!(mgr.next_attempt(later + time::Duration::seconds(1)), next);
}
