//! Which provider answers a model name, and in which order a route's targets are tried.
//!
//! A model name resolves, in this order (README, "Routing"):
//! 1. a configured route of that exact name (so an operator can pin any id, slashes included);
//! 2. with direct addressing on, `provider/model` where `provider` is a configured provider's
//!    name: the rest, slashes and all, is that provider's model id (`groq/openai/gpt-oss-120b`);
//! 3. the default provider, with the name unchanged (the environment-only mode: every name);
//! 4. otherwise 404 `model_not_found`.
//!
//! The configuration is one immutable snapshot ([`Routes`]) behind an `ArcSwap`: a call loads
//! it once (no lock) and keeps it to its end, so a reload never changes a call midway and never
//! waits for one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::breaker::Breaker;
use super::{ErrorType, LlmError, Provider};
use crate::config::{ProxySettings, RouteSettings, RoutingSettings, Strategy};
use crate::telemetry::Metrics;

/// Weight of the newest latency in a target's moving average.
const EWMA_ALPHA: f64 = 0.3;

/// One configuration's providers and routes.
#[derive(Debug)]
pub struct Routes {
    /// Providers by configured name, in configured (sorted) order.
    providers: Vec<Arc<Provider>>,
    by_name: HashMap<Arc<str>, Arc<Provider>>,
    routes: HashMap<Arc<str>, Route>,
    direct_addressing: bool,
    default_provider: Option<Arc<Provider>>,
    /// Where it came from; `None`: the environment.
    pub file: Option<PathBuf>,
}

/// A public model name and its targets.
#[derive(Debug)]
pub struct Route {
    /// The route's name (a model name to clients).
    pub name: Arc<str>,
    strategy: Strategy,
    /// In configured order.
    pub targets: Vec<Target>,
    fallback_on: Vec<ErrorType>,
}

/// A provider and the model it is asked for.
#[derive(Debug)]
pub struct Target {
    /// The provider.
    pub provider: Arc<Provider>,
    /// The upstream model id.
    pub model: Arc<str>,
    weight: u32,
    /// Its name as an A/B variant (weighted routes).
    pub variant: Option<Arc<str>>,
    /// Its circuit breaker.
    pub breaker: Breaker,
    /// Moving average of its tries' latency in ms (f64 bits; 0: never tried): the time to a
    /// whole answer or to a stream's first bytes; a failed try counts as its whole deadline.
    latency_ms: AtomicU64,
}

/// Where one call goes.
pub enum Plan<'a> {
    /// A route: its targets, in the order this call tries them.
    Route(&'a Route, Vec<usize>),
    /// One provider, no route (direct addressing or the default provider).
    Single(&'a Arc<Provider>, &'a str),
}

impl Target {
    /// Records a successful answer's latency in the moving average.
    pub fn observe_latency(&self, latency: Duration) {
        let sample = latency.as_secs_f64() * 1000.0;
        let _ = self
            .latency_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let old = f64::from_bits(bits);
                let new = if old == 0.0 {
                    sample.max(f64::MIN_POSITIVE)
                } else {
                    old + EWMA_ALPHA * (sample - old)
                };
                Some(new.to_bits())
            });
    }

    fn latency_ms(&self) -> f64 {
        f64::from_bits(self.latency_ms.load(Ordering::Relaxed))
    }
}

impl Route {
    /// Whether a failure of this class moves the call on to the next target.
    pub fn falls_back_on(&self, error: ErrorType) -> bool {
        self.fallback_on.contains(&error)
    }

    /// The order this call tries the targets in. `sticky`: a hash of the end user or
    /// conversation, which makes a weighted route's first draw the same for every call that
    /// carries it (an A/B variant sticks to its user); the rest stay random.
    fn order(&self, sticky: Option<u64>) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.targets.len()).collect();
        match self.strategy {
            Strategy::Fallback => {}
            Strategy::Weighted => {
                // Successive draws by weight: the first is each target's share of the weight,
                // and the rest follow in the same proportions.
                let mut remaining: u64 = self.targets.iter().map(|t| u64::from(t.weight)).sum();
                for slot in 0..order.len() {
                    let mut draw = match sticky {
                        Some(hash) if slot == 0 => hash % remaining.max(1),
                        _ => fastrand::u64(0..remaining.max(1)),
                    };
                    let pick = (slot..order.len())
                        .find(|&i| {
                            let weight = u64::from(self.targets[order[i]].weight);
                            if draw < weight {
                                return true;
                            }
                            draw -= weight;
                            false
                        })
                        .unwrap_or(slot);
                    order.swap(slot, pick);
                    remaining -= u64::from(self.targets[order[slot]].weight);
                }
            }
            Strategy::Latency => {
                // Never measured (0) sorts first, so every target gets measured.
                order.sort_by(|&a, &b| {
                    self.targets[a]
                        .latency_ms()
                        .total_cmp(&self.targets[b].latency_ms())
                });
            }
        }
        order
    }
}

