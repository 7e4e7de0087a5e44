//! The provider that answers LLM calls, behind one interface.

use bytes::Bytes;
use tracing::Span;

use super::{
    ByteStream, Completion, LlmError, OpenAiCompatible, PriceTable, Redactor, Simulated,
    UpstreamReport, UpstreamRequest,
};
use crate::config::{LlmSettings, ProviderKind};

/// The provider that answers LLM calls. An enum rather than a trait object: two
/// implementations, static dispatch, no boxing on the hot path.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one instance per process: size is irrelevant
pub enum Provider {
    /// Groq or any other OpenAI-compatible API.
    Http(OpenAiCompatible),
    /// The offline simulated provider.
    Simulated(Simulated),
}

impl Provider {
    /// Builds the provider the settings ask for.
    pub fn from_settings(settings: &LlmSettings) -> Result<Self, String> {
        Ok(match &settings.upstream {
            Some(upstream) => Provider::Http(OpenAiCompatible::new(
                settings.provider,
                upstream,
                settings,
            )?),
            None => Provider::Simulated(Simulated::new(settings.simulated_latency)),
        })
    }

    /// `gen_ai.provider.name` and the `provider` label.
    pub fn kind(&self) -> ProviderKind {
        match self {
            Provider::Http(p) => p.kind(),
            Provider::Simulated(_) => ProviderKind::Simulated,
        }
    }

    /// `server.address` and `server.port` of the upstream, if there is one.
    pub fn server(&self) -> Option<(&str, u16)> {
        match self {
            Provider::Http(p) => Some(p.server()),
            Provider::Simulated(_) => None,
        }
    }

    /// What removes the provider's key and key-like text from relayed upstream text.
    pub fn redactor(&self) -> Redactor {
        match self {
            Provider::Http(p) => p.redactor().clone(),
            Provider::Simulated(_) => Redactor::default(),
        }
    }

    /// Asks for a whole completion: the raw body to relay and what it says. `span` (the GenAI
    /// span) is the parent of the HTTP client spans: passed explicitly rather than entered on
    /// every poll, which costs a clock read and a dispatch per poll.
    pub async fn complete(
        &self,
        request: &UpstreamRequest,
        span: &Span,
        report: &mut UpstreamReport,
    ) -> Result<(Bytes, Completion), LlmError> {
        match self {
            Provider::Http(p) => p.complete(request, span, report).await,
            Provider::Simulated(p) => p.complete(request, report).await,
        }
    }

    /// Opens a streamed completion; retries happen only before the first byte is relayed.
    pub async fn stream(
        &self,
        request: &UpstreamRequest,
        span: &Span,
        report: &mut UpstreamReport,
    ) -> Result<ByteStream, LlmError> {
        match self {
            Provider::Http(p) => p.stream(request, span, report).await,
            Provider::Simulated(p) => p.stream(request, report).await,
        }
    }

    /// The upstream's model list, OpenAI-shaped.
    pub async fn list_models(&self, known: &PriceTable) -> Result<Bytes, LlmError> {
        match self {
            Provider::Http(p) => p.list_models().await,
            Provider::Simulated(_) => Ok(Simulated::list_models(known)),
        }
    }
}
