//! The chat service: the one entry point of an LLM call. Every endpoint calls
//! [`ChatService::complete`] or [`ChatService::stream`], so every call is routed (`router`),
//! takes a concurrency slot, and gets the same telemetry (`genai`), whether it is whole or
//! streamed (`stream`).
//!
//! A route's targets are tried in the order the route gives; a failure of one of the route's
//! fallback classes moves on to the next target, any other failure (a client's 400) is the
//! answer. Each target's own retries happen inside its provider; a stream falls back only
//! before its first bytes, so the client never receives two answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use futures_util::future::Either;
use serde_json::{Value, json};

use super::breaker::Admission;
use super::cache::{
    CacheResult, CacheStatus, CachedAnswer, Lookup, ResponseCache, Ticket, cache_key, replay_chat,
};
use super::genai::{Call, CallRecord, Observer};
use super::limiter::Slot;
use super::recent::RecentCalls;
use super::router::{ModelRouter, Plan, Route};
use super::stream::{StreamEvent, StreamState, StreamSummary};
use super::{
    Answer, Attempt, Completion, ConcurrencyLimit, ErrorType, LlmError, Operation, Provider,
    UpstreamReport, UpstreamRequest, anthropic, embeddings, responses, wire,
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
    /// Wall time of the call, retries and fallbacks included.
    pub latency: Duration,
}

/// Runs LLM calls with their routing, cache and telemetry.
#[derive(Debug)]
pub struct ChatService {
    router: ModelRouter,
    observer: Observer,
    limit: ConcurrencyLimit,
    /// The response cache, when on.
    cache: Option<Arc<ResponseCache>>,
}

/// How a call was answered: from the cache, or by asking upstream (with the slot it holds,
/// what its route amounted to, and the cache's ticket to store the answer).
enum Asked {
    Hit(CachedAnswer, Completion),
    Upstream(Slot, Routed, Option<Ticket>),
}

/// What a call's route amounted to.
struct Routed {
    answer: Result<Answer, LlmError>,
    report: UpstreamReport,
}

impl ChatService {
    /// A service over the router's providers and routes.
    pub fn new(
        router: ModelRouter,
        metrics: Arc<Metrics>,
        capture_content: bool,
        limit: ConcurrencyLimit,
        cache: Option<Arc<ResponseCache>>,
        recent: Arc<RecentCalls>,
    ) -> Self {
        Self {
            router,
            observer: Observer {
                metrics,
                capture_content,
                recent,
            },
            limit,
            cache,
        }
    }

    /// The response cache is on: the API layer reads each cacheable request's cache headers.
    pub fn cache(&self) -> Option<&ResponseCache> {
        self.cache.as_deref()
    }

    /// The recent calls, for feedback.
    pub fn recent(&self) -> &RecentCalls {
        &self.observer.recent
    }

    /// The providers and routes.
    pub fn router(&self) -> &ModelRouter {
        &self.router
    }

    /// The models clients may name, OpenAI-shaped. Without a configuration file, the one
    /// provider's own list, unchanged. With one: every route (`owned_by: "route"`), then each
    /// provider's models as `provider/model` when direct addressing is on, and the default
    /// provider's under their own names. A provider that cannot list its models is left out
    /// (and logged); the list fails only if nothing at all can be listed.
    pub async fn list_models(&self) -> Result<Bytes, LlmError> {
        let routes = self.router.load();
        if routes.file.is_none()
            && let Some(provider) = routes.default_provider()
        {
            return provider.list_models().await;
        }
        let mut data: Vec<Value> = routes
            .route_names()
            .into_iter()
            .map(|name| json!({"id": name, "object": "model", "created": 0, "owned_by": "route"}))
            .collect();
        let default = routes.default_provider();
        let listed: Vec<&Arc<Provider>> = routes
            .providers()
            .iter()
            .filter(|p| routes.direct_addressing() || default.is_some_and(|d| Arc::ptr_eq(d, p)))
            .collect();
        let lists = futures_util::future::join_all(listed.iter().map(|p| p.list_models())).await;
        let mut last_error = None;
        for (provider, list) in listed.into_iter().zip(lists) {
            let models = match list.and_then(|bytes| model_ids(&bytes)) {
                Ok(models) => models,
                Err(error) => {
                    tracing::warn!(provider = &**provider.name(), error = %error, "cannot list the provider's models; leaving them out of /v1/models");
                    last_error = Some(error);
                    continue;
                }
            };
            let is_default = default.is_some_and(|d| Arc::ptr_eq(d, provider));
            for mut model in models {
                let Some(id) = model["id"].as_str().map(str::to_owned) else {
                    continue;
                };
                if is_default {
                    data.push(model.clone());
                }
                if routes.direct_addressing() {
                    model["id"] = Value::from(format!("{}/{id}", provider.name()));
                    data.push(model);
                }
            }
        }
        match last_error {
            Some(error) if data.is_empty() => Err(error),
            _ => Ok(Bytes::from(
                json!({"object": "list", "data": data}).to_string(),
            )),
        }
    }

