//! Package sets stored once and shared by every host holding exactly those package versions
//! (migration 0017): a set is a JSON list of ascending `package_version` ids, stored and cached like
//! every shared id list (`id_lists`). A host points at its set from `host_package_set.set_id`; a
//! knowledge-base change reads the sets in use, each once, with their hosts.

use std::sync::Arc;

use super::*;

/// A package set in use: its ids, and its hosts with their distribution.
pub(crate) type SetInUse = (Arc<[i64]>, Vec<(i64, Option<String>)>);

impl Store {
    /// The package version ids of a set (ascending).
    pub(crate) async fn package_set(&self, id: i64) -> Result<Arc<[i64]>, StoreError> {
        self.package_sets.get(self, id).await
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
