//! Change requests: the state machine between a plan and its rollout, with separation of duties
//! and an audit trail of every transition (who, when, from, to, why).
//!
//! ```text
//! draft ─submit─► submitted ─approve─► approved ─schedule─► scheduled ─start─► running ─complete─► completed
//!   │               │ (standard: approved by policy at submit)                    ├─fail─► failed
//!   │               └─reject─► rejected                                           └─roll back─► rolled back
//!   └─cancel (draft, submitted, approved, scheduled, running)─► cancelled    (failed, completed ─roll back─►)
//! ```
//! - *standard* changes are pre-approved by policy: submitting approves them (recorded as the
//!   policy's approval), unless they touch a host class the policy always reserves for manual
//!   approval (database and authentication servers, say) — then they must be *normal*;
//! - *normal* changes need `approvals_required` approvals by distinct users with the approver (or
//!   admin) role, never by the requester;
//! - *emergency* changes (a KEV-listed or actively exploited flaw) need one approval, with a
//!   comment, and the policy may let them run outside the regular windows with a shorter soak.
//!
//! Auditors can read, never act. Every refusal says why.

use patchwarden_model::fleet::Role;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Standard,
    Normal,
    Emergency,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeState {
    Draft,
    Submitted,
    Approved,
    Rejected,
    Scheduled,
    Running,
    Completed,
    Failed,
    RolledBack,
    Cancelled,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Standard => "standard",
            ChangeKind::Normal => "normal",
            ChangeKind::Emergency => "emergency",
        }
    }
}

impl ChangeState {
    /// The state's name in documents and the store (`rolled_back`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeState::Draft => "draft",
            ChangeState::Submitted => "submitted",
            ChangeState::Approved => "approved",
            ChangeState::Rejected => "rejected",
            ChangeState::Scheduled => "scheduled",
            ChangeState::Running => "running",
            ChangeState::Completed => "completed",
            ChangeState::Failed => "failed",
            ChangeState::RolledBack => "rolled_back",
            ChangeState::Cancelled => "cancelled",
        }
    }

    /// No transition leaves it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ChangeState::Rejected | ChangeState::RolledBack | ChangeState::Cancelled
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    Submit,
    Approve,
    Reject,
    Schedule,
    Start,
    Complete,
    Fail,
    RollBack,
    Cancel,
    /// The policy sends a standard change back for approval: a host's labels now put it in a
    /// class that is always approved by hand (never asked for by a user).
    Escalate,
}

impl ChangeAction {
    /// The action's name in requests and the audit log (`roll_back`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Submit => "submit",
            ChangeAction::Approve => "approve",
            ChangeAction::Reject => "reject",
            ChangeAction::Schedule => "schedule",
            ChangeAction::Start => "start",
            ChangeAction::Complete => "complete",
            ChangeAction::Fail => "fail",
            ChangeAction::RollBack => "roll_back",
            ChangeAction::Cancel => "cancel",
            ChangeAction::Escalate => "escalate",
        }
    }
}

/// Who acts: a user with a role, or the system itself (the policy, the rollout engine).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    User {
        name: String,
        role: Role,
        /// The user's stable id (absent in documents written before users had one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<i64>,
        /// Who created the account, who created that one, and so on (ids, nearest first): an
        /// approver made by the requester through any chain of accounts is the requester's.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        creators: Vec<i64>,
    },
    System {
        component: String,
    },
}

impl Actor {
    /// A user known by name only (tests, documents of old).
    pub fn user(name: &str, role: Role) -> Actor {
        Actor::User {
            name: name.into(),
            role,
            id: None,
            creators: Vec::new(),
        }
    }

    /// A user account: its id, name, role and its chain of creators (nearest first).
    pub fn account(id: i64, name: &str, role: Role, creators: Vec<i64>) -> Actor {
        Actor::User {
            name: name.into(),
            role,
            id: Some(id),
            creators,
        }
    }

    fn id(&self) -> Option<i64> {
        match self {
            Actor::User { id, .. } => *id,
            Actor::System { .. } => None,
        }
    }

    pub fn system(component: &str) -> Actor {
        Actor::System {
            component: component.into(),
        }
    }

