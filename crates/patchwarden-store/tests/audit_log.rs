//! The audit log on both backends: concurrent appends keep one chain; the table refuses updates
//! and deletes; and with its guard dropped (as someone with the database's rights could), an
//! altered, deleted or reordered row is named by the chain's verification.

use patchwarden_model::audit::{verify_chain, Actor, AuditAction, AuditEvent, ChainBreak};
use patchwarden_store::testing::{stores, TestStore};
use patchwarden_store::Backend;

fn event(n: usize) -> AuditEvent {
    AuditEvent::new(
        Actor::User {
            name: format!("user-{}", n % 3),
        },
        AuditAction::HostLabelsChanged,
        format!("host:{n}"),
    )
    .with("after.role", "database")
}

async fn fresh(test: &str) -> Vec<TestStore> {
    stores(test, std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))).await
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_appends_keep_one_chain_and_tampering_is_named() {
    for test_store in fresh("audit").await {
        let store = test_store.store.clone();
        // 8 writers × 10 events at once.
        let mut tasks = Vec::new();
        for w in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..10 {
                    store
                        .append_audit(&event(w * 10 + i), &patchwarden_model::now_rfc3339())
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let chain = store.audit_chain().await.unwrap();
        assert_eq!(chain.len(), 80);
        assert_eq!(verify_chain(&chain, &[], |_| true).unwrap().entries, 80);

        // patchwarden never updates or deletes; the table refuses it.
        assert!(store
            .execute_raw("UPDATE audit_log SET subject = 'host:0' WHERE seq = 5")
            .await
            .is_err());
        assert!(store
            .execute_raw("DELETE FROM audit_log WHERE seq = 5")
            .await
            .is_err());

        // Someone with the database's rights drops the guard and edits rows directly.
        match store.backend() {
            Backend::Sqlite => {
                store
                    .execute_raw("DROP TRIGGER audit_log_no_update")
                    .await
                    .unwrap();
                store
                    .execute_raw("DROP TRIGGER audit_log_no_delete")
                    .await
                    .unwrap();
            }
            Backend::Postgres => store
                .execute_raw("DROP TRIGGER audit_log_append_only ON audit_log")
                .await
                .unwrap(),
        }
        let check = || async { verify_chain(&store.audit_chain().await.unwrap(), &[], |_| true) };
        store
            .execute_raw("UPDATE audit_log SET detail = '{\"after.role\":\"\"}' WHERE seq = 40")
            .await
            .unwrap();
        assert_eq!(check().await, Err(ChainBreak::Altered { seq: 40 }));
        // Put back: the chain is whole again (the verification reads the rows, nothing cached).
        store
            .execute_raw(
                "UPDATE audit_log SET detail = '{\"after.role\":\"database\"}' WHERE seq = 40",
            )
            .await
            .unwrap();
        assert!(check().await.is_ok());
        // Two entries swapped.
        store
            .execute_raw("UPDATE audit_log SET seq = -1 WHERE seq = 20")
            .await
            .unwrap();
        store
            .execute_raw("UPDATE audit_log SET seq = 20 WHERE seq = 21")
            .await
            .unwrap();
        store
            .execute_raw("UPDATE audit_log SET seq = 21 WHERE seq = -1")
            .await
            .unwrap();
        assert_eq!(check().await, Err(ChainBreak::Unlinked { seq: 20 }));
        store
            .execute_raw("UPDATE audit_log SET seq = -1 WHERE seq = 20")
            .await
            .unwrap();
        store
            .execute_raw("UPDATE audit_log SET seq = 20 WHERE seq = 21")
            .await
            .unwrap();
        store
            .execute_raw("UPDATE audit_log SET seq = 21 WHERE seq = -1")
            .await
            .unwrap();
        assert!(check().await.is_ok());
        // One removed.
        store
            .execute_raw("DELETE FROM audit_log WHERE seq = 70")
            .await
            .unwrap();
        assert_eq!(
            check().await,
            Err(ChainBreak::Removed {
                seq: 71,
                expected: 70
            })
        );
        test_store.finish().await;
    }
}
