//! Providers and routes: from the configuration file (`GATEWAY_CONFIG`, TOML), or, without one,
//! the single provider the environment names.
//!
//! TOML with the `toml` crate (as TensorZero does): typed, strict (`deny_unknown_fields`, so a
//! misspelt key stops start-up instead of being ignored), and without YAML's implicit typing.
//! Every problem is one line naming the file, the key and what it accepts; the same reader runs
//! at start-up (exit 2) and on `SIGHUP` (the running configuration is kept).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::env::http_uri;
use super::feedback::{FeedbackSection, FeedbackSettings, PromptSettings};
use super::keys::{self, AccessSection, AccessSettings, KeySection, TeamSection};
use super::{
    ANTHROPIC_BASE_URL, GROQ_BASE_URL, MAX_LLM_RETRIES, OPENAI_BASE_URL, ProviderKind, Secret,
};

/// The failure classes a route may fall back on: the `error.type` values of failures that are
/// the target's, not the client's (README, "Routing").
pub const FALLBACK_CLASSES: &[&str] = &[
    "rate_limited",
    "upstream_server_error",
    "timeout",
    "connection_error",
    "authentication",
    "upstream_client_error",
    "bad_response",
];
/// What a route falls back on unless it says otherwise: 429, 5xx, timeouts, connection errors.
pub const DEFAULT_FALLBACK_ON: &[&str] = &[
    "rate_limited",
    "upstream_server_error",
    "timeout",
    "connection_error",
];
/// Consecutive failures that open a target's circuit, by default.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 5;
/// How long an open circuit skips its target before one probe, by default.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);
/// Longest route name (it is a model name to clients).
const MAX_ROUTE_NAME: usize = 256;

/// A problem in the configuration file: where, and what is accepted there.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration file {path}: {problem}")]
pub struct FileError {
    /// The file, as given in `GATEWAY_CONFIG`.
    pub path: String,
    /// The key (or line) and what it accepts.
    pub problem: String,
}

/// Every provider and route, and how model names resolve.
#[derive(Debug, Clone)]
pub struct RoutingSettings {
    /// The file they came from; `None`: the environment.
    pub file: Option<PathBuf>,
    /// Providers, by name (unique).
    pub providers: Vec<ProviderSettings>,
    /// Routes, by public model name (unique).
    pub routes: Vec<RouteSettings>,
    /// Clients may name `provider/model`.
    pub direct_addressing: bool,
    /// Where a model name that is neither a route nor `provider/model` goes, unchanged; `None`:
    /// such a name is answered 404 `model_not_found`.
    pub default_provider: Option<String>,
    /// The file's `[cache]` table, over the `CACHE_*` variables (`config::CacheSettings`).
    pub cache: Option<CacheSection>,
    /// The file's virtual keys and teams (`[keys.NAME]`, `[teams.NAME]`, `[access]`); read
    /// again on `SIGHUP`, so a key can be added or revoked without a restart.
    pub access: AccessSettings,
    /// The file's `[feedback]` table (read at start-up only).
    pub feedback: FeedbackSettings,
    /// The file's `[prompts]` table (read at start-up only).
    pub prompts: PromptSettings,
}

/// The file's `[cache]` table: the response cache's settings, each over its `CACHE_*` variable.
/// Read at start-up only: the cache is built once, so a reload (`SIGHUP`) does not change it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// `CACHE_ENABLED`.
    pub enabled: Option<bool>,
    /// `CACHE_BACKEND`: `memory` or `redis`.
    pub backend: Option<String>,
    /// `CACHE_TTL_SECONDS`.
    pub ttl_seconds: Option<u64>,
    /// `CACHE_MAX_TTL_SECONDS`.
    pub max_ttl_seconds: Option<u64>,
    /// `CACHE_MAX_ENTRIES`.
    pub max_entries: Option<u64>,
    /// `CACHE_MAX_BYTES`.
    pub max_bytes: Option<u64>,
    /// `CACHE_MAX_ENTRY_BYTES`.
    pub max_entry_bytes: Option<u64>,
    /// `CACHE_LOOKUP_TIMEOUT_MS`.
    pub lookup_timeout_ms: Option<u64>,
    /// `CACHE_STORE_TRUNCATED`.
    pub store_truncated: Option<bool>,
}

