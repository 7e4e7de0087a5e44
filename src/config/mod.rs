//! Every setting the service reads, from the environment (and `.env`), validated once at start
//! and grouped by concern: each part of the service is handed only its own section.
//!
//! Invariant: after [`Settings::from_env`] succeeds nothing else reads the environment for our
//! own settings; a bad value stops start-up with one line naming the variable and what it accepts
//! (exit code 2). The OpenTelemetry SDK still reads the standard `OTEL_BSP_SCHEDULE_DELAY`,
//! `OTEL_TRACES_SAMPLER*` and `OTEL_RESOURCE_ATTRIBUTES` variables itself, as the specification
//! asks. Every variable is documented in README ("Configuration") and `.env.example`.
//!
//! Providers and routes come from the configuration file `GATEWAY_CONFIG` (`routing.rs`) or,
//! without one, from the one provider the environment names; either way they are
//! [`LlmSettings::routing`].

pub mod calendar;
mod env;
mod feedback;
mod keys;
mod routing;
mod secret;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use env::{ConfigError, http_uri, without_credentials};
use env::{Env, parse_headers};
pub use feedback::{FeedbackSettings, PromptSettings};
pub use keys::{
    AccessSettings, Budget, KeyDigest, KeySettings, RedisFailure, TeamSettings, digest_of, hex,
    valid_name,
};
pub use routing::read_price_file;
pub use routing::{
    BreakerSettings, CacheSection, DEFAULT_FALLBACK_ON, FALLBACK_CLASSES, FileError, Price,
    PriceSetting, ProviderDefaults, ProviderSettings, RouteSettings, RoutingSettings, Strategy,
    TargetSettings,
};
pub use secret::{Secret, constant_time_eq};

/// Why the settings cannot be used: a variable, or the configuration file.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// An environment variable has a bad value.
    #[error(transparent)]
    Env(#[from] ConfigError),
    /// The configuration file is unreadable or invalid.
    #[error(transparent)]
    File(#[from] FileError),
}

/// Groq's OpenAI-compatible API root.
pub const GROQ_BASE_URL: &str = "https://api.groq.com/openai/v1";
/// OpenAI's API root, for `LLM_PROVIDER=openai`.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Anthropic's API root (`/v1/messages` is appended).
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// The model used when a request names none.
pub const DEFAULT_MODEL: &str = "llama-3.1-8b-instant";
/// `service.name` when `OTEL_SERVICE_NAME` is not set.
pub const DEFAULT_SERVICE_NAME: &str = "llm-observability-api";
/// Most retries `LLM_MAX_RETRIES` accepts.
pub const MAX_LLM_RETRIES: u32 = 10;

/// Which provider answers LLM calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Groq's OpenAI-compatible API.
    Groq,
    /// OpenAI's API.
    OpenAi,
    /// Any other OpenAI-compatible API (vLLM, Ollama, Together, Fireworks, DeepSeek, Mistral,
    /// OpenRouter, Gemini's OpenAI endpoint, …).
    OpenAiCompatible,
    /// Anthropic's Messages API: OpenAI-shaped chat translated to it, and `/v1/messages`
    /// forwarded as is.
    Anthropic,
    /// The built-in simulated provider: no network, deterministic answers.
    Simulated,
}

impl ProviderKind {
    /// The kind's name in the configuration file; for Groq, OpenAI and the simulated
    /// provider also their `gen_ai.provider.name` and their name in the environment-only mode.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Groq => "groq",
            ProviderKind::OpenAi => "openai",
            ProviderKind::OpenAiCompatible => "openai_compatible",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Simulated => "simulated",
        }
    }
}

/// The egress proxy for calls to LLM providers (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
/// `NO_PROXY`, upper or lower case, upper case first). URLs may carry credentials, so they are
/// kept as secrets; [`ProxySettings::describe`] is the loggable form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// Proxy for `https://` upstreams (a CONNECT tunnel).
    pub https: Option<Secret>,
    /// Proxy for `http://` upstreams (absolute-form requests).
    pub http: Option<Secret>,
    /// Proxy for both, when the scheme-specific one is unset.
    pub all: Option<Secret>,
    /// Hosts, domains (`.example.com`), IPs and CIDRs reached directly, comma-separated; `*`
    /// disables the proxy.
    pub no_proxy: Option<String>,
}

impl ProxySettings {
    /// Whether any proxy is configured.
    pub fn is_set(&self) -> bool {
        self.https.is_some() || self.http.is_some() || self.all.is_some()
    }

    /// The proxies without their credentials, for the start-up log line.
    pub fn describe(&self) -> String {
        let shown = |url: &Option<Secret>| {
            url.as_ref()
                .map_or_else(|| "-".to_owned(), |u| without_credentials(u.expose()))
        };
        format!(
            "https={} http={} all={} no_proxy={}",
            shown(&self.https),
            shown(&self.http),
            shown(&self.all),
            self.no_proxy.as_deref().unwrap_or("-")
        )
    }
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// HTTP with protobuf bodies (the default).
    HttpProtobuf,
    /// gRPC.
    Grpc,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, the default.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Every setting of the service, by concern.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listeners and the HTTP server.
    pub server: ServerSettings,
    /// The LLM provider and how it is called.
    pub llm: LlmSettings,
    /// What a request, a client and the process may use.
    pub limits: LimitSettings,
    /// Who may call the LLM endpoints.
    pub auth: AuthSettings,
    /// Traces, metrics and logs.
    pub telemetry: TelemetrySettings,
    /// The response cache.
    pub cache: CacheSettings,
    /// `REDIS_URL`: the Redis that replicas share (the cache's `redis` backend). It may hold a
    /// password: never logged.
    pub redis_url: Option<Secret>,
}

