//! Orchestration overhead of a simulated rollout (docs/benchmarks.md, "Rollout"): HOSTS hosts (default
//! 10,000; 2 % in staging, the rest production) through staging → canary 5 % → 25 % → the rest,
//! every host answering at once (succeeding, or failing at FAIL_EVERY), with a serialization of the
//! whole state after every tick (what the server stores). Measures the state machine only: no
//! network, no agent.
//!
//! usage: cargo run --release -p patchwarden-deploy --example rollout_overhead [HOSTS] [FAIL_EVERY]
use std::time::Instant;

use jiff::Timestamp;
use patchwarden_deploy::rollout::{
    Command, HostOutcome, Rollout, RolloutHost, RolloutSpec, Threshold, WaveSelector, WaveSpec,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: i64 = args
        .next()
        .map(|a| a.parse().expect("HOSTS"))
        .unwrap_or(10_000);
    let fail_every: i64 = args
        .next()
        .map(|a| a.parse().expect("FAIL_EVERY"))
        .unwrap_or(0);
    let hosts: Vec<RolloutHost> = (1..=n)
        .map(|id| RolloutHost {
            id,
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
    let started = Instant::now();
    let mut rollout = Rollout::plan(&spec, &hosts).expect("a valid rollout");
    let planned = started.elapsed();
    let (mut now, mut ticks, mut store_time) = (0i64, 0u64, std::time::Duration::ZERO);
    let mut stored_bytes: usize;
    let at = |s: i64| Timestamp::from_second(1_796_000_000 + s).unwrap();
    let run = Instant::now();
    loop {
        let commands = rollout.tick(at(now), &|_| true);
        ticks += 1;
        let t = Instant::now();
        stored_bytes = serde_json::to_vec(&rollout).unwrap().len();
        store_time += t.elapsed();
        for c in &commands {
            match c {
                Command::StartHost(id) => {
                    let outcome = if fail_every > 0 && id % fail_every == 0 {
                        HostOutcome::Failed {
                            reason: "simulated".into(),
                        }
                    } else {
                        HostOutcome::Succeeded
                    };
                    rollout.report(*id, outcome, at(now + 1));
                }
                Command::RollBackHost(id) => {
                    rollout.report(*id, HostOutcome::RolledBack { reason: None }, at(now + 1));
                }
            }
        }
        if commands.is_empty()
            && !matches!(
                rollout.status,
                patchwarden_deploy::rollout::RolloutStatus::Running
                    | patchwarden_deploy::rollout::RolloutStatus::Soaking { .. }
            )
        {
            break;
        }
        now += 60;
        if ticks > 1_000_000 {
            panic!("no end");
        }
    }
    let total = run.elapsed();
    println!(
        "{n} hosts, {} waves: plan {:.2} ms; {ticks} ticks in {:.1} ms ({:.1} µs/tick, of which serializing the state {:.1} ms in all, {} KB each); status {:?}",
        rollout.waves.len(),
        planned.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e6 / ticks as f64,
        store_time.as_secs_f64() * 1e3,
        stored_bytes / 1024,
        rollout.status
    );
}