/// One provider.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Its name: the `provider` label, `llmobs.provider.name`, the prefix of direct addressing.
    pub name: String,
    /// Its API.
    pub kind: ProviderKind,
    /// `gen_ai.provider.name` on spans and the GenAI histograms.
    pub gen_ai_name: String,
    /// API root (`/chat/completions` is appended); empty for the simulated provider.
    pub base_url: String,
    /// Bearer key; `None`: no `Authorization` header (a local model server).
    pub api_key: Option<Secret>,
    /// Deadline of one call to it, its retries included.
    pub timeout: Duration,
    /// Deadline for opening a connection.
    pub connect_timeout: Duration,
    /// Retries of the same provider (connection errors, 429, 5xx) before falling back.
    pub max_retries: u32,
    /// Extra headers sent with every request (values may be credentials: kept secret).
    pub headers: Vec<(String, Secret)>,
    /// Prices (USD per million tokens) over the built-in table of its kind.
    pub prices: Vec<PriceSetting>,
    /// The prices of a pricing file (the built-in table's format), replacing the built-in
    /// table; read and checked with the configuration.
    pub price_table: Option<Vec<PriceSetting>>,
    /// The simulated provider's latency.
    pub simulated_latency: Duration,
}

/// One model's price.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// USD per million input tokens.
    pub input_per_million: f64,
    /// USD per million output tokens.
    pub output_per_million: f64,
    /// USD per million input tokens read from the provider's prompt cache; default: the input
    /// price.
    #[serde(default)]
    pub cache_read_per_million: Option<f64>,
    /// USD per million input tokens written to the provider's prompt cache (Anthropic's cache
    /// creation); default: the input price.
    #[serde(default)]
    pub cache_write_per_million: Option<f64>,
}

impl Price {
    /// Every price finite and >= 0.
    pub fn is_valid(&self) -> bool {
        [
            Some(self.input_per_million),
            Some(self.output_per_million),
            self.cache_read_per_million,
            self.cache_write_per_million,
        ]
        .into_iter()
        .flatten()
        .all(|p| p.is_finite() && p >= 0.0)
    }
}

/// A model's price, as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceSetting {
    /// The upstream model id.
    pub model: String,
    /// Its price.
    pub price: Price,
}

/// How a route orders its targets for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// In the configured order.
    Fallback,
    /// One chosen at random by weight first, then the others (by weight).
    Weighted,
    /// Lowest recent latency (EWMA) first; untried targets before measured ones.
    Latency,
}

/// A public model name and the targets that answer it.
#[derive(Debug, Clone)]
pub struct RouteSettings {
    /// The model name clients send.
    pub name: String,
    /// How targets are ordered.
    pub strategy: Strategy,
    /// The targets, in configured order.
    pub targets: Vec<TargetSettings>,
    /// The failure classes (`error.type` values) that move on to the next target.
    pub fallback_on: Vec<String>,
    /// Each target's circuit breaker.
    pub breaker: BreakerSettings,
}

/// One target of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSettings {
    /// A provider's name.
    pub provider: String,
    /// The model id sent to it.
    pub model: String,
    /// Weight for the `weighted` strategy (>= 1).
    pub weight: u32,
    /// Its name as an A/B variant (weighted routes only): `llmobs.route.variant` and the
    /// `variant` label.
    pub variant: Option<String>,
}

/// A target's circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Whether targets are ever skipped.
    pub enabled: bool,
    /// Consecutive failures (of the route's fallback classes) that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit skips the target before letting one probe through.
    pub cooldown: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            cooldown: DEFAULT_COOLDOWN,
        }
    }
}

/// What a provider gets when the file does not say: the environment's `LLM_*` values.
#[derive(Debug, Clone)]
pub struct ProviderDefaults {
    /// `LLM_TIMEOUT_SECS`.
    pub timeout: Duration,
    /// `LLM_CONNECT_TIMEOUT_SECS`.
    pub connect_timeout: Duration,
    /// `LLM_MAX_RETRIES`.
    pub max_retries: u32,
    /// `SIMULATED_LATENCY_MS`.
    pub simulated_latency: Duration,
    /// `PRICING_FILE`'s prices: replace the built-in table of every provider without its own
    /// file.
    pub price_table: Option<Vec<PriceSetting>>,
}

impl RoutingSettings {
    /// The one provider the environment names, answering every model name unchanged.
    pub fn single(provider: ProviderSettings) -> Self {
        Self {
            file: None,
            default_provider: Some(provider.name.clone()),
            providers: vec![provider],
            routes: Vec::new(),
            direct_addressing: false,
            cache: None,
            access: AccessSettings::default(),
            feedback: FeedbackSettings::default(),
            prompts: PromptSettings::default(),
        }
    }