/// Where the response cache keeps its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheBackend {
    /// In this process (quick_cache), bounded by entries and bytes.
    Memory,
    /// In Redis (`REDIS_URL`), shared by every replica.
    Redis,
}

/// The response cache: off unless `CACHE_ENABLED`.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// `CACHE_ENABLED`.
    pub enabled: bool,
    /// `CACHE_BACKEND`: `memory` or `redis`; default `redis` when `REDIS_URL` is set.
    pub backend: CacheBackend,
    /// `CACHE_TTL_SECONDS`: how long an entry lives unless a request says otherwise.
    pub ttl: Duration,
    /// `CACHE_MAX_TTL_SECONDS`: the longest TTL a request's `x-llmobs-cache-ttl-seconds` may ask.
    pub max_ttl: Duration,
    /// `CACHE_MAX_ENTRIES` (memory backend).
    pub max_entries: u64,
    /// `CACHE_MAX_BYTES` (memory backend).
    pub max_bytes: u64,
    /// `CACHE_MAX_ENTRY_BYTES`: larger answers are not stored.
    pub max_entry_bytes: usize,
    /// `CACHE_LOOKUP_TIMEOUT_MS`: a Redis lookup slower than this is a miss.
    pub lookup_timeout: Duration,
    /// `CACHE_STORE_TRUNCATED`: also store answers cut short by `max_tokens` (`length`).
    pub store_truncated: bool,
}

/// Listeners and the HTTP server.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Address the API listens on.
    pub app_host: IpAddr,
    /// Port of the API (0 picks a free one).
    pub app_port: u16,
    /// Address the metrics listener binds (bind it to 127.0.0.1 to keep metrics private).
    pub metrics_host: IpAddr,
    /// Port of `/metrics` (0 picks a free one).
    pub metrics_port: u16,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Longest a client may take to send its request headers.
    pub header_read_timeout: Duration,
    /// Origins allowed by CORS (`*` for any); empty: no CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
    /// `TRUSTED_PROXIES`: peers (CIDRs) whose `Forwarded`/`X-Forwarded-For` name the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// The LLM providers, the routes to them, and how they are called.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// Providers and routes (the file's, or the environment's one provider).
    pub routing: RoutingSettings,
    /// What the file's providers get when it does not say (the `LLM_*` variables); kept for
    /// reloading the file.
    pub provider_defaults: ProviderDefaults,
    /// Model used when a request names none.
    pub default_model: String,
    /// Variables that are set but not read because `GATEWAY_CONFIG` names the providers (the
    /// start-up log warns about them).
    pub ignored_with_file: Vec<&'static str>,
    /// The egress proxy for provider calls.
    pub proxy: ProxySettings,
    /// `LLM_CA_CERT_FILE`: PEM root certificates trusted for provider calls besides the
    /// system's (a TLS-inspecting egress proxy, a private model server).
    pub extra_ca_file: Option<PathBuf>,
}

/// What a request, a client and the process may use.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Longest accepted `/api/chat` prompt, in characters.
    pub max_prompt_chars: usize,
    /// Most concurrent upstream calls (0: unlimited).
    pub max_concurrency: usize,
    /// Most calls waiting for a slot; beyond it calls are refused as overloaded.
    pub max_queue: usize,
    /// Longest wait for a slot.
    pub queue_timeout: Duration,
    /// Requests per second per client (its gateway key, else its address); 0: no limit.
    pub client_rate_limit: f64,
    /// Burst allowance of the per-client limit.
    pub client_rate_burst: f64,
}

/// Who may call the LLM endpoints.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    /// `GATEWAY_API_KEYS`: keys clients may present, with no limits (named `key-1`, `key-2`…
    /// in telemetry); with the file's `[keys.NAME]`, the keys accepted. None at all: no
    /// gateway authentication.
    pub gateway_api_keys: Vec<Secret>,
    /// `ADMIN_API_KEY`: the key of the admin API (`/admin/*`); unset: no admin API.
    pub admin_api_key: Option<Secret>,
}