    /// Anthropic's token count for a Messages request, asked of the first provider the model
    /// resolves to that speaks the Messages API. Not an LLM call: no GenAI span, no metrics.
    pub async fn count_tokens(&self, request: &UpstreamRequest) -> Result<Bytes, LlmError> {
        let routes = self.router.load();
        let plan = routes
            .resolve(&request.summary.model, request.caller.sticky_key())
            .and_then(|plan| supporting(plan, request))?;
        let (provider, model) = match &plan {
            Plan::Single(provider, model) => (*provider, *model),
            Plan::Route(route, order) => {
                let target = &route.targets[order[0]];
                (&target.provider, &*target.model)
            }
        };
        provider
            .count_tokens(request.body_for(model), &request.forwarded_headers)
            .await
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

    /// Opens the call's telemetry at the plan's first target.
    fn begin(&self, plan: &Plan<'_>, request: &UpstreamRequest) -> Call {
        let model = request.summary.model.as_str();
        let (first, route, model_label) = match plan {
            Plan::Route(route, order) => {
                let target = &route.targets[order[0]];
                (
                    (&target.provider, &*target.model),
                    Some(&*route.name),
                    model.to_owned(),
                )
            }
            Plan::Single(provider, upstream_model) => {
                let label = if provider.prices().knows(upstream_model) {
                    model.to_owned()
                } else {
                    "unknown".to_owned()
                };
                ((*provider, *upstream_model), None, label)
            }
        };
        Call::start(&self.observer, request, first, route, model_label)
    }

    /// Resolves the model (on the configuration loaded now), opens the call's telemetry, looks
    /// the answer up in the response cache (a cacheable call), else takes a concurrency slot
    /// and asks the plan's providers. Err: no call was made (a model no route serves, or an
    /// API its providers lack: the client's mistake, no span, no record; the API layer counts
    /// it as a rejection), or no slot.
    async fn ask(
        &self,
        request: &UpstreamRequest,
        stream: bool,
    ) -> Result<(Call, Asked), (LlmError, Option<CallRecord>)> {
        let routes = self.router.load();
        let plan = routes
            .resolve(&request.summary.model, request.caller.sticky_key())
            .and_then(|plan| supporting(plan, request))
            .map_err(|error| (error, None))?;
        let mut call = self.begin(&plan, request);
        let mut ticket = self.ticket(&plan, request);
        if let Some(ticket) = &mut ticket {
            if let Some((answer, completion)) = self.consult(ticket, request).await {
                let answered_by = routes
                    .providers()
                    .iter()
                    .find(|p| **p.name() == *answer.provider);
                call.record_cache(CacheStatus::Hit, &ticket.key);
                call.hit(answered_by, &answer.upstream_model, &completion);
                return Ok((call, Asked::Hit(answer, completion)));
            }
            call.record_cache(ticket.status, &ticket.key);
        }
        let slot = match self.slot(&mut call).await {
            Ok(slot) => slot,
            Err(error) => {
                let mut record = call.record(Duration::ZERO);
                record.cache = ticket.map(|t| t.status);
                return Err((error, Some(record)));
            }
        };
        let routed = self.route(plan, request, stream, &mut call).await;
        Ok((call, Asked::Upstream(slot, routed, ticket)))
    }

    /// The cache's ticket for a cacheable call (chat or embeddings, with the cache on): its key
    /// is the request's, scoped by where the plan sends it.
    fn ticket(&self, plan: &Plan<'_>, request: &UpstreamRequest) -> Option<Ticket> {
        let cache = self.cache.as_ref()?;
        let asked = request.cache.as_ref().filter(|_| request.is_cacheable())?;
        let key = cache_key(
            request.operation.gen_ai_name(),
            asked.tenant.as_ref(),
            &destination(plan),
            &asked.body,
        );
        Some(Ticket::new(cache, key, asked))
    }

    /// Looks the ticket's key up (unless the request bypasses the cache) and counts the
    /// result; a hit is returned with what it says. An entry that cannot be read as the API's
    /// answer counts as an error, like a failing backend: the call goes upstream.
    async fn consult(
        &self,
        ticket: &mut Ticket,
        request: &UpstreamRequest,
    ) -> Option<(CachedAnswer, Completion)> {
        let cache = Arc::clone(&ticket.cache);
        if !ticket.looks_up() {
            cache.count(CacheResult::Bypass);
            return None;
        }
        let result = match cache.lookup(&ticket.key).await {
            Lookup::Hit(answer) => {
                let read = match request.operation {
                    Operation::Embeddings => embeddings::parse_embeddings(&answer.body),
                    _ => wire::parse_completion(&answer.body),
                };
                match read {
                    Ok(completion) => {
                        cache.count(CacheResult::Hit);
                        ticket.status = CacheStatus::Hit;
                        return Some((answer, completion));
                    }
                    Err(_) => CacheResult::Error,
                }
            }
            Lookup::Miss => CacheResult::Miss,
            Lookup::Failed => CacheResult::Error,
        };
        cache.count(result);
        None
    }

    /// One traced, counted, whole LLM call; the record is `None` when no call was made (an
    /// unknown model).
    pub async fn complete(
        &self,
        request: UpstreamRequest,
    ) -> (Result<ChatOutcome, LlmError>, Option<CallRecord>) {
        let (mut call, asked) = match self.ask(&request, false).await {
            Ok(asked) => asked,
            Err((error, record)) => return (Err(error), record),
        };
        let (_slot, Routed { answer, report }, ticket) = match asked {
            Asked::Upstream(slot, routed, ticket) => (slot, routed, ticket),
            Asked::Hit(answer, completion) => {
                let record = hit_record(&call, &completion);
                let outcome = ChatOutcome {
                    raw: answer.body,
                    completion,
                    // Nothing was spent.
                    cost_usd: Some(0.0),
                    latency: call.started.elapsed(),
                };
                return (Ok(outcome), Some(record));
            }
        };
        let mut record = call.record(report.wait);
        record.cache = ticket.as_ref().map(|t| t.status);
        let result = match answer {
            Ok(Answer::Complete(raw, completion)) => {
                let latency = call.started.elapsed();
                let cost_usd = call.succeed(&completion);
                if let Some(ticket) = &ticket {
                    ticket.store_whole(
                        &raw,
                        &completion,
                        call.provider().name(),
                        call.upstream_model(),
                    );
                }
                record.model = completion.model.clone();
                record.tokens = completion.usage.map(|u| (u.input_tokens, u.output_tokens));
                Ok(ChatOutcome {
                    raw,
                    completion,
                    cost_usd,
                    latency,
                })
            }
            Ok(Answer::Stream(_)) => {
                let error = LlmError::BadResponse("unexpected stream".into());
                call.fail(&error);
                Err(error)
            }
            Err(error) => {
                call.fail(&error);
                Err(error)
            }
        };
        (result, Some(record))
    }

    /// One traced, counted, streamed LLM call. The GenAI span and the call's metrics end when
    /// the stream ends; if the stream is dropped first (the client went away), the upstream
    /// request is dropped too and the call is recorded as `cancelled`. A cache hit is replayed
    /// as the provider's chunks.
    pub async fn stream(
        &self,
        mut request: UpstreamRequest,
    ) -> (
        Result<impl Stream<Item = StreamEvent> + Send + 'static, LlmError>,
        Option<CallRecord>,
    ) {
        request.request_stream_usage();
        let (mut call, asked) = match self.ask(&request, true).await {
            Ok(asked) => asked,
            Err((error, record)) => return (Err(error), record),
        };
        let (slot, Routed { answer, report }, ticket) = match asked {
            Asked::Upstream(slot, routed, ticket) => (slot, routed, ticket),
            Asked::Hit(answer, completion) => {
                let record = hit_record(&call, &completion);
                let events = replayed(
                    &answer,
                    completion,
                    &call,
                    request.client_wants_stream_usage(),
                );
                return (
                    Ok(Either::Left(futures_util::stream::iter(events))),
                    Some(record),
                );
            }
        };
        let mut record = call.record(report.wait);
        record.cache = ticket.as_ref().map(|t| t.status);
        let upstream = match answer {
            Ok(Answer::Stream(upstream)) => upstream,
            Ok(Answer::Complete(..)) => {
                let error = LlmError::BadResponse("expected a stream".into());
                call.fail(&error);
                return (Err(error), Some(record));
            }
            Err(error) => {
                call.fail(&error);
                return (Err(error), Some(record));
            }
        };
        let redactor = call.provider().redactor();
        let stream = StreamState::new(
            slot,
            upstream,
            call,
            request.usage_injected,
            redactor,
            match request.operation {
                Operation::Responses => responses::parse_event,
                Operation::Messages => anthropic::parse_event,
                // Chat, Anthropic's included (translated to chat chunks by its provider).
                Operation::Chat | Operation::Embeddings => wire::parse_chunk,
            },
            ticket.and_then(Ticket::into_pending),
        )
        .into_events();
        (Ok(Either::Right(stream)), Some(record))
    }

    /// Asks the plan's providers in turn until one answers or a failure is final.
    async fn route(
        &self,
        plan: Plan<'_>,
        request: &UpstreamRequest,
        stream: bool,
        call: &mut Call,
    ) -> Routed {
        let mut report = UpstreamReport::default();
        let answer = match plan {
            Plan::Single(provider, upstream_model) => {
                let attempt = Attempt {
                    model: upstream_model,
                    body: request.body_for(upstream_model),
                    fallback: false,
                };
                let answer = ask(provider, request, &attempt, stream, call, &mut report).await;
                call.upstream_report(&report);
                answer
            }
            Plan::Route(route, order) => {
                self.fall_back(route, &order, request, stream, call, &mut report)
                    .await
            }
        };
        Routed { answer, report }
    }

    /// A route's targets in `order`: skipped while their circuit is open, moved past on a
    /// failure of the route's fallback classes.
    async fn fall_back(
        &self,
        route: &Route,
        order: &[usize],
        request: &UpstreamRequest,
        stream: bool,
        call: &mut Call,
        report: &mut UpstreamReport,
    ) -> Result<Answer, LlmError> {
        let metrics = &self.observer.metrics;
        let mut tried = 0;
        let mut first_reason = None;
        // The last visited target and why the call moved on from it.
        let mut previous: Option<(&Arc<Provider>, &'static str)> = None;
        let mut soonest_probe: Option<Duration> = None;
        let mut last_error = None;
        for &index in order {
            let target = &route.targets[index];
            let provider_name = target.provider.name();
            if let Some((from, reason)) = previous.take() {
                metrics.record_fallback(&route.name, from.name(), provider_name, reason);
                call.note_fallback(from.name(), provider_name, reason);
                first_reason.get_or_insert(reason);
            }
            if let Admission::Skip(wait) = target.breaker.admit() {
                metrics.record_route_attempt(
                    &route.name,
                    provider_name,
                    &target.model,
                    "circuit_open",
                );
                soonest_probe = Some(soonest_probe.map_or(wait, |w| w.min(wait)));
                previous = Some((&target.provider, "circuit_open"));
                continue;
            }
            tried += 1;
            let variant = target.variant.as_ref().map(|v| (&route.name, v));
            call.switch_target(&target.provider, &target.model, variant);
            let attempt = Attempt {
                model: &target.model,
                body: request.body_for(&target.model),
                fallback: first_reason.is_some(),
            };
            let started = Instant::now();
            let answer = ask(&target.provider, request, &attempt, stream, call, report).await;
            call.upstream_report(report);
            // What this provider said is recorded under its name; the next starts afresh.
            report.retries.clear();
            report.remaining_requests = None;
            report.remaining_tokens = None;
            let error = match answer {
                Ok(answer) => {
                    target.breaker.succeed();
                    target.observe_latency(started.elapsed());
                    metrics.record_route_attempt(&route.name, provider_name, &target.model, "ok");
                    call.record_route(tried, first_reason);
                    return Ok(answer);
                }
                Err(error) => error,
            };
            let class = error.error_type();
            metrics.record_route_attempt(&route.name, provider_name, &target.model, class.as_str());
            if !route.falls_back_on(class) {
                // A class the route does not fall back on is the answer. The client's own
                // mistake says the target is up; anything else (a refused key, a redirect) says
                // nothing either way about the failures the breaker counts.
                if class == ErrorType::UpstreamClientError {
                    target.breaker.succeed();
                }
                call.record_route(tried, first_reason);
                return Err(error);
            }
            target.breaker.fail();
            // A failed try ranks the target as if it had taken its whole deadline.
            target.observe_latency(target.provider.timeout());
            previous = Some((&target.provider, class.as_str()));
            last_error = Some(error);
        }
        call.record_route(tried, first_reason);
        Err(last_error.unwrap_or_else(|| LlmError::CircuitOpen {
            route: route.name.to_string(),
            retry_after: soonest_probe.map_or(1, |w| w.as_secs() + u64::from(w.subsec_nanos() > 0)),
        }))
    }
}

/// The plan without the targets that do not implement the request's API, or the error that
/// says none does (naming the providers and the API).
fn supporting<'a>(plan: Plan<'a>, request: &UpstreamRequest) -> Result<Plan<'a>, LlmError> {
    let operation = request.operation;
    let unsupported = |providers: Vec<&Arc<Provider>>| LlmError::Unsupported {
        model: request.summary.model.clone(),
        providers: providers
            .iter()
            .map(|p| format!("{} ({})", p.name(), p.kind().as_str()))
            .collect::<Vec<_>>()
            .join(", "),
        api: operation.api_name(),
    };
    match plan {
        Plan::Single(provider, _) if !provider.supports(operation) => {
            Err(unsupported(vec![provider]))
        }
        Plan::Route(route, mut order) => {
            order.retain(|&i| route.targets[i].provider.supports(operation));
            if order.is_empty() {
                return Err(unsupported(
                    route.targets.iter().map(|t| &t.provider).collect(),
                ));
            }
            Ok(Plan::Route(route, order))
        }
        plan => Ok(plan),
    }
}

