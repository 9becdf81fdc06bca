//! The audit log's rows (`audit_log`, `audit_checkpoint`; migration 0020): appending an event as
//! the chain's next entry (appends are serialized: SQLite's one writer, a transaction-scoped
//! advisory lock on PostgreSQL, so several servers and `feeds import` on one store keep one
//! chain), reading entries back (filtered, paged, or the whole chain for verification), and
//! keeping the checkpoints the server signs. The chain's rules are `patchwarden_model::audit`'s;
//! signing is the server's.

use patchwarden_model::audit::{
    Actor, AuditAction, AuditCheckpoint, AuditEntry, AuditEvent, GENESIS,
};

use crate::{get, Context, Store, StoreError};

/// The PostgreSQL advisory lock that serializes appends (any constant of this application's).
const APPEND_LOCK: i64 = 0x7061_7463_6877_0001;

/// Which entries to read.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// Only entries after this sequence number (paging).
    pub after: i64,
    pub limit: i64,
    pub action: Option<AuditAction>,
    /// Only entries about this subject (`host:12`).
    pub subject: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    pub since: Option<String>,
}

impl Store {
    /// Appends `event` at `at` as the chain's next entry and returns it.
    pub async fn append_audit(
        &self,
        event: &AuditEvent,
        at: &str,
    ) -> Result<AuditEntry, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        if self.backend() == crate::Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(APPEND_LOCK)
                .execute(&mut *tx)
                .await
                .context(|| "locking the audit log".into())?;
        }
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await
                .context(|| "reading the audit log's head".into())?;
        let (seq, prev) = match head {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS.to_owned()),
        };
        let entry = AuditEntry::chained(seq, at, event.clone(), &prev);
        sqlx::query(&self.sql(
            "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        ))
        .bind(entry.seq)
        .bind(&entry.at)
        .bind(serde_json::to_string(&entry.event.actor).expect("an actor serializes"))
        .bind(entry.event.action.as_str())
        .bind(&entry.event.subject)
        .bind(serde_json::to_string(&entry.event.detail).expect("details serialize"))
        .bind(&entry.prev_hash)
        .bind(&entry.hash)
        .execute(&mut *tx)
        .await
        .context(|| "appending to the audit log".into())?;
        tx.commit()
            .await
            .context(|| "committing the audit entry".into())?;
        Ok(entry)
    }

    /// Entries matching `query`, in chain order.
    pub async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(&self.sql(
            "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log \
             WHERE seq > $1 AND (CAST($2 AS TEXT) IS NULL OR action = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR subject = $3) \
             AND (CAST($4 AS TEXT) IS NULL OR at >= $4) ORDER BY seq LIMIT $5",
        ))
        .bind(query.after)
        .bind(query.action.map(AuditAction::as_str))
        .bind(query.subject.as_deref())
        .bind(query.since.as_deref())
        .bind(query.limit)
        .fetch_all(self.pool())
        .await
        .context(|| "reading the audit log".into())?;
        rows.iter().map(entry_of).collect()
    }

    /// The chain's last entry (what a checkpoint at start pins), if any.
    pub async fn audit_head(&self) -> Result<Option<AuditEntry>, StoreError> {
        let row = sqlx::query(
            "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log \
             ORDER BY seq DESC LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await
        .context(|| "reading the audit log's head".into())?;
        row.as_ref().map(entry_of).transpose()
    }

    /// The whole chain in order (for verification and export), however it is stored: a row
    /// whose stored fields no longer parse is an error naming its sequence number.
    pub async fn audit_chain(&self) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_entries(&AuditQuery {
            limit: i64::MAX,
            ..Default::default()
        })
        .await
    }

    /// Stores a signed checkpoint (a second one for the same entry is ignored).
    pub async fn add_audit_checkpoint(&self, c: &AuditCheckpoint) -> Result<(), StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        sqlx::query(&self.sql(
            "INSERT INTO audit_checkpoint (seq, hash, at, public_key, signature) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (seq) DO NOTHING",
        ))
        .bind(c.seq)
        .bind(&c.hash)
        .bind(&c.at)
        .bind(&c.public_key)
        .bind(&c.signature)
        .execute(&mut *tx)
        .await
        .context(|| "storing an audit checkpoint".into())?;
        tx.commit()
            .await
            .context(|| "committing the audit checkpoint".into())?;
        Ok(())
    }

    /// Every checkpoint, in order.
    pub async fn audit_checkpoints(&self) -> Result<Vec<AuditCheckpoint>, StoreError> {
        let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
            "SELECT seq, hash, at, public_key, signature FROM audit_checkpoint ORDER BY seq",
        )
        .fetch_all(self.pool())
        .await
        .context(|| "reading the audit checkpoints".into())?;
        Ok(rows
            .into_iter()
            .map(|(seq, hash, at, public_key, signature)| AuditCheckpoint {
                seq,
                hash,
                at,
                public_key,
                signature,
            })
            .collect())
    }
}

fn entry_of(row: &sqlx::any::AnyRow) -> Result<AuditEntry, StoreError> {
    let seq: i64 = get(row, "seq")?;
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::new(format!("audit entry {seq}: its {what} does not parse: {e}"))
    };
    let actor: Actor =
        serde_json::from_str(&get::<String>(row, "actor")?).map_err(|e| bad("actor", &e))?;
    let action: AuditAction = get::<String>(row, "action")?
        .parse()
        .map_err(|e: String| bad("action", &e))?;
    let detail =
        serde_json::from_str(&get::<String>(row, "detail")?).map_err(|e| bad("detail", &e))?;
    Ok(AuditEntry {
        seq,
        at: get(row, "at")?,
        event: AuditEvent {
            actor,
            action,
            subject: get(row, "subject")?,
            detail,
        },
        prev_hash: get(row, "prev_hash")?,
        hash: get(row, "hash")?,
    })
}
