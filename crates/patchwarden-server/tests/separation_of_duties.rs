//! Separation of duties on every path, on both backends: a relabel cannot take a change out of
//! manual approval (at submit, and before its hosts start); direct package jobs on hosts always
//! approved by hand are refused; users are accounts with stable ids and names unique without
//! regard to case; an approver created by the change's requester cannot approve it; user
//! administration (list, role, disable, rotate, revoke, expiry) is admin only and audited.

mod support;

use axum::http::{Method, StatusCode};
use patchwarden_model::fleet::Role;
use serde_json::{json, Value};
use support::Harness;

/// `POST /v1/changes` of a curl update of `kind` on `host`, as the holder of `token`.
async fn create_change(h: &Harness, token: &str, host: i64, kind: &str) -> (StatusCode, Value) {
    let body = json!({
        "title": "curl update",
        "kind": kind,
        "hosts": [host],
        "packages": [{"name": "curl", "version": "7.88.1-10+deb12u8"}],
    });
    h.json(&Method::POST, "/v1/changes", token, Some(body))
        .await
}

async fn set_role(h: &Harness, host: i64, role: &str) {
    let (status, body) = h
        .json(
            &Method::PUT,
            &format!("/v1/hosts/{host}/labels"),
            h.user(Role::Operator),
            Some(json!({ "role": role })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The audit log's entries of one action, oldest first.
async fn audit_of(h: &Harness, action: &str) -> Vec<Value> {
    let (status, body) = h
        .json(
            &Method::GET,
            &format!("/v1/audit?action={action}&limit=1000"),
            h.user(Role::Auditor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["entries"].as_array().expect("entries").clone()
}

async fn act(h: &Harness, token: &str, change: &str, action: &str) -> (StatusCode, Value) {
    h.json(
        &Method::POST,
        &format!("/v1/changes/{change}/actions"),
        token,
        Some(json!({ "action": action, "comment": "checked" })),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relabel_cannot_take_a_change_out_of_manual_approval() {
    for h in support::harnesses("sod_relabel").await {
        let a = h.host_a.0;
        let operator = h.user(Role::Operator).to_owned();
        // As found: a standard change on a database host is refused…
        set_role(&h, a, "database").await;
        let (status, body) = create_change(&h, &operator, a, "standard").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{}: {body}", h.backend);
        // …relabelled, created; relabelled back before submitting: the submit decides again.
        set_role(&h, a, "web").await;
        let (status, created) = create_change(&h, &operator, a, "standard").await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let first = created["id"].as_str().unwrap().to_owned();
        set_role(&h, a, "database").await;
        let (status, doc) = act(&h, &operator, &first, "submit").await;
        assert_eq!(status, StatusCode::OK, "{doc}");
        assert_eq!(
            doc["lifecycle"]["state"], "submitted",
            "{}: {doc}",
            h.backend
        );
        assert_eq!(doc["lifecycle"]["kind"], "normal", "{doc}");
        let trail = doc["lifecycle"]["audit"].as_array().unwrap();
        assert_eq!(trail[0]["action"], "escalate", "{doc}");
        assert!(
            trail[0]["comment"]
                .as_str()
                .unwrap()
                .contains("role=database"),
            "{doc}"
        );

        // Submitted and approved by policy as a web host; relabelled before the rollout starts:
        // the driver sends it back for approval.
        set_role(&h, a, "web").await;
        let (_, created) = create_change(&h, &operator, a, "standard").await;
        let second = created["id"].as_str().unwrap().to_owned();
        let (status, doc) = act(&h, &operator, &second, "submit").await;
        assert_eq!(status, StatusCode::OK, "{doc}");
        assert_eq!(doc["lifecycle"]["state"], "approved", "{doc}");
        set_role(&h, a, "database").await;
        h.driver().drive_changes().await;
        let (_, doc) = h
            .json(
                &Method::GET,
                &format!("/v1/changes/{second}"),
                &operator,
                None,
            )
            .await;
        let doc = if doc.get("change").is_some() {
            doc["change"].clone()
        } else {
            doc
        };
        assert_eq!(
            doc["lifecycle"]["state"], "submitted",
            "{}: {doc}",
            h.backend
        );
        assert_eq!(doc["lifecycle"]["kind"], "normal", "{doc}");
        assert!(doc["rollout"].is_null(), "no rollout was planned: {doc}");
        // The requester (an operator) cannot approve it; an approver can.
        let (status, body) = act(&h, &operator, &second, "approve").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, doc) = act(&h, h.user(Role::Approver), &second, "approve").await;
        assert_eq!(status, StatusCode::OK, "{doc}");
        assert_eq!(doc["lifecycle"]["state"], "approved", "{doc}");

        // Both escalations and every label change are in the audit log.
        let escalations: Vec<Value> = audit_of(&h, "change_transition")
            .await
            .into_iter()
            .filter(|e| e["detail"]["action"] == "escalate")
            .collect();
        assert_eq!(escalations.len(), 2, "{escalations:?}");
        assert!(escalations.iter().all(|e| e["actor"]["name"] == "policy"));
        let relabels = audit_of(&h, "host_labels_changed").await;
        assert_eq!(relabels.len(), 5, "{relabels:?}");
        h.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_jobs_on_manual_approval_hosts_are_refused() {
    for h in support::harnesses("sod_direct_jobs").await {
        let a = h.host_a.0;
        let operator = h.user(Role::Operator).to_owned();
        let job = json!({
            "operation": "install",
            "packages": [{"name": "curl", "version": "7.88.1-10+deb12u8"}],
            "reboot": "always",
        });
        set_role(&h, a, "database").await;
        let (status, body) = h
            .json(
                &Method::POST,
                &format!("/v1/hosts/{a}/jobs"),
                &operator,
                Some(job.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{}: {body}", h.backend);
        assert!(
            body["error"].as_str().unwrap().contains("role=database"),
            "{body}"
        );
        set_role(&h, a, "web").await;
        let (status, body) = h
            .json(
                &Method::POST,
                &format!("/v1/hosts/{a}/jobs"),
                &operator,
                Some(job),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let queued = audit_of(&h, "job_queued").await;
        assert_eq!(queued.len(), 1, "{queued:?}");
        assert_eq!(queued[0]["detail"]["direct"], "true", "{queued:?}");
        h.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_accounts_and_their_administration_is_audited() {
    for h in support::harnesses("sod_users").await {
        let admin = h.user(Role::Admin).to_owned();
        let create = |name: &str, role: &str| json!({ "name": name, "role": role });
        // Names: unique without regard to case, no bidirectional formatting characters.
        let (status, body) = h
            .json(
                &Method::POST,
                "/v1/users",
                &admin,
                Some(create("Admin-User", "approver")),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{}: {body}", h.backend);
        let (status, body) = h
            .json(
                &Method::POST,
                "/v1/users",
                &admin,
                Some(create("eve\u{202e}nimda", "approver")),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("bidirectional"),
            "{body}"
        );

        // An approver created by the requester cannot approve the requester's change.
        let (status, eve) = h
            .json(
                &Method::POST,
                "/v1/users",
                &admin,
                Some(create("eve", "approver")),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{eve}");
        let eve_token = eve["token"].as_str().unwrap().to_owned();
        let eve_id = eve["id"].as_i64().unwrap();
        let (status, created) = create_change(&h, &admin, h.host_a.0, "normal").await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let change = created["id"].as_str().unwrap().to_owned();
        assert_eq!(act(&h, &admin, &change, "submit").await.0, StatusCode::OK);
        let (status, body) = act(&h, &eve_token, &change, "approve").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("was created by admin-user"),
            "{body}"
        );
        let (status, body) = act(&h, h.user(Role::Approver), &change, "approve").await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // Listing: ids, who created whom; never tokens.
        let (status, users) = h.json(&Method::GET, "/v1/users", &admin, None).await;
        assert_eq!(status, StatusCode::OK, "{users}");
        let listed = users.as_array().unwrap();
        assert_eq!(listed.len(), 5, "{users}");
        let admin_id = listed.iter().find(|u| u["name"] == "admin-user").unwrap()["id"].clone();
        let eve_row = listed.iter().find(|u| u["id"] == eve_id).unwrap();
        assert_eq!(eve_row["created_by"], admin_id, "{users}");
        assert!(!users.to_string().contains("token\""), "{users}");
        let (status, _) = h
            .json(&Method::GET, "/v1/users", h.user(Role::Operator), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // Disable, enable, role, rotate, revoke, expiry.
        let user_uri = format!("/v1/users/{eve_id}");
        let can_read = |token: String| {
            let h = &h;
            async move { h.json(&Method::GET, "/v1/summary", &token, None).await.0 }
        };
        assert_eq!(can_read(eve_token.clone()).await, StatusCode::OK);
        let (status, body) = h
            .json(
                &Method::PATCH,
                &user_uri,
                &admin,
                Some(json!({"disabled": true})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(can_read(eve_token.clone()).await, StatusCode::UNAUTHORIZED);
        let (status, body) = h
            .json(
                &Method::PATCH,
                &user_uri,
                &admin,
                Some(json!({"disabled": false, "role": "auditor"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["role"], "auditor", "{body}");
        assert_eq!(can_read(eve_token.clone()).await, StatusCode::OK);
        let (status, rotated) = h
            .json(
                &Method::POST,
                &format!("{user_uri}/token"),
                &admin,
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        let new_token = rotated["token"].as_str().unwrap().to_owned();
        assert_eq!(can_read(eve_token.clone()).await, StatusCode::UNAUTHORIZED);
        assert_eq!(can_read(new_token.clone()).await, StatusCode::OK);
        let (status, body) = h
            .json(&Method::DELETE, &format!("{user_uri}/token"), &admin, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["token_revoked_at"].is_string(), "{body}");
        assert_eq!(can_read(new_token).await, StatusCode::UNAUTHORIZED);
        // A token that expires at once is refused; a lifetime beyond ten years is refused.
        let (status, expiring) = h
            .json(
                &Method::POST,
                &format!("{user_uri}/token"),
                &admin,
                Some(json!({"expires_secs": 0})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{expiring}");
        assert_eq!(
            can_read(expiring["token"].as_str().unwrap().to_owned()).await,
            StatusCode::UNAUTHORIZED
        );
        let (status, body) = h
            .json(
                &Method::POST,
                &format!("{user_uri}/token"),
                &admin,
                Some(json!({"expires_secs": u64::MAX})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, body) = h
            .json(
                &Method::POST,
                "/v1/enroll-tokens",
                &admin,
                Some(json!({"expires_secs": u64::MAX})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "the expired-at-birth token: {body}"
        );
        // The last enabled admin stays one.
        let (status, body) = h
            .json(
                &Method::PATCH,
                &format!("/v1/users/{admin_id}"),
                &admin,
                Some(json!({"role": "operator"})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (status, _) = h
            .json(
                &Method::PATCH,
                "/v1/users/99999",
                &admin,
                Some(json!({"disabled": true})),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Audited: each administration step, by the admin who did it.
        let updated = audit_of(&h, "user_updated").await;
        assert_eq!(updated.len(), 2, "{updated:?}");
        assert_eq!(updated[1]["detail"]["role.before"], "approver");
        assert_eq!(updated[1]["detail"]["role.after"], "auditor");
        assert_eq!(audit_of(&h, "user_token_rotated").await.len(), 2);
        assert_eq!(audit_of(&h, "user_token_revoked").await.len(), 1);
        let created = audit_of(&h, "user_created").await;
        assert!(
            created.iter().all(|e| e["actor"]["name"] == "admin-user"),
            "{created:?}"
        );
        h.finish().await;
    }
}
