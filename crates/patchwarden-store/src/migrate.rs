//! Schema migrations: numbered SQL files per backend, applied in order, each in its own transaction
//! and recorded in `schema_migrations`.

use crate::{Backend, Context, Store, StoreError};

/// (version, name, SQLite text, PostgreSQL text).
const MIGRATIONS: &[(i64, &str, &str, &str)] = &[
    (
        1,
        "knowledge_base",
        include_str!("../migrations/sqlite/0001_knowledge_base.sql"),
        include_str!("../migrations/postgres/0001_knowledge_base.sql"),
    ),
    (
        2,
        "advisory_by_id",
        include_str!("../migrations/sqlite/0002_advisory_by_id.sql"),
        include_str!("../migrations/postgres/0002_advisory_by_id.sql"),
    ),
    (
        3,
        "finding_seen",
        include_str!("../migrations/sqlite/0003_finding_seen.sql"),
        include_str!("../migrations/postgres/0003_finding_seen.sql"),
    ),
    (
        4,
        "advisory_per_feed",
        include_str!("../migrations/sqlite/0004_advisory_per_feed.sql"),
        include_str!("../migrations/postgres/0004_advisory_per_feed.sql"),
    ),
    (
        5,
        "affected_covering",
        include_str!("../migrations/sqlite/0005_affected_covering.sql"),
        include_str!("../migrations/postgres/0005_affected_covering.sql"),
    ),
    (
        6,
        "fleet",
        include_str!("../migrations/sqlite/0006_fleet.sql"),
        include_str!("../migrations/postgres/0006_fleet.sql"),
    ),
    (
        7,
        "package_sets",
        include_str!("../migrations/sqlite/0007_package_sets.sql"),
        include_str!("../migrations/postgres/0007_package_sets.sql"),
    ),
    (
        8,
        "knowledge_changes",
        include_str!("../migrations/sqlite/0008_knowledge_changes.sql"),
        include_str!("../migrations/postgres/0008_knowledge_changes.sql"),
    ),
    (
        9,
        "host_jobs",
        include_str!("../migrations/sqlite/0009_host_jobs.sql"),
        include_str!("../migrations/postgres/0009_host_jobs.sql"),
    ),
    (
        10,
        "change_requests",
        include_str!("../migrations/sqlite/0010_change_requests.sql"),
        include_str!("../migrations/postgres/0010_change_requests.sql"),
    ),
    (
        11,
        "active_changes",
        include_str!("../migrations/sqlite/0011_active_changes.sql"),
        include_str!("../migrations/postgres/0011_active_changes.sql"),
    ),
    (
        12,
        "host_offers",
        include_str!("../migrations/sqlite/0012_host_offers.sql"),
        include_str!("../migrations/postgres/0012_host_offers.sql"),
    ),
    (
        13,
        "compact_findings",
        include_str!("../migrations/sqlite/0013_compact_findings.sql"),
        include_str!("../migrations/postgres/0013_compact_findings.sql"),
    ),
    (
        14,
        "report_retention",
        include_str!("../migrations/sqlite/0014_report_retention.sql"),
        include_str!("../migrations/postgres/0014_report_retention.sql"),
    ),
    (
        15,
        "scheduled_leases",
        include_str!("../migrations/sqlite/0015_scheduled_leases.sql"),
        include_str!("../migrations/postgres/0015_scheduled_leases.sql"),
    ),
    (
        16,
        "view_versions",
        include_str!("../migrations/sqlite/0016_view_versions.sql"),
        include_str!("../migrations/postgres/0016_view_versions.sql"),
    ),
    (
        17,
        "shared_package_sets",
        include_str!("../migrations/sqlite/0017_shared_package_sets.sql"),
        include_str!("../migrations/postgres/0017_shared_package_sets.sql"),
    ),
    (
        18,
        "package_ids_dropped",
        include_str!("../migrations/sqlite/0018_package_ids_dropped.sql"),
        include_str!("../migrations/postgres/0018_package_ids_dropped.sql"),
    ),
    (
        19,
        "first_inventory_by_set",
        include_str!("../migrations/sqlite/0019_first_inventory_by_set.sql"),
        include_str!("../migrations/postgres/0019_first_inventory_by_set.sql"),
    ),
    (
        20,
        "audit_log",
        include_str!("../migrations/sqlite/0020_audit_log.sql"),
        include_str!("../migrations/postgres/0020_audit_log.sql"),
    ),
    (
        21,
        "user_accounts",
        include_str!("../migrations/sqlite/0021_user_accounts.sql"),
        include_str!("../migrations/postgres/0021_user_accounts.sql"),
    ),
    (
        22,
        "feed_data_date",
        include_str!("../migrations/sqlite/0022_feed_data_date.sql"),
        include_str!("../migrations/postgres/0022_feed_data_date.sql"),
    ),
];

