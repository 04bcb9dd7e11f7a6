//! Backend-neutral query arguments and rows for [`super::Db::read_optional`] and
//! [`super::Db::read_all`]: one mapping from a row to a value, whether the row came from sqlx
//! (`AnyRow`: PostgreSQL, transactions, every other query) or from the SQLite read path
//! (`rusqlite::Row`, borrowed from the statement: no copy of the row).

use super::DbError;
use sqlx::Row;
use sqlx::any::AnyRow;

/// One argument of a query, bound to `$1`, `$2`, ... in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg<'a> {
    /// Text.
    Text(&'a str),
    /// A 64-bit integer (also bools, stored as 0/1: see [`super::b2i`]).
    Int(i64),
    /// SQL NULL in place of text.
    NullText,
    /// SQL NULL in place of an integer. PostgreSQL types a parameter by what is bound, and a
    /// text-typed NULL is refused in a BIGINT column or comparison, so the two NULLs differ.
    NullInt,
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(s: &'a str) -> Self {
        Arg::Text(s)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(s: &'a String) -> Self {
        Arg::Text(s)
    }
}

impl From<i64> for Arg<'_> {
    fn from(n: i64) -> Self {
        Arg::Int(n)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Arg::NullText, Arg::Text)
    }
}

impl<'a> From<Option<&'a String>> for Arg<'a> {
    fn from(v: Option<&'a String>) -> Self {
        v.map_or(Arg::NullText, |s| Arg::Text(s))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Arg::NullInt, Arg::Int)
    }
}

/// A row of a read, whichever driver produced it. Columns are looked up by name.
#[derive(Clone, Copy)]
pub enum DbRow<'r> {
    /// A row from sqlx (PostgreSQL, transactions, the pool).
    Any(&'r AnyRow),
    /// A row of the SQLite read path, read in place.
    Sqlite(&'r rusqlite::Row<'r>),
}

impl std::fmt::Debug for DbRow<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbRow::Any(_) => f.write_str("DbRow::Any"),
            DbRow::Sqlite(_) => f.write_str("DbRow::Sqlite"),
        }
    }
}

impl<'r> From<&'r AnyRow> for DbRow<'r> {
    fn from(row: &'r AnyRow) -> Self {
        DbRow::Any(row)
    }
}

impl DbRow<'_> {
    /// The value of column `name`, typed: `String`, `Option<String>`, `i64`, `Option<i64>`,
    /// `bool` (an integer column, nonzero = true). A NULL in a non-`Option` type, a column of
    /// another type or a missing column is an error, on both backends.
    pub fn get<T: Column>(&self, name: &str) -> Result<T, DbError> {
        match self {
            DbRow::Any(row) => T::from_any(row, name).map_err(DbError::Sqlx),
            DbRow::Sqlite(row) => T::from_sqlite(row, name).map_err(DbError::Sqlite),
        }
    }
}

/// A column type [`DbRow::get`] reads.
pub trait Column: Sized {
    /// From a sqlx row.
    fn from_any(row: &AnyRow, name: &str) -> Result<Self, sqlx::Error>;
    /// From a rusqlite row.
    fn from_sqlite(row: &rusqlite::Row<'_>, name: &str) -> rusqlite::Result<Self>;
}

macro_rules! column {
    ($($t:ty),*) => {$(
        impl Column for $t {
            fn from_any(row: &AnyRow, name: &str) -> Result<Self, sqlx::Error> {
                row.try_get(name)
            }
            fn from_sqlite(row: &rusqlite::Row<'_>, name: &str) -> rusqlite::Result<Self> {
                row.get(name)
            }
        }
    )*};
}

column!(String, Option<String>, i64, Option<i64>);

/// Bools are stored as integers 0/1 on both engines (portable schema).
impl Column for bool {
    fn from_any(row: &AnyRow, name: &str) -> Result<Self, sqlx::Error> {
        Ok(row.try_get::<i64, _>(name)? != 0)
    }
    fn from_sqlite(row: &rusqlite::Row<'_>, name: &str) -> rusqlite::Result<Self> {
        Ok(row.get::<_, i64>(name)? != 0)
    }
}
