//! Exemplars: for each bucket of the latency and token histograms, the trace id of a recent
//! sampled request that fell in it, written next to the bucket in the OpenMetrics exposition
//! (`openmetrics.rs`), so that a dot on a Grafana latency panel opens that request's trace.
//!
//! The `prometheus` crate cannot hold exemplars (tikv/rust-prometheus#393), and the
//! Prometheus organisation's `prometheus-client` would change every family's text output; so
//! the values stay in the `prometheus` crate and the exemplars live beside them, here, keyed by
//! family and exact label values. Bounded: at most [`MAX_SERIES`] series keep exemplars
//! (quick_cache evicts the coldest), one exemplar per bucket, the latest. Recording never waits:
//! a series whose slots another request is writing skips this one (an exemplar is a sample).

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::TraceId;
use quick_cache::sync::Cache;

/// The most series that keep exemplars.
pub const MAX_SERIES: usize = 4096;

/// A histogram family that carries exemplars: its name, declared label names and buckets.
#[derive(Debug, Clone, Copy)]
pub struct ExemplarFamily {
    /// The family's name (without `_bucket`).
    pub name: &'static str,
    /// Its label names, in declared order.
    pub labels: &'static [&'static str],
    /// Its bucket upper bounds (+Inf implied).
    pub buckets: &'static [f64],
}

/// One bucket's exemplar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exemplar {
    /// The sampled request's trace.
    pub trace_id: TraceId,
    /// The observed value.
    pub value: f64,
    /// When, in seconds since the Unix epoch.
    pub timestamp: f64,
}

type Slots = Arc<Mutex<Vec<Option<Exemplar>>>>;

/// Every exemplar, by series.
pub struct Exemplars {
    series: Cache<String, Slots>,
}

impl std::fmt::Debug for Exemplars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exemplars")
            .field("series", &self.series.len())
            .finish()
    }
}

impl Default for Exemplars {
    fn default() -> Self {
        Self {
            series: Cache::new(MAX_SERIES),
        }
    }
}

/// The key of a series: the family and its label values in declared order, separated by a
/// byte no label value holds unescaped in the exposition (values stay apart, unlike the
/// prometheus crate's own hashing).
fn key<'a>(family: &str, values: impl Iterator<Item = &'a str>) -> String {
    let mut key = String::with_capacity(96);
    key.push_str(family);
    for value in values {
        key.push('\u{0}');
        key.push_str(value);
    }
    key
}

impl Exemplars {
    /// Notes `value`, observed in `family` with label `values` (declared order), as its
    /// bucket's exemplar for `trace`.
    pub fn record(&self, family: &ExemplarFamily, values: &[&str], value: f64, trace: TraceId) {
        let bucket = family
            .buckets
            .iter()
            .position(|upper| value <= *upper)
            .unwrap_or(family.buckets.len());
        let key = key(family.name, values.iter().copied());
        let slots = match self.series.get(&key) {
            Some(slots) => slots,
            None => {
                let slots: Slots = Arc::new(Mutex::new(vec![None; family.buckets.len() + 1]));
                self.series.insert(key, slots.clone());
                slots
            }
        };
        let Ok(mut slots) = slots.try_lock() else {
            return;
        };
        if let Some(slot) = slots.get_mut(bucket) {
            *slot = Some(Exemplar {
                trace_id: trace,
                value,
                timestamp: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64()),
            });
        }
    }

    /// The exemplars of one series (`value_of` gives a label's value by name), by bucket
    /// (+Inf last); `None` when it has none.
    pub fn of(
        &self,
        family: &ExemplarFamily,
        value_of: impl Fn(&str) -> String,
    ) -> Option<Vec<Option<Exemplar>>> {
        let values: Vec<String> = family.labels.iter().map(|name| value_of(name)).collect();
        let key = key(family.name, values.iter().map(String::as_str));
        let slots = self.series.get(&key)?;
        let slots = slots.lock().unwrap_or_else(|e| e.into_inner());
        Some(slots.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILY: ExemplarFamily = ExemplarFamily {
        name: "latency_seconds",
        labels: &["a", "b"],
        buckets: &[0.1, 1.0],
    };

    #[test]
    fn each_bucket_keeps_its_latest_exemplar_per_exact_series() {
        let exemplars = Exemplars::default();
        let trace = |n: u8| TraceId::from_bytes([n; 16]);
        exemplars.record(&FAMILY, &["x", "y"], 0.05, trace(1));
        exemplars.record(&FAMILY, &["x", "y"], 0.07, trace(2));
        exemplars.record(&FAMILY, &["x", "y"], 5.0, trace(3));
        // Values that would merge if written one after another ("xy" + "").
        exemplars.record(&FAMILY, &["xy", ""], 0.5, trace(4));
        let values = |a: &'static str, b: &'static str| {
            move |name: &str| {
                if name == "a" {
                    a.to_owned()
                } else {
                    b.to_owned()
                }
            }
        };
        let slots = exemplars.of(&FAMILY, values("x", "y")).unwrap();
        assert_eq!(slots[0].map(|e| e.trace_id), Some(trace(2)), "the latest");
        assert_eq!(slots[1], None);
        assert_eq!(slots[2].map(|e| e.value), Some(5.0), "+Inf");
        let other = exemplars.of(&FAMILY, values("xy", "")).unwrap();
        assert_eq!(other[1].map(|e| e.trace_id), Some(trace(4)));
        assert!(exemplars.of(&FAMILY, values("z", "")).is_none());
    }
}
