//! The TPM backend against a real swtpm (Debian packages swtpm, swtpm-tools, libtss2-dev),
//! started by each test on free loopback ports and killed at the end. Run with
//! `cargo test -p ferro-trust --features tpm`.
#![cfg(feature = "tpm")]

mod common;

use ferro_signing::Signer as _;
use ferro_signing::SoftwareSigningKey;
use ferro_signing::{Purpose, sign1};
use ferro_test_swtpm::Swtpm;
use ferro_trust::evidence::{
    DebugStatus, EvidenceError, create_evidence, decode_claims, encode_claims, verify_evidence,
    verify_tpm_quote,
};
use ferro_trust::tpm_attest::{PcrSelection, TPM_ALG_SHA256, marshal_quote, parse_quote};
use ferro_trust::{RootOfTrust, RootOfTrustKind, TpmConfig, TpmQuote, TpmRootOfTrust};

/// The root of trust on a test swtpm.
trait OpenTpm {
    fn config(&self) -> TpmConfig;
    fn open(&self) -> TpmRootOfTrust;
}

impl OpenTpm for Swtpm {
    fn config(&self) -> TpmConfig {
        TpmConfig {
            tcti: self.tcti(),
            log_path: None,
        }
    }

    fn open(&self) -> TpmRootOfTrust {
        TpmRootOfTrust::open(&self.config()).unwrap()
    }
}

#[test]
fn suite_device_key_signs() {
    let tpm = Swtpm::start();
    common::device_key_signs(&tpm.open());
}

#[test]
fn suite_key_is_stable() {
    let tpm = Swtpm::start();
    common::key_is_stable(&|| Box::new(tpm.open()) as Box<dyn RootOfTrust>);
}

#[test]
fn suite_measurements_replay() {
    let tpm = Swtpm::start();
    common::measurements_replay(&tpm.open());
}

#[test]
fn suite_counters_only_go_up() {
    let tpm = Swtpm::start();
    common::counters_only_go_up(&tpm.open());
}

#[test]
fn suite_anchors_write_once() {
    let tpm = Swtpm::start();
    common::anchors_write_once(&tpm.open());
}

#[test]
fn suite_random_bytes() {
    let tpm = Swtpm::start();
    common::random_bytes(&tpm.open());
}

#[test]
fn suite_evidence_round_trip() {
    let tpm = Swtpm::start();
    common::evidence_round_trip(&tpm.open(), RootOfTrustKind::Tpm);
}

