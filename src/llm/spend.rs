//! Who makes a call and who pays for it: what the API layer tells the call about its caller
//! (the gateway key's name and team, the end user, the conversation) and the [`Payer`] told
//! what the call cost once it ends. The layer defines the contract; the key ledger
//! (the `access` module, a layer above) implements it.

use std::sync::Arc;

/// What one call cost, told once when it ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Charge<'a> {
    /// US dollars (0 for an unpriced model).
    pub cost_usd: f64,
    /// Input and output tokens.
    pub tokens: u64,
    /// The provider that answered (its configured name).
    pub provider: &'a str,
    /// The bounded `model` label value.
    pub model: &'a str,
    /// The usage is an estimate: the call was cancelled, or its stream broke, before the
    /// provider reported usage (input ≈ request bytes / 4, output = chunks seen).
    pub estimated: bool,
}

/// Told what a call cost, once, when it ends (whole answers, streams at their end or when the
/// client leaves). Must not block: it runs on the request's path.
pub trait Payer: Send + Sync {
    /// Records the call's cost.
    fn charge(&self, charge: Charge<'_>);
}

/// Who makes a call, from the API layer: the span's attribution, and who pays.
#[derive(Clone, Default)]
pub struct Caller {
    /// The gateway key's name (`llmobs.key.name`).
    pub key: Option<Arc<str>>,
    /// Its team (`llmobs.team.name`).
    pub team: Option<Arc<str>>,
    /// The end user (`user.id`): OpenAI's `user` field, Anthropic's `metadata.user_id`, or the
    /// `x-llmobs-user` header.
    pub user: Option<String>,
    /// The conversation (`gen_ai.conversation.id`), from the `x-llmobs-conversation-id` header.
    pub conversation: Option<String>,
    /// Told the call's cost when it ends.
    pub payer: Option<Arc<dyn Payer>>,
    /// The prompt the client says it used.
    pub prompt: Option<Prompt>,
}

/// A prompt and its version, from the `x-llmobs-prompt: name@version` header or OpenAI's
/// `metadata.prompt_name`/`prompt_version`.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// `gen_ai.prompt.name`.
    pub name: String,
    /// `llmobs.prompt.version`.
    pub version: String,
    /// The bounded (`prompt`, `prompt_version`) label values (`config::PromptSettings`).
    pub labels: (String, String),
}

impl Caller {
    /// What keeps a user on one A/B variant: the end user, else the conversation.
    pub fn sticky_key(&self) -> Option<&str> {
        self.user.as_deref().or(self.conversation.as_deref())
    }
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("key", &self.key)
            .field("team", &self.team)
            .field("pays", &self.payer.is_some())
            .finish_non_exhaustive()
    }
}
