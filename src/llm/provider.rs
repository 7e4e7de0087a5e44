//! A provider that answers LLM calls: its identity (the configured name, its
//! `gen_ai.provider.name`, its address), its prices, and its API behind one interface.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tracing::Span;

use super::{
    Answer, Attempt, LlmError, OpenAiCompatible, Operation, PriceTable, Redactor, Simulated,
    UpstreamReport, UpstreamRequest,
};
use crate::config::{ProviderKind, ProviderSettings, ProxySettings};

/// A configured provider.
#[derive(Debug)]
pub struct Provider {
    /// The configured name: the `provider` label and `llmobs.provider.name`.
    name: Arc<str>,
    /// `gen_ai.provider.name`.
    gen_ai_name: Arc<str>,
    kind: ProviderKind,
    prices: PriceTable,
    /// The deadline of one call to it.
    timeout: Duration,
    api: Api,
}

/// The API a provider speaks. An enum rather than a trait object: static dispatch, no boxing
/// on the hot path.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per configured provider: size is irrelevant
enum Api {
    /// Groq, OpenAI or any other OpenAI-compatible API.
    Http(OpenAiCompatible),
    /// The offline simulated provider.
    Simulated(Simulated),
}

impl Provider {
    /// Builds a provider and its HTTP client (through the egress proxy, trusting the extra CA).
    pub fn new(
        settings: &ProviderSettings,
        proxy: &ProxySettings,
        extra_ca_file: Option<&Path>,
    ) -> Result<Self, String> {
        let name: Arc<str> = settings.name.as_str().into();
        let gen_ai_name: Arc<str> = settings.gen_ai_name.as_str().into();
        let api = match settings.kind {
            ProviderKind::Simulated => Api::Simulated(Simulated::new(settings.simulated_latency)),
            _ => Api::Http(OpenAiCompatible::new(
                settings,
                name.clone(),
                gen_ai_name.clone(),
                proxy,
                extra_ca_file,
            )?),
        };
        Ok(Self {
            prices: PriceTable::for_provider(settings)
                .map_err(|e| format!("provider {}: {e}", settings.name))?,
            name,
            gen_ai_name,
            kind: settings.kind,
            timeout: settings.timeout,
            api,
        })
    }

    /// The configured name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// `gen_ai.provider.name`.
    pub fn gen_ai_name(&self) -> &Arc<str> {
        &self.gen_ai_name
    }

    /// Its API.
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    /// The deadline of one call to it, its retries included.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Its prices.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// `server.address` and `server.port` of the upstream, if there is one.
    pub fn server(&self) -> Option<(&str, u16)> {
        match &self.api {
            Api::Http(p) => Some(p.server()),
            Api::Simulated(_) => None,
        }
    }

    /// What removes the provider's key and key-like text from relayed upstream text.
    pub fn redactor(&self) -> Redactor {
        match &self.api {
            Api::Http(p) => p.redactor().clone(),
            Api::Simulated(_) => Redactor::default(),
        }
    }

    /// Asks for a whole completion, or opens a stream (retries happen only before its first
    /// byte). `span` (the GenAI span) is the parent of the HTTP client spans: passed
    /// explicitly rather than entered on every poll, which costs a clock read and a dispatch
    /// per poll.
    pub async fn answer(
        &self,
        request: &UpstreamRequest,
        attempt: &Attempt<'_>,
        stream: bool,
        span: &Span,
        report: &mut UpstreamReport,
    ) -> Result<Answer, LlmError> {
        match (&self.api, stream) {
            (Api::Http(p), _) => p.answer(request, attempt, stream, span, report).await,
            (Api::Simulated(p), false) => p
                .complete(request, attempt.model, report)
                .await
                .map(|(raw, completion)| Answer::Complete(raw, completion)),
            (Api::Simulated(p), true) => p
                .stream(request, attempt.model, report)
                .await
                .map(Answer::Stream),
        }
    }

    /// Whether it implements an API: OpenAI-compatible APIs every OpenAI one, Anthropic chat
    /// (translated) and its Messages API, the simulated provider all of them (offline).
    pub fn supports(&self, operation: Operation) -> bool {
        match &self.api {
            Api::Http(p) => p.supports(operation),
            Api::Simulated(_) => true,
        }
    }

    /// Anthropic's token count for a Messages request body.
    pub async fn count_tokens(
        &self,
        body: Bytes,
        forwarded_headers: &[(axum::http::HeaderName, axum::http::HeaderValue)],
    ) -> Result<Bytes, LlmError> {
        match &self.api {
            Api::Http(p) => p.count_tokens(body, forwarded_headers).await,
            Api::Simulated(_) => Ok(Simulated::count_tokens(&body)),
        }
    }

    /// The upstream's model list, OpenAI-shaped.
    pub async fn list_models(&self) -> Result<Bytes, LlmError> {
        match &self.api {
            Api::Http(p) => p.list_models().await,
            Api::Simulated(_) => Ok(Simulated::list_models(&self.prices)),
        }
    }
}
