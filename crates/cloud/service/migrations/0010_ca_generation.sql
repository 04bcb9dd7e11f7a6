-- Ferrosphere service schema, part 10: a generation number for each tenant's set of CAs
-- (docs/service/storage.md, "Tenant CA cache"). Every statement that changes a tenant's rows in
-- tenant_cas raises it in the same transaction (today only `routes::ca::insert_ca`), so a
-- process's cache of parsed CAs is current exactly when its generation equals the row's: the
-- attestation route reads the number with the device's row instead of reading the CA set.
ALTER TABLE tenants ADD COLUMN ca_generation BIGINT NOT NULL DEFAULT 0;