    fn name(&self) -> &str {
        match self {
            Actor::User { name, .. } => name,
            Actor::System { component } => component,
        }
    }
}

/// One transition, as kept in the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// RFC 3339.
    pub at: String,
    pub actor: Actor,
    pub action: ChangeAction,
    pub from: ChangeState,
    pub to: ChangeState,
    pub comment: Option<String>,
}

/// What the policy says about changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChangePolicy {
    /// Distinct approvals a normal change needs.
    pub approvals_required: usize,
    /// Host labels (`key=value`) or groups whose changes are always approved by hand.
    pub manual_approval: Vec<String>,
    /// Emergency changes may start outside the regular maintenance windows.
    pub emergency_outside_windows: bool,
    /// Operators may queue package jobs directly (without a change) on hosts of a manual-approval
    /// class. Off by default: on such hosts every package change goes through an approved change.
    pub direct_jobs_on_manual_hosts: bool,
}

impl Default for ChangePolicy {
    fn default() -> Self {
        ChangePolicy {
            approvals_required: 1,
            manual_approval: vec!["role=database".into(), "role=authentication".into()],
            emergency_outside_windows: true,
            direct_jobs_on_manual_hosts: false,
        }
    }
}

impl ChangePolicy {
    /// Whether a change of `kind` may cover hosts of these classes (`key=value` labels and group
    /// names); the reason when not.
    pub fn allows(&self, kind: ChangeKind, host_classes: &[String]) -> Result<(), ManualApproval> {
        if kind != ChangeKind::Standard {
            return Ok(());
        }
        match self.manual_class(host_classes) {
            Some(class) => Err(ManualApproval::StandardChange {
                class: class.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The first of these classes that is always approved by hand.
    pub fn manual_class<'a>(&self, host_classes: &'a [String]) -> Option<&'a String> {
        host_classes
            .iter()
            .find(|c| self.manual_approval.contains(c))
    }

    /// Whether an operator may queue a package job directly on a host of these classes; the
    /// reason when not.
    pub fn allows_direct_job(&self, host_classes: &[String]) -> Result<(), ManualApproval> {
        match self.manual_class(host_classes) {
            Some(class) if !self.direct_jobs_on_manual_hosts => Err(ManualApproval::DirectJob {
                class: class.clone(),
            }),
            _ => Ok(()),
        }
    }
}

/// Why the policy refuses a path that would bypass approval by hand.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManualApproval {
    #[error("hosts of class {class} are always approved by hand: make it a normal change")]
    StandardChange { class: String },
    #[error(
        "hosts of class {class} are always approved by hand: package jobs on them go through an \
         approved change (or the policy sets direct_jobs_on_manual_hosts)"
    )]
    DirectJob { class: String },
}

/// Why a transition was refused, for an API to answer with the right status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The actor may not do this (role, separation of duties).
    Forbidden,
    /// Not a transition of the change's state.
    Conflict,
    /// Something the transition needs is missing (a comment).
    Incomplete,
}

/// A refused transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransitionRefused {
    pub action: ChangeAction,
    pub state: ChangeState,
    pub kind: Refusal,
    pub reason: String,
}

impl std::fmt::Display for TransitionRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot {:?} a change that is {:?}: {}",
            self.action, self.state, self.reason
        )
    }
}

impl std::error::Error for TransitionRefused {}

/// A change request's lifecycle (the plan, scope and schedule it carries live beside it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChangeLifecycle {
    pub kind: ChangeKind,
    pub state: ChangeState,
    pub requested_by: String,
    /// The requester's stable user id (absent in documents written before users had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by_id: Option<i64>,
    /// Users who approved (distinct).
    pub approved_by: Vec<String>,
    pub audit: Vec<AuditEntry>,
}

impl ChangeLifecycle {
    pub fn new(kind: ChangeKind, requested_by: &str) -> ChangeLifecycle {
        ChangeLifecycle {
            kind,
            state: ChangeState::Draft,
            requested_by: requested_by.into(),
            requested_by_id: None,
            approved_by: Vec::new(),
            audit: Vec::new(),
        }
    }

