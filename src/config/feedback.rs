//! What clients may name that metrics carry as labels, bounded by the configuration file: the
//! `[feedback]` table (evaluation names and labels, how far back feedback may refer) and the
//! `[prompts]` table (prompt names and their versions). Anything else is counted as `other`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;

use super::keys::valid_name;

/// How far back feedback may refer, by default.
pub const DEFAULT_FEEDBACK_WINDOW: Duration = Duration::from_secs(3600);
/// The most calls remembered for feedback, by default: about 170 bytes each, 8.5 MB (the
/// 1,000,000-request soak with every feature on stays under 50 MB; BENCHMARKS.md, issue 18).
pub const DEFAULT_FEEDBACK_CALLS: usize = 50_000;

/// Feedback (`POST /v1/feedback`).
#[derive(Debug, Clone)]
pub struct FeedbackSettings {
    /// Evaluation names with their own `name` label value; any other is `other`.
    pub names: Vec<String>,
    /// Score labels with their own `label` label value; any other is `other`.
    pub labels: Vec<String>,
    /// How long after a call feedback may refer to it.
    pub window: Duration,
    /// The most calls remembered (each by response id and trace id).
    pub max_calls: usize,
}

impl Default for FeedbackSettings {
    fn default() -> Self {
        Self {
            names: Vec::new(),
            labels: Vec::new(),
            window: DEFAULT_FEEDBACK_WINDOW,
            max_calls: DEFAULT_FEEDBACK_CALLS,
        }
    }
}

/// The `[prompts]` table: each prompt name with its versions, the values the `prompt` and
/// `prompt_version` labels may take.
#[derive(Debug, Clone, Default)]
pub struct PromptSettings {
    /// (name, versions), by name.
    pub prompts: Vec<(String, Vec<String>)>,
}

impl PromptSettings {
    /// The bounded (`prompt`, `prompt_version`) label values of a call's prompt: declared ones
    /// as they are, an undeclared version `other`, an undeclared name `other`/`other`.
    pub fn labels(&self, name: &str, version: &str) -> (String, String) {
        match self.prompts.iter().find(|(n, _)| n == name) {
            Some((name, versions)) if versions.iter().any(|v| v == version) => {
                (name.clone(), version.to_owned())
            }
            Some((name, _)) => (name.clone(), "other".to_owned()),
            None => ("other".to_owned(), "other".to_owned()),
        }
    }

    /// Reads the `[prompts]` table; each error names its key.
    pub(super) fn check(table: BTreeMap<String, Vec<String>>) -> Result<Self, String> {
        let mut seen = HashMap::new();
        for (name, versions) in &table {
            if !valid_name(name) || name == "other" {
                return Err(format!(
                    "prompts.{name}: a prompt name is 1-64 letters, digits, '-', '_' or '.' (and not \"other\")"
                ));
            }
            if let Some(bad) = versions.iter().find(|v| !valid_name(v) || *v == "other") {
                return Err(format!(
                    "prompts.{name}: version {bad:?}: expected 1-64 letters, digits, '-', '_' or '.' (and not \"other\")"
                ));
            }
            // The prometheus crate's label vectors would merge these series (see [feedback]).
            for version in versions.iter().map(String::as_str).chain(["other"]) {
                if let Some((other, other_version)) =
                    seen.insert(format!("{name}{version}"), (name.clone(), version))
                {
                    return Err(format!(
                        "prompts.{name}: version {version:?} and prompt {other:?} version {other_version:?} would share a metric series; rename one"
                    ));
                }
            }
        }
        Ok(Self {
            prompts: table.into_iter().collect(),
        })
    }
}

/// The `[feedback]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FeedbackSection {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    labels: Vec<String>,
    window_secs: Option<u64>,
    max_calls: Option<usize>,
}

