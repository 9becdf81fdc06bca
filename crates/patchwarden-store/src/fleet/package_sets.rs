//! Package sets stored once and shared by every host holding exactly those package versions
//! (migration 0017): a set is a JSON list of ascending `package_version` ids, content-addressed by
//! the SHA-256 of that text. Sets are immutable, so their ids (by digest) and lists (by id) are
//! cached per process. A host points at its set from `host_package_set.set_id`.

use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::{Any, Transaction};

use super::*;

/// Sets cached beyond this are forgotten (the caches are emptied, then refilled as read).
const CACHE_LIMIT: usize = 50_000;

/// The per-process caches of package sets.
#[derive(Default)]
pub(crate) struct PackageSetCaches {
    ids: std::sync::Mutex<HashMap<String, i64>>,
    lists: std::sync::Mutex<HashMap<i64, Arc<[i64]>>>,
}

impl PackageSetCaches {
    fn id(&self, digest: &str) -> Option<i64> {
        self.ids.lock().ok()?.get(digest).copied()
    }

    fn list(&self, id: i64) -> Option<Arc<[i64]>> {
        self.lists.lock().ok()?.get(&id).cloned()
    }

    /// Remembers a set (only once its transaction committed).
    pub(crate) fn remember(&self, id: i64, digest: String, list: Arc<[i64]>) {
        if let Ok(mut ids) = self.ids.lock() {
            if ids.len() > CACHE_LIMIT {
                ids.clear();
            }
            ids.insert(digest, id);
        }
        self.remember_list(id, list);
    }

    fn remember_list(&self, id: i64, list: Arc<[i64]>) {
        if let Ok(mut lists) = self.lists.lock() {
            if lists.len() > CACHE_LIMIT {
                lists.clear();
            }
            lists.insert(id, list);
        }
    }
}

/// The stored text of an id list (ascending, no repeats) and its digest.
pub(crate) fn id_list_text(ids: &[i64]) -> (String, String) {
    let text = ids_json(ids);
    let digest = patchwarden_model::fleet::hex(&Sha256::digest(text.as_bytes()));
    (text, digest)
}

/// A package set in use: its ids, and its hosts with their distribution.
pub(crate) type SetInUse = (Arc<[i64]>, Vec<(i64, Option<String>)>);

/// A set interned in a transaction: its id, and what to cache once the transaction committed
/// (`None`: it was cached already).
pub(crate) struct InternedSet {
    pub id: i64,
    pub remember: Option<(String, Arc<[i64]>)>,
}

impl Store {
    /// The id of the package set of exactly `ids` (ascending, no repeats), stored in `tx` if new.
    pub(crate) async fn intern_package_set(
        &self,
        tx: &mut Transaction<'static, Any>,
        ids: &[i64],
    ) -> Result<InternedSet, StoreError> {
        let (text, digest) = id_list_text(ids);
        if let Some(id) = self.package_sets.id(&digest) {
            return Ok(InternedSet { id, remember: None });
        }
        sqlx::query(&self.sql(
            "INSERT INTO package_set (digest, package_ids, size) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        ))
        .bind(digest.as_str())
        .bind(text.as_str())
        .bind(ids.len() as i64)
        .execute(&mut **tx)
        .await
        .context(|| "storing a package set".into())?;
        let id: i64 = sqlx::query_scalar(&self.sql("SELECT id FROM package_set WHERE digest = $1"))
            .bind(digest.as_str())
            .fetch_one(&mut **tx)
            .await
            .context(|| "reading a package set".into())?;
        Ok(InternedSet {
            id,
            remember: Some((digest, Arc::from(ids))),
        })
    }

    /// The package version ids of a set (ascending).
    pub(crate) async fn package_set(&self, id: i64) -> Result<Arc<[i64]>, StoreError> {
        if let Some(list) = self.package_sets.list(id) {
            return Ok(list);
        }
        let list = self
            .stored_id_list(
                "SELECT package_ids FROM package_set WHERE id = $1",
                id,
                "package set",
            )
            .await?;
        self.package_sets.remember_list(id, list.clone());
        Ok(list)
    }

    /// A stored id list (a package or finding set): `sql` selects its JSON text by id.
    pub(crate) async fn stored_id_list(
        &self,
        sql: &str,
        id: i64,
        what: &str,
    ) -> Result<Arc<[i64]>, StoreError> {
        let text: String = sqlx::query_scalar(&self.sql(sql))
            .bind(id)
            .fetch_one(self.pool())
            .await
            .context(|| format!("reading {what} {id}"))?;
        Ok(serde_json::from_str::<Vec<i64>>(&text)
            .map_err(|e| StoreError::new(format!("{what} {id}: {e}")))?
            .into())
    }

    /// The distinct package sets hosts hold now, with the hosts (not revoked) holding each and
    /// their distribution: what a knowledge-base change is matched against, set by set.
    pub(crate) async fn package_sets_in_use(&self) -> Result<Vec<SetInUse>, StoreError> {
        let rows: Vec<(i64, i64, Option<String>)> = sqlx::query_as(
            "SELECT s.set_id, s.host_id, h.distro FROM host_package_set s \
             JOIN host h ON h.id = s.host_id \
             WHERE h.revoked_at IS NULL AND s.set_id IS NOT NULL ORDER BY s.set_id, s.host_id",
        )
        .fetch_all(self.pool())
        .await
        .context(|| "reading the package sets in use".into())?;
        let mut out: Vec<SetInUse> = Vec::new();
        let mut current: Option<i64> = None;
        for (set_id, host_id, distro) in rows {
            if current != Some(set_id) {
                out.push((self.package_set(set_id).await?, Vec::new()));
                current = Some(set_id);
            }
            out.last_mut()
                .expect("pushed above")
                .1
                .push((host_id, distro));
        }
        Ok(out)
    }
}