    /// Applies `action` by `actor` at `at`, or says why not (the state is then unchanged).
    pub fn apply(
        &mut self,
        policy: &ChangePolicy,
        actor: &Actor,
        action: ChangeAction,
        comment: Option<&str>,
        at: &str,
    ) -> Result<ChangeState, TransitionRefused> {
        use ChangeAction as A;
        use ChangeState as S;
        let state = self.state;
        let refusal = |kind: Refusal, reason: String| TransitionRefused {
            action,
            state,
            kind,
            reason,
        };
        let refuse = |reason: String| refusal(Refusal::Forbidden, reason);
        let role = match actor {
            Actor::User { role, .. } => Some(*role),
            Actor::System { .. } => None,
        };
        if role == Some(Role::Auditor) {
            return Err(refuse("auditors have read-only access".into()));
        }
        let operator = matches!(role, None | Some(Role::Operator | Role::Admin));
        // By id where both are known (names are unique without regard to case; ids never change).
        let is_requester = match (actor.id(), self.requested_by_id) {
            (Some(a), Some(r)) => a == r,
            _ => {
                matches!(actor, Actor::User { name, .. } if name.to_lowercase() == self.requested_by.to_lowercase())
            }
        };
        let to = match (action, self.state) {
            (A::Submit, S::Draft) => {
                if !(is_requester || operator) {
                    return Err(refuse("only the requester or an operator submits".into()));
                }
                S::Submitted
            }
            (A::Approve, S::Submitted) => {
                let Actor::User {
                    name,
                    role,
                    creators,
                    ..
                } = actor
                else {
                    return Err(refuse("approvals are given by people".into()));
                };
                if !matches!(role, Role::Approver | Role::Admin) {
                    return Err(refuse(format!("{name} does not have the approver role")));
                }
                if is_requester {
                    return Err(refuse(format!(
                        "{name} requested this change and cannot approve it"
                    )));
                }
                if let Some(requester) = self.requested_by_id {
                    if let Some(depth) = creators.iter().position(|c| *c == requester) {
                        let how = if depth == 0 {
                            ""
                        } else {
                            " (through other accounts)"
                        };
                        return Err(refuse(format!(
                            "{name}'s account was created by {}{how}, who requested this \
                             change: it cannot approve it",
                            self.requested_by
                        )));
                    }
                }
                if self.approved_by.contains(name) {
                    return Err(refuse(format!("{name} has approved it already")));
                }
                if self.kind == ChangeKind::Emergency && comment.is_none_or(|c| c.trim().is_empty())
                {
                    return Err(refusal(
                        Refusal::Incomplete,
                        "an emergency approval must say why (a comment)".into(),
                    ));
                }
                let needed = match self.kind {
                    ChangeKind::Normal => policy.approvals_required.max(1),
                    _ => 1,
                };
                if self.approved_by.len() + 1 < needed {
                    self.approved_by.push(name.clone());
                    self.record(actor, action, S::Submitted, comment, at);
                    return Ok(S::Submitted);
                }
                S::Approved
            }
            (A::Reject, S::Submitted) => {
                if !matches!(role, Some(Role::Approver | Role::Admin)) {
                    return Err(refuse("only approvers reject".into()));
                }
                if comment.is_none_or(|c| c.trim().is_empty()) {
                    return Err(refusal(
                        Refusal::Incomplete,
                        "a rejection must say why (a comment)".into(),
                    ));
                }
                S::Rejected
            }
            (A::Schedule, S::Approved) if operator => S::Scheduled,
            (A::Start, S::Scheduled) if operator => S::Running,
            (A::Complete, S::Running) if operator => S::Completed,
            (A::Fail, S::Running) if operator => S::Failed,
            (A::RollBack, S::Running | S::Failed | S::Completed) if operator => S::RolledBack,
            (A::Cancel, S::Draft | S::Submitted | S::Approved | S::Scheduled | S::Running)
                if operator || is_requester =>
            {
                S::Cancelled
            }
            (A::Escalate, _) => {
                return Err(refuse(
                    "only the policy sends a change back for approval".into(),
                ))
            }
            (
                A::Schedule | A::Start | A::Complete | A::Fail | A::RollBack | A::Cancel,
                S::Approved
                | S::Scheduled
                | S::Running
                | S::Failed
                | S::Completed
                | S::Draft
                | S::Submitted,
            ) if !operator && !is_requester => {
                return Err(refuse(format!("{} is not an operator", actor.name())));
            }
            _ => {
                return Err(refusal(
                    Refusal::Conflict,
                    "not a transition of this state".into(),
                ))
            }
        };
        if action == A::Approve {
            if let Actor::User { name, .. } = actor {
                self.approved_by.push(name.clone());
            }
        }
        let from = self.state;
        self.state = to;
        self.record(actor, action, from, comment, at);
        // A standard change is approved by policy the moment it is submitted.
        if action == A::Submit && self.kind == ChangeKind::Standard {
            self.state = S::Approved;
            self.record(
                &Actor::system("policy"),
                A::Approve,
                S::Submitted,
                Some("standard change: pre-approved by policy"),
                at,
            );
        }
        Ok(self.state)
    }

