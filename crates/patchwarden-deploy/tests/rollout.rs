//! The rollout state machine: waves from groups and percentages, concurrency, windows, the error
//! threshold halting the rollout, rollback of failed hosts, silent hosts timing out, soak between
//! waves, pause / resume / cancel, and a rollout that survives being serialized mid-way (a server
//! restart).

use jiff::{SignedDuration, Timestamp};
use patchwarden_deploy::rollout::{
    Command, HostOutcome, HostState, Rollout, RolloutHost, RolloutSpec, RolloutStatus, Threshold,
    WaveSelector, WaveSpec,
};

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_796_000_000 + secs).unwrap()
}

fn hosts(n: i64, staging: i64) -> Vec<RolloutHost> {
    (1..=n)
        .map(|id| RolloutHost {
            id,
            classes: if id <= staging {
                vec!["staging".into()]
            } else {
                vec!["production".into()]
            },
        })
        .collect()
}

fn spec() -> RolloutSpec {
    RolloutSpec {
        waves: vec![
            WaveSpec {
                name: "staging".into(),
                hosts: WaveSelector::Group("staging".into()),
                concurrency: 2,
                error_threshold: Some(Threshold::Count(1)),
                soak_secs: None,
            },
            WaveSpec {
                name: "canary".into(),
                hosts: WaveSelector::Percent(5.0),
                concurrency: 10,
                error_threshold: None,
                soak_secs: None,
            },
            WaveSpec {
                name: "rest".into(),
                hosts: WaveSelector::Rest,
                concurrency: 20,
                error_threshold: None,
                soak_secs: Some(0),
            },
        ],
        error_threshold: Threshold::Percent(10.0),
        soak_secs: 3600,
        host_timeout_secs: 1800,
        roll_back_failed_hosts: true,
    }
}

fn started(commands: &[Command]) -> Vec<i64> {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::StartHost(id) => Some(*id),
            _ => None,
        })
        .collect()
}

#[test]
fn waves_take_groups_first_then_a_stable_share_of_the_rest() {
    let fleet = hosts(200, 4);
    let r = Rollout::plan(&spec(), &fleet).unwrap();
    let sizes: Vec<(&str, usize)> = r
        .waves
        .iter()
        .map(|w| (w.name.as_str(), w.hosts.len()))
        .collect();
    assert_eq!(sizes, [("staging", 4), ("canary", 10), ("rest", 186)]);
    assert_eq!(r.waves[0].hosts, [1, 2, 3, 4]);
    // The same canaries every time, and not simply the lowest ids.
    let again = Rollout::plan(&spec(), &fleet).unwrap();
    assert_eq!(r.waves[1].hosts, again.waves[1].hosts);
    assert_ne!(r.waves[1].hosts, (5..15).collect::<Vec<i64>>());
    // 10 % of 186 hosts: 19 failures halt the last wave; staging halts at its first.
    assert_eq!(r.waves[2].failures_allowed, 19);
    assert_eq!(r.waves[0].failures_allowed, 1);
    // Without a rest wave, hosts left over are an error.
    let mut partial = spec();
    partial.waves.pop();
    assert!(Rollout::plan(&partial, &fleet)
        .unwrap_err()
        .0
        .contains("186 hosts are in no wave"));
}

