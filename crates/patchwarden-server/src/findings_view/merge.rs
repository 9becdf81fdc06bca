//! The fleet findings list as a merge: the filter over slim documents, and the k-way merge of the
//! hosts' riskiest-first lists into one page (ties: hostname, host id, the host's own order).
//! No I/O: the view hands in each group's passing positions and its hosts.

use std::borrow::Cow;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use patchwarden_model::Severity;
use patchwarden_store::fleet::HostFindingSet;

use super::{FleetFindingFilter, Slim};

/// The filter of the list, over slim documents, decided against today's date.
pub(super) struct Passes<'a> {
    filter: &'a FleetFindingFilter,
    min: Severity,
    /// The last due date admitted (`due_within_days` from today).
    horizon: Option<String>,
}

impl<'a> Passes<'a> {
    pub fn new(filter: &'a FleetFindingFilter) -> Passes<'a> {
        let today = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date();
        Passes {
            filter,
            min: filter.min_severity.unwrap_or_default(),
            horizon: filter
                .due_within_days
                .and_then(|d| today.checked_add(jiff::Span::new().days(d)).ok())
                .map(|d| d.to_string()),
        }
    }

    pub fn admits(&self, d: &Slim) -> bool {
        let f = self.filter;
        d.severity >= self.min
            && (!f.kev || d.kev)
            && (!f.overdue || d.overdue)
            && f.state.is_none_or(|s| d.state == s)
            && self.horizon.as_ref().is_none_or(|h| {
                d.first_due
                    .as_ref()
                    .is_some_and(|due| due.as_str() <= h.as_str())
            })
    }
}

/// A host of a group, as the list shows it.
#[derive(Clone, Debug)]
pub(super) struct Member {
    pub host_id: i64,
    pub hostname: Arc<str>,
    pub labels: Arc<BTreeMap<String, String>>,
    /// Its own finding set (its first-sighting times).
    pub set: Option<Arc<HostFindingSet>>,
}

/// One row of the page: a host, its group, the position in the group's documents.
pub(super) struct Row<'a> {
    pub member: &'a Member,
    pub group: usize,
    pub at: usize,
}

/// A host's next finding in the merge.
struct Head<'a> {
    risk: f64,
    hostname: &'a str,
    host_id: i64,
    group: usize,
    member: usize,
    /// Position in the group's passing list.
    at: usize,
}

impl PartialEq for Head<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Head<'_> {}
impl PartialOrd for Head<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head<'_> {
    // The heap pops the greatest: the riskiest, then the first hostname, then the lowest host
    // id; a host's own findings keep their order (package, advisory, …).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.risk
            .total_cmp(&other.risk)
            .then_with(|| other.hostname.cmp(self.hostname))
            .then_with(|| other.host_id.cmp(&self.host_id))
            .then_with(|| other.at.cmp(&self.at))
    }
}

/// The page: `members[g]` are group g's hosts, `passing[g]` the (position, risk) of its documents
/// that pass the filter, riskiest first.
pub(super) fn page<'a>(
    members: &'a [Cow<'_, [Member]>],
    passing: &[Vec<(usize, f64)>],
    offset: usize,
    limit: usize,
) -> Vec<Row<'a>> {
    let mut heads: Vec<Head<'_>> = Vec::new();
    for (g, hosts) in members.iter().enumerate() {
        let Some((_, risk)) = passing[g].first() else {
            continue;
        };
        for (m, h) in hosts.iter().enumerate() {
            heads.push(Head {
                risk: *risk,
                hostname: &h.hostname,
                host_id: h.host_id,
                group: g,
                member: m,
                at: 0,
            });
        }
    }
    let mut heap = BinaryHeap::from(heads);
    let mut rows = Vec::with_capacity(limit.min(10_000));
    let mut skipped = 0;
    while rows.len() < limit {
        let Some(mut head) = heap.pop() else { break };
        if skipped < offset {
            skipped += 1;
        } else {
            rows.push(Row {
                member: &members[head.group][head.member],
                group: head.group,
                at: passing[head.group][head.at].0,
            });
        }
        head.at += 1;
        if let Some((_, risk)) = passing[head.group].get(head.at) {
            head.risk = *risk;
            heap.push(head);
        }
    }
    rows
}
