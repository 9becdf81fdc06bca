//! Test support (feature `testing`): fresh stores for one test on every backend available — a SQLite
//! file, and PostgreSQL in a schema of its own when `PATCHWARDEN_TEST_POSTGRES` holds a URL. Without
//! that variable the PostgreSQL half is skipped with a message, unless `PATCHWARDEN_REQUIRE_ORACLES=1`
//! makes that a failure.

use std::path::Path;

use crate::Store;

/// A store made for one test; [`TestStore::finish`] drops its PostgreSQL schema.
pub struct TestStore {
    pub store: Store,
    schema: Option<(String, String)>,
}

impl TestStore {
    pub async fn finish(self) {
        self.store.close().await;
        if let Some((url, schema)) = self.schema {
            let admin = Store::open(&url).await.expect("open PostgreSQL");
            admin
                .execute_raw(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await
                .expect("drop the test schema");
            admin.close().await;
        }
    }
}

/// One fresh store per backend for the test `name`; SQLite files go under `dir`.
pub async fn stores(name: &str, dir: &Path) -> Vec<TestStore> {
    let dir = dir.join(format!("store-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    let sqlite = Store::open(dir.join("kb.db").to_str().expect("UTF-8 path"))
        .await
        .expect("open SQLite");
    let mut out = vec![TestStore {
        store: sqlite,
        schema: None,
    }];
    match std::env::var("PATCHWARDEN_TEST_POSTGRES") {
        Ok(url) => {
            let schema = format!("pw_test_{name}_{}", std::process::id());
            let admin = Store::open(&url).await.expect("open PostgreSQL");
            admin
                .execute_raw(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await
                .expect("drop schema");
            admin
                .execute_raw(&format!("CREATE SCHEMA {schema}"))
                .await
                .expect("create schema");
            admin.close().await;
            let sep = if url.contains('?') { '&' } else { '?' };
            let store = Store::open(&format!("{url}{sep}options=-c%20search_path%3D{schema}"))
                .await
                .expect("open the test schema");
            out.push(TestStore {
                store,
                schema: Some((url, schema)),
            });
        }
        Err(_) if std::env::var("PATCHWARDEN_REQUIRE_ORACLES").as_deref() == Ok("1") => {
            panic!("PATCHWARDEN_TEST_POSTGRES is not set")
        }
        Err(_) => eprintln!("SKIPPED (PostgreSQL half): PATCHWARDEN_TEST_POSTGRES is not set"),
    }
    out
}
