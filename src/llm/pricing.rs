//! Prices per model, for `cost_usd` and `llm_cost_usd_total`.
//!
//! An unknown model has no cost (`null`), never a silent 0, and is warned about once.
//! Each provider has its own table, so the same model at two providers costs what each
//! charges: the built-in table of its kind (`pricing.json`, Groq's; `pricing-openai.json`),
//! or its `pricing_file` (`PRICING_FILE` by default; read and checked by `config`), plus the
//! `prices` the configuration file gives it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use serde::Deserialize;

use super::Usage;
pub use crate::config::Price;
use crate::config::{ProviderKind, ProviderSettings};

const BUILTIN: &str = include_str!("pricing.json");
const BUILTIN_OPENAI: &str = include_str!("pricing-openai.json");
const BUILTIN_ANTHROPIC: &str = include_str!("pricing-anthropic.json");
/// Unknown models we remember having warned about; past this we stop remembering (and warning)
/// so that a flood of made-up model names cannot grow memory.
const MAX_WARNED: usize = 256;

#[derive(Deserialize)]
struct PricingFile {
    models: HashMap<String, Price>,
}

/// The pricing table.
#[derive(Debug)]
pub struct PriceTable {
    models: HashMap<String, Price>,
    warned: Mutex<HashSet<String>>,
}

impl PriceTable {
    /// The built-in table of Groq models.
    pub fn builtin() -> Self {
        Self::parse(BUILTIN).unwrap_or_else(|e| panic!("built-in pricing.json is invalid: {e}"))
    }

    /// A provider's table: its pricing file or its kind's built-in table (none for an
    /// OpenAI-compatible server), with the configuration's prices over it.
    pub fn for_provider(settings: &ProviderSettings) -> Result<Self, String> {
        let mut table = match (&settings.price_table, settings.kind) {
            (Some(prices), _) => Self {
                models: prices.iter().map(|p| (p.model.clone(), p.price)).collect(),
                warned: Mutex::new(HashSet::new()),
            },
            // The simulated provider answers for Groq's models: it prices them alike.
            (None, ProviderKind::Groq | ProviderKind::Simulated) => Self::builtin(),
            (None, ProviderKind::OpenAi) => Self::parse(BUILTIN_OPENAI)
                .unwrap_or_else(|e| panic!("built-in pricing-openai.json is invalid: {e}")),
            (None, ProviderKind::Anthropic) => Self::parse(BUILTIN_ANTHROPIC)
                .unwrap_or_else(|e| panic!("built-in pricing-anthropic.json is invalid: {e}")),
            (None, ProviderKind::OpenAiCompatible) => Self::parse(r#"{"models": {}}"#)?,
        };
        for setting in &settings.prices {
            table.models.insert(setting.model.clone(), setting.price);
        }
        Ok(table)
    }

    fn parse(text: &str) -> Result<Self, String> {
        let file: PricingFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if let Some((model, _)) = file.models.iter().find(|(_, p)| !p.is_valid()) {
            return Err(format!("model {model}: prices must be finite and >= 0"));
        }
        Ok(Self {
            models: file.models,
            warned: Mutex::new(HashSet::new()),
        })
    }

    /// The priced models.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        let mut names: Vec<&str> = self.models.keys().map(String::as_str).collect();
        names.sort_unstable();
        names.into_iter()
    }

    /// Whether the model is priced (and so a known, bounded label value).
    pub fn knows(&self, model: &str) -> bool {
        self.models.contains_key(model)
    }

    /// The cost of a call answered as `model` (asked as `asked`, which prices it when the
    /// answer names a dated version, e.g. `gpt-4o-mini-2024-07-18`), or `None` for an unpriced
    /// model (warned about once per model).
    pub fn cost(&self, model: &str, asked: &str, usage: Usage) -> Option<f64> {
        match self.models.get(model).or_else(|| self.models.get(asked)) {
            Some(price) => {
                // Input tokens include the cached ones (read and written): each part at its
                // own price, the cache's defaulting to the input price.
                let read = usage.cache_read_input_tokens.unwrap_or(0);
                let written = usage.cache_creation_input_tokens.unwrap_or(0);
                let uncached = usage.input_tokens.saturating_sub(read + written);
                let input = price.input_per_million;
                Some(
                    (uncached as f64 * input
                        + read as f64 * price.cache_read_per_million.unwrap_or(input)
                        + written as f64 * price.cache_write_per_million.unwrap_or(input)
                        + usage.output_tokens as f64 * price.output_per_million)
                        / 1_000_000.0,
                )
            }
            None => {
                self.warn_once(model);
                None
            }
        }
    }

    fn warn_once(&self, model: &str) {
        let Ok(mut warned) = self.warned.lock() else {
            return;
        };
        if warned.len() < MAX_WARNED && warned.insert(model.to_owned()) {
            tracing::warn!(
                model,
                "no price for this model: cost_usd is null and no cost is counted; add it to the provider's prices (PRICING_FILE, or prices/pricing_file in GATEWAY_CONFIG)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_prices_the_default_model_and_not_unknown_ones() {
        let table = PriceTable::builtin();
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 2_000_000,
            ..Usage::default()
        };
        let cost = table.cost("llama-3.1-8b-instant", "x", usage).unwrap();
        assert!((cost - (0.05 + 0.16)).abs() < 1e-12, "{cost}");
        assert_eq!(table.cost("no-such-model", "x", usage), None);
        let dated = table
            .cost("llama-3.1-8b-instant-2026", "llama-3.1-8b-instant", usage)
            .unwrap();
        assert_eq!(
            dated, cost,
            "priced as asked when the answer names a version"
        );
    }

    #[test]
    fn cached_input_is_priced_at_the_cache_prices_and_the_rest_at_the_input_price() {
        let table = PriceTable::parse(BUILTIN_ANTHROPIC).unwrap();
        // 1,000 input tokens of which 600 read from the cache and 300 written to it.
        let usage = Usage {
            input_tokens: 1_000,
            output_tokens: 200,
            cache_read_input_tokens: Some(600),
            cache_creation_input_tokens: Some(300),
            ..Usage::default()
        };
        let cost = table.cost("claude-sonnet-4-5", "x", usage).unwrap();
        let expected = (100.0 * 3.0 + 600.0 * 0.30 + 300.0 * 3.75 + 200.0 * 15.0) / 1e6;
        assert!((cost - expected).abs() < 1e-15, "{cost} != {expected}");
        // Without cache prices, cached tokens cost the input price.
        let groq = PriceTable::builtin();
        let plain = groq.cost("llama-3.1-8b-instant", "x", usage).unwrap();
        assert!((plain - (1_000.0 * 0.05 + 200.0 * 0.08) / 1e6).abs() < 1e-15);
        for table in [BUILTIN, BUILTIN_OPENAI, BUILTIN_ANTHROPIC] {
            PriceTable::parse(table).unwrap();
        }
    }

    #[test]
    fn negative_prices_are_rejected() {
        let err = PriceTable::parse(
            r#"{"models":{"m":{"input_per_million":-1,"output_per_million":1}}}"#,
        )
        .unwrap_err();
        assert!(err.contains("model m"), "{err}");
    }
}
