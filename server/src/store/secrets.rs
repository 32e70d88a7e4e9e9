//! Queries on every sealed secret, wherever it is stored: which master keys they need, and their
//! rewrapping by a master-key rotation.
use crate::error::Result;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Integer, Text};
use std::collections::BTreeMap;

/// A column of sealed secrets: its table, the row id (as text), the sealed value and its key id, and
/// how the row's owner string (bound into the seal) is written.
#[derive(Debug, Clone, Copy)]
pub struct SealedColumn {
    pub table: &'static str,
    pub id: &'static str,
    pub blob: &'static str,
    pub kek: &'static str,
    /// `format!("{prefix}{id}{suffix}")` is the owner.
    pub owner_prefix: &'static str,
    pub owner_suffix: &'static str,
}

impl SealedColumn {
    /// The owner string of row `id`.
    pub fn owner(&self, id: &str) -> String {
        format!("{}{id}{}", self.owner_prefix, self.owner_suffix)
    }
}

/// Every sealed secret the server stores.
pub const SEALED: [SealedColumn; 6] = [
    SealedColumn {
        table: "signing_keys",
        id: "kid",
        blob: "private_key_sealed",
        kek: "kek_id",
        owner_prefix: "signing_keys/",
        owner_suffix: "",
    },
    SealedColumn {
        table: "audit_signing_keys",
        id: "kid",
        blob: "private_key_sealed",
        kek: "kek_id",
        owner_prefix: "audit_signing_keys/",
        owner_suffix: "",
    },
    SealedColumn {
        table: "cameras",
        id: "id",
        blob: "password_sealed",
        kek: "password_kek_id",
        owner_prefix: "cameras/",
        owner_suffix: "/password",
    },
    SealedColumn {
        table: "credentials",
        id: "id",
        blob: "totp_secret_sealed",
        kek: "totp_kek_id",
        owner_prefix: "credentials/",
        owner_suffix: "/totp",
    },
    SealedColumn {
        table: "auth_ceremonies",
        id: "id",
        blob: "secret_sealed",
        kek: "kek_id",
        owner_prefix: "auth_ceremonies/",
        owner_suffix: "/totp",
    },
    SealedColumn {
        table: "adapters",
        id: "id",
        blob: "token_sealed",
        kek: "token_kek_id",
        owner_prefix: "adapters/",
        owner_suffix: "/token",
    },
];

#[derive(QueryableByName)]
struct KekCount {
    #[diesel(sql_type = Text)]
    kek: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// How many sealed secrets each master key id wraps.
pub fn references(c: &mut PgConnection) -> Result<BTreeMap<String, i64>> {
    let union = SEALED
        .iter()
        .map(|s| format!("SELECT {kek} AS kek FROM {table} WHERE {kek} IS NOT NULL", kek = s.kek, table = s.table))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let rows: Vec<KekCount> =
        diesel::sql_query(format!("SELECT kek, count(*) AS n FROM ({union}) AS k GROUP BY kek")).load(c)?;
    Ok(rows.into_iter().map(|r| (r.kek, r.n)).collect())
}

/// A sealed value to rewrap.
#[derive(Debug, Clone, QueryableByName)]
pub struct Stale {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Bytea)]
    pub blob: Vec<u8>,
    #[diesel(sql_type = Text)]
    pub kek: String,
}

/// Up to `limit` values of `col` not wrapped by `current`, locked until the transaction ends; rows
/// another transaction holds are skipped (they are taken by a later batch).
pub fn stale(c: &mut PgConnection, col: &SealedColumn, current: &str, limit: i32) -> Result<Vec<Stale>> {
    Ok(diesel::sql_query(format!(
        "SELECT {id}::text AS id, {blob} AS blob, {kek} AS kek FROM {table}
          WHERE {kek} IS NOT NULL AND {kek} <> $1
          ORDER BY {id} LIMIT $2 FOR UPDATE SKIP LOCKED",
        id = col.id,
        blob = col.blob,
        kek = col.kek,
        table = col.table
    ))
    .bind::<Text, _>(current)
    .bind::<Integer, _>(limit)
    .load(c)?)
}

/// Stores a rewrapped value in place of the one read with key id `was` (unchanged meanwhile).
pub fn replace(c: &mut PgConnection, col: &SealedColumn, id: &str, was: &str, blob: &[u8], kek: &str) -> Result<bool> {
    let n = diesel::sql_query(format!(
        "UPDATE {table} SET {blob} = $1, {kek} = $2 WHERE {id}::text = $3 AND {kek} = $4",
        table = col.table,
        blob = col.blob,
        kek = col.kek,
        id = col.id
    ))
    .bind::<Bytea, _>(blob)
    .bind::<Text, _>(kek)
    .bind::<Text, _>(id)
    .bind::<Text, _>(was)
    .execute(c)?;
    Ok(n == 1)
}
