//! How the domain's closed sets of values map to their columns: a `text` column (with a CHECK
//! constraint in the migration) holds a [`StoredName`], a `smallint` holds a segment state's code.
//! Reading a value that is not in the set fails the query with an error naming what it read; no
//! value is ever replaced by a default. (The audit trail's rows stay text as stored: they are
//! evidence, hashed byte for byte, and verification must report any of them it finds altered.)
use crate::domain::Role;
use crate::domain::StoredName;
use crate::domain::camera::{RecordingMode, Transport};
use crate::domain::mfa::{CeremonyKind, CredentialKind};
use crate::domain::recording::{ExportFormat, ExportState, SegmentState};
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, Queryable};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::{Nullable, SingleValue, SmallInt, Text};

/// The error of a stored name outside the set.
fn unknown<T: StoredName>(name: &str) -> Box<dyn std::error::Error + Send + Sync> {
    format!("unknown {} {name:?} in the database", T::WHAT).into()
}

/// Reads a stored name back into its value.
pub fn from_stored<T: StoredName>(name: &str) -> deserialize::Result<T> {
    T::from_stored_name(name).ok_or_else(|| unknown::<T>(name))
}

/// A type read from one column by its `FromSql` (what `#[derive(FromSqlRow)]` would write).
macro_rules! single_value {
    ($t:ty) => {
        impl<ST, DB> Queryable<ST, DB> for $t
        where
            DB: Backend,
            ST: SingleValue,
            Self: FromSql<ST, DB>,
        {
            type Row = Self;
            fn build(row: Self) -> deserialize::Result<Self> {
                Ok(row)
            }
        }
    };
}

macro_rules! stored_as_text {
    ($($t:ty),+ $(,)?) => {$(
        impl ToSql<Text, Pg> for $t {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(self.stored_name(), out)
            }
        }

        impl FromSql<Text, Pg> for $t {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                let name = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
                from_stored(&name)
            }
        }

        impl AsExpression<Text> for $t {
            type Expression = <&'static str as AsExpression<Text>>::Expression;
            fn as_expression(self) -> Self::Expression {
                <&'static str as AsExpression<Text>>::as_expression(self.stored_name())
            }
        }

        impl AsExpression<Text> for &$t {
            type Expression = <&'static str as AsExpression<Text>>::Expression;
            fn as_expression(self) -> Self::Expression {
                <&'static str as AsExpression<Text>>::as_expression(self.stored_name())
            }
        }

        impl AsExpression<Nullable<Text>> for $t {
            type Expression = <&'static str as AsExpression<Nullable<Text>>>::Expression;
            fn as_expression(self) -> Self::Expression {
                <&'static str as AsExpression<Nullable<Text>>>::as_expression(self.stored_name())
            }
        }

        single_value!($t);
    )+};
}

stored_as_text!(Role, Transport, RecordingMode, ExportState, ExportFormat, CredentialKind, CeremonyKind,);

impl ToSql<SmallInt, Pg> for SegmentState {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        let code = self.code();
        <i16 as ToSql<SmallInt, Pg>>::to_sql(&code, &mut out.reborrow())
    }
}

impl FromSql<SmallInt, Pg> for SegmentState {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        let code = <i16 as FromSql<SmallInt, Pg>>::from_sql(bytes)?;
        SegmentState::from_code(code).ok_or_else(|| format!("unknown segment state {code} in the database").into())
    }
}

impl AsExpression<SmallInt> for SegmentState {
    type Expression = <i16 as AsExpression<SmallInt>>::Expression;
    fn as_expression(self) -> Self::Expression {
        <i16 as AsExpression<SmallInt>>::as_expression(self.code())
    }
}

impl AsExpression<SmallInt> for &SegmentState {
    type Expression = <i16 as AsExpression<SmallInt>>::Expression;
    fn as_expression(self) -> Self::Expression {
        <i16 as AsExpression<SmallInt>>::as_expression(self.code())
    }
}

single_value!(SegmentState);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_name_reads_back_as_itself() {
        for r in Role::ALL {
            assert_eq!(from_stored::<Role>(r.stored_name()).ok(), Some(r));
        }
        for s in ExportState::ALL {
            assert_eq!(from_stored::<ExportState>(s.stored_name()).ok(), Some(*s));
        }
        for k in CeremonyKind::ALL {
            assert_eq!(from_stored::<CeremonyKind>(k.stored_name()).ok(), Some(*k));
        }
    }

    #[test]
    fn an_unknown_name_is_an_error_naming_it() {
        let e = from_stored::<Transport>("carrier-pigeon").unwrap_err();
        assert_eq!(e.to_string(), "unknown transport \"carrier-pigeon\" in the database");
    }
}
