//! A host's findings as the fleet stores them: the ids of the finding keys it holds (a shared,
//! content-addressed set) and when each was first seen — one base time and the keys first seen at
//! other times. The rule of first sightings across evaluations (`HostFindingSet::next_sightings`)
//! lives here, free of storage, so that the store only persists what it decides.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The findings a host holds: its set's keys (ascending) and when each was first seen.
#[derive(Clone, Debug, PartialEq)]
pub struct HostFindingSet {
    pub host_id: i64,
    pub set_id: i64,
    pub keys: Arc<[i64]>,
    /// When the keys were first seen, unless `seen_other` names them.
    pub seen_base: String,
    /// Time → keys first seen then (only those not seen at `seen_base`).
    pub seen_other: BTreeMap<String, Vec<i64>>,
}

impl HostFindingSet {
    /// When the finding `key` was first seen on the host.
    pub fn first_seen(&self, key: i64) -> &str {
        self.seen_other
            .iter()
            .find(|(_, keys)| keys.binary_search(&key).is_ok())
            .map(|(at, _)| at.as_str())
            .unwrap_or(&self.seen_base)
    }

    /// Every first sighting: key → time.
    pub fn first_seen_map(&self) -> HashMap<i64, &str> {
        let mut map: HashMap<i64, &str> = self
            .keys
            .iter()
            .map(|k| (*k, self.seen_base.as_str()))
            .collect();
        for (at, keys) in &self.seen_other {
            for k in keys {
                map.insert(*k, at.as_str());
            }
        }
        map
    }

    /// The first sightings (other than `seen_base`) after an evaluation found `keys` (ascending)
    /// at `now`, of which `opened` are new and `closed` are gone; `finding_of` names a changed
    /// key's (package, advisory id). A kept key keeps its time; an opened key takes the time of a
    /// closed key of the same package and advisory (an upgrade that did not fix it, a state
    /// change), else `now`. A finding that closed and is found again in a later evaluation is
    /// new: what closed before this evaluation is not remembered (MTTR counts it fixed).
    pub fn next_sightings<'k>(
        &self,
        keys: &[i64],
        opened: &[i64],
        closed: &[i64],
        finding_of: impl Fn(i64) -> (&'k str, &'k str),
        now: &str,
    ) -> BTreeMap<String, Vec<i64>> {
        let carried: HashMap<(&str, &str), &str> = closed
            .iter()
            .map(|id| (finding_of(*id), self.first_seen(*id)))
            .collect();
        let mut other: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for (at, ids) in &self.seen_other {
            let kept: Vec<i64> = ids
                .iter()
                .copied()
                .filter(|k| keys.binary_search(k).is_ok())
                .collect();
            if !kept.is_empty() {
                other.insert(at.clone(), kept);
            }
        }
        for id in opened {
            let at = carried.get(&finding_of(*id)).copied().unwrap_or(now);
            if at != self.seen_base {
                other.entry(at.to_owned()).or_default().push(*id);
            }
        }
        for ids in other.values_mut() {
            ids.sort_unstable();
            ids.dedup();
        }
        other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(keys: &[i64], base: &str, other: &[(&str, &[i64])]) -> HostFindingSet {
        HostFindingSet {
            host_id: 1,
            set_id: 1,
            keys: keys.into(),
            seen_base: base.into(),
            seen_other: other
                .iter()
                .map(|(at, k)| (at.to_string(), k.to_vec()))
                .collect(),
        }
    }

    #[test]
    fn kept_keys_keep_their_time_replaced_ones_carry_it_new_ones_are_now() {
        // Keys 1, 2 (package a: advisory X, Y) at T0; 3 (b: Z) at T1.
        let old = set(&[1, 2, 3], "T0", &[("T1", &[3])]);
        let names: HashMap<i64, (&str, &str)> = [
            (1, ("a", "X")),
            (2, ("a", "Y")),
            (3, ("b", "Z")),
            // 4 replaces 3 (same package and advisory: an upgrade that did not fix it).
            (4, ("b", "Z")),
            // 5 is new.
            (5, ("c", "W")),
        ]
        .into();
        // Now: 1 kept, 2 closed, 3 → 4, 5 opened.
        let next = old.next_sightings(&[1, 4, 5], &[4, 5], &[2, 3], |k| names[&k], "T2");
        assert_eq!(
            next,
            BTreeMap::from([("T1".to_owned(), vec![4]), ("T2".to_owned(), vec![5])])
        );
        // Found again one evaluation after it closed: new (T3), not T0.
        let later = set(&[1, 4, 5], "T0", &[("T1", &[4]), ("T2", &[5])]);
        let again = later.next_sightings(&[1, 2, 4, 5], &[2], &[], |k| names[&k], "T3");
        assert_eq!(again.get("T3"), Some(&vec![2]));
        // An opened key whose carried time is the base joins the base (nothing recorded).
        let swap = set(&[2], "T0", &[]);
        let swapped = swap.next_sightings(&[6], &[6], &[2], |_| ("a", "Y"), "T4");
        assert!(swapped.is_empty(), "{swapped:?}");
    }
}
