-- Ferrosphere service schema, part 5: TPM attestation keys (docs/attestation.md,
-- docs/identity-documents.md "Registration record", format version 2).
--
-- Portable SQL (docs/service/storage.md).

-- The attestation key of a TPM device, from its registration record (field 8): base64 DER
-- SubjectPublicKeyInfo. Appraisal accepts TPM quotes by exactly this key. NULL for software
-- devices, and for TPM devices registered before format version 2: their TPM evidence is
-- refused (unknown_attestation_key), as the service cannot tell their TPM's key from any other.
ALTER TABLE device_registrations ADD COLUMN attestation_key TEXT;
