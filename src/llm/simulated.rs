//! The simulated provider: no network, a deterministic answer derived from the prompt, so that
//! the gateway and all its telemetry can be seen working offline. Every answer says it is
//! simulated, and responses carry `"provider": "simulated"`.

use std::time::Duration;

use super::{ChatParams, Completion, GroqExtras, LlmError, UpstreamReport, Usage};

/// Words the filler text is drawn from.
const VOCABULARY: &[&str] = &[
    "traces",
    "metrics",
    "latency",
    "tokens",
    "spans",
    "signals",
    "requests",
    "errors",
    "dashboards",
    "alerts",
    "context",
    "sampling",
    "throughput",
    "budgets",
    "queues",
    "models",
    "providers",
    "histograms",
    "percentiles",
    "exporters",
    "collectors",
    "attributes",
    "services",
    "operators",
];

/// The offline provider.
#[derive(Debug, Clone)]
pub struct Simulated {
    latency: Duration,
}

impl Simulated {
    /// A provider that answers after `latency`.
    pub fn new(latency: Duration) -> Self {
        Self { latency }
    }

    /// Answers deterministically: the same prompt always gives the same text.
    pub async fn chat(
        &self,
        params: &ChatParams,
        report: &mut UpstreamReport,
    ) -> Result<Completion, LlmError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        report.wait = self.latency;
        let seed = fnv1a(params.prompt.as_bytes());
        let (content, output_tokens, finish_reason) = answer(params, seed);
        let input_tokens =
            estimate_tokens(&params.prompt) + params.system.as_deref().map_or(0, estimate_tokens);
        Ok(Completion {
            id: format!("chatcmpl-sim-{seed:016x}"),
            model: params.model.clone(),
            content,
            finish_reason: finish_reason.into(),
            usage: Some(Usage {
                input_tokens,
                output_tokens,
            }),
            system_fingerprint: None,
            service_tier: None,
            groq: GroqExtras::default(),
        })
    }
}

/// About four characters a token, as for English text with common tokenizers.
fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

/// Builds the answer one word (one token) at a time, stopping at `max_tokens`.
fn answer(params: &ChatParams, seed: u64) -> (String, u64, &'static str) {
    let mut words: Vec<&str> = "[simulated] This answer comes from the gateway's simulated provider; no LLM was called. You asked about:"
        .split(' ')
        .collect();
    words.extend(params.prompt.split_whitespace().take(12));
    let wanted = words.len() + 20 + (seed % 40) as usize;
    let mut state = seed;
    while words.len() < wanted {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        words.push(VOCABULARY[(state >> 33) as usize % VOCABULARY.len()]);
    }
    let limit = params.max_tokens as usize;
    let finish_reason = if words.len() > limit {
        words.truncate(limit);
        "length"
    } else {
        "stop"
    };
    (words.join(" "), words.len() as u64, finish_reason)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(prompt: &str, max_tokens: u32) -> ChatParams {
        ChatParams {
            model: "llama-3.1-8b-instant".into(),
            system: None,
            prompt: prompt.into(),
            max_tokens,
            temperature: 0.7,
        }
    }

    #[tokio::test]
    async fn same_prompt_same_answer_and_max_tokens_truncates() {
        let sim = Simulated::new(Duration::ZERO);
        let mut report = UpstreamReport::default();
        let a = sim
            .chat(&params("Explain observability", 256), &mut report)
            .await
            .unwrap();
        let b = sim
            .chat(&params("Explain observability", 256), &mut report)
            .await
            .unwrap();
        assert_eq!(a.content, b.content);
        assert_eq!(a.finish_reason, "stop");
        assert!(a.content.starts_with("[simulated]"));
        let short = sim
            .chat(&params("Explain observability", 5), &mut report)
            .await
            .unwrap();
        assert_eq!(short.finish_reason, "length");
        assert_eq!(short.usage.unwrap().output_tokens, 5);
        assert_eq!(short.content.split(' ').count(), 5);
    }
}
