//! Plan computation for one host (docs/benchmarks.md, "Plans"): reads ROOT's dpkg database and apt
//! indexes, computes every available upgrade, ROUNDS times, and prints the timings and the
//! upgrades (name, from, to) so they can be set beside `apt-get -s upgrade` on the same root.
//!
//! usage: cargo run --release -p patchwarden-deploy --example plan_host ROOT [ROUNDS]
use std::time::Instant;

use patchwarden_deploy::plan::all_upgrades;
use patchwarden_inventory::SystemRoot;
use patchwarden_version::Scheme;

fn main() {
    let mut args = std::env::args().skip(1);
    let root = args.next().expect("usage: plan_host ROOT [ROUNDS]");
    let rounds: usize = args.next().map(|r| r.parse().expect("ROUNDS")).unwrap_or(5);
    let root = SystemRoot::open(std::path::Path::new(&root)).expect("a root");
    let mut times = Vec::new();
    let mut last = Vec::new();
    let mut offered = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        let installed = patchwarden_inventory::dpkg::read(&root)
            .expect("the dpkg database")
            .expect("a dpkg root")
            .packages;
        let lists = patchwarden_inventory::apt_lists::read(&root).expect("the apt indexes");
        offered = lists.packages.len();
        last = all_upgrades(Scheme::Deb, &installed, &lists.packages);
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    eprintln!(
        "{} packages offered, {} upgrades; {rounds} rounds: min {:.1} ms, median {:.1} ms (read dpkg status + apt indexes + candidates)",
        offered,
        last.len(),
        times[0],
        times[times.len() / 2]
    );
    for u in &last {
        println!("{} {} {}", u.name, u.from, u.to);
    }
}