    /// Decides a standard change's approval class again from its hosts' classes now (at submit
    /// and before each wave starts): when one of them is always approved by hand, the change
    /// becomes a normal change and goes back for approval (from draft it stays a draft, to be
    /// submitted for approval; from approved, scheduled or running it is submitted again, its
    /// earlier approvals void). Answers the reason when it did, recorded as the policy's
    /// escalation.
    pub fn reclassify(
        &mut self,
        policy: &ChangePolicy,
        host_classes: &[String],
        at: &str,
    ) -> Option<String> {
        use ChangeState as S;
        if self.kind != ChangeKind::Standard {
            return None;
        }
        if !matches!(
            self.state,
            S::Draft | S::Submitted | S::Approved | S::Scheduled | S::Running
        ) {
            return None;
        }
        let class = policy.manual_class(host_classes)?;
        let reason = format!(
            "a host is now of class {class}, always approved by hand: the change becomes a \
             normal change and needs approval"
        );
        let from = self.state;
        self.kind = ChangeKind::Normal;
        self.approved_by.clear();
        if from != S::Draft {
            self.state = S::Submitted;
        }
        self.record(
            &Actor::system("policy"),
            ChangeAction::Escalate,
            from,
            Some(&reason),
            at,
        );
        Some(reason)
    }