/// Traces, metrics and logs.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// `service.name` resource attribute.
    pub service_name: String,
    /// `OTEL_SDK_DISABLED=true`: no spans are exported (trace ids are still made for responses).
    pub sdk_disabled: bool,
    /// OTLP transport.
    pub protocol: OtlpProtocol,
    /// The full traces endpoint, resolved as the OTLP spec says (`/v1/traces` appended to a base).
    pub traces_endpoint: String,
    /// `OTEL_EXPORTER_OTLP_TRACES_HEADERS` or `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`,
    /// values percent-decoded), sent with every HTTP export; values are often tokens.
    pub export_headers: Vec<(String, Secret)>,
    /// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or `OTEL_EXPORTER_OTLP_TIMEOUT` (ms, default 10 s):
    /// one export, retries included.
    pub export_timeout: Duration,
    /// `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION` or `OTEL_EXPORTER_OTLP_COMPRESSION` = `gzip`.
    pub export_gzip: bool,
    /// `OTEL_BSP_MAX_QUEUE_SIZE`: spans waiting for export beyond it are dropped and counted.
    pub max_queue_size: usize,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`; default 64, not the SDK's 512: encoding 512 spans is
    /// a multi-millisecond burst on one core that showed as request p99 (see BENCHMARKS.md).
    pub max_export_batch_size: usize,
    /// Overrides `OTEL_BSP_SCHEDULE_DELAY` (tests use a short delay).
    pub batch_schedule_delay: Option<Duration>,
    /// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`: record prompts and completions.
    pub capture_message_content: bool,
    /// Log line format.
    pub log_format: LogFormat,
    /// `RUST_LOG` filter for log lines (spans are exported whatever it says).
    pub log_filter: String,
}

impl Settings {
    /// Reads `.env` (if present) and the environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        // A missing .env is normal; a malformed one is not worth refusing to start over.
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds settings from any variable lookup (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let env = Env(&lookup);
        let redis_url = match env.text("REDIS_URL") {
            // TLS (`rediss://`) would need the redis crate's rustls feature: refused here, in
            // one line, rather than failing every connection attempt later.
            Some(url) if url.starts_with("redis://") => Some(Secret::new(url)),
            Some(url) => {
                return Err(env
                    .bad(
                        "REDIS_URL",
                        &without_credentials(&url),
                        "a redis:// URL, e.g. redis://127.0.0.1:6379 (rediss://, TLS, is not supported yet)",
                    )
                    .into());
            }
            None => None,
        };
        let llm = LlmSettings::read(&env, &lookup)?;
        let mut cache = CacheSettings::read(&env)?;
        if let (Some(section), Some(path)) = (&llm.routing.cache, &llm.routing.file) {
            cache
                .apply(section, redis_url.is_some())
                .map_err(|problem| FileError {
                    path: path.display().to_string(),
                    problem,
                })?;
        }
        Ok(Settings {
            server: ServerSettings::read(&env)?,
            llm,
            limits: LimitSettings::read(&env)?,
            auth: AuthSettings::read(&env),
            telemetry: TelemetrySettings::read(&env)?,
            cache,
            redis_url,
        })
    }
}

impl CacheSettings {
    fn read<F: Fn(&str) -> Option<String>>(env: &Env<'_, F>) -> Result<Self, ConfigError> {
        let backend = match env.text("CACHE_BACKEND").as_deref() {
            None if env.text("REDIS_URL").is_some() => CacheBackend::Redis,
            None | Some("memory") => CacheBackend::Memory,
            Some("redis") if env.text("REDIS_URL").is_some() => CacheBackend::Redis,
            Some("redis") => {
                return Err(env.bad(
                    "CACHE_BACKEND",
                    "redis",
                    "memory, or redis with REDIS_URL set",
                ));
            }
            Some(other) => return Err(env.bad("CACHE_BACKEND", other, "memory or redis")),
        };
        let ttl = env.bounded(
            "CACHE_TTL_SECONDS",
            3600,
            1..=MAX_CACHE_TTL_SECONDS,
            "a whole number of seconds, 1 to 31536000",
        )?;
        let max_ttl = env.bounded(
            "CACHE_MAX_TTL_SECONDS",
            86_400.max(ttl),
            1..=MAX_CACHE_TTL_SECONDS,
            "a whole number of seconds, 1 to 31536000",
        )?;
        Ok(Self {
            enabled: env.boolean("CACHE_ENABLED")?,
            backend,
            ttl: Duration::from_secs(ttl),
            max_ttl: Duration::from_secs(max_ttl),
            max_entries: env.bounded(
                "CACHE_MAX_ENTRIES",
                10_000,
                1..=100_000_000,
                "a whole number of entries, 1 to 100000000",
            )?,
            max_bytes: env.bounded(
                "CACHE_MAX_BYTES",
                64 << 20,
                1024..=(1 << 40),
                "a whole number of bytes, 1024 to 1099511627776",
            )?,
            max_entry_bytes: env.bounded(
                "CACHE_MAX_ENTRY_BYTES",
                1 << 20,
                1..=(64 << 20),
                "a whole number of bytes, 1 to 67108864",
            )?,
            lookup_timeout: Duration::from_millis(env.bounded(
                "CACHE_LOOKUP_TIMEOUT_MS",
                10,
                1..=10_000,
                "a whole number of milliseconds, 1 to 10000",
            )?),
            store_truncated: env.boolean("CACHE_STORE_TRUNCATED")?,
        })
    }
}

