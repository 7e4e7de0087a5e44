//! Every setting the service reads, from the environment (and `.env`), validated once at start.
//!
//! Invariant: after [`Settings::from_env`] succeeds nothing else reads the environment for our
//! own settings; a bad value stops start-up with one line naming the variable and what it accepts.
//! (The OpenTelemetry SDK still reads the standard `OTEL_BSP_*`, `OTEL_TRACES_SAMPLER*` and
//! `OTEL_RESOURCE_ATTRIBUTES` variables itself, as the specification asks.)

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Groq's OpenAI-compatible API root.
pub const GROQ_BASE_URL: &str = "https://api.groq.com/openai/v1";
/// OpenAI's API root, for `LLM_PROVIDER=openai`.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// The model used when a request names none.
pub const DEFAULT_MODEL: &str = "llama-3.1-8b-instant";
/// `service.name` when `OTEL_SERVICE_NAME` is not set.
pub const DEFAULT_SERVICE_NAME: &str = "llm-observability-api";

/// A secret that never prints: `Debug` and `Display` show `*****`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call only where it is sent to the upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

/// Which provider answers LLM calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Groq's OpenAI-compatible API.
    Groq,
    /// Any OpenAI-compatible API (OpenAI itself by default).
    OpenAi,
    /// The built-in simulated provider: no network, deterministic answers.
    Simulated,
}

impl ProviderKind {
    /// The `gen_ai.provider.name` value and the `provider` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Groq => "groq",
            ProviderKind::OpenAi => "openai",
            ProviderKind::Simulated => "simulated",
        }
    }
}

/// How the upstream is reached, for the two HTTP providers.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// API root, e.g. `https://api.groq.com/openai/v1`; `/chat/completions` is appended.
    pub base_url: String,
    /// Bearer key sent upstream.
    pub api_key: Secret,
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

/// Telemetry settings.
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

/// Every setting of the service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address the API listens on.
    pub app_host: IpAddr,
    /// Port of the API (0 picks a free one).
    pub app_port: u16,
    /// Address the metrics listener binds (bind it to 127.0.0.1 to keep metrics private).
    pub metrics_host: IpAddr,
    /// Port of `/metrics` (0 picks a free one).
    pub metrics_port: u16,
    /// Which provider answers.
    pub provider: ProviderKind,
    /// Upstream address and key; `None` for the simulated provider.
    pub upstream: Option<UpstreamSettings>,
    /// Model used when a request names none.
    pub default_model: String,
    /// Overall deadline of one LLM call, retries included.
    pub llm_timeout: Duration,
    /// Deadline for opening a connection to the upstream.
    pub llm_connect_timeout: Duration,
    /// Retries after the first attempt, on connection errors, 429 and 5xx.
    pub llm_max_retries: u32,
    /// Latency the simulated provider adds to each answer.
    pub simulated_latency: Duration,
    /// A JSON pricing table replacing the built-in one.
    pub pricing_file: Option<PathBuf>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Longest a client may take to send its request headers.
    pub header_read_timeout: Duration,
    /// Most concurrent upstream calls (0: unlimited).
    pub max_concurrency: usize,
    /// Most calls waiting for a slot; beyond it calls are refused as overloaded.
    pub max_queue: usize,
    /// Longest wait for a slot.
    pub queue_timeout: Duration,
    /// Requests per second per client (gateway key, else IP); 0: no limit.
    pub client_rate_limit: f64,
    /// Burst allowance of the per-client limit.
    pub client_rate_burst: f64,
    /// Longest accepted `/api/chat` prompt, in characters.
    pub max_prompt_chars: usize,
    /// Origins allowed by CORS (`*` for any); empty: no CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
    /// Keys clients must present as Bearer tokens; empty: no gateway authentication.
    pub gateway_api_keys: Vec<Secret>,
    /// Telemetry settings.
    pub telemetry: TelemetrySettings,
}

/// A setting with a bad value: the variable, what was given, what is accepted.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {var}={shown:?}: expected {expected}")]
pub struct ConfigError {
    /// The variable's name.
    pub var: &'static str,
    /// The value given (masked for secrets).
    pub shown: String,
    /// What the variable accepts.
    pub expected: &'static str,
}