    fn record(
        &mut self,
        actor: &Actor,
        action: ChangeAction,
        from: ChangeState,
        comment: Option<&str>,
        at: &str,
    ) {
        self.audit.push(AuditEntry {
            at: at.into(),
            actor: actor.clone(),
            action,
            from,
            to: self.state,
            comment: comment.map(str::to_owned),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChangeAction as A;
    use ChangeState as S;

    const AT: &str = "2026-12-02T10:00:00Z";

    /// The names the store's columns carry (`as_str`) are the document's (serde).
    #[test]
    fn state_and_kind_names_are_their_serialized_names() {
        let name = |v: serde_json::Value| v.as_str().unwrap().to_owned();
        for s in [
            S::Draft,
            S::Submitted,
            S::Approved,
            S::Rejected,
            S::Scheduled,
            S::Running,
            S::Completed,
            S::Failed,
            S::RolledBack,
            S::Cancelled,
        ] {
            assert_eq!(s.as_str(), name(serde_json::to_value(s).unwrap()));
        }
        for k in [
            ChangeKind::Standard,
            ChangeKind::Normal,
            ChangeKind::Emergency,
        ] {
            assert_eq!(k.as_str(), name(serde_json::to_value(k).unwrap()));
        }
    }

    /// A change of `kind` requested and submitted by the operator alice.
    fn submitted_by_alice(kind: ChangeKind, policy: &ChangePolicy) -> ChangeLifecycle {
        let mut change = ChangeLifecycle::new(kind, "alice");
        let alice = Actor::user("alice", Role::Operator);
        change.apply(policy, &alice, A::Submit, None, AT).unwrap();
        change
    }

    #[test]
    fn a_normal_change_needs_an_approver_who_is_not_the_requester() {
        let policy = ChangePolicy::default();
        let alice = Actor::user("alice", Role::Operator);
        let mut change = ChangeLifecycle::new(ChangeKind::Normal, "alice");
        assert_eq!(
            change.apply(&policy, &alice, A::Submit, None, AT),
            Ok(S::Submitted)
        );
        // Alice is also an approver elsewhere: still her own change.
        let alice_approver = Actor::user("alice", Role::Approver);
        let own = change
            .apply(&policy, &alice_approver, A::Approve, None, AT)
            .unwrap_err();
        assert!(own.reason.contains("cannot approve"), "{own}");
        let bob_operator = Actor::user("bob", Role::Operator);
        assert!(change
            .apply(&policy, &bob_operator, A::Approve, None, AT)
            .unwrap_err()
            .reason
            .contains("approver role"));
        let auditor = Actor::user("carol", Role::Auditor);
        assert!(change
            .apply(&policy, &auditor, A::Cancel, None, AT)
            .is_err());
        assert_eq!(change.state, S::Submitted, "refusals change nothing");
        let bob = Actor::user("bob", Role::Approver);
        assert_eq!(
            change.apply(&policy, &bob, A::Approve, Some("ok"), AT),
            Ok(S::Approved)
        );
        assert_eq!(
            change.apply(&policy, &alice, A::Schedule, None, AT),
            Ok(S::Scheduled)
        );
        let engine = Actor::system("rollout");
        assert_eq!(
            change.apply(&policy, &engine, A::Start, None, AT),
            Ok(S::Running)
        );
        assert_eq!(
            change.apply(&policy, &engine, A::Fail, Some("wave halted"), AT),
            Ok(S::Failed)
        );
        assert_eq!(
            change.apply(&policy, &engine, A::RollBack, None, AT),
            Ok(S::RolledBack)
        );
        assert!(change.apply(&policy, &alice, A::Start, None, AT).is_err());
        let trail: Vec<(ChangeState, ChangeState)> =
            change.audit.iter().map(|e| (e.from, e.to)).collect();
        assert_eq!(
            trail,
            [
                (S::Draft, S::Submitted),
                (S::Submitted, S::Approved),
                (S::Approved, S::Scheduled),
                (S::Scheduled, S::Running),
                (S::Running, S::Failed),
                (S::Failed, S::RolledBack),
            ]
        );
        assert_eq!(change.audit[1].actor, bob);
    }

    #[test]
    fn two_approvals_when_the_policy_asks_for_two() {
        let policy = ChangePolicy {
            approvals_required: 2,
            ..Default::default()
        };
        let mut change = submitted_by_alice(ChangeKind::Normal, &policy);
        let bob = Actor::user("bob", Role::Approver);
        assert_eq!(
            change.apply(&policy, &bob, A::Approve, None, AT),
            Ok(S::Submitted)
        );
        assert!(
            change.apply(&policy, &bob, A::Approve, None, AT).is_err(),
            "bob twice"
        );
        let dan = Actor::user("dan", Role::Admin);
        assert_eq!(
            change.apply(&policy, &dan, A::Approve, None, AT),
            Ok(S::Approved)
        );
        assert_eq!(change.approved_by, ["bob", "dan"]);
    }

    #[test]
    fn standard_changes_are_approved_by_policy_unless_a_host_class_is_reserved() {
        let policy = ChangePolicy::default();
        let mut change = ChangeLifecycle::new(ChangeKind::Standard, "alice");
        let alice = Actor::user("alice", Role::Operator);
        assert_eq!(
            change.apply(&policy, &alice, A::Submit, None, AT),
            Ok(S::Approved)
        );
        assert_eq!(change.audit[1].actor, Actor::system("policy"));
        assert!(policy
            .allows(
                ChangeKind::Standard,
                &["env=production".into(), "role=database".into()]
            )
            .unwrap_err()
            .to_string()
            .contains("role=database"));
        assert!(policy
            .allows(ChangeKind::Normal, &["role=database".into()])
            .is_ok());
    }

    #[test]
    fn emergency_approvals_and_rejections_must_say_why() {
        let policy = ChangePolicy::default();
        let bob = Actor::user("bob", Role::Approver);
        let mut change = submitted_by_alice(ChangeKind::Emergency, &policy);
        assert!(change.apply(&policy, &bob, A::Approve, None, AT).is_err());
        assert!(change
            .apply(&policy, &bob, A::Reject, Some(" "), AT)
            .is_err());
        assert_eq!(
            change.apply(&policy, &bob, A::Approve, Some("CVE in KEV, exploited"), AT),
            Ok(S::Approved)
        );
        assert_eq!(
            change.audit.last().unwrap().comment.as_deref(),
            Some("CVE in KEV, exploited")
        );
    }

    /// A relabel into a manual-approval class sends a standard change back for approval from
    /// any state before it ends (draft stays a draft); users cannot ask for it; normal changes
    /// and ended ones are left alone.
    #[test]
    fn a_manual_class_sends_a_standard_change_back_for_approval() {
        let policy = ChangePolicy::default();
        let database = vec!["role=database".to_owned()];
        let web = vec!["role=web".to_owned()];
        let alice = Actor::account(7, "alice", Role::Operator, vec![]);
        for (steps, want) in [
            (vec![], S::Draft),
            (vec![A::Submit], S::Submitted),
            (vec![A::Submit, A::Schedule], S::Submitted),
            (vec![A::Submit, A::Schedule, A::Start], S::Submitted),
        ] {
            let mut c = ChangeLifecycle::new(ChangeKind::Standard, "alice");
            c.requested_by_id = Some(7);
            for step in &steps {
                c.apply(&policy, &alice, *step, None, AT).unwrap();
            }
            assert_eq!(c.reclassify(&policy, &web, AT), None, "{steps:?}");
            let reason = c.reclassify(&policy, &database, AT).expect("escalated");
            assert!(reason.contains("role=database"), "{reason}");
            assert_eq!((c.kind, c.state), (ChangeKind::Normal, want), "{steps:?}");
            assert!(c.approved_by.is_empty());
            let last = c.audit.last().unwrap();
            assert_eq!(last.action, A::Escalate);
            assert_eq!(last.actor, Actor::system("policy"));
            // Once normal, nothing more to decide.
            assert_eq!(c.reclassify(&policy, &database, AT), None);
        }
        let mut done = ChangeLifecycle::new(ChangeKind::Standard, "alice");
        for step in [A::Submit, A::Schedule, A::Start, A::Complete] {
            done.apply(&policy, &alice, step, None, AT).unwrap();
        }
        assert_eq!(done.reclassify(&policy, &database, AT), None);
        let mut c = ChangeLifecycle::new(ChangeKind::Standard, "alice");
        let refused = c.apply(&policy, &alice, A::Escalate, None, AT).unwrap_err();
        assert_eq!(refused.kind, Refusal::Forbidden);
    }

    /// Requesters are known by id when both sides have one; an approver whose account the
    /// requester created cannot approve; names compare without regard to case.
    #[test]
    fn an_approver_created_by_the_requester_cannot_approve() {
        let policy = ChangePolicy::default();
        let mut c = ChangeLifecycle::new(ChangeKind::Normal, "root");
        c.requested_by_id = Some(1);
        let root = Actor::account(1, "root", Role::Admin, vec![]);
        c.apply(&policy, &root, A::Submit, None, AT).unwrap();
        let made_by_root = Actor::account(9, "eve", Role::Approver, vec![1]);
        let refused = c
            .apply(&policy, &made_by_root, A::Approve, None, AT)
            .unwrap_err();
        assert!(
            refused.reason.contains("created by root"),
            "{}",
            refused.reason
        );
        let same_person = Actor::user("ROOT", Role::Approver);
        assert!(c
            .apply(&policy, &same_person, A::Approve, None, AT)
            .is_err());
        // Through a puppet admin the requester created: still the requester's.
        let made_through_puppet = Actor::account(10, "mallory", Role::Approver, vec![8, 1]);
        let refused = c
            .apply(&policy, &made_through_puppet, A::Approve, None, AT)
            .unwrap_err();
        assert!(
            refused.reason.contains("through other accounts"),
            "{}",
            refused.reason
        );
        let other = Actor::account(3, "bob", Role::Approver, vec![2]);
        assert_eq!(
            c.apply(&policy, &other, A::Approve, None, AT).unwrap(),
            S::Approved
        );
    }
}
