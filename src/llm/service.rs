//! The chat service: the one entry point of an LLM call. Every endpoint calls
//! [`ChatService::complete`] or [`ChatService::stream`], so every call takes a concurrency slot
//! and gets the same telemetry (`genai`), whether it is whole or streamed (`stream`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

use super::genai::{Call, CallRecord, Observer};
use super::limiter::Slot;
use super::stream::{StreamEvent, StreamState};
use super::{
    Completion, ConcurrencyLimit, LlmError, PriceTable, Provider, UpstreamReport, UpstreamRequest,
};
use crate::telemetry::Metrics;

/// A successful whole call, with what the gateway adds to the provider's answer.
#[derive(Debug, Clone)]
pub struct ChatOutcome {
    /// The upstream's body, to relay unchanged.
    pub raw: Bytes,
    /// What the body says.
    pub completion: Completion,
    /// Cost in USD, `None` for an unpriced model.
    pub cost_usd: Option<f64>,
    /// Wall time of the call, retries included.
    pub latency: Duration,
}

/// Runs LLM calls with their telemetry.
#[derive(Debug)]
pub struct ChatService {
    provider: Provider,
    observer: Observer,
    limit: ConcurrencyLimit,
}

impl ChatService {
    /// A service over one provider.
    pub fn new(
        provider: Provider,
        pricing: PriceTable,
        metrics: Arc<Metrics>,
        capture_content: bool,
        limit: ConcurrencyLimit,
    ) -> Self {
        Self {
            provider,
            observer: Observer {
                metrics,
                pricing: Arc::new(pricing),
                capture_content,
            },
            limit,
        }
    }

    /// A concurrency slot, or the call recorded as `overloaded`.
    async fn slot(&self, call: &mut Call) -> Result<Slot, LlmError> {
        match self.limit.acquire().await {
            Some(slot) => Ok(slot),
            None => {
                self.observer.metrics.record_rejection("concurrency");
                call.fail(&LlmError::Overloaded);
                Err(LlmError::Overloaded)
            }
        }
    }

    /// The provider answering calls.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// The upstream's model list.
    pub async fn list_models(&self) -> Result<Bytes, LlmError> {
        self.provider.list_models(&self.observer.pricing).await
    }

    /// One traced, counted, whole LLM call.
    pub async fn complete(
        &self,
        request: UpstreamRequest,
    ) -> (Result<ChatOutcome, LlmError>, CallRecord) {
        let mut call = Call::start(&self.observer, &self.provider, &request);
        let _slot = match self.slot(&mut call).await {
            Ok(slot) => slot,
            Err(error) => return (Err(error), call.record(Duration::ZERO)),
        };
        let mut report = UpstreamReport::default();
        let result = self
            .provider
            .complete(&request, &call.span, &mut report)
            .await;
        call.upstream_report(&report);
        let mut record = call.record(report.wait);
        let result = match result {
            Ok((raw, completion)) => {
                let latency = call.started.elapsed();
                let cost_usd = call.succeed(&completion);
                record.model = completion.model.clone();
                record.tokens = completion.usage.map(|u| (u.input_tokens, u.output_tokens));
                Ok(ChatOutcome {
                    raw,
                    completion,
                    cost_usd,
                    latency,
                })
            }
            Err(error) => {
                call.fail(&error);
                Err(error)
            }
        };
        (result, record)
    }

    /// One traced, counted, streamed LLM call. The GenAI span and the call's metrics end when
    /// the stream ends; if the stream is dropped first (the client went away), the upstream
    /// request is dropped too and the call is recorded as `cancelled`.
    pub async fn stream(
        &self,
        mut request: UpstreamRequest,
    ) -> (
        Result<impl Stream<Item = StreamEvent> + Send + 'static, LlmError>,
        CallRecord,
    ) {
        request.request_stream_usage();
        let mut call = Call::start(&self.observer, &self.provider, &request);
        let slot = match self.slot(&mut call).await {
            Ok(slot) => slot,
            Err(error) => return (Err(error), call.record(Duration::ZERO)),
        };
        let mut report = UpstreamReport::default();
        let opened = self
            .provider
            .stream(&request, &call.span, &mut report)
            .await;
        call.upstream_report(&report);
        let record = call.record(report.wait);
        let upstream = match opened {
            Ok(upstream) => upstream,
            Err(error) => {
                call.fail(&error);
                return (Err(error), record);
            }
        };
        let stream = StreamState::new(
            slot,
            upstream,
            call,
            request.usage_injected,
            self.provider.redactor(),
        )
        .into_events();
        (Ok(stream), record)
    }
}