impl Settings {
    /// Reads `.env` (if present) and the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is not worth refusing to start over.
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds settings from any variable lookup (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let groq_key = env.secret_or_file("GROQ_API_KEY")?;
        let provider = match env.text("LLM_PROVIDER").as_deref() {
            None if groq_key.is_some() => ProviderKind::Groq,
            None => ProviderKind::Simulated,
            Some("groq") => ProviderKind::Groq,
            Some("openai") => ProviderKind::OpenAi,
            Some("simulated") => ProviderKind::Simulated,
            Some(other) => return Err(env.bad("LLM_PROVIDER", other, "groq, openai or simulated")),
        };
        let upstream = match provider {
            ProviderKind::Simulated => None,
            ProviderKind::Groq => Some(UpstreamSettings {
                base_url: env.url("GROQ_BASE_URL", GROQ_BASE_URL)?,
                api_key: groq_key.ok_or(ConfigError {
                    var: "GROQ_API_KEY",
                    shown: String::new(),
                    expected: "a key when LLM_PROVIDER=groq (unset LLM_PROVIDER to use the simulated provider)",
                })?,
            }),
            ProviderKind::OpenAi => Some(UpstreamSettings {
                base_url: env.url("OPENAI_BASE_URL", OPENAI_BASE_URL)?,
                api_key: env.secret_or_file("OPENAI_API_KEY")?.ok_or(ConfigError {
                    var: "OPENAI_API_KEY",
                    shown: String::new(),
                    expected: "a key when LLM_PROVIDER=openai",
                })?,
            }),
        };

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
        let export_timeout_ms: u64 = env.parse(
            export_timeout_var,
            10_000,
            "a positive number of milliseconds",
        )?;
        if export_timeout_ms == 0 {
            return Err(env.bad(export_timeout_var, "0", "a positive number of milliseconds"));
        }
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

        Ok(Settings {
            app_host: env.parse("APP_HOST", [0, 0, 0, 0].into(), "an IP address")?,
            app_port: env.parse("APP_PORT", 8000, "a port number 0-65535")?,
            metrics_host: env.parse("METRICS_HOST", [0, 0, 0, 0].into(), "an IP address")?,
            metrics_port: env.parse("METRICS_PORT", 8001, "a port number 0-65535")?,
            provider,
            upstream,
            default_model: env
                .text("LLM_DEFAULT_MODEL")
                .unwrap_or_else(|| DEFAULT_MODEL.into()),
            llm_timeout: env.seconds("LLM_TIMEOUT_SECS", 30.0, false)?,
            llm_connect_timeout: env.seconds("LLM_CONNECT_TIMEOUT_SECS", 10.0, false)?,
            llm_max_retries: env
                .parse("LLM_MAX_RETRIES", 2, "a whole number 0-10")?
                .min(10),
            simulated_latency: Duration::from_millis(env.parse(
                "SIMULATED_LATENCY_MS",
                40,
                "a whole number of milliseconds (0 allowed)",
            )?),
            pricing_file: env.text("PRICING_FILE").map(PathBuf::from),
            max_body_bytes: env.parse("MAX_BODY_BYTES", 1 << 20, "a positive number of bytes")?,
            shutdown_grace: env.seconds("SHUTDOWN_GRACE_SECS", 10.0, true)?,
            header_read_timeout: env.seconds("HEADER_READ_TIMEOUT_SECS", 30.0, false)?,
            max_concurrency: env.parse(
                "LLM_MAX_CONCURRENCY",
                256,
                "a whole number (0: unlimited)",
            )?,
            max_queue: env.parse("LLM_MAX_QUEUE", 1024, "a whole number of waiting calls")?,
            queue_timeout: env.seconds("LLM_QUEUE_TIMEOUT_SECS", 10.0, true)?,
            client_rate_limit: env.rate("RATE_LIMIT_PER_CLIENT")?,
            client_rate_burst: env.rate("RATE_LIMIT_BURST")?,
            max_prompt_chars: env.parse(
                "MAX_PROMPT_CHARS",
                1 << 20,
                "a positive number of characters",
            )?,
            cors_allowed_origins: env
                .text("CORS_ALLOWED_ORIGINS")
                .map(|origins| {
                    origins
                        .split(',')
                        .map(|o| o.trim().to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            gateway_api_keys: env
                .text("GATEWAY_API_KEYS")
                .map(|keys| {
                    keys.split(',')
                        .map(str::trim)
                        .filter(|k| !k.is_empty())
                        .map(Secret::new)
                        .collect()
                })
                .unwrap_or_default(),
            telemetry: TelemetrySettings {
                service_name: env
                    .text("OTEL_SERVICE_NAME")
                    .unwrap_or_else(|| DEFAULT_SERVICE_NAME.into()),
                sdk_disabled: env.boolean("OTEL_SDK_DISABLED")?,
                protocol,
                traces_endpoint,
                export_headers,
                export_timeout: Duration::from_millis(export_timeout_ms),
                export_gzip,
                max_queue_size: env.parse(
                    "OTEL_BSP_MAX_QUEUE_SIZE",
                    2048,
                    "a positive number of spans",
                )?,
                max_export_batch_size: env.parse(
                    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                    64,
                    "a positive number of spans",
                )?,
                batch_schedule_delay: None,
                capture_message_content: env
                    .boolean("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")?,
                log_format,
                log_filter: env.text("RUST_LOG").unwrap_or_else(|| "info".into()),
            },
        })
    }
}

/// `name=value,name2=value2` (W3C baggage style, as the OTLP exporter spec says), values
/// percent-decoded; `None` if malformed.
fn parse_headers(list: &str) -> Option<Vec<(String, Secret)>> {
    list.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let name = name.trim();
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            valid_name.then(|| Some((name.to_owned(), Secret(percent_decode(value.trim())?))))?
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// Typed reads of one variable each; empty values count as unset.
struct Env<'a, F>(&'a F);

impl<F: Fn(&str) -> Option<String>> Env<'_, F> {
    fn text(&self, var: &str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// `VAR`, else the contents of the file named by `VAR_FILE` (Docker/Kubernetes secrets).
    fn secret_or_file(&self, var: &'static str) -> Result<Option<Secret>, ConfigError> {
        if let Some(value) = self.text(var) {
            return Ok(Some(Secret(value)));
        }
        let file_var = match var {
            "GROQ_API_KEY" => "GROQ_API_KEY_FILE",
            _ => "OPENAI_API_KEY_FILE",
        };
        let Some(path) = self.text(file_var) else {
            return Ok(None);
        };
        match std::fs::read_to_string(&path) {
            Ok(contents) if !contents.trim().is_empty() => {
                Ok(Some(Secret(contents.trim().to_owned())))
            }
            _ => Err(self.bad(file_var, &path, "a readable file holding the key")),
        }
    }

    /// The first of `vars` that is set, else the last (the general one, for messages).
    fn first_set(&self, vars: [&'static str; 2]) -> &'static str {
        vars.into_iter()
            .find(|var| self.text(var).is_some())
            .unwrap_or(vars[1])
    }

    fn bad(&self, var: &'static str, value: &str, expected: &'static str) -> ConfigError {
        ConfigError {
            var,
            shown: value.to_owned(),
            expected,
        }
    }

    fn parse<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        match self.text(var) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| self.bad(var, &v, expected)),
        }
    }

    fn seconds(
        &self,
        var: &'static str,
        default: f64,
        zero_ok: bool,
    ) -> Result<Duration, ConfigError> {
        let expected = if zero_ok {
            "a number of seconds >= 0"
        } else {
            "a number of seconds > 0"
        };
        let secs: f64 = self.parse(var, default, expected)?;
        let valid = secs.is_finite() && (secs > 0.0 || (zero_ok && secs == 0.0)) && secs < 1e9;
        if !valid {
            return Err(self.bad(var, &secs.to_string(), expected));
        }
        Ok(Duration::from_secs_f64(secs))
    }

    fn rate(&self, var: &'static str) -> Result<f64, ConfigError> {
        let expected = "a number of requests per second >= 0 (0: off)";
        let rate: f64 = self.parse(var, 0.0, expected)?;
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(self.bad(var, &rate.to_string(), expected));
        }
        Ok(rate)
    }

    fn boolean(&self, var: &'static str) -> Result<bool, ConfigError> {
        match self.text(var).map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(self.bad(var, other, "true or false")),
        }
    }