/// The `data` entries of an OpenAI model list.
fn model_ids(list: &[u8]) -> Result<Vec<Value>, LlmError> {
    let mut list: Value = serde_json::from_slice(list)
        .map_err(|e| LlmError::BadResponse(format!("a model list that is not JSON: {e}")))?;
    match list["data"].take() {
        Value::Array(models) => Ok(models),
        _ => Err(LlmError::BadResponse("a model list without data".into())),
    }
}

/// Where a plan sends a call, for the cache key: the route and every one of its targets (any
/// of them may answer), or the one provider and the model it is asked for.
fn destination(plan: &Plan<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let mut part = |text: &str| {
        out.extend_from_slice(text.as_bytes());
        out.push(0);
    };
    match plan {
        Plan::Single(provider, model) => {
            part("provider");
            part(provider.name());
            part(model);
        }
        Plan::Route(route, _) => {
            part("route");
            part(&route.name);
            for target in &route.targets {
                part(target.provider.name());
                part(&target.model);
            }
        }
    }
    out
}

/// What the log line and the overhead metric get of a call served from the cache.
fn hit_record(call: &Call, completion: &Completion) -> CallRecord {
    let mut record = call.record(Duration::ZERO);
    record.cache = Some(CacheStatus::Hit);
    record.model = completion.model.clone();
    record.tokens = completion.usage.map(|u| (u.input_tokens, u.output_tokens));
    record
}

