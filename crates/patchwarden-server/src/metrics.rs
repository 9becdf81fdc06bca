//! Prometheus metrics in the text exposition format: counters by name and label set, and a latency
//! histogram per route. Per process: several servers sharing a database are scraped one by one.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(String, String), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    /// Adds one to counter `name` with `labels` (already formatted: `result="stored"`, or empty).
    pub fn count(&self, name: &str, labels: &str) {
        self.add(name, labels, 1);
    }

    /// Adds `n` to counter `name` with `labels`.
    pub fn add(&self, name: &str, labels: &str, n: u64) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name.to_owned(), labels.to_owned())).or_default() += n;
        }
    }

    /// Records how long a request to `route` took.
    pub fn observe(&self, route: &str, seconds: f64) {
        self.observe_n(route, seconds, 1);
    }

    /// Records `n` observations of `seconds` each (a batch's time spread over its items).
    pub fn observe_n(&self, route: &str, seconds: f64, n: u64) {
        if n == 0 {
            return;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(route.to_owned()).or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.counts[i] += n;
                }
            }
            h.count += n;
            h.sum += seconds * n as f64;
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(c) = self.counters.lock() {
            let mut last = "";
            for ((name, labels), v) in c.iter() {
                if name != last {
                    out.push_str(&format!("# TYPE {name} counter\n"));
                    last = name;
                }
                if labels.is_empty() {
                    out.push_str(&format!("{name} {v}\n"));
                } else {
                    out.push_str(&format!("{name}{{{labels}}} {v}\n"));
                }
            }
        }
        if let Ok(l) = self.latency.lock() {
            out.push_str("# TYPE patchwarden_request_duration_seconds histogram\n");
            for (route, h) in l.iter() {
                for (i, bound) in BUCKETS.iter().enumerate() {
                    out.push_str(&format!(
                        "patchwarden_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}\n",
                        h.counts[i]
                    ));
                }
                out.push_str(&format!(
                    "patchwarden_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\n",
                    h.count
                ));
                out.push_str(&format!(
                    "patchwarden_request_duration_seconds_sum{{route=\"{route}\"}} {}\n",
                    h.sum
                ));
                out.push_str(&format!(
                    "patchwarden_request_duration_seconds_count{{route=\"{route}\"}} {}\n",
                    h.count
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = super::Metrics::default();
        m.count("patchwarden_checkins_total", "result=\"stored\"");
        m.count("patchwarden_checkins_total", "result=\"stored\"");
        m.observe("/v1/checkin", 0.003);
        m.observe("/v1/checkin", 0.2);
        let text = m.render();
        assert!(
            text.contains("patchwarden_checkins_total{result=\"stored\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("route=\"/v1/checkin\",le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("route=\"/v1/checkin\",le=\"0.25\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("patchwarden_request_duration_seconds_count{route=\"/v1/checkin\"} 2\n")
        );
    }
}
