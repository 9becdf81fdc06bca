//! What the server's rollout driver spends on one change of HOSTS hosts (default 10,000) besides
//! the agents' work (docs/benchmarks.md, "Rollout orchestration"): the change document as the
//! driver keeps it (rollback plan, targeted findings, rollout state, per-host jobs and
//! verification), parsed, advanced and written back to a SQLite store over its version once per
//! tick, through staging (2 %) → canary 5 % → 25 % → the rest, every host succeeding at once. The
//! jobs' own rows are written too (one per host, in the same transaction as the document).
//! Synthetic: one package and one targeted finding per host, names saying so.
//!
//! usage: cargo run --release -p patchwarden-server --example driver_overhead [HOSTS] [DB]
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use patchwarden_deploy::change::{ChangeKind, ChangeLifecycle};
use patchwarden_deploy::change_doc::{
    ChangeDoc, HostRollback, HostRun, HostTargets, RunJob, RunJobState,
};
use patchwarden_deploy::rollout::{
    Command, HostOutcome, Rollout, RolloutHost, RolloutSpec, Threshold, WaveSelector, WaveSpec,
};
use patchwarden_deploy::verify::{TargetedFinding, Verification};
use patchwarden_model::job::{JobOperation, PackageTarget};
use patchwarden_store::change_requests::ChangeUpdate;
use patchwarden_store::jobs::NewJob;

fn target(version: &str) -> PackageTarget {
    PackageTarget {
        name: "pw-synthetic-app".into(),
        arch: None,
        version: version.into(),
    }
}

fn main() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(run());
}

