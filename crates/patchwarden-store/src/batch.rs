//! Multi-row statements. Each statement is a round trip to the database (on SQLite, to sqlx's worker
//! thread), so bulk writes insert many rows per `INSERT ... VALUES (...), (...)`.

use sqlx::{Any, Transaction};

use crate::{Backend, Context, Store, StoreError};

/// One bound value.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Text(Option<String>),
    Int(i64),
    /// An integer or NULL (bound as an integer either way: PostgreSQL refuses a text NULL in an
    /// integer column of a multi-row insert).
    MaybeInt(Option<i64>),
    Float(Option<f64>),
    Bytes(Option<Vec<u8>>),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(Some(s.to_owned()))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(Some(s))
    }
}
impl From<Option<String>> for Value {
    fn from(s: Option<String>) -> Self {
        Value::Text(s)
    }
}
impl From<Option<&str>> for Value {
    fn from(s: Option<&str>) -> Self {
        Value::Text(s.map(str::to_owned))
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<Option<f64>> for Value {
    fn from(v: Option<f64>) -> Self {
        Value::Float(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(Some(v))
    }
}
impl From<Option<Vec<u8>>> for Value {
    fn from(v: Option<Vec<u8>>) -> Self {
        Value::Bytes(v)
    }
}

/// Bound parameters per statement, kept well under SQLite's (32,766) and PostgreSQL's (65,535) limits.
const MAX_PARAMS: usize = 8000;

/// `(col, ...) VALUES ($1, ...), ($n, ...)` for `rows` rows of `width` values — with plain `?` on
/// SQLite: parameters here are bound strictly in order, and numbered ones cost sqlx a name lookup per
/// parameter that SQLite answers by walking a list (quadratic in the statement's size).
pub(crate) fn values_clause(columns: &[&str], rows: usize, backend: Backend) -> String {
    let width = columns.len();
    let mut sql = format!("({}) VALUES ", columns.join(", "));
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => sql.push_str(&format!("${}", r * width + c + 1)),
            }
        }
        sql.push(')');
    }
    sql
}

pub(crate) fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    values: &'q [Value],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for v in values {
        q = match v {
            Value::Text(t) => q.bind(t.as_deref()),
            Value::Int(i) => q.bind(*i),
            Value::MaybeInt(i) => q.bind(*i),
            // sqlx-core 0.8.6's Any driver swaps the NULL encodings of Real and Double
            // (any/arguments.rs): a NULL f64 would be declared FLOAT4 beside FLOAT8 values of the
            // same cached statement, which PostgreSQL rejects. A NULL f32 comes out as FLOAT8.
            Value::Float(None) => q.bind(None::<f32>),
            Value::Float(Some(f)) => q.bind(*f),
            Value::Bytes(b) => q.bind(b.as_deref()),
        };
    }
    q
}

impl Store {
    /// Inserts `rows` (each `columns.len()` values) into `table`, many rows per statement.
    pub(crate) async fn insert_rows(
        &self,
        tx: &mut Transaction<'static, Any>,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
    ) -> Result<(), StoreError> {
        self.insert_rows_then(tx, table, columns, rows, "").await
    }

    /// [`Store::insert_rows`], skipping rows that would break a uniqueness constraint (rows already
    /// stored, as when interning values).
    pub(crate) async fn insert_new_rows(
        &self,
        tx: &mut Transaction<'static, Any>,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
    ) -> Result<(), StoreError> {
        self.insert_rows_then(tx, table, columns, rows, " ON CONFLICT DO NOTHING")
            .await
    }

    pub(crate) async fn insert_rows_then(
        &self,
        tx: &mut Transaction<'static, Any>,
        table: &str,
        columns: &[&str],
        rows: &[Vec<Value>],
        suffix: &str,
    ) -> Result<(), StoreError> {
        let per_statement = (MAX_PARAMS / columns.len()).max(1);
        for chunk in rows.chunks(per_statement) {
            let sql = format!(
                "INSERT INTO {table} {}{suffix}",
                values_clause(columns, chunk.len(), self.backend())
            );
            let flat: Vec<Value> = chunk.iter().flatten().cloned().collect();
            bind_all(sqlx::query(&sql), &flat)
                .execute(&mut **tx)
                .await
                .context(|| format!("inserting {} rows into {table}", chunk.len()))?;
        }
        Ok(())
    }
}

impl Store {
    /// The keys of the advisories of `source` with the given ids.
    pub(crate) async fn advisory_pks(
        &self,
        tx: &mut Transaction<'static, Any>,
        feed: &str,
        ids: &[String],
    ) -> Result<Vec<i64>, StoreError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_PARAMS - 1) {
            let sql = format!(
                "SELECT pk FROM advisory WHERE feed = {} AND id IN ({})",
                self.placeholder(1),
                self.placeholders(2, chunk.len())
            );
            let mut values = vec![Value::from(feed)];
            values.extend(chunk.iter().map(|k| Value::from(k.as_str())));
            let rows = bind_all(sqlx::query(&sql), &values)
                .fetch_all(&mut **tx)
                .await
                .context(|| "finding stored advisories".into())?;
            for r in rows {
                out.push(crate::get::<i64>(&r, "pk")?);
            }
        }
        Ok(out)
    }

    /// Deletes the rows of `table` whose `column` is one of `keys`.
    pub(crate) async fn delete_by_keys(
        &self,
        tx: &mut Transaction<'static, Any>,
        table: &str,
        column: &str,
        keys: &[Value],
    ) -> Result<(), StoreError> {
        for chunk in keys.chunks(MAX_PARAMS) {
            let sql = format!(
                "DELETE FROM {table} WHERE {column} IN ({})",
                self.placeholders(1, chunk.len())
            );
            bind_all(sqlx::query(&sql), chunk)
                .execute(&mut **tx)
                .await
                .context(|| format!("deleting from {table}"))?;
        }
        Ok(())
    }

    /// The `n`th placeholder of a statement whose parameters are bound strictly in order.
    pub(crate) fn placeholder(&self, n: usize) -> String {
        match self.backend() {
            Backend::Sqlite => "?".into(),
            Backend::Postgres => format!("${n}"),
        }
    }

    /// `count` placeholders starting at number `first`, comma-separated.
    pub(crate) fn placeholders(&self, first: usize, count: usize) -> String {
        (first..first + count)
            .map(|n| self.placeholder(n))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use crate::Backend;

    #[test]
    fn values_clause_numbers_rows_then_columns() {
        assert_eq!(
            super::values_clause(&["a", "b"], 2, Backend::Postgres),
            "(a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            super::values_clause(&["a", "b"], 2, Backend::Sqlite),
            "(a, b) VALUES (?, ?), (?, ?)"
        );
    }
}
