DROP FUNCTION audit_chain_hash(bytea, bigint, text[]);
DROP FUNCTION audit_field(text);
ALTER TABLE audit_chain_head DROP COLUMN prev_hash;
