//! The list of hosts that should exist, from what operators already keep: a CSV file (a `name` or
//! `hostname` column, optional `groups` separated by `;`), or an Ansible inventory in INI or YAML
//! form (hosts with the groups they sit in). The fleet view compares it with the enrolled hosts.

use std::collections::BTreeMap;

/// A file that is not an asset list: the message names the file, the line where there is one, and
/// what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AssetError(String);

/// An expected host and its groups.
pub type ExpectedAsset = (String, Vec<String>);

/// Parses `text` by the form its name and content say; errors name the file and line.
pub fn parse(name: &str, text: &str) -> Result<Vec<ExpectedAsset>, AssetError> {
    let lower = name.to_lowercase();
    let out = if lower.ends_with(".csv") {
        parse_csv(name, text)?
    } else if lower.ends_with(".yml")
        || lower.ends_with(".yaml")
        || text.trim_start().starts_with("---")
        || text.trim_start().starts_with("all:")
    {
        parse_ansible_yaml(name, text)?
    } else {
        parse_ansible_ini(name, text)?
    };
    if out.is_empty() {
        return Err(AssetError(format!("{name}: no hosts found")));
    }
    Ok(out)
}

fn merge(map: BTreeMap<String, Vec<String>>) -> Vec<ExpectedAsset> {
    map.into_iter()
        .map(|(host, mut groups)| {
            groups.sort();
            groups.dedup();
            (host, groups)
        })
        .collect()
}

fn parse_csv(name: &str, text: &str) -> Result<Vec<ExpectedAsset>, AssetError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(AssetError(format!("{name}: empty CSV file")));
    };
    let columns: Vec<String> = header
        .split(',')
        .map(|c| c.trim().trim_matches('"').to_lowercase())
        .collect();
    let host_col = columns
        .iter()
        .position(|c| c == "name" || c == "hostname" || c == "host")
        .ok_or_else(|| {
            AssetError(format!(
                "{name}:1: no name, hostname or host column in {header:?}"
            ))
        })?;
    let groups_col = columns.iter().position(|c| c == "groups" || c == "group");
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, line) in lines {
        let fields: Vec<&str> = line
            .split(',')
            .map(|f| f.trim().trim_matches('"'))
            .collect();
        let host = fields
            .get(host_col)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| AssetError(format!("{name}:{}: no host name", i + 1)))?;
        let entry = map.entry((*host).to_owned()).or_default();
        if let Some(g) = groups_col.and_then(|c| fields.get(c)) {
            entry.extend(
                g.split(';')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    Ok(merge(map))
}

fn parse_ansible_ini(name: &str, text: &str) -> Result<Vec<ExpectedAsset>, AssetError> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Section kind: hosts of a group, or something that lists no hosts (vars, children).
    let mut group: Option<String> = Some("ungrouped".into());
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split(['#', ';']).next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            let section = section.strip_suffix(']').ok_or_else(|| {
                AssetError(format!("{name}:{}: unclosed section {line:?}", i + 1))
            })?;
            group = if section.contains(':') {
                None
            } else {
                Some(section.to_owned())
            };
            continue;
        }
        let Some(g) = &group else { continue };
        let host = line.split_whitespace().next().unwrap_or("");
        if host.contains('[') {
            return Err(AssetError(format!(
                "{name}:{}: host ranges ({host}) are not supported; list the hosts",
                i + 1
            )));
        }
        let entry = map.entry(host.to_owned()).or_default();
        if g != "ungrouped" {
            entry.push(g.clone());
        }
    }
    Ok(merge(map))
}

fn parse_ansible_yaml(name: &str, text: &str) -> Result<Vec<ExpectedAsset>, AssetError> {
    let doc: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| AssetError(format!("{name}: not YAML: {e}")))?;
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    fn walk(
        group: &str,
        node: &serde_norway::Value,
        map: &mut BTreeMap<String, Vec<String>>,
        depth: usize,
    ) -> Result<(), AssetError> {
        if depth > 32 {
            return Err(AssetError("groups nest deeper than 32 levels".into()));
        }
        let Some(node) = node.as_mapping() else {
            return Ok(()); // a group with nothing under it
        };
        if let Some(hosts) = node.get("hosts").and_then(|h| h.as_mapping()) {
            for host in hosts.keys() {
                let host = host.as_str().ok_or_else(|| {
                    AssetError(format!("group {group}: a host name that is not text"))
                })?;
                let entry = map.entry(host.to_owned()).or_default();
                if group != "all" && group != "ungrouped" {
                    entry.push(group.to_owned());
                }
            }
        }
        if let Some(children) = node.get("children").and_then(|c| c.as_mapping()) {
            for (child, sub) in children {
                let child = child.as_str().ok_or_else(|| {
                    AssetError(format!(
                        "group {group}: a child group name that is not text"
                    ))
                })?;
                walk(child, sub, map, depth + 1)?;
            }
        }
        Ok(())
    }
    let root = doc.as_mapping().ok_or_else(|| {
        AssetError(format!(
            "{name}: an Ansible inventory is a mapping of groups"
        ))
    })?;
    for (group, node) in root {
        let group = group
            .as_str()
            .ok_or_else(|| AssetError(format!("{name}: a group name that is not text")))?;
        walk(group, node, &mut map, 0).map_err(|e| AssetError(format!("{name}: {}", e.0)))?;
    }
    Ok(merge(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_ini_and_yaml_give_hosts_with_groups() {
        let csv = "hostname,groups,owner\nweb1.example.org,web;production,ops\ndb1,db,dba\n";
        assert_eq!(
            parse("assets.csv", csv).unwrap(),
            vec![
                ("db1".to_owned(), vec!["db".to_owned()]),
                (
                    "web1.example.org".to_owned(),
                    vec!["production".to_owned(), "web".to_owned()]
                ),
            ]
        );
        let ini = "mail.example.com\n\n[webservers]\nfoo.example.com ansible_port=2222\nbar.example.com\n\n[dbservers]\none.example.com\nbar.example.com\n\n[webservers:vars]\nntp_server=ntp.example.com\n";
        let hosts = parse("hosts", ini).unwrap();
        assert_eq!(hosts.len(), 4);
        assert!(hosts.contains(&(
            "bar.example.com".to_owned(),
            vec!["dbservers".to_owned(), "webservers".to_owned()]
        )));
        assert!(hosts.contains(&("mail.example.com".to_owned(), vec![])));
        assert!(!hosts.iter().any(|(h, _)| h.contains("ntp")));
        let yaml = "all:\n  hosts:\n    mail.example.com:\n  children:\n    webservers:\n      hosts:\n        foo.example.com:\n        bar.example.com:\n    dbservers:\n      hosts:\n        one.example.com:\n        bar.example.com:\n";
        assert_eq!(parse("inventory.yml", yaml).unwrap(), hosts);
    }

    #[test]
    fn bad_lists_are_named_with_the_line() {
        let e = parse("a.csv", "owner\nops\n").unwrap_err().to_string();
        assert!(e.starts_with("a.csv:1:"), "{e}");
        let e = parse("hosts", "[web\nfoo\n").unwrap_err().to_string();
        assert!(e.starts_with("hosts:1:"), "{e}");
        let e = parse("hosts", "[web]\nweb[01:50].example.com\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ranges"), "{e}");
        assert!(parse("x.yml", "all: [1, 2\n")
            .unwrap_err()
            .to_string()
            .contains("not YAML"));
        assert!(parse("empty.csv", "name\n")
            .unwrap_err()
            .to_string()
            .contains("no hosts"));
    }
}