/// Whether the SQLite file at `path` exists and has every migration applied (read with rusqlite,
/// read-only: no pool, no transaction). Any doubt answers `false` and the migrations run.
pub(crate) fn sqlite_is_current(
    path: &std::path::Path,
    readers: &crate::reads::SqliteReaders,
) -> bool {
    if !path.is_file() {
        return false;
    }
    // The connection that answers stays open for the reads that follow.
    let versions: Result<Vec<i64>, _> = readers.with(path, |conn| {
        conn.prepare("SELECT version FROM schema_migrations")
            .and_then(|mut s| s.query_map([], |r| r.get::<_, i64>(0))?.collect())
            .map_err(|e| crate::StoreError::new(e.to_string()))
    });
    match versions {
        Ok(mut v) => {
            v.sort_unstable();
            v == MIGRATIONS.iter().map(|m| m.0).collect::<Vec<_>>()
        }
        Err(_) => false,
    }
}

pub(crate) async fn apply(store: &Store) -> Result<(), StoreError> {
    let pool = store.pool();
    // One connection for the whole run: SQLite's foreign-key switch is per connection and only
    // works outside a transaction (SQLite's own procedure for rebuilding a table).
    let mut conn = pool
        .acquire()
        .await
        .context(|| "connecting for the migrations".into())?;
    let sqlite = store.backend() == Backend::Sqlite;
    if sqlite {
        sqlx::query("PRAGMA foreign_keys = OFF")
            .execute(&mut *conn)
            .await
            .context(|| "turning foreign keys off for the migrations".into())?;
    }
    let result = apply_on(store, &mut conn).await;
    if sqlite {
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut *conn)
            .await
            .context(|| "turning foreign keys back on".into())?;
    }
    result
}

async fn apply_on(
    store: &Store,
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
) -> Result<(), StoreError> {
    use sqlx::Connection;
    let mut tx = conn
        .begin()
        .await
        .context(|| "starting the migration transaction".into())?;
    if store.backend() == Backend::Postgres {
        // Several server processes may start at once against one database.
        sqlx::query("SELECT pg_advisory_xact_lock(7272001)")
            .execute(&mut *tx)
            .await
            .context(|| "taking the migration lock".into())?;
    }
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
        .execute(&mut *tx)
        .await
        .context(|| "creating schema_migrations".into())?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx)
        .await
        .context(|| "reading schema_migrations".into())?;
    let mut ran = 0;
    for (version, name, sqlite, postgres) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        ran += 1;
        let text = if store.backend() == Backend::Postgres {
            postgres
        } else {
            sqlite
        };
        // Comment lines go before splitting: a `;` in a comment is not a statement's end.
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .map(|l| format!("{l}\n"))
            .collect();
        for statement in statements(&code) {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .context(|| format!("migration {version} ({name})"))?;
        }
        if *version == 17 {
            share_package_sets(store, &mut tx).await?;
        }
        sqlx::query(
            &store.sql(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            ),
        )
        .bind(*version)
        .bind(*name)
        .bind(patchwarden_model::now_rfc3339())
        .execute(&mut *tx)
        .await
        .context(|| format!("recording migration {version}"))?;
    }
    // Only after a change: the check reads every referencing row.
    if store.backend() == Backend::Sqlite && ran > 0 {
        let broken: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(&mut *tx)
            .await
            .context(|| "checking foreign keys after the migrations".into())?;
        if let Some((table,)) = broken.first() {
            return Err(StoreError::new(format!(
                "the migrations left {} row(s) with a broken reference (first in {table}); nothing was changed",
                broken.len()
            )));
        }
    }
    tx.commit()
        .await
        .context(|| "committing migrations".into())?;
    Ok(())
}