#[test]
fn a_clean_rollout_runs_wave_by_wave_with_soak_and_concurrency() {
    let fleet = hosts(40, 2);
    let mut r = Rollout::plan(&spec(), &fleet).unwrap();
    let always = |_: i64| true;
    let first = started(&r.tick(t(0), &always));
    assert_eq!(first, [1, 2]);
    assert!(
        started(&r.tick(t(10), &always)).is_empty(),
        "concurrency 2, both running"
    );
    for id in first {
        assert!(r.report(id, HostOutcome::Succeeded, t(60)));
    }
    assert!(
        !r.report(1, HostOutcome::Succeeded, t(61)),
        "a duplicate report changes nothing"
    );
    // Staging done: soak for an hour before the canaries.
    assert!(r.tick(t(60), &always).is_empty());
    assert_eq!(r.status, RolloutStatus::Soaking { until: t(3660) });
    assert!(r.tick(t(3000), &always).is_empty());
    let canaries = started(&r.tick(t(3660), &always));
    assert_eq!(canaries, r.waves[1].hosts);
    for id in canaries {
        r.report(id, HostOutcome::Succeeded, t(3700));
    }
    r.tick(t(3700), &always);
    let mut now = 3700 + 3600;
    loop {
        let batch = started(&r.tick(t(now), &always));
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 20, "the rest wave's concurrency");
        for id in batch {
            r.report(id, HostOutcome::Succeeded, t(now + 30));
        }
        now += 60;
    }
    assert_eq!(r.status, RolloutStatus::Completed);
    assert!(r
        .hosts
        .values()
        .all(|s| matches!(s, HostState::Succeeded { .. })));
}

#[test]
fn a_failure_in_staging_halts_the_rollout_and_rolls_the_host_back() {
    let fleet = hosts(40, 3);
    let mut r = Rollout::plan(&spec(), &fleet).unwrap();
    let always = |_: i64| true;
    assert_eq!(started(&r.tick(t(0), &always)), [1, 2]);
    r.report(
        1,
        HostOutcome::Failed {
            reason: "health check: nginx.service inactive".into(),
        },
        t(30),
    );
    let commands = r.tick(t(31), &always);
    assert_eq!(commands, [Command::RollBackHost(1)], "no new host starts");
    assert!(
        matches!(&r.status, RolloutStatus::Halted { wave, reason } if wave == "staging" && reason.contains("1 of 3"))
    );
    // The host still running finishes; the pending ones are skipped.
    assert_eq!(r.hosts[&3], HostState::Skipped);
    assert!(r.report(2, HostOutcome::Succeeded, t(40)));
    assert!(r.report(1, HostOutcome::RolledBack { reason: None }, t(50)));
    assert!(
        matches!(&r.hosts[&1], HostState::RolledBack { reason, .. } if reason.contains("nginx"))
    );
    assert!(r.tick(t(60), &always).is_empty());
    assert!(!r.resume(), "a halted rollout does not resume");
}

#[test]
fn a_silent_host_times_out_and_counts_as_failed() {
    let mut s = spec();
    s.waves[0].error_threshold = Some(Threshold::Count(2));
    let fleet = hosts(10, 3);
    let mut r = Rollout::plan(&s, &fleet).unwrap();
    let always = |_: i64| true;
    r.tick(t(0), &always);
    r.report(1, HostOutcome::Succeeded, t(100));
    // Host 2 never answers; at the timeout it fails, is rolled back, and host 3 starts.
    let commands = r.tick(t(1800), &always);
    assert_eq!(commands, [Command::RollBackHost(2), Command::StartHost(3)]);
    assert!(
        matches!(&r.hosts[&2], HostState::RollingBack { reason, .. } if reason.contains("no report within 1800 s"))
    );
    // Its late report is ignored.
    assert!(!r.report(2, HostOutcome::Succeeded, t(1801)));
}

#[test]
fn windows_gate_each_host_and_operators_pause_resume_and_cancel() {
    let fleet = hosts(30, 0);
    let mut s = spec();
    s.waves.remove(0);
    let mut r = Rollout::plan(&s, &fleet).unwrap();
    let canaries = r.waves[0].hosts.clone();
    let closed_for_first = |id: i64| id != canaries[0];
    let first = started(&r.tick(t(0), &closed_for_first));
    assert_eq!(first, canaries[1..]);
    assert!(r.pause());
    for id in first {
        r.report(id, HostOutcome::Succeeded, t(10));
    }
    assert!(
        r.tick(t(20), &|_| true).is_empty(),
        "paused: nothing starts"
    );
    assert!(r.resume());
    assert_eq!(started(&r.tick(t(30), &|_| true)), [canaries[0]]);
    assert!(r.cancel());
    assert_eq!(r.status, RolloutStatus::Cancelled);
    assert!(r.hosts.values().any(|s| *s == HostState::Skipped));
    assert!(r.tick(t(40), &|_| true).is_empty());
}

