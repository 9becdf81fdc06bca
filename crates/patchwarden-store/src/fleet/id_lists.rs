//! Lists of ids stored once and shared, content-addressed by the SHA-256 of their JSON text:
//! finding sets (`finding_set.key_ids`) and package sets (`package_set.package_ids`), each a table
//! of (id, digest, list, size). Rows never change once stored, so each process caches ids by
//! digest and lists by id (emptied when they grow past a bound, then refilled as read).

use std::sync::Arc;

use sha2::{Digest, Sha256};
use sqlx::AnyConnection;

use super::*;

/// Lists cached beyond this are forgotten.
const CACHE_LIMIT: usize = 50_000;

/// Adds `entries` to a cache, emptying it first when it has grown past `limit`.
pub(super) fn remember<K: std::hash::Hash + Eq, V>(
    cache: &std::sync::Mutex<HashMap<K, V>>,
    limit: usize,
    entries: impl IntoIterator<Item = (K, V)>,
) {
    if let Ok(mut cache) = cache.lock() {
        if cache.len() > limit {
            cache.clear();
        }
        cache.extend(entries);
    }
}

/// The stored text of an id list (ascending, no repeats) and its digest.
fn id_list_text(ids: &[i64]) -> (String, String) {
    let text = ids_json(ids);
    let digest = patchwarden_model::fleet::hex(&Sha256::digest(text.as_bytes()));
    (text, digest)
}

/// One table of shared id lists and this process's cache of it.
pub(crate) struct IdLists {
    table: &'static str,
    column: &'static str,
    /// What one list is called in errors ("finding set").
    what: &'static str,
    ids: std::sync::Mutex<HashMap<String, i64>>,
    lists: std::sync::Mutex<HashMap<i64, Arc<[i64]>>>,
}

/// A list interned in a transaction: its id, and what to cache once the transaction committed
/// (`None`: it was cached already).
pub(crate) struct Interned {
    pub id: i64,
    remember: Option<(String, Arc<[i64]>)>,
}

impl IdLists {
    pub(crate) fn new(table: &'static str, column: &'static str, what: &'static str) -> IdLists {
        IdLists {
            table,
            column,
            what,
            ids: Default::default(),
            lists: Default::default(),
        }
    }

    /// The id of the list of exactly `ids` (ascending, no repeats), stored through `conn` (a
    /// transaction's) if new.
    pub(crate) async fn intern(
        &self,
        store: &Store,
        conn: &mut AnyConnection,
        ids: &[i64],
    ) -> Result<Interned, StoreError> {
        let (text, digest) = id_list_text(ids);
        self.intern_text(store, conn, ids, text, digest).await
    }

    /// The id of the list of exactly `ids`, if this process knows it is stored.
    pub(crate) fn known(&self, ids: &[i64]) -> Option<i64> {
        let (_, digest) = id_list_text(ids);
        self.ids.lock().ok().and_then(|c| c.get(&digest).copied())
    }

    /// [`IdLists::intern`] for several lists (each ascending, no repeats), in one transaction;
    /// their ids in the order given. Stored in digest order: concurrent transactions interning
    /// the same lists take their locks in one order.
    pub(crate) async fn intern_many(
        &self,
        store: &Store,
        conn: &mut AnyConnection,
        lists: &[&[i64]],
    ) -> Result<Vec<Interned>, StoreError> {
        let mut texts: Vec<(usize, String, String)> = lists
            .iter()
            .enumerate()
            .map(|(n, ids)| {
                let (text, digest) = id_list_text(ids);
                (n, text, digest)
            })
            .collect();
        texts.sort_unstable_by(|a, b| a.2.cmp(&b.2));
        let mut out: Vec<Option<Interned>> = (0..lists.len()).map(|_| None).collect();
        for (n, text, digest) in texts {
            out[n] = Some(
                self.intern_text(store, &mut *conn, lists[n], text, digest)
                    .await?,
            );
        }
        Ok(out.into_iter().flatten().collect())
    }

    async fn intern_text(
        &self,
        store: &Store,
        conn: &mut AnyConnection,
        ids: &[i64],
        text: String,
        digest: String,
    ) -> Result<Interned, StoreError> {
        if let Some(id) = self.ids.lock().ok().and_then(|c| c.get(&digest).copied()) {
            return Ok(Interned { id, remember: None });
        }
        let (table, column, what) = (self.table, self.column, self.what);
        sqlx::query(&store.sql(&format!(
            "INSERT INTO {table} (digest, {column}, size) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
        )))
        .bind(digest.as_str())
        .bind(text.as_str())
        .bind(ids.len() as i64)
        .execute(&mut *conn)
        .await
        .context(|| format!("storing a {what}"))?;
        let id: i64 =
            sqlx::query_scalar(&store.sql(&format!("SELECT id FROM {table} WHERE digest = $1")))
                .bind(digest.as_str())
                .fetch_one(&mut *conn)
                .await
                .context(|| format!("reading a {what}"))?;
        Ok(Interned {
            id,
            remember: Some((digest, Arc::from(ids))),
        })
    }

    /// Caches what `intern` stored, once its transaction committed.
    pub(crate) fn committed(&self, interned: Interned) {
        if let Some((digest, list)) = interned.remember {
            remember(&self.ids, CACHE_LIMIT, [(digest, interned.id)]);
            remember(&self.lists, CACHE_LIMIT, [(interned.id, list)]);
        }
    }

    /// The ids of list `id` (ascending).
    pub(crate) async fn get(&self, store: &Store, id: i64) -> Result<Arc<[i64]>, StoreError> {
        if let Some(list) = self.lists.lock().ok().and_then(|c| c.get(&id).cloned()) {
            return Ok(list);
        }
        let (table, column, what) = (self.table, self.column, self.what);
        let text: String =
            sqlx::query_scalar(&store.sql(&format!("SELECT {column} FROM {table} WHERE id = $1")))
                .bind(id)
                .fetch_one(store.pool())
                .await
                .context(|| format!("reading {what} {id}"))?;
        let list: Arc<[i64]> = serde_json::from_str::<Vec<i64>>(&text)
            .map_err(|e| StoreError::new(format!("{what} {id}: {e}")))?
            .into();
        remember(&self.lists, CACHE_LIMIT, [(id, list.clone())]);
        Ok(list)
    }
}
