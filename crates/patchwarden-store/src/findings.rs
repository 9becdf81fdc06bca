//! Finding history per host: when each (package, advisory) finding was first and last seen, so
//! deadlines counted from detection survive rescans.

use std::collections::HashMap;

use crate::batch::Value;
use crate::{Context, Store, StoreError};

impl Store {
    /// Records that `findings` (package, advisory id) were seen on `host` at `now`, and returns the
    /// first-seen time of each (earlier sightings kept, new ones stamped `now`). One transaction.
    pub async fn record_findings_seen(
        &self,
        host: &str,
        findings: &[(String, String)],
        now: &str,
    ) -> Result<HashMap<(String, String), String>, StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            &self.sql("SELECT package, advisory_id, first_seen FROM finding_seen WHERE host = $1"),
        )
        .bind(host)
        .fetch_all(&mut *tx)
        .await
        .context(|| format!("reading the finding history of {host}"))?;
        let mut first: HashMap<(String, String), String> =
            rows.into_iter().map(|(p, a, f)| ((p, a), f)).collect();
        let mut new_rows = Vec::new();
        let mut seen_keys = Vec::new();
        for key in findings {
            if first.contains_key(key) {
                seen_keys.push(key.clone());
                continue;
            }
            first.insert(key.clone(), now.to_owned());
            new_rows.push(vec![
                Value::from(host),
                Value::from(key.0.as_str()),
                Value::from(key.1.as_str()),
                Value::from(now),
                Value::from(now),
            ]);
        }
        self.insert_rows(
            &mut tx,
            "finding_seen",
            &["host", "package", "advisory_id", "first_seen", "last_seen"],
            &new_rows,
        )
        .await?;
        let update = self.sql(
            "UPDATE finding_seen SET last_seen = $4 WHERE host = $1 AND package = $2 AND advisory_id = $3",
        );
        for (package, advisory) in &seen_keys {
            sqlx::query(&update)
                .bind(host)
                .bind(package)
                .bind(advisory)
                .bind(now)
                .execute(&mut *tx)
                .await
                .context(|| format!("updating the finding history of {host}"))?;
        }
        tx.commit()
            .await
            .context(|| "committing the finding history".into())?;
        let wanted: std::collections::HashSet<&(String, String)> = findings.iter().collect();
        first.retain(|k, _| wanted.contains(k));
        Ok(first)
    }
}