impl CacheSettings {
    /// The configuration file's `[cache]` table over the variables; Err names the key.
    fn apply(&mut self, section: &CacheSection, redis_url: bool) -> Result<(), String> {
        let within =
            |key: &str, value: Option<u64>, range: std::ops::RangeInclusive<u64>| match value {
                Some(v) if !range.contains(&v) => Err(format!(
                    "cache.{key} = {v}: expected a whole number from {} to {}",
                    range.start(),
                    range.end()
                )),
                other => Ok(other),
            };
        if let Some(enabled) = section.enabled {
            self.enabled = enabled;
        }
        match section.backend.as_deref() {
            None => {}
            Some("memory") => self.backend = CacheBackend::Memory,
            Some("redis") if redis_url => self.backend = CacheBackend::Redis,
            Some(other) => {
                return Err(format!(
                    "cache.backend = {other:?}: expected \"memory\", or \"redis\" with REDIS_URL set"
                ));
            }
        }
        let explicit_max_ttl = section.max_ttl_seconds.is_some();
        if let Some(ttl) = within(
            "ttl_seconds",
            section.ttl_seconds,
            1..=MAX_CACHE_TTL_SECONDS,
        )? {
            self.ttl = Duration::from_secs(ttl);
        }
        match within(
            "max_ttl_seconds",
            section.max_ttl_seconds,
            1..=MAX_CACHE_TTL_SECONDS,
        )? {
            Some(max) => self.max_ttl = Duration::from_secs(max),
            // As for the variables: at least the default TTL.
            None => self.max_ttl = self.max_ttl.max(self.ttl),
        }
        if explicit_max_ttl && self.max_ttl < self.ttl {
            return Err("cache.max_ttl_seconds: must be at least ttl_seconds".into());
        }
        if let Some(n) = within("max_entries", section.max_entries, 1..=100_000_000)? {
            self.max_entries = n;
        }
        if let Some(n) = within("max_bytes", section.max_bytes, 1024..=(1 << 40))? {
            self.max_bytes = n;
        }
        if let Some(n) = within("max_entry_bytes", section.max_entry_bytes, 1..=(64 << 20))? {
            self.max_entry_bytes = n as usize;
        }
        if let Some(ms) = within("lookup_timeout_ms", section.lookup_timeout_ms, 1..=10_000)? {
            self.lookup_timeout = Duration::from_millis(ms);
        }
        if let Some(store) = section.store_truncated {
            self.store_truncated = store;
        }
        Ok(())
    }
}

/// A year: the longest TTL an entry may have.
const MAX_CACHE_TTL_SECONDS: u64 = 365 * 86_400;

