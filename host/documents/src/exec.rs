//! Running dynamic SQL with [`Bind`] parameters on either backend, on a pooled connection or
//! inside a transaction.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{
    Arguments as _, AssertSqlSafe, PgConnection, Postgres, Row as _, Sqlite, SqliteConnection,
};

use crate::sql::{Bind, Dialect, Sql};

/// A connection of either backend.
pub(crate) enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl Conn<'_> {
    pub fn of(tx: &mut ucms_db::Tx) -> Conn<'_> {
        match tx {
            ucms_db::Tx::Sqlite(tx) => Conn::Sqlite(tx),
            ucms_db::Tx::Postgres(tx) => Conn::Postgres(tx),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Self::Sqlite(_) => Dialect::Sqlite,
            Self::Postgres(_) => Dialect::Postgres,
        }
    }

    pub fn sql(&self) -> Sql {
        Sql::new(self.dialect())
    }

    /// Runs a statement; the number of rows it changed.
    pub async fn execute(&mut self, sql: &str, binds: &[Bind]) -> sqlx::Result<u64> {
        tracing::trace!(sql, "documents: execute");
        Ok(match self {
            Self::Sqlite(c) => sqlx::query_with(AssertSqlSafe(sql.to_owned()), sqlite_args(binds)?)
                .execute(&mut **c)
                .await?
                .rows_affected(),
            Self::Postgres(c) => sqlx::query_with(AssertSqlSafe(sql.to_owned()), pg_args(binds)?)
                .execute(&mut **c)
                .await?
                .rows_affected(),
        })
    }

    /// Runs DDL (not kept as a prepared statement).
    pub async fn ddl(&mut self, sql: &str) -> sqlx::Result<()> {
        tracing::debug!(sql, "documents: schema change");
        match self {
            Self::Sqlite(c) => {
                sqlx::query(AssertSqlSafe(sql.to_owned()))
                    .persistent(false)
                    .execute(&mut **c)
                    .await?;
            }
            Self::Postgres(c) => {
                sqlx::query(AssertSqlSafe(sql.to_owned()))
                    .persistent(false)
                    .execute(&mut **c)
                    .await?;
            }
        }
        Ok(())
    }

    pub async fn fetch_all<R: FromRow>(
        &mut self,
        sql: &str,
        binds: &[Bind],
    ) -> sqlx::Result<Vec<R>> {
        tracing::trace!(sql, "documents: query");
        match self {
            Self::Sqlite(c) => sqlx::query_with(AssertSqlSafe(sql.to_owned()), sqlite_args(binds)?)
                .fetch_all(&mut **c)
                .await?
                .iter()
                .map(R::sqlite)
                .collect(),
            Self::Postgres(c) => sqlx::query_with(AssertSqlSafe(sql.to_owned()), pg_args(binds)?)
                .fetch_all(&mut **c)
                .await?
                .iter()
                .map(R::pg)
                .collect(),
        }
    }

    pub async fn fetch_optional<R: FromRow>(
        &mut self,
        sql: &str,
        binds: &[Bind],
    ) -> sqlx::Result<Option<R>> {
        tracing::trace!(sql, "documents: query");
        match self {
            Self::Sqlite(c) => sqlx::query_with(AssertSqlSafe(sql.to_owned()), sqlite_args(binds)?)
                .fetch_optional(&mut **c)
                .await?
                .as_ref()
                .map(R::sqlite)
                .transpose(),
            Self::Postgres(c) => sqlx::query_with(AssertSqlSafe(sql.to_owned()), pg_args(binds)?)
                .fetch_optional(&mut **c)
                .await?
                .as_ref()
                .map(R::pg)
                .transpose(),
        }
    }

    pub async fn fetch_one<R: FromRow>(&mut self, sql: &str, binds: &[Bind]) -> sqlx::Result<R> {
        self.fetch_optional(sql, binds)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    pub async fn all<R: FromRow>(&mut self, sql: &Sql) -> sqlx::Result<Vec<R>> {
        self.fetch_all(&sql.text, &sql.binds).await
    }
}

fn sqlite_args(binds: &[Bind]) -> sqlx::Result<SqliteArguments> {
    let mut args = SqliteArguments::default();
    for bind in binds {
        match bind {
            Bind::Text(s) => args.add(s.clone()),
            Bind::Int(i) => args.add(*i),
            Bind::Float(f) => args.add(*f),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

fn pg_args(binds: &[Bind]) -> sqlx::Result<PgArguments> {
    let mut args = PgArguments::default();
    for bind in binds {
        match bind {
            Bind::Text(s) => args.add(s.clone()),
            Bind::Int(i) => args.add(*i),
            Bind::Float(f) => args.add(*f),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

/// A column type both backends decode.
pub(crate) trait Col:
    for<'r> sqlx::Decode<'r, Sqlite>
    + sqlx::Type<Sqlite>
    + for<'r> sqlx::Decode<'r, Postgres>
    + sqlx::Type<Postgres>
{
}

impl<T> Col for T where
    T: for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Postgres>
{
}

/// A row type both backends decode.
pub(crate) trait FromRow: Sized {
    fn sqlite(row: &SqliteRow) -> sqlx::Result<Self>;
    fn pg(row: &PgRow) -> sqlx::Result<Self>;
}

macro_rules! tuple_rows {
    ($($name:ident $i:tt),+) => {
        impl<$($name: Col),+> FromRow for ($($name,)+) {
            fn sqlite(row: &SqliteRow) -> sqlx::Result<Self> {
                Ok(($(row.try_get::<$name, _>($i)?,)+))
            }
            fn pg(row: &PgRow) -> sqlx::Result<Self> {
                Ok(($(row.try_get::<$name, _>($i)?,)+))
            }
        }
    };
}

tuple_rows!(A 0);
tuple_rows!(A 0, B 1);
tuple_rows!(A 0, B 1, C 2);
tuple_rows!(A 0, B 1, C 2, D 3);
tuple_rows!(A 0, B 1, C 2, D 3, E 4);
tuple_rows!(A 0, B 1, C 2, D 3, E 4, F 5);