#[test]
fn a_rollout_resumes_from_its_serialized_state() {
    let fleet = hosts(50, 2);
    let mut r = Rollout::plan(&spec(), &fleet).unwrap();
    let always = |_: i64| true;
    for id in started(&r.tick(t(0), &always)) {
        r.report(id, HostOutcome::Succeeded, t(5));
    }
    r.tick(t(5), &always);
    let running = started(&r.tick(t(3605), &always));
    assert!(!running.is_empty());
    // The server stores the rollout and restarts.
    let stored = serde_json::to_string(&r).unwrap();
    let mut restored: Rollout = serde_json::from_str(&stored).unwrap();
    assert_eq!(restored, r);
    // Nothing is started twice: the running canaries are still running after the restart.
    assert!(started(&restored.tick(t(3606), &always)).is_empty());
    for id in running {
        assert!(restored.report(id, HostOutcome::Succeeded, t(3700)));
    }
    restored.tick(t(3700), &always);
    assert_eq!(
        restored.status,
        RolloutStatus::Soaking {
            until: t(3700) + SignedDuration::from_secs(3600)
        }
    );
}

#[test]
fn a_failed_or_silent_rollback_is_its_own_state() {
    let mut s = spec();
    s.waves[0].error_threshold = Some(Threshold::Count(3));
    let fleet = hosts(10, 3);
    let mut r = Rollout::plan(&s, &fleet).unwrap();
    let always = |_: i64| true;
    assert_eq!(started(&r.tick(t(0), &always)), [1, 2]);
    for id in [1, 2] {
        r.report(
            id,
            HostOutcome::Failed {
                reason: "apt-get install failed".into(),
            },
            t(10),
        );
    }
    let commands = r.tick(t(11), &always);
    assert_eq!(
        commands,
        [
            Command::RollBackHost(1),
            Command::RollBackHost(2),
            Command::StartHost(3)
        ]
    );
    // Host 1's rollback fails; host 2's never reports.
    assert!(r.report(
        1,
        HostOutcome::RolledBack {
            reason: Some("dpkg: error".into())
        },
        t(20)
    ));
    assert!(
        matches!(&r.hosts[&1], HostState::RollbackFailed { reason, .. } if reason.contains("apt-get install failed; rollback failed: dpkg: error"))
    );
    r.report(3, HostOutcome::Succeeded, t(30));
    assert!(r.busy(), "host 2 is still rolling back");
    r.tick(t(11 + 1800), &always);
    assert!(
        matches!(&r.hosts[&2], HostState::RollbackFailed { reason, .. } if reason.contains("not confirmed within 1800 s"))
    );
    assert_eq!(r.failures(0), 2, "rollback failures still count");
}

#[test]
fn rolling_back_the_whole_change_returns_every_host_that_ran() {
    let fleet = hosts(6, 2);
    let mut r = Rollout::plan(&spec(), &fleet).unwrap();
    let always = |_: i64| true;
    assert_eq!(started(&r.tick(t(0), &always)), [1, 2]);
    r.report(1, HostOutcome::Succeeded, t(10));
    assert!(r.roll_back_all());
    assert!(!r.roll_back_all(), "once");
    assert_eq!(r.status, RolloutStatus::Cancelled);
    // Host 1 goes back now; host 2 once it has finished; pending hosts never start.
    assert_eq!(r.tick(t(11), &always), [Command::RollBackHost(1)]);
    assert!(r.report(2, HostOutcome::Succeeded, t(12)));
    assert_eq!(r.tick(t(13), &always), [Command::RollBackHost(2)]);
    assert!(r
        .hosts
        .iter()
        .filter(|(id, _)| **id > 2)
        .all(|(_, s)| *s == HostState::Skipped));
    assert!(!r.finished());
    r.report(1, HostOutcome::RolledBack { reason: None }, t(20));
    r.report(2, HostOutcome::RolledBack { reason: None }, t(21));
    assert!(r.finished());
}