/// A comma-separated list, items trimmed, empty items dropped.
fn list(text: Option<String>) -> Vec<String> {
    text.map(|items| {
        items
            .split(',')
            .map(|item| item.trim().to_owned())
            .filter(|item| !item.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

impl ServerSettings {
    fn read<F: Fn(&str) -> Option<String>>(env: &Env<'_, F>) -> Result<Self, ConfigError> {
        Ok(Self {
            app_host: env.parse("APP_HOST", [0, 0, 0, 0].into(), "an IP address")?,
            app_port: env.parse("APP_PORT", 8000, "a port number 0-65535")?,
            metrics_host: env.parse("METRICS_HOST", [0, 0, 0, 0].into(), "an IP address")?,
            metrics_port: env.parse("METRICS_PORT", 8001, "a port number 0-65535")?,
            shutdown_grace: env.seconds("SHUTDOWN_GRACE_SECS", 10.0, true)?,
            header_read_timeout: env.seconds("HEADER_READ_TIMEOUT_SECS", 30.0, false)?,
            cors_allowed_origins: list(env.text("CORS_ALLOWED_ORIGINS")),
            trusted_proxies: list(env.text("TRUSTED_PROXIES"))
                .iter()
                .map(|net| {
                    net.parse::<ipnet::IpNet>()
                        .or_else(|_| net.parse::<IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| {
                            env.bad(
                                "TRUSTED_PROXIES",
                                net,
                                "comma-separated IP addresses or CIDRs, e.g. 10.0.0.0/8,192.168.1.7",
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

impl LlmSettings {
    fn read<F: Fn(&str) -> Option<String>>(
        env: &Env<'_, F>,
        lookup: &F,
    ) -> Result<Self, SettingsError> {
        let provider_defaults = ProviderDefaults {
            timeout: env.seconds("LLM_TIMEOUT_SECS", 30.0, false)?,
            connect_timeout: env.seconds("LLM_CONNECT_TIMEOUT_SECS", 10.0, false)?,
            max_retries: env.bounded(
                "LLM_MAX_RETRIES",
                2,
                0..=MAX_LLM_RETRIES,
                "a whole number 0-10",
            )?,
            simulated_latency: Duration::from_millis(env.parse(
                "SIMULATED_LATENCY_MS",
                40,
                "a whole number of milliseconds (0 allowed)",
            )?),
            price_table: match env.text("PRICING_FILE") {
                None => None,
                Some(path) => Some(read_price_file(std::path::Path::new(&path)).map_err(
                    |_| {
                        env.bad(
                            "PRICING_FILE",
                            &path,
                            "a readable JSON pricing file in src/llm/pricing.json's format, prices finite and >= 0",
                        )
                    },
                )?),
            },
        };
        let ignored_with_file = match env.text("GATEWAY_CONFIG") {
            Some(_) => ENV_PROVIDER_VARIABLES
                .iter()
                .copied()
                .filter(|var| env.text(var).is_some())
                .collect(),
            None => Vec::new(),
        };
        let routing = match env.text("GATEWAY_CONFIG") {
            Some(path) => RoutingSettings::from_file(
                std::path::Path::new(&path),
                &|name: &str| lookup(name),
                provider_defaults.clone(),
            )?,
            None => RoutingSettings::single(env_provider(env, &provider_defaults)?),
        };
        Ok(Self {
            routing,
            provider_defaults,
            ignored_with_file,
            default_model: env
                .text("LLM_DEFAULT_MODEL")
                .unwrap_or_else(|| DEFAULT_MODEL.into()),
            proxy: ProxySettings {
                https: env.proxy(["HTTPS_PROXY", "https_proxy"])?,
                http: env.proxy(["HTTP_PROXY", "http_proxy"])?,
                all: env.proxy(["ALL_PROXY", "all_proxy"])?,
                no_proxy: env.text(env.first_set(["NO_PROXY", "no_proxy"])),
            },
            extra_ca_file: match env.text("LLM_CA_CERT_FILE") {
                Some(path) if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) => {
                    Some(PathBuf::from(path))
                }
                Some(path) => {
                    return Err(env
                        .bad(
                            "LLM_CA_CERT_FILE",
                            &path,
                            "a readable file of PEM certificates",
                        )
                        .into());
                }
                None => None,
            },
        })
    }
}

/// What describes the one provider of the environment-only mode; a configuration file's
/// providers say it themselves (their keys' variables are named in the file).
const ENV_PROVIDER_VARIABLES: &[&str] = &[
    "LLM_PROVIDER",
    "GROQ_BASE_URL",
    "OPENAI_BASE_URL",
    "GROQ_API_KEY_FILE",
    "OPENAI_API_KEY_FILE",
];

/// Without a configuration file: the one provider `LLM_PROVIDER` (or a `GROQ_API_KEY`) names,
/// under its kind's name, answering every model name unchanged, as before routing existed.
fn env_provider<F: Fn(&str) -> Option<String>>(
    env: &Env<'_, F>,
    defaults: &ProviderDefaults,
) -> Result<ProviderSettings, ConfigError> {
    let groq_key = env.secret_or_file("GROQ_API_KEY", "GROQ_API_KEY_FILE")?;
    let kind = match env.text("LLM_PROVIDER").as_deref() {
        None if groq_key.is_some() => ProviderKind::Groq,
        None => ProviderKind::Simulated,
        Some("groq") => ProviderKind::Groq,
        Some("openai") => ProviderKind::OpenAi,
        Some("simulated") => ProviderKind::Simulated,
        Some(other) => return Err(env.bad("LLM_PROVIDER", other, "groq, openai or simulated")),
    };
    let (base_url, api_key) = match kind {
        ProviderKind::Groq => (
            env.url("GROQ_BASE_URL", GROQ_BASE_URL)?,
            Some(groq_key.ok_or(ConfigError {
                var: "GROQ_API_KEY",
                shown: String::new(),
                expected: "a key when LLM_PROVIDER=groq (unset LLM_PROVIDER to use the simulated provider)",
            })?),
        ),
        ProviderKind::OpenAi => (
            env.url("OPENAI_BASE_URL", OPENAI_BASE_URL)?,
            Some(
                env.secret_or_file("OPENAI_API_KEY", "OPENAI_API_KEY_FILE")?
                    .ok_or(ConfigError {
                        var: "OPENAI_API_KEY",
                        shown: String::new(),
                        expected: "a key when LLM_PROVIDER=openai",
                    })?,
            ),
        ),
        ProviderKind::OpenAiCompatible | ProviderKind::Anthropic | ProviderKind::Simulated => {
            (String::new(), None)
        }
    };
    Ok(ProviderSettings {
        name: kind.as_str().to_owned(),
        kind,
        gen_ai_name: kind.as_str().to_owned(),
        base_url,
        api_key,
        timeout: defaults.timeout,
        connect_timeout: defaults.connect_timeout,
        max_retries: defaults.max_retries,
        headers: Vec::new(),
        prices: Vec::new(),
        price_table: defaults.price_table.clone(),
        simulated_latency: defaults.simulated_latency,
    })
}

impl LimitSettings {
    fn read<F: Fn(&str) -> Option<String>>(env: &Env<'_, F>) -> Result<Self, ConfigError> {
        Ok(Self {
            max_body_bytes: env.parse("MAX_BODY_BYTES", 1 << 20, "a positive number of bytes")?,
            max_prompt_chars: env.parse(
                "MAX_PROMPT_CHARS",
                1 << 20,
                "a positive number of characters",
            )?,
            max_concurrency: env.parse(
                "LLM_MAX_CONCURRENCY",
                256,
                "a whole number (0: unlimited)",
            )?,
            max_queue: env.parse("LLM_MAX_QUEUE", 1024, "a whole number of waiting calls")?,
            queue_timeout: env.seconds("LLM_QUEUE_TIMEOUT_SECS", 10.0, true)?,
            client_rate_limit: env.rate("RATE_LIMIT_PER_CLIENT")?,
            client_rate_burst: env.rate("RATE_LIMIT_BURST")?,
        })
    }
}

impl AuthSettings {
    fn read<F: Fn(&str) -> Option<String>>(env: &Env<'_, F>) -> Self {
        Self {
            gateway_api_keys: list(env.text("GATEWAY_API_KEYS"))
                .into_iter()
                .map(Secret::new)
                .collect(),
            admin_api_key: env.text("ADMIN_API_KEY").map(Secret::new),
        }
    }
}

impl TelemetrySettings {
    fn read<F: Fn(&str) -> Option<String>>(env: &Env<'_, F>) -> Result<Self, ConfigError> {
        let protocol = match env.text("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
            None | Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
            Some("grpc") => OtlpProtocol::Grpc,
            Some(other) => {
                return Err(env.bad(
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    other,
                    "http/protobuf or grpc",
                ));
            }
        };
        let traces_endpoint = match (
            env.text("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            env.text("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(signal), _) => signal,
            (None, Some(base)) if protocol == OtlpProtocol::HttpProtobuf => {
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
            (None, Some(base)) => base,
            (None, None) if protocol == OtlpProtocol::HttpProtobuf => {
                "http://localhost:4318/v1/traces".to_owned()
            }
            (None, None) => "http://localhost:4317".to_owned(),
        };
        // Each OTLP exporter setting: the traces-specific variable wins over the general one.
        let headers_var = env.first_set([
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        ]);
        let export_headers = match env.text(headers_var) {
            None => Vec::new(),
            Some(list) => parse_headers(&list).ok_or(ConfigError {
                var: headers_var,
                // Header values are usually credentials: never echoed.
                shown: "*****".into(),
                expected: "comma-separated name=value pairs (values percent-encoded)",
            })?,
        };
        let export_timeout_var = env.first_set([
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ]);
        let export_timeout_ms: u64 = env.bounded(
            export_timeout_var,
            10_000,
            1..=u64::MAX,
            "a positive number of milliseconds",
        )?;
        let compression_var = env.first_set([
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
        ]);
        let export_gzip = match env.text(compression_var).as_deref() {
            None | Some("none") => false,
            Some("gzip") if protocol == OtlpProtocol::HttpProtobuf => true,
            Some(other) => {
                return Err(env.bad(
                    compression_var,
                    other,
                    "none, or gzip with OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
                ));
            }
        };
        let log_format = match env.text("LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(env.bad("LOG_FORMAT", other, "pretty or json")),
        };
        Ok(Self {
            service_name: env
                .text("OTEL_SERVICE_NAME")
                .unwrap_or_else(|| DEFAULT_SERVICE_NAME.into()),
            sdk_disabled: env.boolean("OTEL_SDK_DISABLED")?,
            protocol,
            traces_endpoint,
            export_headers,
            export_timeout: Duration::from_millis(export_timeout_ms),
            export_gzip,
            // A queue of 0 would drop every span: refused, not accepted and silently useless.
            max_queue_size: env.bounded(
                "OTEL_BSP_MAX_QUEUE_SIZE",
                2048,
                1..=usize::MAX,
                "a positive number of spans",
            )?,
            max_export_batch_size: env.bounded(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                64,
                1..=usize::MAX,
                "a positive number of spans",
            )?,
            batch_schedule_delay: None,
            capture_message_content: env
                .boolean("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")?,
            log_format,
            log_filter: env.text("RUST_LOG").unwrap_or_else(|| "info".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned()).map_err(|e| match e {
            SettingsError::Env(e) => e,
            SettingsError::File(e) => panic!("no file in these tests: {e}"),
        })
    }

    /// The environment's one provider.
    fn provider(s: &Settings) -> &ProviderSettings {
        assert!(s.llm.routing.file.is_none());
        &s.llm.routing.providers[0]
    }

    #[test]
    fn defaults_pick_the_simulated_provider_without_a_key() {
        let s = settings(&[]).unwrap();
        assert_eq!(provider(&s).kind, ProviderKind::Simulated);
        assert_eq!(s.llm.routing.default_provider.as_deref(), Some("simulated"));
        assert!(!s.llm.routing.direct_addressing);
        assert_eq!(s.server.app_port, 8000);
        assert_eq!(s.server.metrics_port, 8001);
        assert_eq!(s.llm.default_model, "llama-3.1-8b-instant");
        assert_eq!(
            s.telemetry.traces_endpoint,
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(s.telemetry.service_name, "llm-observability-api");
    }

    #[test]
    fn a_groq_key_selects_groq_and_never_prints() {
        let s = settings(&[("GROQ_API_KEY", "gsk_secret123")]).unwrap();
        let groq = provider(&s);
        assert_eq!(
            (groq.kind, groq.name.as_str()),
            (ProviderKind::Groq, "groq")
        );
        assert_eq!(groq.base_url, GROQ_BASE_URL);
        assert_eq!(groq.api_key.as_ref().unwrap().expose(), "gsk_secret123");
        assert!(!format!("{s:?}").contains("gsk_secret123"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("APP_PORT", "abc"),
            ("LLM_TIMEOUT_SECS", "-1"),
            ("LLM_PROVIDER", "foo"),
            ("LOG_FORMAT", "xml"),
            ("OTEL_SDK_DISABLED", "maybe"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn the_cache_is_off_by_default_and_redis_when_redis_url_is_set() {
        let s = settings(&[]).unwrap();
        assert!(!s.cache.enabled);
        assert_eq!(s.cache.backend, CacheBackend::Memory);
        assert_eq!(s.cache.ttl, Duration::from_secs(3600));
        assert_eq!(s.cache.max_ttl, Duration::from_secs(86_400));
        assert_eq!(s.cache.lookup_timeout, Duration::from_millis(10));
        assert!(s.redis_url.is_none());
        let s = settings(&[
            ("CACHE_ENABLED", "true"),
            ("REDIS_URL", "redis://:pw@cache:6379/2"),
            ("CACHE_TTL_SECONDS", "172800"),
        ])
        .unwrap();
        assert!(s.cache.enabled);
        assert_eq!(s.cache.backend, CacheBackend::Redis);
        // The longest TTL a request may ask is at least the default one.
        assert_eq!(s.cache.max_ttl, Duration::from_secs(172_800));
        let s = settings(&[
            ("REDIS_URL", "redis://cache:6379"),
            ("CACHE_BACKEND", "memory"),
        ])
        .unwrap();
        assert_eq!(s.cache.backend, CacheBackend::Memory);
    }

    /// Settings with `GATEWAY_CONFIG` naming a file of `text` (one simulated provider first).
    fn with_file(text: &str, vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "cache-section-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(
            &path,
            format!("[providers.sim]\nkind = \"simulated\"\n{text}"),
        )
        .unwrap();
        let mut map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        map.insert("GATEWAY_CONFIG".into(), path.display().to_string());
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn the_files_cache_table_is_over_the_variables() {
        let s = with_file(
            "[cache]\nenabled = true\nttl_seconds = 600\nmax_entries = 50\nlookup_timeout_ms = 25\nstore_truncated = true\n",
            &[("CACHE_TTL_SECONDS", "60"), ("CACHE_MAX_BYTES", "4096")],
        )
        .unwrap();
        assert!(s.cache.enabled);
        assert_eq!(s.cache.ttl, Duration::from_secs(600));
        assert_eq!(s.cache.max_entries, 50);
        // A variable the file does not set keeps its value.
        assert_eq!(s.cache.max_bytes, 4096);
        assert_eq!(s.cache.lookup_timeout, Duration::from_millis(25));
        assert!(s.cache.store_truncated);
        let s = with_file(
            "[cache]\nbackend = \"redis\"\n",
            &[("REDIS_URL", "redis://r:6379")],
        )
        .unwrap();
        assert_eq!(s.cache.backend, CacheBackend::Redis);
        // Without the table, the variables alone.
        let s = with_file("", &[("CACHE_ENABLED", "true")]).unwrap();
        assert!(s.cache.enabled);
    }

    #[test]
    fn a_bad_cache_table_names_the_key() {
        for (text, key) in [
            ("[cache]\nttl_seconds = 0\n", "cache.ttl_seconds"),
            ("[cache]\nbackend = \"redis\"\n", "cache.backend"),
            ("[cache]\nbackend = \"disk\"\n", "cache.backend"),
            ("[cache]\nmax_entries = 0\n", "cache.max_entries"),
            (
                "[cache]\nttl_seconds = 600\nmax_ttl_seconds = 60\n",
                "cache.max_ttl_seconds",
            ),
            ("[cache]\nttl = 5\n", "ttl"),
            ("[cache]\nenabled = \"yes\"\n", "line 4"),
        ] {
            let err = with_file(text, &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
            assert!(err.contains("invalid configuration file"), "{err}");
        }
    }

    #[test]
    fn bad_cache_settings_name_the_variable_and_never_show_a_redis_password() {
        for (vars, var) in [
            (&[("CACHE_BACKEND", "redis")][..], "CACHE_BACKEND"),
            (&[("CACHE_BACKEND", "disk")][..], "CACHE_BACKEND"),
            (&[("CACHE_TTL_SECONDS", "0")][..], "CACHE_TTL_SECONDS"),
            (&[("CACHE_TTL_SECONDS", "1.5")][..], "CACHE_TTL_SECONDS"),
            (&[("CACHE_MAX_ENTRIES", "0")][..], "CACHE_MAX_ENTRIES"),
            (
                &[("CACHE_LOOKUP_TIMEOUT_MS", "0")][..],
                "CACHE_LOOKUP_TIMEOUT_MS",
            ),
            (&[("CACHE_ENABLED", "yes please")][..], "CACHE_ENABLED"),
            (
                &[("REDIS_URL", "http://:hunter2@cache:6379")][..],
                "REDIS_URL",
            ),
        ] {
            let err = settings(vars).unwrap_err();
            assert_eq!(err.var, var);
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn the_key_can_come_from_a_file() {
        let path = std::env::temp_dir().join(format!("groq-key-{}", std::process::id()));
        std::fs::write(&path, "gsk_from_file\n").unwrap();
        let s = settings(&[("GROQ_API_KEY_FILE", path.to_str().unwrap())]).unwrap();
        assert_eq!(
            provider(&s).api_key.as_ref().unwrap().expose(),
            "gsk_from_file"
        );
        let err = settings(&[("GROQ_API_KEY_FILE", "/no/such/file")]).unwrap_err();
        assert_eq!(err.var, "GROQ_API_KEY_FILE");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn otlp_base_endpoint_gets_the_signal_path_and_the_signal_endpoint_does_not() {
        let s = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")]).unwrap();
        assert_eq!(
            s.telemetry.traces_endpoint,
            "http://collector:4318/v1/traces"
        );
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://other:9999/x"),
        ])
        .unwrap();
        assert_eq!(s.telemetry.traces_endpoint, "http://other:9999/x");
        let s = settings(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap();
        assert_eq!(s.telemetry.traces_endpoint, "http://localhost:4317");
    }

    #[test]
    fn otlp_headers_timeout_and_compression_signal_variables_win() {
        let t = settings(&[]).unwrap().telemetry;
        assert!(t.export_headers.is_empty());
        assert_eq!(t.export_timeout, Duration::from_secs(10));
        assert!(!t.export_gzip);

        let t = settings(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-general=1"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                " api-key = s%3Dcr%2Ct ,x-tenant=a b",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
        ])
        .unwrap()
        .telemetry;
        let headers: Vec<(&str, &str)> = t
            .export_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(headers, [("api-key", "s=cr,t"), ("x-tenant", "a b")]);
        assert_eq!(t.export_timeout, Duration::from_millis(2500));
        assert!(t.export_gzip);
    }

    #[test]
    fn bad_otlp_headers_are_refused_without_echoing_them() {
        for bad in ["novalue", "=v", "k=%zz", "bad name=v"] {
            let e = settings(&[("OTEL_EXPORTER_OTLP_HEADERS", bad)]).unwrap_err();
            assert_eq!(e.var, "OTEL_EXPORTER_OTLP_HEADERS");
            assert_eq!(e.shown, "*****", "{bad}");
        }
        let e = settings(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "0")]).unwrap_err();
        assert_eq!(e.var, "OTEL_EXPORTER_OTLP_TIMEOUT");
        let e = settings(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "OTEL_EXPORTER_OTLP_COMPRESSION");
    }

    #[test]
    fn each_key_file_variable_belongs_to_its_own_key() {
        let path = std::env::temp_dir().join(format!("openai-key-{}", std::process::id()));
        std::fs::write(&path, "sk-from-file\n").unwrap();
        let file = path.to_str().unwrap();
        let s = settings(&[("LLM_PROVIDER", "openai"), ("OPENAI_API_KEY_FILE", file)]).unwrap();
        assert_eq!(
            provider(&s).api_key.as_ref().unwrap().expose(),
            "sk-from-file"
        );
        // GROQ_API_KEY_FILE is not a fallback for the OpenAI key, nor the other way round.
        let err = settings(&[("LLM_PROVIDER", "openai"), ("GROQ_API_KEY_FILE", file)]).unwrap_err();
        assert_eq!(err.var, "OPENAI_API_KEY");
        let err = settings(&[("LLM_PROVIDER", "groq"), ("OPENAI_API_KEY_FILE", file)]).unwrap_err();
        assert_eq!(err.var, "GROQ_API_KEY");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn out_of_range_values_are_refused_not_capped() {
        assert_eq!(
            provider(&settings(&[("LLM_MAX_RETRIES", "10")]).unwrap()).max_retries,
            10
        );
        for (var, value) in [
            ("LLM_MAX_RETRIES", "11"),
            ("LLM_MAX_RETRIES", "-1"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{var}={value}");
            assert_eq!(err.shown, value, "{var}={value}");
        }
    }

    #[test]
    fn a_bad_pricing_file_stops_start_up_naming_the_variable() {
        let path = std::env::temp_dir().join(format!("prices-{}.json", std::process::id()));
        std::fs::write(&path, "{not json").unwrap();
        let err = settings(&[("PRICING_FILE", path.to_str().unwrap())]).unwrap_err();
        assert_eq!(err.var, "PRICING_FILE");
        std::fs::remove_file(path).unwrap();
        let err = settings(&[("PRICING_FILE", "/no/such/prices.json")]).unwrap_err();
        assert_eq!(err.var, "PRICING_FILE");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_cidrs() {
        let s = settings(&[("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7 ,::1")]).unwrap();
        let nets: Vec<String> = s
            .server
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.168.1.7/32", "::1/128"]);
        assert!(settings(&[]).unwrap().server.trusted_proxies.is_empty());
        let err = settings(&[("TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal")]).unwrap_err();
        assert_eq!(err.var, "TRUSTED_PROXIES");
        assert_eq!(err.shown, "proxy.internal");
    }

    #[test]
    fn proxies_are_read_upper_case_first_and_never_echo_credentials() {
        let s = settings(&[
            ("HTTPS_PROXY", "http://user:pa55@proxy:3128"),
            ("https_proxy", "http://other:1"),
            ("http_proxy", "http://plain:8080"),
            ("no_proxy", "localhost,.internal"),
        ])
        .unwrap();
        let proxy = &s.llm.proxy;
        assert_eq!(
            proxy.https.as_ref().unwrap().expose(),
            "http://user:pa55@proxy:3128"
        );
        assert_eq!(proxy.http.as_ref().unwrap().expose(), "http://plain:8080");
        assert_eq!(proxy.no_proxy.as_deref(), Some("localhost,.internal"));
        let described = proxy.describe();
        assert!(
            !described.contains("pa55") && !described.contains("user"),
            "{described}"
        );
        assert!(
            described.contains("https=http://*****@proxy:3128"),
            "{described}"
        );
        assert!(!format!("{s:?}").contains("pa55"));

        let err = settings(&[("HTTPS_PROXY", "socks5://user:pa55@proxy:1080")]).unwrap_err();
        assert_eq!(err.var, "HTTPS_PROXY");
        assert!(!err.to_string().contains("pa55"), "{err}");
        assert!(settings(&[]).unwrap().llm.proxy == ProxySettings::default());
    }
}
