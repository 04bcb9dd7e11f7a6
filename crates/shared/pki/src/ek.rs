//! The X.509 half of registration records: `ferro-documents` (in the boot TCB, which parses no
//! X.509) checks a TPM EK certificate only to be one DER structure; here it must parse as one
//! X.509 certificate, where records are accepted (the service) and made (provisioning).

use ferro_documents::{DocumentError, MAX_EK_CERTIFICATE_LEN, VerifiedRegistration};

/// Check that `der` is exactly one DER X.509 certificate of at most
/// [`MAX_EK_CERTIFICATE_LEN`] bytes ([`DocumentError::InvalidField`] `tpm_ek_certificate`
/// otherwise).
pub fn check_ek_certificate(der: &[u8]) -> Result<(), DocumentError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    if der.len() > MAX_EK_CERTIFICATE_LEN {
        return Err(DocumentError::InvalidField {
            field: "tpm_ek_certificate",
            reason: "longer than 4096 bytes",
        });
    }
    match X509Certificate::from_der(der) {
        Ok(([], _)) => Ok(()),
        _ => Err(DocumentError::InvalidField {
            field: "tpm_ek_certificate",
            reason: "not one DER X.509 certificate",
        }),
    }
}

/// Verify a signed registration record ([`ferro_documents::verify_registration_record`]:
/// envelope, proof of possession, strict payload, device ID) and that its EK certificate, if
/// any, is one X.509 certificate ([`check_ek_certificate`]).
pub fn verify_registration_record(bytes: &[u8]) -> Result<VerifiedRegistration, DocumentError> {
    let verified = ferro_documents::verify_registration_record(bytes)?;
    if let Some(ek) = &verified.record().tpm_ek_certificate {
        check_ek_certificate(ek)?;
    }
    Ok(verified)
}
