//! The expected-asset list: the hosts that should exist (the summary lists those never enrolled).

use super::*;

impl Store {
    /// Replaces the list of hosts that should exist (`source` says where it came from).
    pub async fn replace_expected_assets(
        &self,
        assets: &[(String, Vec<String>)],
        source: &str,
    ) -> Result<(), StoreError> {
        let (_writer, mut tx) = self.begin().await?;
        sqlx::query("DELETE FROM expected_asset")
            .execute(&mut *tx)
            .await
            .context(|| "clearing the asset list".into())?;
        let now = patchwarden_model::now_rfc3339();
        let mut seen = HashSet::new();
        let rows: Vec<Vec<Value>> = assets
            .iter()
            .filter(|(name, _)| seen.insert(name.clone()))
            .map(|(name, groups)| {
                vec![
                    Value::from(name.as_str()),
                    Value::from(source),
                    Value::from(serde_json::to_string(groups).expect("groups serialize")),
                    Value::from(now.as_str()),
                ]
            })
            .collect();
        self.insert_rows(
            &mut tx,
            "expected_asset",
            &["name", "source", "groups", "imported_at"],
            &rows,
        )
        .await?;
        tx.commit()
            .await
            .context(|| "committing the asset list".into())?;
        Ok(())
    }
}