impl FeedbackSection {
    /// Checks the table; each error names its key.
    pub(super) fn check(self) -> Result<FeedbackSettings, String> {
        for (key, values) in [("names", &self.names), ("labels", &self.labels)] {
            if let Some(bad) = values.iter().find(|v| !valid_name(v) || *v == "other") {
                return Err(format!(
                    "feedback.{key}: {bad:?}: expected 1-64 letters, digits, '-', '_' or '.' (and not \"other\", which counts the rest)"
                ));
            }
        }
        // The prometheus crate finds a series by its label values written one after another:
        // name "a" with label "bc" and name "ab" with label "c" would share one.
        let names = self.names.iter().map(String::as_str).chain(["other"]);
        let mut seen = HashMap::new();
        for name in names {
            for label in self.labels.iter().map(String::as_str).chain(["other", ""]) {
                if let Some((other_name, other_label)) =
                    seen.insert(format!("{name}{label}"), (name, label))
                {
                    return Err(format!(
                        "feedback: name {name:?} with label {label:?} and name {other_name:?} with label {other_label:?} would share a metric series; rename one"
                    ));
                }
            }
        }
        let window = match self.window_secs {
            None => DEFAULT_FEEDBACK_WINDOW,
            Some(secs @ 1..=604_800) => Duration::from_secs(secs),
            Some(secs) => {
                return Err(format!(
                    "feedback.window_secs = {secs}: expected seconds from 1 to 604800 (a week)"
                ));
            }
        };
        let max_calls = match self.max_calls {
            None => DEFAULT_FEEDBACK_CALLS,
            Some(n @ 1..=10_000_000) => n,
            Some(n) => {
                return Err(format!(
                    "feedback.max_calls = {n}: expected a whole number from 1 to 10000000"
                ));
            }
        };
        Ok(FeedbackSettings {
            names: self.names,
            labels: self.labels,
            window,
            max_calls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<FeedbackSettings, String> {
        toml::from_str::<FeedbackSection>(text)
            .map_err(|e| e.to_string())?
            .check()
    }

    #[test]
    fn reads_names_labels_and_the_window() {
        let settings = check("names = [\"a\"]\nlabels = [\"good\"]\nwindow_secs = 60").unwrap();
        assert_eq!(settings.names, ["a"]);
        assert_eq!(settings.window, Duration::from_secs(60));
        assert_eq!(settings.max_calls, DEFAULT_FEEDBACK_CALLS);
    }

    #[test]
    fn prompts_bound_their_labels_and_refuse_merging_series() {
        let table = |text: &str| {
            toml::from_str::<BTreeMap<String, Vec<String>>>(text)
                .map_err(|e| e.to_string())
                .and_then(PromptSettings::check)
        };
        let prompts = table("support = [\"v1\", \"v2\"]").unwrap();
        assert_eq!(
            prompts.labels("support", "v2"),
            ("support".into(), "v2".into())
        );
        assert_eq!(
            prompts.labels("support", "v9"),
            ("support".into(), "other".into())
        );
        assert_eq!(prompts.labels("x", "v1"), ("other".into(), "other".into()));
        let error = table("a = [\"bc\"]\nab = [\"c\"]").unwrap_err();
        assert!(error.contains("would share a metric series"), "{error}");
        assert!(
            table("other = [\"v1\"]")
                .unwrap_err()
                .starts_with("prompts.other")
        );
    }

    #[test]
    fn refuses_names_whose_series_would_merge_and_bad_values() {
        let error = check("names = [\"a\", \"ab\"]\nlabels = [\"bc\", \"c\"]").unwrap_err();
        assert!(error.contains("would share a metric series"), "{error}");
        assert!(
            check("names = [\"other\"]")
                .unwrap_err()
                .starts_with("feedback.names")
        );
        assert!(
            check("labels = [\"a b\"]")
                .unwrap_err()
                .starts_with("feedback.labels")
        );
        assert!(
            check("window_secs = 0")
                .unwrap_err()
                .starts_with("feedback.window_secs = 0")
        );
    }
}
