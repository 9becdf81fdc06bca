//! Package sets stored once and shared by every host holding exactly those package versions
//! (migration 0017): a set is a JSON list of ascending `package_version` ids, stored and cached like
//! every shared id list (`id_lists`). A host points at its set from `host_package_set.set_id`; a
//! knowledge-base change reads the sets in use, each once, with their hosts.

use std::sync::Arc;

use super::*;

/// A package set in use: its id and ids, and the hosts holding it.
pub(crate) struct SetInUse {
    pub id: i64,
    pub packages: Arc<[i64]>,
    pub holders: Vec<SetHolder>,
}

/// A host holding a package set, with what a knowledge-base change needs of it.
pub(crate) struct SetHolder {
    pub host_id: i64,
    pub distro: Option<String>,
    pub release: Option<String>,
    /// The finding set it holds (None: none computed yet).
    pub finding_set: Option<i64>,
    pub view_version: i64,
}

impl Store {
    /// The package version ids of a set (ascending).
    pub(crate) async fn package_set(&self, id: i64) -> Result<Arc<[i64]>, StoreError> {
        self.package_sets.get(self, id).await
    }

    /// The distinct package sets hosts hold now, with the hosts (not revoked) holding each, their
    /// release, finding set and view version: what a knowledge-base change is matched against,
    /// set by set.
    pub(crate) async fn package_sets_in_use(&self) -> Result<Vec<SetInUse>, StoreError> {
        type Row = (i64, i64, Option<String>, Option<String>, Option<i64>, i64);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT s.set_id, s.host_id, h.distro, h.release, f.set_id, h.view_version \
             FROM host_package_set s JOIN host h ON h.id = s.host_id \
             LEFT JOIN host_finding_set f ON f.host_id = h.id \
             WHERE h.revoked_at IS NULL AND s.set_id IS NOT NULL ORDER BY s.set_id, s.host_id",
        )
        .fetch_all(self.pool())
        .await
        .context(|| "reading the package sets in use".into())?;
        let mut out: Vec<SetInUse> = Vec::new();
        for (set_id, host_id, distro, release, finding_set, view_version) in rows {
            if out.last().is_none_or(|s| s.id != set_id) {
                out.push(SetInUse {
                    id: set_id,
                    packages: self.package_set(set_id).await?,
                    holders: Vec::new(),
                });
            }
            out.last_mut()
                .expect("pushed above")
                .holders
                .push(SetHolder {
                    host_id,
                    distro,
                    release,
                    finding_set,
                    view_version,
                });
        }
        Ok(out)
    }
}
