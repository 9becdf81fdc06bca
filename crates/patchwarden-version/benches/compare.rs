//! In-process comparison throughput: direct string comparison and precomputed sort keys, per scheme.
//! Input: the pairs files written by `bench/vercmp_pairs.py` when `PATCHWARDEN_BENCH_PAIRS` names its
//! output directory (so the C implementations in bench/vercmp.sh see the same pairs), else the upstream
//! vectors shipped in tests/data/versions (real version strings).
use patchwarden_version::{compare, Scheme, SortKey};

fn main() {
    divan::main();
}

fn pairs(scheme: Scheme) -> Vec<(String, String)> {
    if let Some(dir) = std::env::var_os("PATCHWARDEN_BENCH_PAIRS") {
        let path = std::path::Path::new(&dir).join(format!("{scheme}.tsv"));
        let text = std::fs::read_to_string(&path).expect("pairs file");
        return text
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(a, b)| compare(scheme, a, b).is_ok())
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
    }
    let file = match scheme {
        Scheme::Deb => "osv-scalibr-debian-generated.tsv",
        Scheme::Rpm => "osv-scalibr-redhat.tsv",
        Scheme::Apk => "osv-scalibr-alpine-generated.tsv",
    };
    let path = format!(
        "{}/../../tests/data/versions/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("vector file");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (a, b) = (f.next()?, f.next()?);
            compare(scheme, a, b)
                .ok()
                .map(|_| (a.to_owned(), b.to_owned()))
        })
        .collect()
}

#[divan::bench(args = Scheme::ALL)]
fn direct(bencher: divan::Bencher, scheme: Scheme) {
    let pairs = pairs(scheme);
    bencher
        .counter(divan::counter::ItemsCount::new(pairs.len()))
        .bench(|| {
            for (a, b) in &pairs {
                divan::black_box(compare(scheme, a, b).unwrap());
            }
        });
}

#[divan::bench(args = Scheme::ALL)]
fn sort_key(bencher: divan::Bencher, scheme: Scheme) {
    let keys: Vec<(SortKey, SortKey)> = pairs(scheme)
        .iter()
        .map(|(a, b)| {
            (
                SortKey::new(scheme, a).unwrap(),
                SortKey::new(scheme, b).unwrap(),
            )
        })
        .collect();
    bencher
        .counter(divan::counter::ItemsCount::new(keys.len()))
        .bench(|| {
            for (a, b) in &keys {
                divan::black_box(a.cmp(b));
            }
        });
}

#[divan::bench(args = Scheme::ALL)]
fn build_key(bencher: divan::Bencher, scheme: Scheme) {
    let pairs = pairs(scheme);
    bencher
        .counter(divan::counter::ItemsCount::new(pairs.len()))
        .bench(|| {
            for (a, _) in &pairs {
                divan::black_box(SortKey::new(scheme, a).unwrap());
            }
        });
}

/// Parsing alone (validation included), both sides of every pair.
#[divan::bench]
fn deb_parse_only(bencher: divan::Bencher) {
    let pairs = pairs(Scheme::Deb);
    bencher
        .counter(divan::counter::ItemsCount::new(pairs.len() * 2))
        .bench(|| {
            for (a, b) in &pairs {
                divan::black_box(patchwarden_version::deb::DebVersion::parse(a).is_ok());
                divan::black_box(patchwarden_version::deb::DebVersion::parse(b).is_ok());
            }
        });
}