#[test]
fn counters_and_anchors_live_in_the_tpm() {
    let tpm = Swtpm::start();
    let a = common::anchors();
    {
        let rot = tpm.open();
        rot.advance_counter("os", 4).unwrap();
        rot.write_trust_anchors(&a).unwrap();
    }
    let rot = tpm.open();
    assert_eq!(rot.counter("os").unwrap(), 4);
    assert_eq!(rot.read_trust_anchors().unwrap(), Some(a));
    assert!(rot.write_trust_anchors(&common::anchors()).is_err());
    match rot.advance_counter("os", 4 + 1025) {
        Err(ferro_trust::TrustError::CounterStepTooLarge { .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn quote_verifies_for_the_right_nonce_and_pcr_only() {
    let tpm = Swtpm::start();
    let rot = tpm.open();
    rot.extend_measurement(&common::event(1)).unwrap();
    let nonce = [0x42u8; 32];
    let ev = create_evidence(&rot, &nonce, DebugStatus::Enabled).unwrap();
    let claims = decode_claims(
        &ferro_signing::parse_unverified(&ev)
            .unwrap()
            .unverified_payload,
    )
    .unwrap();
    let quote = claims.tpm_quote.unwrap();
    let registered = rot.attestation_key().unwrap();
    assert_eq!(quote.attestation_key, registered.to_spki_der());
    assert_ne!(registered, rot.public_key());
    let pcr = rot.read_measurements().unwrap().pcr_value;
    let fw = rot.firmware_pcrs().unwrap().unwrap();
    assert_eq!(claims.firmware_pcrs, Some(fw));

    let v = verify_tpm_quote(&quote, &registered, &nonce, &fw, &pcr).unwrap();
    assert_eq!(v.info.extra_data, nonce);
    assert_eq!(v.attestation_key, registered);

    // Another nonce.
    assert_eq!(
        verify_tpm_quote(&quote, &registered, &[0x43; 32], &fw, &pcr).unwrap_err(),
        EvidenceError::QuoteNonceMismatch
    );
    // Another PCR value (a log that does not replay).
    assert_eq!(
        verify_tpm_quote(&quote, &registered, &nonce, &fw, &[0; 32]).unwrap_err(),
        EvidenceError::LogDoesNotReplay
    );
    // Another PCR selection in the genuine quote: the TPM's signature no longer verifies.
    let mut info = parse_quote(&quote.attest).unwrap();
    info.pcr_selections = vec![PcrSelection {
        hash: TPM_ALG_SHA256,
        pcrs: vec![16],
    }];
    let edited = TpmQuote {
        attest: marshal_quote(&info),
        ..quote.clone()
    };
    assert_eq!(
        verify_tpm_quote(&edited, &registered, &nonce, &fw, &pcr).unwrap_err(),
        EvidenceError::QuoteSignature
    );
    // A correctly signed quote over another selection is refused by the selection check (here
    // with a software key standing in as the registered attestation key).
    let ak = SoftwareSigningKey::generate();
    // (PCR 15 alone is the selection before firmware PCRs were quoted: refused too.)
    for pcrs in [
        vec![16],
        vec![15, 16],
        vec![],
        vec![15],
        vec![0, 1, 2, 3, 4, 5, 6, 7],
    ] {
        let mut info = parse_quote(&quote.attest).unwrap();
        info.pcr_selections = vec![PcrSelection {
            hash: TPM_ALG_SHA256,
            pcrs,
        }];
        let attest = marshal_quote(&info);
        let signed = TpmQuote {
            signature: ak.sign(&attest).unwrap().0,
            attest,
            attestation_key: ak.public_key().to_spki_der(),
        };
        assert_eq!(
            verify_tpm_quote(&signed, ak.public_key(), &nonce, &fw, &pcr).unwrap_err(),
            EvidenceError::QuotePcrSelection
        );
    }
    // The same with the SHA-1 bank.
    let mut info = parse_quote(&quote.attest).unwrap();
    info.pcr_selections[0].hash = 0x0004;
    let attest = marshal_quote(&info);
    let signed = TpmQuote {
        signature: ak.sign(&attest).unwrap().0,
        attest,
        attestation_key: ak.public_key().to_spki_der(),
    };
    assert_eq!(
        verify_tpm_quote(&signed, ak.public_key(), &nonce, &fw, &pcr).unwrap_err(),
        EvidenceError::QuotePcrSelection
    );
}

/// Stage 0: the quote covers PCRs 0-7 as measured boot left them, and the evidence carries
/// their values. Firmware "measured" here as UEFI would (swtpm has no firmware); a claimed value
/// other than the TPM's, even signed by the device key, does not match the quote; software
/// evidence cannot claim firmware PCRs; nothing but PCRs 0-7 is extended as firmware.
#[test]
fn firmware_pcrs_are_quoted_and_bound_to_the_evidence() {
    let tpm = Swtpm::start();
    let rot = tpm.open();
    assert_eq!(
        rot.firmware_pcrs().unwrap(),
        Some([[0; 32]; 8]),
        "bare swtpm"
    );
    // The "firmware events": (PCR, what was measured); each extends SHA-256(description).
    let events = [
        (0u8, "firmware code v1"),
        (4, "boot loader v1"),
        (7, "secure boot db"),
    ];
    let mut expected = [[0u8; 32]; 8];
    for (pcr, what) in events {
        let digest = ferro_signing::Sha256::digest(what.as_bytes());
        rot.extend_firmware_pcr(pcr, &digest).unwrap();
        let mut both = expected[usize::from(pcr)].to_vec();
        both.extend_from_slice(&digest);
        expected[usize::from(pcr)] = ferro_signing::Sha256::digest(&both);
    }
    assert_eq!(rot.firmware_pcrs().unwrap(), Some(expected));
    rot.extend_measurement(&common::event(1)).unwrap();
    let nonce = [0x42u8; 32];
    let ev = create_evidence(&rot, &nonce, DebugStatus::Disabled).unwrap();
    let registered = rot.attestation_key().unwrap();
    let verified = verify_evidence(&ev, &rot.public_key(), Some(&registered), &nonce).unwrap();
    assert_eq!(verified.firmware_pcrs(), Some(&expected));

    let mut claims = decode_claims(
        &ferro_signing::parse_unverified(&ev)
            .unwrap()
            .unverified_payload,
    )
    .unwrap();
    let resign = |claims: &ferro_trust::evidence::Claims| {
        sign1(
            rot.device_key().as_ref(),
            Purpose::AttestationEvidence,
            &encode_claims(claims).unwrap(),
            &[],
        )
        .unwrap()
    };
    // A compromised OS claims the reference boot loader's PCR 4.
    let mut lied = expected;
    lied[4] = [0x44; 32];
    claims.firmware_pcrs = Some(lied);
    assert_eq!(
        verify_evidence(
            &resign(&claims),
            &rot.public_key(),
            Some(&registered),
            &nonce
        )
        .unwrap_err(),
        EvidenceError::LogDoesNotReplay
    );
    // ... or claims to have no firmware at all.
    claims.firmware_pcrs = None;
    assert_eq!(
        verify_evidence(
            &resign(&claims),
            &rot.public_key(),
            Some(&registered),
            &nonce
        )
        .unwrap_err(),
        EvidenceError::MissingFirmwarePcrs
    );
    // Only PCRs 0-7 are extended as firmware.
    assert!(rot.extend_firmware_pcr(8, &[1; 32]).is_err());
    assert!(rot.extend_firmware_pcr(15, &[1; 32]).is_err());
    assert_eq!(rot.firmware_pcrs().unwrap(), Some(expected));
}

/// The attestation key is bound: a quote by any other key is refused, whatever it says.
#[test]
fn only_the_registered_attestation_key_is_accepted() {
    let tpm = Swtpm::start();
    let rot = tpm.open();
    rot.extend_measurement(&common::event(1)).unwrap();
    let registered = rot.attestation_key().unwrap();
    let nonce = [0x42u8; 32];
    let ev = create_evidence(&rot, &nonce, DebugStatus::Enabled).unwrap();
    let mut claims = decode_claims(
        &ferro_signing::parse_unverified(&ev)
            .unwrap()
            .unverified_payload,
    )
    .unwrap();
    let quote = claims.tpm_quote.clone().unwrap();
    let pcr = rot.read_measurements().unwrap().pcr_value;
    let fw = claims.firmware_pcrs.unwrap();
    verify_evidence(&ev, &rot.public_key(), Some(&registered), &nonce).unwrap();

    // A compromised OS forges a quote over a PCR value of its choosing with its own key.
    let foreign = SoftwareSigningKey::generate();
    let mut info = parse_quote(&quote.attest).unwrap();
    info.pcr_digest = ferro_signing::Sha256::digest([0x11; 32]).to_vec();
    let attest = marshal_quote(&info);
    let forged = TpmQuote {
        signature: foreign.sign(&attest).unwrap().0,
        attest: attest.clone(),
        attestation_key: foreign.public_key().to_spki_der(),
    };
    assert_eq!(
        verify_tpm_quote(&forged, &registered, &nonce, &fw, &[0x11; 32]).unwrap_err(),
        EvidenceError::UnknownAttestationKey
    );
    // ... naming the registered key but signed by its own: the signature fails.
    let named = TpmQuote {
        attestation_key: registered.to_spki_der(),
        ..forged.clone()
    };
    assert_eq!(
        verify_tpm_quote(&named, &registered, &nonce, &fw, &[0x11; 32]).unwrap_err(),
        EvidenceError::QuoteSignature
    );
    // A genuine quote of this TPM is refused for a device registered with another key.
    assert_eq!(
        verify_tpm_quote(&quote, foreign.public_key(), &nonce, &fw, &pcr).unwrap_err(),
        EvidenceError::UnknownAttestationKey
    );
    // Through the evidence (re-signed by the device key, as a compromised OS could).
    claims.tpm_quote = Some(forged);
    let resigned = sign1(
        rot.device_key().as_ref(),
        Purpose::AttestationEvidence,
        &encode_claims(&claims).unwrap(),
        &[],
    )
    .unwrap();
    assert_eq!(
        verify_evidence(&resigned, &rot.public_key(), Some(&registered), &nonce).unwrap_err(),
        EvidenceError::UnknownAttestationKey
    );
    // No registered attestation key: TPM evidence never passes (fail closed), genuine or not.
    assert_eq!(
        verify_evidence(&ev, &rot.public_key(), None, &nonce).unwrap_err(),
        EvidenceError::NoRegisteredAttestationKey
    );
    assert_eq!(
        EvidenceError::NoRegisteredAttestationKey.code(),
        "no-registered-attestation-key"
    );
}

/// The attestation key (and the device key) are primary keys: the same after the process
/// reopens the TPM and after the TPM itself restarts on the same state (a reboot), so the key in
/// the registration record stays valid; quotes after the reboot verify with it.
#[test]
fn attestation_key_survives_reopen_and_reboot() {
    let tpm = Swtpm::start();
    let (dk, ak) = {
        let rot = tpm.open();
        (rot.public_key(), rot.attestation_key().unwrap())
    };
    let rot = tpm.open();
    assert_eq!(rot.attestation_key().unwrap(), ak);
    drop(rot);
    let tpm = tpm.reboot();
    let rot = tpm.open();
    assert_eq!(rot.public_key(), dk);
    assert_eq!(rot.attestation_key().unwrap(), ak);
    assert_eq!(rot.read_measurements().unwrap().pcr_value, [0; 32]);
    rot.extend_measurement(&common::event(3)).unwrap();
    let nonce = [0x24u8; 32];
    let ev = create_evidence(&rot, &nonce, DebugStatus::Enabled).unwrap();
    verify_evidence(&ev, &dk, Some(&ak), &nonce).unwrap();
}

#[test]
fn log_file_survives_a_process_restart_within_a_boot() {
    let tpm = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let config = TpmConfig {
        log_path: Some(dir.path().join("measurements.cbor")),
        ..tpm.config()
    };
    {
        let rot = TpmRootOfTrust::open(&config).unwrap();
        rot.extend_measurement(&common::event(1)).unwrap();
        rot.extend_measurement(&common::event(2)).unwrap();
    }
    let rot = TpmRootOfTrust::open(&config).unwrap();
    let m = rot.read_measurements().unwrap();
    assert_eq!(m.log.len(), 2);
    assert!(m.replays());
}

/// The EK certificate the TPM's manufacturer stored in NV (here swtpm_setup's), exactly the DER
/// certificate without NV padding; none on a TPM without one.
#[test]
fn ek_certificate_is_read_from_nv() {
    let bare = Swtpm::start();
    assert_eq!(bare.open().ek_certificate().unwrap(), None);
    drop(bare);
    let tpm = Swtpm::start_with_ek_certificate();
    let cert = tpm
        .open()
        .ek_certificate()
        .unwrap()
        .expect("an EK certificate");
    assert_eq!(cert[0], 0x30, "a DER SEQUENCE");
    assert!(cert.len() > 200 && cert.len() <= 4096, "{}", cert.len());
    // The outer SEQUENCE's length covers exactly the returned bytes.
    let len = match cert[1] {
        0x81 => usize::from(cert[2]) + 3,
        0x82 => usize::from(u16::from_be_bytes([cert[2], cert[3]])) + 4,
        n => usize::from(n) + 2,
    };
    assert_eq!(len, cert.len());
}

/// What the victim prints once it holds the TPM.
const VICTIM_OPENED: &str = "victim-opened-the-tpm";

/// The TPM user `stale_objects_of_a_killed_user_are_flushed` kills: opens the TPM named by
/// `FERRO_TEST_TPM_VICTIM`, says so on stdout, and waits to be killed. Ignored: only that test
/// runs it (in a child process).
#[test]
#[ignore = "a helper process of stale_objects_of_a_killed_user_are_flushed"]
fn victim_holds_the_tpm_until_killed() {
    let Ok(tcti) = std::env::var("FERRO_TEST_TPM_VICTIM") else {
        return;
    };
    let rot = TpmRootOfTrust::open(&TpmConfig {
        tcti,
        log_path: None,
    })
    .expect("the victim opens the TPM");
    // (On a line of its own: libtest has already printed "test <name> ... " without a newline.)
    println!("\n{VICTIM_OPENED} {}", rot.public_key().key_id());
    loop {
        std::thread::park();
    }
}

/// A device killed while it holds the TPM leaves its keys loaded (no resource manager in
/// between), and swtpm has room for only three objects: the next open used to fail with "out
/// of memory for object contexts" until swtpm restarted. Opening flushes them.
#[test]
fn stale_objects_of_a_killed_user_are_flushed() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    let tpm = Swtpm::start();
    for round in 0..3 {
        let mut victim = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--ignored", "--exact", "victim_holds_the_tpm_until_killed"])
            .args(["--nocapture", "--test-threads=1"])
            .env("FERRO_TEST_TPM_VICTIM", tpm.tcti())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the victim");
        let stdout = victim.stdout.take().expect("stdout");
        let opened = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.starts_with(VICTIM_OPENED));
        victim.kill().expect("kill the victim");
        let out = victim.wait_with_output().expect("victim exit");
        assert!(
            opened,
            "round {round}: the victim could not open the TPM: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Three killed users' keys were left behind; the device opens and signs all the same.
    common::device_key_signs(&tpm.open());
}
