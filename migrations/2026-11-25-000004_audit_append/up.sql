-- Append in one statement: the chain head is locked, advanced and hashed by the UPDATE, and the entry
-- inserted from what it returns, so an audited transaction holds the head lock only for that statement
-- and its commit. The hash is the same opennvr-audit-v1 scheme the server and offline verifiers
-- recompute: SHA-256(prev_hash || field("opennvr-audit-v1") || int8 sequence || field(f) for each f),
-- where field(t) is the 4-byte big-endian UTF-8 length of t followed by its bytes.
ALTER TABLE audit_chain_head ADD COLUMN prev_hash bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex');

CREATE FUNCTION audit_field(t text) RETURNS bytea
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN int4send(octet_length(convert_to(t, 'UTF8'))) || convert_to(t, 'UTF8');

CREATE FUNCTION audit_chain_hash(prev bytea, seq bigint, fields text[]) RETURNS bytea
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  RETURN sha256(
    prev || audit_field('opennvr-audit-v1') || int8send(seq)
    || coalesce((SELECT string_agg(audit_field(f), ''::bytea ORDER BY i) FROM unnest(fields) WITH ORDINALITY AS u(f, i)), ''::bytea)
  );