async fn run() {
    let mut args = std::env::args().skip(1);
    let n: i64 = args
        .next()
        .map(|a| a.parse().expect("HOSTS"))
        .unwrap_or(10_000);
    let db = args.next().unwrap_or_else(|| {
        std::env::temp_dir()
            .join("pw-driver-overhead.db")
            .display()
            .to_string()
    });
    let _ = std::fs::remove_file(&db);
    let store = patchwarden_store::Store::open(&db).await.expect("a store");
    // Hosts must exist for their jobs: enrolled through the store as the server would.
    let token = "pw-synthetic-enroll";
    let digest = |s: &str| format!("digest-{s}");
    store
        .create_enroll_token(
            &digest(token),
            "2999-01-01T00:00:00Z",
            n,
            &BTreeMap::new(),
            "bench",
        )
        .await
        .expect("an enrollment token");
    let mut ids = Vec::new();
    for i in 0..n {
        let (host, _) = store
            .enroll_host(
                &digest(token),
                "2026-12-02T00:00:00Z",
                &format!("pw-synthetic-{i}"),
                Some(&format!("machine-{i}")),
                &digest(&format!("host-{i}")),
            )
            .await
            .expect("the store")
            .expect("an enrolled host");
        ids.push(host);
    }
    let hosts: Vec<RolloutHost> = ids
        .iter()
        .map(|id| RolloutHost {
            id: *id,
            classes: vec![if id % 50 == 0 {
                "staging"
            } else {
                "production"
            }
            .into()],
        })
        .collect();
    let wave = |name: &str, hosts: WaveSelector, concurrency| WaveSpec {
        name: name.into(),
        hosts,
        concurrency,
        error_threshold: None,
        soak_secs: None,
    };
    let spec = RolloutSpec {
        waves: vec![
            wave("staging", WaveSelector::Group("staging".into()), 50),
            wave("canary", WaveSelector::Percent(5.0), 100),
            wave("quarter", WaveSelector::Percent(25.0), 500),
            wave("rest", WaveSelector::Rest, 1000),
        ],
        error_threshold: Threshold::Percent(5.0),
        soak_secs: 600,
        host_timeout_secs: 3600,
        roll_back_failed_hosts: true,
    };
    let mut doc = ChangeDoc {
        id: "chg-pw-synthetic".into(),
        title: "synthetic change (benchmark)".into(),
        hosts: ids.clone(),
        packages: vec![target("1.0-2")],
        rollback: ids
            .iter()
            .map(|h| HostRollback {
                host_id: *h,
                packages: vec![target("1.0-1")],
                not_installed: Vec::new(),
            })
            .collect(),
        lifecycle: ChangeLifecycle::new(ChangeKind::Standard, "bench"),
        rollout_spec: Some(spec.clone()),
        not_before: None,
        targets: ids
            .iter()
            .map(|h| HostTargets {
                host_id: *h,
                findings: vec![TargetedFinding {
                    package: "pw-synthetic-app".into(),
                    advisory_id: "CVE-2999-0601".into(),
                    cves: vec!["CVE-2999-0601".into()],
                    risk: 7.5,
                }],
                window: Some("production".into()),
            })
            .collect(),
        risk_removed: 7.5 * n as f64,
        rollout: Some(Rollout::plan(&spec, &hosts).expect("a valid rollout")),
        runs: BTreeMap::new(),
        events: Vec::new(),
    };
    let text = serde_json::to_string(&doc).unwrap();
    store
        .create_change(
            &doc.id,
            "standard",
            "running",
            &text,
            true,
            "2026-12-02T00:00:00Z",
        )
        .await
        .unwrap();
    let (mut version, mut ticks, mut now) = (1i64, 0u32, 0i64);
    let (mut parse, mut advance, mut write, mut largest) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO, 0usize);
    let at = |s: i64| Timestamp::from_second(1_796_000_000 + s).unwrap();
    let started = Instant::now();
    loop {
        let row = store.change(&doc.id).await.unwrap().unwrap();
        let t = Instant::now();
        doc = serde_json::from_str(&row.doc).unwrap();
        parse += t.elapsed();
        let t = Instant::now();
        let mut rollout = doc.rollout.take().unwrap();
        let busy: Vec<i64> = rollout
            .hosts
            .iter()
            .filter(|(_, s)| matches!(s, patchwarden_deploy::rollout::HostState::Running { .. }))
            .map(|(id, _)| *id)
            .collect();
        for h in busy {
            let run = doc.runs.entry(h).or_default();
            run.jobs.last_mut().unwrap().state = RunJobState::Succeeded;
            run.verification = Some(Verification {
                installed: vec![target("1.0-2")],
                closed: vec!["CVE-2999-0601 on pw-synthetic-app".into()],
                ..Default::default()
            });
            rollout.report(h, HostOutcome::Succeeded, at(now));
        }
        let commands = rollout.tick(at(now), &|_| true);
        let mut jobs = Vec::new();
        for c in &commands {
            if let Command::StartHost(h) = c {
                let id = format!("job-pw-synthetic-{h}");
                let run: &mut HostRun = doc.runs.entry(*h).or_default();
                run.jobs.push(RunJob {
                    id: id.clone(),
                    operation: JobOperation::Install,
                    state: RunJobState::Queued,
                    reason: None,
                });
                jobs.push((*h, id));
            }
        }
        let done = rollout.finished();
        let status = rollout.status.clone();
        doc.rollout = Some(rollout);
        let text = serde_json::to_string(&doc).unwrap();
        advance += t.elapsed();
        largest = largest.max(text.len());
        let job_doc = r#"{"synthetic":"job"}"#;
        let new_jobs: Vec<NewJob> = jobs
            .iter()
            .map(|(h, id)| NewJob {
                id,
                host_id: *h,
                doc: job_doc,
                created_by: "rollout",
            })
            .collect();
        let t = Instant::now();
        let update = ChangeUpdate {
            id: &doc.id,
            version,
            state: if done { "completed" } else { "running" },
            doc: &text,
            active: !done,
        };
        assert!(store
            .advance_change(&update, &new_jobs, "2026-12-02T00:00:00Z")
            .await
            .unwrap());
        write += t.elapsed();
        version += 1;
        ticks += 1;
        if done {
            break;
        }
        now += match status {
            patchwarden_deploy::rollout::RolloutStatus::Soaking { .. } => 600,
            _ => 60,
        };
    }
    let total = started.elapsed();
    let per = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(ticks);
    println!(
        "{n} hosts, {ticks} ticks in {:.2} s: per tick parse {:.1} ms, advance + serialize {:.1} ms, store write (document + that tick's jobs) {:.1} ms; largest document {} KB",
        total.as_secs_f64(),
        per(parse),
        per(advance),
        per(write),
        largest / 1024
    );
}