    /// Reads and checks the configuration file. `lookup` reads the variables that hold keys.
    pub fn from_file(
        path: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
        defaults: ProviderDefaults,
    ) -> Result<Self, FileError> {
        let fail = |problem: String| FileError {
            path: path.display().to_string(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let file: File = toml::from_str(&text).map_err(|e| fail(toml_problem(&text, &e)))?;
        file.check(path, lookup, &defaults).map_err(fail)
    }
}

/// A TOML error on one line: where, and what.
fn toml_problem(text: &str, error: &toml::de::Error) -> String {
    let mut message = error.message().trim().replace('\n', " ");
    let Some(span) = error.span() else {
        return message;
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    // The parser names no key for a duplicate: the span does.
    if message == "duplicate key"
        && let Some(name) = text.get(span.clone())
    {
        message = format!(
            "duplicate key {}: each provider, route and setting may appear once",
            name.trim()
        );
    }
    format!("line {line}, column {column}: {message}")
}

// ------------------------------------------------------------------ the file's shape

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    gateway: GatewaySection,
    #[serde(default)]
    circuit_breaker: BreakerSection,
    #[serde(default)]
    providers: BTreeMap<String, ProviderSection>,
    #[serde(default)]
    routes: BTreeMap<String, RouteSection>,
    cache: Option<CacheSection>,
    access: Option<AccessSection>,
    #[serde(default)]
    keys: BTreeMap<String, KeySection>,
    #[serde(default)]
    teams: BTreeMap<String, TeamSection>,
    feedback: Option<FeedbackSection>,
    #[serde(default)]
    prompts: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewaySection {
    #[serde(default = "yes")]
    direct_addressing: bool,
    default_provider: Option<String>,
}

impl Default for GatewaySection {
    fn default() -> Self {
        Self {
            direct_addressing: true,
            default_provider: None,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct BreakerSection {
    enabled: Option<bool>,
    failure_threshold: Option<u32>,
    cooldown_secs: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderSection {
    kind: String,
    base_url: Option<String>,
    api_key_env: Option<String>,
    api_key_file: Option<PathBuf>,
    api_key: Option<String>,
    #[serde(default)]
    allow_inline_api_key: bool,
    timeout_secs: Option<f64>,
    connect_timeout_secs: Option<f64>,
    max_retries: Option<u32>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    prices: BTreeMap<String, Price>,
    pricing_file: Option<PathBuf>,
    gen_ai_provider_name: Option<String>,
    simulated_latency_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSection {
    strategy: Option<String>,
    #[serde(default)]
    targets: Vec<TargetSection>,
    fallback_on: Option<Vec<String>>,
    circuit_breaker: Option<BreakerSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetSection {
    provider: String,
    model: String,
    weight: Option<u32>,
    variant: Option<String>,
}

/// The feedback score families by prompt and by variant append an evaluation name to the pair:
/// the prometheus crate finds a series by its label values written one after another, so
/// every (prompt, version, name) and (route, variant, name) must stay apart that way.
fn check_feedback_series(
    routes: &[RouteSettings],
    prompts: &PromptSettings,
    feedback: &FeedbackSettings,
) -> Result<(), String> {
    let names: Vec<&str> = feedback
        .names
        .iter()
        .map(String::as_str)
        .chain(["other"])
        .collect();
    let pairs = |kind: &'static str| -> Vec<(String, String, &'static str)> {
        match kind {
            "prompt" => prompts
                .prompts
                .iter()
                .flat_map(|(p, versions)| {
                    versions
                        .iter()
                        .map(String::as_str)
                        .chain(["other"])
                        .map(move |v| (p.clone(), v.to_owned(), kind))
                })
                .chain([("other".to_owned(), "other".to_owned(), kind)])
                .collect(),
            _ => routes
                .iter()
                .flat_map(|r| {
                    r.targets
                        .iter()
                        .filter_map(|t| t.variant.clone())
                        .map(move |v| (r.name.clone(), v, kind))
                })
                .collect(),
        }
    };
    for kind in ["prompt", "variant"] {
        let mut seen = std::collections::HashMap::new();
        for (first, second, _) in pairs(kind) {
            for name in &names {
                let series = format!("{first}{second}{name}");
                if let Some(other) = seen.insert(series, (first.clone(), second.clone(), *name)) {
                    return Err(format!(
                        "{kind} {first:?}/{second:?} with feedback name {name:?} would share a metric series with {:?}/{:?} and {:?}; rename one",
                        other.0, other.1, other.2
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A provider name: what a metric label and a `provider/` prefix can carry unambiguously.
fn valid_provider_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn seconds(key: &str, value: Option<f64>, default: Duration) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
            Ok(Duration::from_secs_f64(secs))
        }
        Some(secs) => Err(format!("{key} = {secs}: expected a number of seconds > 0")),
    }
}

impl BreakerSection {
    fn over(self, base: BreakerSettings, key: &str) -> Result<BreakerSettings, String> {
        let failure_threshold = match self.failure_threshold {
            Some(0) => {
                return Err(format!(
                    "{key}.failure_threshold = 0: expected a whole number >= 1 (enabled = false turns the breaker off)"
                ));
            }
            Some(n) => n,
            None => base.failure_threshold,
        };
        Ok(BreakerSettings {
            enabled: self.enabled.unwrap_or(base.enabled),
            failure_threshold,
            cooldown: seconds(
                &format!("{key}.cooldown_secs"),
                self.cooldown_secs,
                base.cooldown,
            )?,
        })
    }
}

impl File {
    fn check(
        self,
        path: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
        defaults: &ProviderDefaults,
    ) -> Result<RoutingSettings, String> {
        let breaker = self
            .circuit_breaker
            .over(BreakerSettings::default(), "circuit_breaker")?;
        let providers = self
            .providers
            .into_iter()
            .map(|(name, section)| section.check(name, path, lookup, defaults))
            .collect::<Result<Vec<_>, _>>()?;
        if providers.is_empty() {
            return Err(
                "providers: expected at least one [providers.NAME] table (kind, base_url, api_key_env)"
                    .into(),
            );
        }
        let names: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
        let known = names.join(", ");
        let routes = self
            .routes
            .into_iter()
            .map(|(name, section)| section.check(name, &names, &known, breaker))
            .collect::<Result<Vec<_>, _>>()?;
        // The prometheus crate finds a series by its label values written one after another:
        // route "a" variant "bc" and route "ab" variant "c" would share one.
        let mut series = std::collections::HashMap::new();
        for route in &routes {
            for variant in route.targets.iter().filter_map(|t| t.variant.as_deref()) {
                if let Some(other) = series.insert(format!("{}{variant}", route.name), &route.name)
                {
                    return Err(format!(
                        "routes.{}: variant {variant:?} would share a metric series with a variant of route {other:?}; rename one",
                        toml_key(&route.name)
                    ));
                }
            }
        }
        if let Some(default) = &self.gateway.default_provider
            && !names.contains(&default.as_str())
        {
            return Err(format!(
                "gateway.default_provider = {default:?}: expected one of the providers: {known}"
            ));
        }
        let feedback = self.feedback.unwrap_or_default().check()?;
        let prompts = PromptSettings::check(self.prompts)?;
        check_feedback_series(&routes, &prompts, &feedback)?;
        Ok(RoutingSettings {
            file: Some(path.to_path_buf()),
            providers,
            routes,
            direct_addressing: self.gateway.direct_addressing,
            default_provider: self.gateway.default_provider,
            cache: self.cache,
            access: keys::check(self.access, self.keys, self.teams)?,
            feedback,
            prompts,
        })
    }
}

impl ProviderSection {
    fn check(
        self,
        name: String,
        path: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
        defaults: &ProviderDefaults,
    ) -> Result<ProviderSettings, String> {
        let key = format!("providers.{}", toml_key(&name));
        if !valid_provider_name(&name) {
            return Err(format!(
                "{key}: a provider name is 1-64 letters, digits, '-', '_' or '.' (it prefixes model names as provider/model)"
            ));
        }
        let kind = match self.kind.as_str() {
            "groq" => ProviderKind::Groq,
            "openai" => ProviderKind::OpenAi,
            "openai_compatible" => ProviderKind::OpenAiCompatible,
            "anthropic" => ProviderKind::Anthropic,
            "simulated" => ProviderKind::Simulated,
            other => {
                return Err(format!(
                    "{key}.kind = {other:?}: expected groq, openai, openai_compatible, anthropic or simulated"
                ));
            }
        };
        let api_key = self.key(&key, kind, path, lookup)?;
        let base_url = match (kind, self.base_url) {
            (ProviderKind::Simulated, _) => String::new(),
            (_, Some(url)) if http_uri(&url).is_some() => url.trim_end_matches('/').to_owned(),
            (_, Some(url)) => {
                return Err(format!(
                    "{key}.base_url = {url:?}: expected an http(s) URL, e.g. http://localhost:8000/v1"
                ));
            }
            (ProviderKind::Groq, None) => GROQ_BASE_URL.to_owned(),
            (ProviderKind::OpenAi, None) => OPENAI_BASE_URL.to_owned(),
            (ProviderKind::Anthropic, None) => ANTHROPIC_BASE_URL.to_owned(),
            (_, None) => {
                return Err(format!(
                    "{key}.base_url: required for kind openai_compatible (the API root, e.g. http://localhost:11434/v1)"
                ));
            }
        };
        let max_retries = self.max_retries.unwrap_or(defaults.max_retries);
        if max_retries > MAX_LLM_RETRIES {
            return Err(format!(
                "{key}.max_retries = {max_retries}: expected a whole number 0-{MAX_LLM_RETRIES}"
            ));
        }
        let timeout = seconds(
            &format!("{key}.timeout_secs"),
            self.timeout_secs,
            defaults.timeout,
        )?;
        let headers = self
            .headers
            .into_iter()
            .map(|(header, value)| {
                let valid = axum::http::HeaderName::try_from(header.as_str()).is_ok()
                    && axum::http::HeaderValue::try_from(value.as_str()).is_ok();
                if valid {
                    Ok((header, Secret::new(value)))
                } else {
                    // The value may be a credential: never echoed.
                    Err(format!(
                        "{key}.headers.{}: expected a header name and a printable ASCII value",
                        toml_key(&header)
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let prices = self
            .prices
            .into_iter()
            .map(|(model, price)| {
                if price.is_valid() {
                    Ok(PriceSetting { model, price })
                } else {
                    Err(format!(
                        "{key}.prices.{}: expected input_per_million and output_per_million (and optionally cache_read_per_million, cache_write_per_million), finite and >= 0",
                        toml_key(&model)
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let price_table =
            match self.pricing_file {
                Some(file) => {
                    let file = relative_to(path, file);
                    Some(read_price_file(&file).map_err(|why| {
                        format!("{key}.pricing_file = {:?}: {why}", file.display())
                    })?)
                }
                None => defaults.price_table.clone(),
            };
        let gen_ai_name = match self.gen_ai_provider_name {
            Some(n) if !n.is_empty() && n.len() <= 64 => n,
            Some(n) => {
                return Err(format!(
                    "{key}.gen_ai_provider_name = {n:?}: expected 1-64 characters (e.g. deepseek, mistral_ai)"
                ));
            }
            None if kind == ProviderKind::OpenAiCompatible => name.clone(),
            None => kind.as_str().to_owned(),
        };
        Ok(ProviderSettings {
            kind,
            gen_ai_name,
            base_url,
            api_key,
            timeout,
            connect_timeout: seconds(
                &format!("{key}.connect_timeout_secs"),
                self.connect_timeout_secs,
                defaults.connect_timeout,
            )?
            .min(timeout),
            max_retries,
            headers,
            prices,
            price_table,
            simulated_latency: self
                .simulated_latency_ms
                .map_or(defaults.simulated_latency, Duration::from_millis),
            name,
        })
    }

    /// The key: from a variable, a file, or (only when the operator insists) inline. Groq,
    /// OpenAI and Anthropic need one (their variable by default); an OpenAI-compatible server
    /// may not.
    fn key(
        &self,
        key: &str,
        kind: ProviderKind,
        path: &Path,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Secret>, String> {
        let sources = [
            self.api_key_env.is_some(),
            self.api_key_file.is_some(),
            self.api_key.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(format!(
                "{key}: expected one of api_key_env, api_key_file or api_key, not several"
            ));
        }
        if let Some(file) = &self.api_key_file {
            let file = relative_to(path, file.clone());
            return match std::fs::read_to_string(&file) {
                Ok(text) if !text.trim().is_empty() => Ok(Some(Secret::new(text.trim()))),
                _ => Err(format!(
                    "{key}.api_key_file = {:?}: expected a readable file holding the key",
                    file.display()
                )),
            };
        }
        if let Some(inline) = &self.api_key {
            if !self.allow_inline_api_key {
                // The value is never echoed.
                return Err(format!(
                    "{key}.api_key: keys are not read from the file itself; expected api_key_env or api_key_file (or allow_inline_api_key = true)"
                ));
            }
            return Ok(Some(Secret::new(inline.trim())));
        }
        let variable = match (&self.api_key_env, kind) {
            (Some(var), _) => var.as_str(),
            (None, ProviderKind::Groq) => "GROQ_API_KEY",
            (None, ProviderKind::OpenAi) => "OPENAI_API_KEY",
            (None, ProviderKind::Anthropic) => "ANTHROPIC_API_KEY",
            (None, _) => return Ok(None),
        };
        match lookup(variable).map(|v| v.trim().to_owned()) {
            Some(value) if !value.is_empty() => Ok(Some(Secret::new(value))),
            _ => Err(format!(
                "{key}.api_key_env = {variable:?}: that variable is not set (expected it to hold the provider's key)"
            )),
        }
    }
}

impl RouteSection {
    fn check(
        self,
        name: String,
        providers: &[&str],
        known: &str,
        breaker: BreakerSettings,
    ) -> Result<RouteSettings, String> {
        let key = format!("routes.{}", toml_key(&name));
        if name.is_empty() || name.len() > MAX_ROUTE_NAME || name.chars().any(char::is_control) {
            return Err(format!(
                "{key}: a route name is a model name of 1-{MAX_ROUTE_NAME} printable characters"
            ));
        }
        let strategy = match self.strategy.as_deref() {
            None | Some("fallback") => Strategy::Fallback,
            Some("weighted") => Strategy::Weighted,
            Some("latency") => Strategy::Latency,
            Some(other) => {
                return Err(format!(
                    "{key}.strategy = {other:?}: expected fallback, weighted or latency"
                ));
            }
        };
        if self.targets.is_empty() {
            return Err(format!(
                "{key}.targets: expected at least one {{ provider = \"…\", model = \"…\" }}"
            ));
        }
        let mut targets = Vec::with_capacity(self.targets.len());
        for (i, target) in self.targets.into_iter().enumerate() {
            let at = format!("{key}.targets[{i}]");
            if !providers.contains(&target.provider.as_str()) {
                return Err(format!(
                    "{at}.provider = {:?}: expected one of the providers: {known}",
                    target.provider
                ));
            }
            if target.model.is_empty() || target.model.len() > MAX_ROUTE_NAME {
                return Err(format!(
                    "{at}.model: expected the provider's model id (1-{MAX_ROUTE_NAME} characters)"
                ));
            }
            let weight = match target.weight {
                Some(0) => return Err(format!("{at}.weight = 0: expected a whole number >= 1")),
                Some(w) => w,
                None => 1,
            };
            if let Some(variant) = &target.variant {
                if strategy != Strategy::Weighted {
                    return Err(format!(
                        "{at}.variant: variants belong to a route with strategy = \"weighted\" (the weights split the traffic)"
                    ));
                }
                if !super::keys::valid_name(variant) || variant == "other" {
                    return Err(format!(
                        "{at}.variant = {variant:?}: expected 1-64 letters, digits, '-', '_' or '.'"
                    ));
                }
                if targets
                    .iter()
                    .any(|t: &TargetSettings| t.variant.as_ref() == Some(variant))
                {
                    return Err(format!(
                        "{at}.variant = {variant:?}: another target of this route has it"
                    ));
                }
            }
            let settings = TargetSettings {
                provider: target.provider,
                model: target.model,
                weight,
                variant: target.variant,
            };
            if targets.contains(&settings) {
                return Err(format!(
                    "{at}: {}/{} is already a target of this route",
                    settings.provider, settings.model
                ));
            }
            targets.push(settings);
        }
        let fallback_on = match self.fallback_on {
            None => DEFAULT_FALLBACK_ON
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            Some(classes) => {
                if let Some(bad) = classes
                    .iter()
                    .find(|c| !FALLBACK_CLASSES.contains(&c.as_str()))
                {
                    return Err(format!(
                        "{key}.fallback_on: {bad:?} is not a failure class; expected some of {}",
                        FALLBACK_CLASSES.join(", ")
                    ));
                }
                classes
            }
        };
        let breaker = match self.circuit_breaker {
            Some(section) => section.over(breaker, &format!("{key}.circuit_breaker"))?,
            None => breaker,
        };
        Ok(RouteSettings {
            name,
            strategy,
            targets,
            fallback_on,
            breaker,
        })
    }
}

/// The prices of a pricing file: `{"models": {"id": {"input_per_million": …,
/// "output_per_million": …}}}` (the built-in `src/llm/pricing.json`'s format).
pub fn read_price_file(path: &Path) -> Result<Vec<PriceSetting>, String> {
    #[derive(Deserialize)]
    struct PriceFile {
        models: BTreeMap<String, Price>,
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let file: PriceFile = serde_json::from_str(&text).map_err(|e| {
        format!("expected a JSON pricing file {{\"models\": {{\"id\": {{\"input_per_million\": …, \"output_per_million\": …}}}}}}: {e}")
    })?;
    file.models
        .into_iter()
        .map(|(model, price)| {
            if price.is_valid() {
                Ok(PriceSetting { model, price })
            } else {
                Err(format!("model {model}: prices must be finite and >= 0"))
            }
        })
        .collect()
}

/// A name as a TOML key: bare when it can be, quoted otherwise (`routes."openai/gpt-oss"`).
fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    if bare {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

/// A path in the file, relative to the file's own directory.
fn relative_to(file: &Path, path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        path
    } else {
        file.parent().unwrap_or(Path::new(".")).join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: ProviderDefaults = ProviderDefaults {
        timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(10),
        max_retries: 2,
        simulated_latency: Duration::from_millis(40),
        price_table: None,
    };

    fn load(text: &str, vars: &[(&str, &str)]) -> Result<RoutingSettings, String> {
        let dir = std::env::temp_dir().join(format!(
            "llmobs-routing-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("gateway.toml");
        std::fs::write(&path, text).unwrap();
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let result = RoutingSettings::from_file(&path, &lookup, DEFAULTS);
        std::fs::remove_dir_all(&dir).unwrap();
        result.map_err(|e| e.problem)
    }

    const TWO: &str = r#"
        [providers.groq]
        kind = "groq"
        [providers.local]
        kind = "openai_compatible"
        base_url = "http://localhost:11434/v1/"
        timeout_secs = 5
        headers = { "X-Title" = "demo" }
        prices = { "llama3.1:8b" = { input_per_million = 0, output_per_million = 0 } }
        [routes.fast]
        strategy = "weighted"
        targets = [
          { provider = "groq", model = "llama-3.1-8b-instant", weight = 3 },
          { provider = "local", model = "llama3.1:8b" },
        ]
        [routes."openai/gpt-oss-120b"]
        targets = [{ provider = "groq", model = "openai/gpt-oss-120b" }]
        fallback_on = ["rate_limited"]
        circuit_breaker = { failure_threshold = 2, cooldown_secs = 0.5 }
    "#;

    #[test]
    fn a_file_with_two_providers_and_routes_is_read_with_its_defaults() {
        let s = load(TWO, &[("GROQ_API_KEY", "gsk_x")]).unwrap();
        assert!(s.direct_addressing);
        assert_eq!(s.default_provider, None);
        let groq = &s.providers[0];
        assert_eq!(
            (groq.name.as_str(), groq.kind, groq.gen_ai_name.as_str()),
            ("groq", ProviderKind::Groq, "groq")
        );
        assert_eq!(groq.base_url, GROQ_BASE_URL);
        assert_eq!(groq.api_key.as_ref().unwrap().expose(), "gsk_x");
        assert_eq!(groq.timeout, Duration::from_secs(30));
        let local = &s.providers[1];
        assert_eq!(local.base_url, "http://localhost:11434/v1");
        assert!(local.api_key.is_none());
        assert_eq!(local.gen_ai_name, "local");
        assert_eq!(
            local.connect_timeout,
            Duration::from_secs(5),
            "capped by the timeout"
        );
        assert_eq!(local.prices[0].model, "llama3.1:8b");
        let fast = s.routes.iter().find(|r| r.name == "fast").unwrap();
        assert_eq!(fast.strategy, Strategy::Weighted);
        assert_eq!(fast.targets[0].weight, 3);
        assert_eq!(fast.targets[1].weight, 1);
        assert_eq!(fast.fallback_on, DEFAULT_FALLBACK_ON);
        assert_eq!(fast.breaker, BreakerSettings::default());
        let pinned = s
            .routes
            .iter()
            .find(|r| r.name == "openai/gpt-oss-120b")
            .unwrap();
        assert_eq!(pinned.strategy, Strategy::Fallback);
        assert_eq!(pinned.fallback_on, ["rate_limited"]);
        assert_eq!(pinned.breaker.failure_threshold, 2);
        assert_eq!(pinned.breaker.cooldown, Duration::from_millis(500));
        assert!(!format!("{s:?}").contains("gsk_x"));
    }

    #[test]
    fn every_problem_names_its_key_and_what_it_accepts() {
        let key = [("GROQ_API_KEY", "gsk_x")];
        for (text, expected) in [
            (
                "[providers.a]\nkind = \"groq\"\napi_key_env = \"NOPE\"",
                "providers.a.api_key_env = \"NOPE\": that variable is not set",
            ),
            (
                "[providers.a]\nkind = \"groq\"\n[routes.r]\ntargets = [{ provider = \"a\", model = \"m\", variant = \"x\" }]",
                "routes.r.targets[0].variant: variants belong to a route with strategy = \"weighted\"",
            ),
            (
                "[providers.a]\nkind = \"groq\"\n[routes.r]\nstrategy = \"weighted\"\ntargets = [{ provider = \"a\", model = \"m\", variant = \"x\" }, { provider = \"a\", model = \"n\", variant = \"x\" }]",
                "routes.r.targets[1].variant = \"x\": another target of this route has it",
            ),
            (
                "[providers.a]\nkind = \"groq\"\n[routes.a]\nstrategy = \"weighted\"\ntargets = [{ provider = \"a\", model = \"m\", variant = \"bc\" }]\n[routes.ab]\nstrategy = \"weighted\"\ntargets = [{ provider = \"a\", model = \"m\", variant = \"c\" }]",
                "routes.ab: variant \"c\" would share a metric series",
            ),
            (
                "[providers.a]\nkind = \"groq\"\n[prompts]\np = [\"v\", \"vx\"]\n[feedback]\nnames = [\"xa\", \"a\"]",
                "prompt \"p\"/\"vx\" with feedback name \"a\" would share a metric series",
            ),
            (
                "[providers.a]\nkind = \"grok\"",
                "providers.a.kind = \"grok\": expected groq, openai, openai_compatible, anthropic or simulated",
            ),
            (
                "[providers.a]\nkind = \"openai_compatible\"",
                "providers.a.base_url: required for kind openai_compatible",
            ),
            (
                "[providers.a]\nkind = \"groq\"\n[routes.r]\ntargets = [{ provider = \"b\", model = \"m\" }]",
                "routes.r.targets[0].provider = \"b\": expected one of the providers: a",
            ),
            (
                "[providers.a]\nkind = \"groq\"\n[routes.r]\nstrategy = \"weighted\"\ntargets = [{ provider = \"a\", model = \"m\", weight = 0 }]",
                "routes.r.targets[0].weight = 0: expected a whole number >= 1",
            ),
            (
                "[providers.a]\nkind = \"groq\"\n[providers.a]\nkind = \"groq\"",
                "line 3, column 12: duplicate key a: each provider, route and setting may appear once",
            ),
            (
                "[providers.a]\nkind = \"groq\"\ntimout_secs = 3",
                "line 3, column 1: unknown field `timout_secs`",
            ),
            (
                "[providers.a]\nkind = \"groq\"\napi_key = \"gsk_inline_secret\"",
                "providers.a.api_key: keys are not read from the file itself",
            ),
            (
                "[providers.\"a/b\"]\nkind = \"groq\"",
                "providers.\"a/b\": a provider name is 1-64 letters",
            ),
            (
                "[providers.a]\nkind = \"groq\"\n[routes.r]\ntargets = [{ provider = \"a\", model = \"m\" }]\nfallback_on = [\"400\"]",
                "routes.r.fallback_on: \"400\" is not a failure class",
            ),
            (
                "[gateway]\ndefault_provider = \"x\"\n[providers.a]\nkind = \"groq\"",
                "gateway.default_provider = \"x\": expected one of the providers: a",
            ),
            ("", "providers: expected at least one"),
        ] {
            let problem = load(text, &key).unwrap_err();
            assert!(
                problem.starts_with(expected),
                "{text}\n→ {problem}\nexpected: {expected}"
            );
            assert!(!problem.contains('\n'), "one line: {problem}");
            assert!(!problem.contains("gsk_"), "never a key: {problem}");
        }
    }

    #[test]
    fn the_shipped_example_file_loads() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.example.toml"));
        let lookup = |name: &str| name.ends_with("_API_KEY").then(|| "key".to_owned());
        let s = RoutingSettings::from_file(path, &lookup, DEFAULTS.clone()).unwrap();
        assert!(s.providers.len() >= 3 && s.routes.len() >= 3, "{s:?}");
        for strategy in [Strategy::Fallback, Strategy::Weighted, Strategy::Latency] {
            assert!(
                s.routes.iter().any(|r| r.strategy == strategy),
                "{strategy:?}"
            );
        }
        assert!(s.routes.iter().any(|r| r.name == "openai/gpt-oss-120b"));
    }

    #[test]
    fn a_pricing_file_is_read_and_checked_with_the_configuration() {
        let dir = std::env::temp_dir().join(format!("llmobs-prices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.json");
        std::fs::write(
            &good,
            r#"{"models": {"m": {"input_per_million": 1, "output_per_million": 2}}}"#,
        )
        .unwrap();
        let bad = dir.join("bad.json");
        std::fs::write(
            &bad,
            r#"{"models": {"m": {"input_per_million": -1, "output_per_million": 2}}}"#,
        )
        .unwrap();
        let file = |path: &Path| {
            format!(
                "[providers.a]\nkind = \"openai_compatible\"\nbase_url = \"http://h/v1\"\npricing_file = {:?}",
                path.display().to_string()
            )
        };
        let s = load(&file(&good), &[]).unwrap();
        let table = s.providers[0].price_table.as_ref().unwrap();
        assert_eq!(table[0].price.output_per_million, 2.0);
        let problem = load(&file(&bad), &[]).unwrap_err();
        assert!(
            problem.starts_with("providers.a.pricing_file =")
                && problem.ends_with("model m: prices must be finite and >= 0"),
            "{problem}"
        );
        let problem = load(&file(&dir.join("none.json")), &[]).unwrap_err();
        assert!(problem.contains("cannot read"), "{problem}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_inline_key_is_read_only_when_the_operator_insists() {
        let s = load(
            "[providers.a]\nkind = \"groq\"\napi_key = \"gsk_inline\"\nallow_inline_api_key = true",
            &[],
        )
        .unwrap();
        assert_eq!(
            s.providers[0].api_key.as_ref().unwrap().expose(),
            "gsk_inline"
        );
    }
}
