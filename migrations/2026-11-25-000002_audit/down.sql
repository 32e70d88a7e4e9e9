DROP TABLE audit_checkpoints;
DROP TABLE audit_signing_keys;
DROP TABLE audit_events;
DROP TABLE audit_chain_head;
DROP FUNCTION audit_refuse_change();