impl Store {
    /// The applied migration versions, in order.
    pub async fn schema_versions(&self) -> Result<Vec<i64>, StoreError> {
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(self.pool())
            .await
            .context(|| "reading schema_migrations".into())
    }
}

/// The newest schema version this build knows.
pub const LATEST_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Migration 17's own step: every host's package list (`host_package_set.package_ids`) moved into
/// `package_set`, one row per distinct list (interned as check-ins intern them), the host pointing
/// at it.
async fn share_package_sets(
    store: &Store,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
) -> Result<(), StoreError> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT host_id, package_ids FROM host_package_set ORDER BY host_id")
            .fetch_all(&mut **tx)
            .await
            .context(|| "migration 17: reading the hosts' package lists".into())?;
    // Interned here; cached by the store only once check-ins intern them after the commit.
    let mut interned: std::collections::HashMap<Vec<i64>, i64> = Default::default();
    for (host_id, text) in rows {
        let mut ids = crate::fleet::parse_ids(&text, host_id)?;
        ids.sort_unstable();
        ids.dedup();
        let set_id = match interned.get(&ids) {
            Some(id) => *id,
            None => {
                let id = store.package_sets.intern(store, tx, &ids).await?.id;
                interned.insert(ids, id);
                id
            }
        };
        sqlx::query(&store.sql("UPDATE host_package_set SET set_id = $2 WHERE host_id = $1"))
            .bind(host_id)
            .bind(set_id)
            .execute(&mut **tx)
            .await
            .context(|| "migration 17: pointing a host at its package set".into())?;
    }
    Ok(())
}

/// A migration's statements: split at `;`, except inside a `$$ … $$` body (PostgreSQL functions)
/// and a trigger's `BEGIN … END` (SQLite).
fn statements(code: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_dollar = false;
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"$$") {
            in_dollar = !in_dollar;
            i += 2;
            continue;
        }
        if bytes[i] == b';' && !in_dollar {
            let candidate = code[start..i].trim();
            let upper = candidate.to_ascii_uppercase();
            let open_trigger = upper.starts_with("CREATE TRIGGER")
                && upper.split_whitespace().any(|w| w == "BEGIN")
                && !upper.ends_with("END");
            if !open_trigger {
                if !candidate.is_empty() {
                    out.push(candidate);
                }
                start = i + 1;
            }
        }
        i += 1;
    }
    let rest = code[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

#[cfg(test)]
mod statement_tests {
    #[test]
    fn triggers_and_function_bodies_stay_whole() {
        let code = "CREATE TABLE a (x INT);\nCREATE TRIGGER t BEFORE UPDATE ON a\nBEGIN SELECT RAISE(ABORT, 'no'); END;\n\
                    CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN RAISE EXCEPTION 'no'; END $$;\n\
                    CREATE TRIGGER u BEFORE DELETE ON a FOR EACH ROW EXECUTE FUNCTION f();";
        let got = super::statements(code);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(got[1].ends_with("END"), "{}", got[1]);
        assert!(got[2].ends_with("END $$"), "{}", got[2]);
        assert!(got[3].starts_with("CREATE TRIGGER u"), "{}", got[3]);
    }
}
