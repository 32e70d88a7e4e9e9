//! Hand-written SQL that PostgreSQL parses and plans once per connection. Diesel's `sql_query` is
//! sent as a new unnamed statement every time, so the server parses and plans it on every call —
//! for a short indexed read that is most of its cost (measured with pgbench on the segments query:
//! 5,800 statements/s unprepared, 17,700 prepared). [`prepared`] takes the same SQL, with `$1`,
//! `$2`… naming the values bound in order (a value may be named more than once), and Diesel keeps
//! its statement in the connection's cache, keyed by its text. The SQL must be a constant: no `$`
//! in literals or quoted identifiers.
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use std::marker::PhantomData;

/// `sql`, to be prepared once per connection, with no values bound yet.
pub fn prepared(sql: &'static str) -> Prepared<()> {
    Prepared { sql, binds: () }
}

/// A prepared query and the values bound to it, in order.
#[must_use = "queries run only when loaded or executed"]
pub struct Prepared<B> {
    sql: &'static str,
    binds: B,
}

impl<B: Binds> Prepared<B> {
    /// Binds the next value, `$n` for the n-th.
    pub fn bind<ST, V>(self, value: V) -> Prepared<(B, Bound<ST, V>)> {
        Prepared { sql: self.sql, binds: (self.binds, Bound { value, _type: PhantomData }) }
    }
}

/// One bound value and its SQL type.
pub struct Bound<ST, V> {
    value: V,
    _type: PhantomData<ST>,
}

/// The values bound so far, the last one outermost.
pub trait Binds {
    /// How many values are bound.
    fn count(&self) -> usize;

    /// Pushes the `n`-th value (from 1) as a bind parameter.
    fn push<'b>(&'b self, n: usize, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

impl Binds for () {
    fn count(&self) -> usize {
        0
    }

    fn push<'b>(&'b self, n: usize, _: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        Err(diesel::result::Error::QueryBuilderError(format!("${n} names no bound value").into()))
    }
}

impl<B: Binds, ST, V> Binds for (B, Bound<ST, V>)
where
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg>,
{
    fn count(&self) -> usize {
        self.0.count() + 1
    }

    fn push<'b>(&'b self, n: usize, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        if n == self.count() { out.push_bind_param::<ST, V>(&self.1.value) } else { self.0.push(n, out) }
    }
}

impl<B: Binds> QueryFragment<Pg> for Prepared<B> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut rest = self.sql;
        let mut named = vec![false; self.binds.count()];
        while let Some(at) = rest.find('$') {
            out.push_sql(&rest[..at]);
            let digits = rest[at + 1..].bytes().take_while(u8::is_ascii_digit).count();
            let n: usize = rest[at + 1..at + 1 + digits].parse().map_err(|_| {
                diesel::result::Error::QueryBuilderError("a `$` not followed by a parameter number".into())
            })?;
            self.binds.push(n, &mut out)?;
            if let Some(used) = n.checked_sub(1).and_then(|i| named.get_mut(i)) {
                *used = true;
            }
            rest = &rest[at + 1 + digits..];
        }
        out.push_sql(rest);
        match named.iter().position(|used| !used) {
            Some(i) => Err(diesel::result::Error::QueryBuilderError(
                format!("value ${} is bound but never named", i + 1).into(),
            )),
            None => Ok(()),
        }
    }
}

impl<B> QueryId for Prepared<B> {
    type QueryId = ();
    // No static id: Diesel caches the statement by its SQL text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<B> Query for Prepared<B> {
    type SqlType = Untyped;
}

impl<B, C> diesel::RunQueryDsl<C> for Prepared<B> {}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::{BigInt, Text};

    #[test]
    fn each_named_value_becomes_a_parameter_in_order_of_use() {
        let q = prepared("SELECT $2 AS a, $1 AS b WHERE $2 > 0").bind::<Text, _>("x").bind::<BigInt, _>(7i64);
        let sql = diesel::debug_query::<Pg, _>(&q).to_string();
        assert!(sql.starts_with("SELECT $1 AS a, $2 AS b WHERE $3 > 0"), "{sql}");
        assert!(sql.contains(r#"binds: [7, "x", 7]"#), "{sql}");
    }

    #[test]
    fn a_value_the_sql_never_names_is_an_error() {
        use std::fmt::Write;
        let q = prepared("SELECT $1").bind::<Text, _>("x").bind::<Text, _>("y");
        let mut sql = String::new();
        assert!(write!(sql, "{}", diesel::debug_query::<Pg, _>(&q)).is_err());
    }

    #[test]
    fn a_parameter_without_a_value_is_an_error() {
        use std::fmt::Write;
        let q = prepared("SELECT $2").bind::<Text, _>("x");
        let mut sql = String::new();
        assert!(write!(sql, "{}", diesel::debug_query::<Pg, _>(&q)).is_err());
    }
}