/// A cached chat answer as the events of a stream (`include_usage`: with its usage chunk),
/// then its end. An entry that cannot be replayed ends the stream as a failure.
fn replayed(
    answer: &CachedAnswer,
    completion: Completion,
    call: &Call,
    include_usage: bool,
) -> Vec<StreamEvent> {
    let Some(chunks) = replay_chat(&answer.body, include_usage) else {
        return vec![StreamEvent::Failed {
            error: LlmError::BadResponse("a cached answer that is not a chat completion".into()),
            relayed: false,
        }];
    };
    let mut events: Vec<StreamEvent> = chunks
        .into_iter()
        .map(|raw| {
            let delta = wire::parse_chunk(&raw).ok().and_then(|info| info.content);
            StreamEvent::Event { raw, delta }
        })
        .collect();
    let (_, finish_reason) = completion.first();
    events.push(StreamEvent::End(StreamSummary {
        finish_reason: finish_reason.to_owned(),
        id: completion.id.clone(),
        model: completion.model.clone(),
        usage: completion.usage,
        cost_usd: Some(0.0),
        latency: call.started.elapsed(),
    }));
    events
}

/// One provider's answer (its retries included).
async fn ask(
    provider: &Provider,
    request: &UpstreamRequest,
    attempt: &Attempt<'_>,
    stream: bool,
    call: &Call,
    report: &mut UpstreamReport,
) -> Result<Answer, LlmError> {
    provider
        .answer(request, attempt, stream, &call.span, report)
        .await
}
