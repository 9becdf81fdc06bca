//! Host identity: hostname, machine-id and, for a live host, its non-loopback IP addresses (from
//! `/proc/net/fib_trie` and `/proc/net/if_inet6`, so no extra library is needed).

use patchwarden_model::HostIdentity;

use crate::SystemRoot;

pub fn collect(root: &SystemRoot) -> HostIdentity {
    let hostname = if root.is_live() {
        root.read_trimmed("/proc/sys/kernel/hostname")
    } else {
        None
    }
    .or_else(|| root.read_trimmed("/etc/hostname"));
    let machine_id = root
        .read_trimmed("/etc/machine-id")
        .or_else(|| root.read_trimmed("/var/lib/dbus/machine-id"));
    let ip_addresses = if root.is_live() {
        live_addresses()
    } else {
        Vec::new()
    };
    HostIdentity {
        hostname,
        machine_id,
        ip_addresses,
    }
}

fn live_addresses() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") {
        out.extend(ipv4_local_addresses(&trie));
    }
    if let Ok(v6) = std::fs::read_to_string("/proc/net/if_inet6") {
        for line in v6.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 || f[5] == "lo" || f[0].len() != 32 {
                continue;
            }
            let groups: Vec<u16> = (0..8)
                .filter_map(|i| u16::from_str_radix(&f[0][i * 4..i * 4 + 4], 16).ok())
                .collect();
            if let Ok(g) = <[u16; 8]>::try_from(groups) {
                let addr = std::net::Ipv6Addr::from(g);
                if !addr.is_loopback() {
                    out.push(addr.to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Local addresses are the leaves followed by `/32 host LOCAL`.
pub fn ipv4_local_addresses(fib_trie: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut last_leaf: Option<&str> = None;
    for line in fib_trie.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("|-- ") {
            last_leaf = Some(addr);
        } else if t.contains("/32 host LOCAL") {
            if let Some(a) = last_leaf.filter(|a| !a.starts_with("127.")) {
                out.push(a.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn fib_trie_locals() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.2.15\n        /32 host LOCAL\n     |-- 10.0.2.255\n        /32 link BROADCAST\n     |-- 127.0.0.1\n        /32 host LOCAL\n";
        assert_eq!(super::ipv4_local_addresses(trie), vec!["10.0.2.15"]);
    }
}
