//! Multi-row statements. Each statement is a round trip to the database (on SQLite, to sqlx's worker
//! thread), so bulk writes insert many rows per `INSERT ... VALUES (...), (...)`.

use sqlx::{Any, Transaction};

use crate::{Backend, Context, Store, StoreError};

/// One bound value.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Text(Option<String>),
    Int(i64),
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
            Value::Float(f) => q.bind(*f),
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
        let per_statement = (MAX_PARAMS / columns.len()).max(1);
        for chunk in rows.chunks(per_statement) {
            let sql = format!(
                "INSERT INTO {table} {}",
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

    /// Runs `template` once per chunk of `keys`: `{first}` stands for the parameter bound to `first`,
    /// `{list}` for the keys' parameters (in that order in the text).
    pub(crate) async fn for_key_chunks(
        &self,
        tx: &mut Transaction<'static, Any>,
        template: &str,
        first: &str,
        keys: &[String],
    ) -> Result<(), StoreError> {
        for chunk in keys.chunks(MAX_PARAMS - 1) {
            let (first_param, list): (String, Vec<String>) = match self.backend() {
                Backend::Sqlite => ("?".into(), vec!["?".to_owned(); chunk.len()]),
                Backend::Postgres => (
                    "$1".into(),
                    (0..chunk.len()).map(|i| format!("${}", i + 2)).collect(),
                ),
            };
            let sql = template
                .replace("{first}", &first_param)
                .replace("{list}", &list.join(", "));
            let mut values = vec![Value::from(first)];
            values.extend(chunk.iter().map(|k| Value::from(k.as_str())));
            bind_all(sqlx::query(&sql), &values)
                .execute(&mut **tx)
                .await
                .context(|| format!("running {template}"))?;
        }
        Ok(())
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