    fn url(&self, var: &'static str, default: &str) -> Result<String, ConfigError> {
        let url = self.text(var).unwrap_or_else(|| default.to_owned());
        if crate::http_client::http_uri(&url).is_some() {
            Ok(url.trim_end_matches('/').to_owned())
        } else {
            Err(self.bad(var, &url, "an http(s) URL"))
        }
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
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_pick_the_simulated_provider_without_a_key() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.provider, ProviderKind::Simulated);
        assert_eq!(s.app_port, 8000);
        assert_eq!(s.metrics_port, 8001);
        assert_eq!(s.default_model, "llama-3.1-8b-instant");
        assert_eq!(
            s.telemetry.traces_endpoint,
            "http://localhost:4318/v1/traces"
        );
        assert_eq!(s.telemetry.service_name, "llm-observability-api");
    }

    #[test]
    fn a_groq_key_selects_groq_and_never_prints() {
        let s = settings(&[("GROQ_API_KEY", "gsk_secret123")]).unwrap();
        assert_eq!(s.provider, ProviderKind::Groq);
        let upstream = s.upstream.as_ref().unwrap();
        assert_eq!(upstream.base_url, GROQ_BASE_URL);
        assert_eq!(upstream.api_key.expose(), "gsk_secret123");
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
    fn the_key_can_come_from_a_file() {
        let path = std::env::temp_dir().join(format!("groq-key-{}", std::process::id()));
        std::fs::write(&path, "gsk_from_file\n").unwrap();
        let s = settings(&[("GROQ_API_KEY_FILE", path.to_str().unwrap())]).unwrap();
        assert_eq!(s.upstream.unwrap().api_key.expose(), "gsk_from_file");
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
}
