-- Master-key rotation rewraps sealed secrets in place: the runtime role may replace a sealed value and
-- its key id, nothing else of those rows.
GRANT UPDATE (private_key_sealed, kek_id) ON signing_keys TO opennvr_runtime;
GRANT UPDATE (private_key_sealed, kek_id) ON audit_signing_keys TO opennvr_runtime;