/// FNV-1a over the route's name and the key: stable across processes, builds and Rust
/// versions, so every replica sends a user to the same variant.
fn sticky_hash(route: &str, key: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in route.bytes().chain([0]).chain(key.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV's low bits mix poorly for short keys; fold the high half in.
    hash ^ (hash >> 32)
}

impl Routes {
    /// Builds every provider and route; `previous` lends its breakers' state to the targets
    /// that are still there.
    pub fn build(
        settings: &RoutingSettings,
        proxy: &ProxySettings,
        extra_ca_file: Option<&std::path::Path>,
        metrics: &Metrics,
        previous: Option<&Routes>,
    ) -> Result<Self, String> {
        let providers = settings
            .providers
            .iter()
            .map(|p| Provider::new(p, proxy, extra_ca_file).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let by_name: HashMap<Arc<str>, Arc<Provider>> = providers
            .iter()
            .map(|p| (p.name().clone(), p.clone()))
            .collect();
        let lookup = |name: &str| {
            by_name
                .get(name)
                .cloned()
                .ok_or_else(|| format!("unknown provider {name}"))
        };
        let mut routes = HashMap::with_capacity(settings.routes.len());
        for route in &settings.routes {
            let built = build_route(route, &lookup, metrics, previous)?;
            routes.insert(built.name.clone(), built);
        }
        let default_provider = settings
            .default_provider
            .as_deref()
            .map(lookup)
            .transpose()?;
        Ok(Self {
            providers,
            by_name,
            routes,
            direct_addressing: settings.direct_addressing,
            default_provider,
            file: settings.file.clone(),
        })
    }

    /// Where a call for `model` goes, or `model_not_found`. `sticky_key` (the end user, else
    /// the conversation) keeps a weighted route's first choice the same for every call with it.
    pub fn resolve<'a>(
        &'a self,
        model: &'a str,
        sticky_key: Option<&str>,
    ) -> Result<Plan<'a>, LlmError> {
        if let Some(route) = self.routes.get(model) {
            let sticky = sticky_key.map(|key| sticky_hash(&route.name, key));
            return Ok(Plan::Route(route, route.order(sticky)));
        }
        if self.direct_addressing
            && let Some((prefix, rest)) = model.split_once('/')
            && !rest.is_empty()
            && let Some(provider) = self.by_name.get(prefix)
        {
            return Ok(Plan::Single(provider, rest));
        }
        match &self.default_provider {
            Some(provider) => Ok(Plan::Single(provider, model)),
            None => Err(LlmError::UnknownModel(model.to_owned())),
        }
    }

    /// The providers, in configured order.
    pub fn providers(&self) -> &[Arc<Provider>] {
        &self.providers
    }

    /// The routes' names, sorted.
    pub fn route_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.routes.keys().map(|n| &**n).collect();
        names.sort_unstable();
        names
    }

    /// Clients may name `provider/model`.
    pub fn direct_addressing(&self) -> bool {
        self.direct_addressing
    }

    /// The provider that answers names no route claims.
    pub fn default_provider(&self) -> Option<&Arc<Provider>> {
        self.default_provider.as_ref()
    }

    /// Every route target, as `(route, provider, model)`.
    fn target_keys(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.routes.values().flat_map(|route| {
            route
                .targets
                .iter()
                .map(|t| (&*route.name, &**t.provider.name(), &*t.model))
        })
    }

    fn target(&self, route: &str, provider: &str, model: &str) -> Option<&Target> {
        self.routes
            .get(route)?
            .targets
            .iter()
            .find(|t| &**t.provider.name() == provider && &*t.model == model)
    }
}

fn build_route(
    settings: &RouteSettings,
    lookup: &dyn Fn(&str) -> Result<Arc<Provider>, String>,
    metrics: &Metrics,
    previous: Option<&Routes>,
) -> Result<Route, String> {
    let name: Arc<str> = settings.name.as_str().into();
    let targets = settings
        .targets
        .iter()
        .map(|target| {
            let gauge = metrics.route_target_state(&name, &target.provider, &target.model);
            // A target still there keeps what is known of it: its breaker and its latency.
            let old = previous.and_then(|p| p.target(&name, &target.provider, &target.model));
            Ok(Target {
                provider: lookup(&target.provider)?,
                model: target.model.as_str().into(),
                weight: target.weight,
                variant: target.variant.as_deref().map(Arc::from),
                breaker: match old {
                    Some(old) => old.breaker.carry_over(settings.breaker, gauge),
                    None => Breaker::new(settings.breaker, gauge),
                },
                latency_ms: AtomicU64::new(old.map_or(0, |t| t.latency_ms.load(Ordering::Relaxed))),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let fallback_on = settings
        .fallback_on
        .iter()
        .map(|class| {
            ErrorType::parse(class).ok_or_else(|| format!("unknown failure class {class}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Route {
        name,
        strategy: settings.strategy,
        targets,
        fallback_on,
    })
}

/// The live configuration, swapped whole on reload.
#[derive(Debug)]
pub struct ModelRouter {
    current: ArcSwap<Routes>,
    metrics: Arc<Metrics>,
    proxy: ProxySettings,
    extra_ca_file: Option<PathBuf>,
}

impl ModelRouter {
    /// The router over its first configuration.
    pub fn new(
        settings: &RoutingSettings,
        proxy: ProxySettings,
        extra_ca_file: Option<PathBuf>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let routes = Routes::build(settings, &proxy, extra_ca_file.as_deref(), &metrics, None)?;
        Ok(Self {
            current: ArcSwap::from_pointee(routes),
            metrics,
            proxy,
            extra_ca_file,
        })
    }

    /// The configuration now; a call keeps it to its end.
    pub fn load(&self) -> Arc<Routes> {
        self.current.load_full()
    }

    /// Swaps in a new configuration, or keeps the running one if it cannot be built. Calls in
    /// flight finish on the configuration they started with.
    pub fn reload(&self, settings: &RoutingSettings) -> Result<(), String> {
        let old = self.current.load_full();
        let new = Routes::build(
            settings,
            &self.proxy,
            self.extra_ca_file.as_deref(),
            &self.metrics,
            Some(&old),
        )?;
        let gone: Vec<(String, String, String)> = old
            .target_keys()
            .filter(|(r, p, m)| new.target(r, p, m).is_none())
            .map(|(r, p, m)| (r.to_owned(), p.to_owned(), m.to_owned()))
            .collect();
        self.current.store(Arc::new(new));
        for (route, provider, model) in gone {
            self.metrics.forget_route_target(&route, &provider, &model);
        }
        Ok(())
    }
}
