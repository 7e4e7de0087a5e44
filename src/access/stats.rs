//! The collector of the keys' families: `llm_spend_usd_total`, `llm_key_rejections_total`,
//! `llm_budget_usd` and `llm_budget_remaining_usd`, from each key's and team's state
//! (`ring::OwnerState`) at scrape time.
//!
//! A collector of our own rather than the prometheus crate's label vectors: those find a series
//! by a hash of its label values written one after another with no separator, so key `a` of
//! team `bc` and key `ab` of team `c` (or a key's budget `{key="search", team=""}` and its
//! team's `{key="", team="search"}`) would share one series. Here every series is kept under
//! its owner and written with its exact labels at scrape time; recording is a per-key atomic or
//! lock, never a label lookup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use arc_swap::ArcSwap;

use super::ledger::NANOS;
use super::period::Now;
use super::ring::{KeyRing, REASONS, periods};
use crate::telemetry::{Series, family};

/// The collector of the keys' families, reading the live key ring at each scrape.
pub(super) struct AccessCollector {
    ring: Weak<ArcSwap<KeyRing>>,
    /// Refusals of unknown keys.
    unknown_keys: Arc<AtomicU64>,
    /// Remaining budgets from the in-process counts (no Redis), else from what the ledger
    /// last said.
    from_counts: bool,
    descs: Vec<Desc>,
}

const SPEND: (&str, &str) = (
    "llm_spend_usd_total",
    "US dollars spent through each virtual key (priced models only), by key, its team (empty when none), provider and model.",
);
const REJECTIONS: (&str, &str) = (
    "llm_key_rejections_total",
    "Requests refused before any upstream call because of their gateway key, by key (empty for an unknown key) and reason.",
);
const BUDGET: (&str, &str) = (
    "llm_budget_usd",
    "A key's (team=\"\") or a team's (key=\"\") budget in US dollars per period (day, month; UTC).",
);
const REMAINING: (&str, &str) = (
    "llm_budget_remaining_usd",
    "What is left of a key's or team's budget this period, as this replica last read it from the ledger (take the min across replicas).",
);

impl AccessCollector {
    pub fn new(
        ring: Weak<ArcSwap<KeyRing>>,
        unknown_keys: Arc<AtomicU64>,
        from_counts: bool,
    ) -> Self {
        let desc = |(name, help): (&str, &str), labels: &[&str]| {
            Desc::new(
                name.into(),
                help.into(),
                labels.iter().map(|l| (*l).to_owned()).collect(),
                HashMap::new(),
            )
            .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"))
        };
        Self {
            ring,
            unknown_keys,
            from_counts,
            descs: vec![
                desc(SPEND, &["key", "team", "provider", "model"]),
                desc(REJECTIONS, &["key", "reason"]),
                desc(BUDGET, &["key", "team", "period"]),
                desc(REMAINING, &["key", "team", "period"]),
            ],
        }
    }
}

impl Collector for AccessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(ring) = self.ring.upgrade() else {
            return Vec::new();
        };
        let ring = ring.load_full();
        let now = Now::current();
        let (mut spend, mut rejections, mut budgets, mut remaining) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let unknown = self.unknown_keys.load(Ordering::Relaxed);
        if unknown > 0 {
            rejections.push(series(
                &[("key", ""), ("reason", REASONS[0])],
                unknown as f64,
            ));
        }
        for key in &ring.keys {
            let team = key.team.as_ref().map_or("", |t| &*t.name);
            let state = &key.state;
            for (provider, model, usd) in
                state.spend.lock().unwrap_or_else(|e| e.into_inner()).iter()
            {
                spend.push(series(
                    &[
                        ("key", &key.name),
                        ("model", model),
                        ("provider", provider),
                        ("team", team),
                    ],
                    *usd,
                ));
            }
            for (reason, count) in REASONS.iter().zip(&state.rejections) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    rejections.push(series(
                        &[("key", &key.name), ("reason", reason)],
                        count as f64,
                    ));
                }
            }
        }
        let owners = ring
            .keys
            .iter()
            .map(|k| ((&*k.name, ""), &k.budget, &k.state))
            .chain(
                ring.teams
                    .iter()
                    .map(|t| (("", &*t.name), &t.budget, &t.state)),
            );
        for ((key, team), budget, state) in owners {
            for (period, usd) in periods(budget) {
                let labels = [("key", key), ("period", period.as_str()), ("team", team)];
                budgets.push(series(&labels, usd));
                let spent = if self.from_counts {
                    let counts = state.counts.lock().unwrap_or_else(|e| e.into_inner());
                    counts.spent(period, &now) as f64 / NANOS
                } else {
                    state.seen_in(period, &now)
                };
                let left = (usd - spent).max(0.0);
                remaining.push(series(&labels, left));
            }
        }
        use prometheus::proto::MetricType::{COUNTER, GAUGE};
        vec![
            family(SPEND, COUNTER, spend),
            family(REJECTIONS, COUNTER, rejections),
            family(BUDGET, GAUGE, budgets),
            family(REMAINING, GAUGE, remaining),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

fn series(labels: &[(&str, &str)], value: f64) -> Series {
    Series {
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        value,
    }
}
