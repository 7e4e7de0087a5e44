//! The registry in the OpenMetrics text format, with exemplars: what `/metrics` answers a
//! scraper that asks for `application/openmetrics-text` (Prometheus does; with
//! `--enable-feature=exemplar-storage` it keeps the exemplars). The same families, names,
//! labels and values as the Prometheus text format; the differences are the format's own: a
//! counter's `# TYPE`/`# HELP` name without its `_total`, `unknown` for untyped, an exemplar
//! after a bucket (`# {trace_id="…"} value timestamp`), and `# EOF`.

use std::fmt::Write as _;

use prometheus::proto::{MetricFamily, MetricType};

use super::exemplars::{ExemplarFamily, Exemplars};

/// The content type of the OpenMetrics exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics.
pub fn wanted(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// Writes `families` in the OpenMetrics text format, with the exemplars of `with_exemplars`.
pub fn encode(
    families: &[MetricFamily],
    exemplars: &Exemplars,
    with_exemplars: &[ExemplarFamily],
) -> String {
    let mut out = String::with_capacity(32 * 1024);
    for family in families {
        let name = family.name();
        let (kind, base) = match family.get_field_type() {
            MetricType::COUNTER => match name.strip_suffix("_total") {
                Some(base) => ("counter", base),
                None => ("unknown", name),
            },
            MetricType::GAUGE => ("gauge", name),
            MetricType::HISTOGRAM => ("histogram", name),
            MetricType::SUMMARY => ("summary", name),
            MetricType::UNTYPED => ("unknown", name),
        };
        let _ = writeln!(out, "# TYPE {base} {kind}");
        let _ = writeln!(out, "# HELP {base} {}", escape(family.help()));
        let exemplar_family = with_exemplars.iter().find(|f| f.name == name);
        for metric in family.get_metric() {
            let labels: Vec<(&str, &str)> = metric
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            match family.get_field_type() {
                MetricType::COUNTER => {
                    sample(
                        &mut out,
                        name,
                        &labels,
                        None,
                        metric.get_counter().get_value(),
                    );
                }
                MetricType::GAUGE => {
                    sample(
                        &mut out,
                        name,
                        &labels,
                        None,
                        metric.get_gauge().get_value(),
                    );
                }
                MetricType::HISTOGRAM => {
                    let histogram = metric.get_histogram();
                    let slots = exemplar_family.and_then(|f| {
                        exemplars.of(f, |label| {
                            labels
                                .iter()
                                .find(|(n, _)| *n == label)
                                .map_or(String::new(), |(_, v)| (*v).to_owned())
                        })
                    });
                    let bucket_name = format!("{name}_bucket");
                    let mut index = 0;
                    for bucket in histogram.get_bucket() {
                        let upper = bucket.upper_bound();
                        if upper.is_infinite() {
                            continue;
                        }
                        let le = number(upper);
                        let exemplar = slots.as_ref().and_then(|s| s.get(index).copied().flatten());
                        sample(
                            &mut out,
                            &bucket_name,
                            &labels,
                            Some(&le),
                            bucket.cumulative_count() as f64,
                        );
                        if let Some(exemplar) = exemplar {
                            attach(&mut out, &exemplar);
                        }
                        index += 1;
                    }
                    let count = histogram.get_sample_count() as f64;
                    sample(&mut out, &bucket_name, &labels, Some("+Inf"), count);
                    if let Some(exemplar) = slots.as_ref().and_then(|s| s.last().copied().flatten())
                    {
                        attach(&mut out, &exemplar);
                    }
                    sample(&mut out, &format!("{name}_count"), &labels, None, count);
                    sample(
                        &mut out,
                        &format!("{name}_sum"),
                        &labels,
                        None,
                        histogram.get_sample_sum(),
                    );
                }
                MetricType::SUMMARY => {
                    let summary = metric.get_summary();
                    for quantile in summary.get_quantile() {
                        let q = number(quantile.quantile());
                        let mut with_q = labels.clone();
                        with_q.push(("quantile", &q));
                        sample(&mut out, name, &with_q, None, quantile.value());
                    }
                    let count = summary.sample_count() as f64;
                    sample(&mut out, &format!("{name}_count"), &labels, None, count);
                    let sum = summary.sample_sum();
                    sample(&mut out, &format!("{name}_sum"), &labels, None, sum);
                }
                // The crate deprecates its untyped metrics; none is registered, but a collector
                // could still produce one.
                #[allow(deprecated)]
                MetricType::UNTYPED => {
                    sample(
                        &mut out,
                        name,
                        &labels,
                        None,
                        metric.get_untyped().get_value(),
                    );
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// One sample line, without its newline when an exemplar may follow: `name{labels} value`.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], le: Option<&str>, value: f64) {
    out.push_str(name);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (label, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "{label}=\"{}\"", escape(value));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

/// Appends an exemplar to the sample line just written.
fn attach(out: &mut String, exemplar: &super::exemplars::Exemplar) {
    out.pop(); // the newline
    let _ = writeln!(
        out,
        " # {{trace_id=\"{}\"}} {} {:.3}",
        exemplar.trace_id,
        number(exemplar.value),
        exemplar.timestamp
    );
}

/// A float as the format writes it: `+Inf`, `-Inf`, `NaN`, else its shortest decimal form.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}

/// Label values and help text: backslash, double quote and newline escaped.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceId;
    use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

    #[test]
    fn writes_counters_histograms_with_exemplars_and_eof() {
        let registry = Registry::new();
        let counter =
            IntCounterVec::new(Opts::new("calls_total", "Calls \"made\"."), &["model"]).unwrap();
        let histogram = HistogramVec::new(
            HistogramOpts::new("latency_seconds", "Latency.").buckets(vec![0.1, 1.0]),
            &["model"],
        )
        .unwrap();
        registry.register(Box::new(counter.clone())).unwrap();
        registry.register(Box::new(histogram.clone())).unwrap();
        counter.with_label_values(&["m\"1"]).inc();
        histogram.with_label_values(&["m"]).observe(0.5);
        let family = ExemplarFamily {
            name: "latency_seconds",
            labels: &["model"],
            buckets: &[0.1, 1.0],
        };
        let exemplars = Exemplars::default();
        let trace = TraceId::from_bytes([0xab; 16]);
        exemplars.record(&family, &["m"], 0.5, trace);
        let text = encode(&registry.gather(), &exemplars, &[family]);
        assert!(
            text.contains("# TYPE calls counter\n# HELP calls Calls \\\"made\\\".\n"),
            "{text}"
        );
        assert!(text.contains("calls_total{model=\"m\\\"1\"} 1\n"), "{text}");
        assert!(
            text.contains("latency_seconds_bucket{model=\"m\",le=\"0.1\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "latency_seconds_bucket{{model=\"m\",le=\"1\"}} 1 # {{trace_id=\"{trace}\"}} 0.5 "
            )),
            "{text}"
        );
        assert!(
            text.contains("latency_seconds_bucket{model=\"m\",le=\"+Inf\"} 1\n"),
            "{text}"
        );
        assert!(text.contains(
            "latency_seconds_count{model=\"m\"} 1\nlatency_seconds_sum{model=\"m\"} 0.5\n"
        ));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn only_an_openmetrics_accept_header_gets_it() {
        assert!(wanted(Some(
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3"
        )));
        assert!(!wanted(Some("text/plain")));
        assert!(!wanted(None));
    }
}
