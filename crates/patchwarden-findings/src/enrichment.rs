//! What the knowledge base says about a host's CVEs beyond the advisories: the best CVSS, the KEV
//! entry, the EPSS score — loaded once, read per advisory.

use std::collections::HashMap;

use patchwarden_model::{CveRecord, EpssScore, KevEntry};

use crate::report::{AdvisoryFacts, Cvss, Epss, Kev};

/// What prioritization needs of a CVE.
#[derive(Clone, Debug)]
struct CveFacts {
    best: Option<Cvss>,
    published: Option<String>,
}

/// NVD, KEV and EPSS facts of CVEs (only what prioritization reads: 300,000 NVD records fit).
#[derive(Default)]
pub struct Enrichment {
    cves: HashMap<String, Option<CveFacts>>,
    kev: HashMap<String, Option<KevEntry>>,
    epss: HashMap<String, Option<EpssScore>>,
}

fn cve_facts(c: &CveRecord) -> CveFacts {
    CveFacts {
        best: c.best_metric().and_then(|m| {
            Some(Cvss {
                cve: c.id.clone(),
                score: m.computed_score?,
                version: m.version.clone(),
                vector: m.vector.clone(),
                source: m.source.clone(),
            })
        }),
        published: c.published.clone(),
    }
}

impl Enrichment {
    /// Everything known, for fleet-wide evaluation.
    pub fn from_parts(
        cves: impl IntoIterator<Item = CveRecord>,
        kev: impl IntoIterator<Item = KevEntry>,
        epss: impl IntoIterator<Item = EpssScore>,
    ) -> Enrichment {
        Enrichment {
            cves: cves
                .into_iter()
                .map(|c| (c.id.clone(), Some(cve_facts(&c))))
                .collect(),
            kev: kev.into_iter().map(|k| (k.cve.clone(), Some(k))).collect(),
            epss: epss.into_iter().map(|e| (e.cve.clone(), Some(e))).collect(),
        }
    }

    /// Adds records (a fleet's knowledge grows as it meets new package names).
    pub fn extend(
        &mut self,
        cves: impl IntoIterator<Item = CveRecord>,
        kev: impl IntoIterator<Item = KevEntry>,
        epss: impl IntoIterator<Item = EpssScore>,
    ) {
        self.cves.extend(
            cves.into_iter()
                .map(|c| (c.id.clone(), Some(cve_facts(&c)))),
        );
        self.kev
            .extend(kev.into_iter().map(|k| (k.cve.clone(), Some(k))));
        self.epss
            .extend(epss.into_iter().map(|e| (e.cve.clone(), Some(e))));
    }

    pub(crate) fn facts(&self, cves: &[String], published: Option<&String>) -> AdvisoryFacts {
        let cve = |id: &String| self.cves.get(id).and_then(Option::as_ref);
        let cvss = cves
            .iter()
            .filter_map(|c| cve(c)?.best.clone())
            .max_by(|x, y| x.score.total_cmp(&y.score));
        let kev_entry = cves
            .iter()
            .filter_map(|c| self.kev.get(c).and_then(Option::as_ref))
            .min_by(|x, y| x.due_date.cmp(&y.due_date))
            .map(|k| Kev {
                cve: k.cve.clone(),
                date_added: k.date_added.clone(),
                due_date: k.due_date.clone(),
                known_ransomware_use: k.known_ransomware_use,
            });
        let epss = cves
            .iter()
            .filter_map(|c| self.epss.get(c).and_then(Option::as_ref))
            .max_by(|x, y| x.score.total_cmp(&y.score))
            .map(|e| Epss {
                cve: e.cve.clone(),
                score: e.score,
                percentile: e.percentile,
            });
        let published = published
            .cloned()
            .or_else(|| cves.iter().filter_map(|c| cve(c)?.published.clone()).min());
        AdvisoryFacts {
            cvss,
            kev: kev_entry.is_some(),
            kev_entry,
            epss,
            published,
        }
    }
}
