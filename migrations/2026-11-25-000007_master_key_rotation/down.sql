REVOKE UPDATE (private_key_sealed, kek_id) ON signing_keys FROM opennvr_runtime;
REVOKE UPDATE (private_key_sealed, kek_id) ON audit_signing_keys FROM opennvr_runtime;
