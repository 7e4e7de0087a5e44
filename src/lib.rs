//! LLM observability gateway: calls an LLM provider and traces and counts every call.
//!
//! The binary and the tests share this library: [`Application::build`] binds the API and
//! metrics listeners (port 0 picks free ports), [`Application::run_until_stopped`] serves until
//! the shutdown future completes, then drains within the grace period.
//!
//! Layers, each depending only on those before it (docs/ARCHITECTURE.md):
//! `config` ← `http_client` ← `telemetry` ← `llm` ← `access` ← `api` ← this crate root (`server`,
//! [`Application`]) ← `main`.

pub mod access;
pub mod api;
pub mod config;
mod http_client;
pub mod llm;
pub mod redis_client;
mod server;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use access::Access;
use api::AppState;
use config::Settings;
use llm::{ChatService, ConcurrencyLimit, ModelRouter, RecentCalls, RequestLimits, ResponseCache};
use redis_client::RedisHandle;
use telemetry::Metrics;

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A provider (its client, its pricing file) could not be built.
    #[error("{0}")]
    Provider(String),
    /// `REDIS_URL` cannot be used (the message never shows the URL).
    #[error("{0}")]
    Redis(String),
}

/// Re-reads the configuration file and swaps its providers and routes in; calls in flight
/// finish on the configuration they started with.
#[derive(Clone)]
pub struct Reloader {
    chat: Arc<ChatService>,
    access: Arc<Access>,
    file: Option<std::path::PathBuf>,
    defaults: config::ProviderDefaults,
}

impl Reloader {
    /// Reloads the file (its key variables read from the environment again). On error the
    /// running configuration stays, and the error says why in one line.
    pub fn reload(&self) -> Result<String, String> {
        let Some(file) = &self.file else {
            return Err("no GATEWAY_CONFIG file: nothing to reload".into());
        };
        let settings = config::RoutingSettings::from_file(
            file,
            &|name: &str| std::env::var(name).ok(),
            self.defaults.clone(),
        )
        .map_err(|e| e.to_string())?;
        // Keys first: a refused key change leaves the routes as they were too.
        self.access.reload(&settings.access)?;
        self.chat.router().reload(&settings)?;
        let keys = match settings.access.keys.len() {
            0 => String::new(),
            n => format!(", {n} keys"),
        };
        Ok(format!(
            "reloaded {}: {} providers, {} routes{keys}",
            file.display(),
            settings.providers.len(),
            settings.routes.len(),
        ))
    }
}

/// The bound, ready-to-serve application.
pub struct Application {
    reloader: Reloader,
    listener: TcpListener,
    metrics_listener: TcpListener,
    router: Router,
    metrics_router: Router,
    shutdown_grace: std::time::Duration,
    header_read_timeout: std::time::Duration,
}

impl Application {
    /// Builds the provider and the routers and binds both listeners.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let Settings {
            server,
            llm,
            limits,
            auth,
            telemetry,
            cache,
            redis_url,
        } = settings;
        let metrics = Arc::new(Metrics::new());
        // Connects in the background: a Redis that is down (or not yet up) never stops start-up.
        let redis = redis_url
            .map(|url| RedisHandle::connect(url.expose()))
            .transpose()
            .map_err(StartupError::Redis)?;
        let response_cache = ResponseCache::new(&cache, redis.as_ref(), metrics.clone());
        if let Some(response_cache) = &response_cache {
            tracing::info!(
                backend = response_cache.backend(),
                redis = redis.as_ref().map(RedisHandle::address),
                ttl_seconds = cache.ttl.as_secs(),
                "response cache on"
            );
        }
        let router = ModelRouter::new(
            &llm.routing,
            llm.proxy.clone(),
            llm.extra_ca_file.clone(),
            metrics.clone(),
        )
        .map_err(StartupError::Provider)?;
        if let Err(error) = router.load().resolve(&llm.default_model, None) {
            tracing::warn!(
                default_model = %llm.default_model,
                "LLM_DEFAULT_MODEL is served by no route, provider/model or default provider: requests that name no model will answer 404 ({error})"
            );
        }
        let chat = Arc::new(ChatService::new(
            router,
            metrics.clone(),
            telemetry.capture_message_content,
            ConcurrencyLimit::new(
                limits.max_concurrency,
                limits.max_queue,
                limits.queue_timeout,
            ),
            response_cache,
            Arc::new(RecentCalls::new(
                llm.routing.feedback.max_calls,
                llm.routing.feedback.window,
            )),
        ));
        let access = Access::new(
            &llm.routing.access,
            &auth.gateway_api_keys,
            redis.as_ref(),
            metrics.clone(),
        );
        let reloader = Reloader {
            access: access.clone(),
            chat: chat.clone(),
            file: llm.routing.file.clone(),
            defaults: llm.provider_defaults.clone(),
        };
        let state = AppState {
            chat,
            limits: Arc::new(RequestLimits {
                default_model: llm.default_model.as_str().into(),
                max_prompt_chars: limits.max_prompt_chars,
            }),
            metrics: metrics.clone(),
            access,
            feedback: Arc::new(llm.routing.feedback.clone()),
            prompts: Arc::new(llm.routing.prompts.clone()),
        };
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartupError::Bind { addr, source })
        };
        let listener = bind((server.app_host, server.app_port).into()).await?;
        let metrics_listener = bind((server.metrics_host, server.metrics_port).into()).await?;
        Ok(Self {
            reloader,
            listener,
            metrics_listener,
            router: api::router(state, &server, &limits, &auth, llm.routing.file.is_some()),
            metrics_router: telemetry::metrics_router(metrics),
            shutdown_grace: server.shutdown_grace,
            header_read_timeout: server.header_read_timeout,
        })
    }

    /// What re-reads the configuration file (on `SIGHUP`).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The API's port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The metrics listener's port.
    pub fn metrics_port(&self) -> u16 {
        self.metrics_listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(0)
    }

    /// Serves until `shutdown` completes; then stops accepting, lets in-flight requests finish
    /// for at most the grace period, and returns.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let api = server::serve(
            self.listener,
            self.router,
            self.header_read_timeout,
            stopped(stop_rx.clone()),
        );
        let metrics = axum::serve(self.metrics_listener, self.metrics_router)
            .with_graceful_shutdown(stopped(stop_rx.clone()));
        let grace = self.shutdown_grace;
        let grace_over = async move {
            stopped(stop_rx).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            served = async { tokio::try_join!(api, metrics.into_future()) } => {
                served.map(|_| ())
            }
            () = grace_over => {
                tracing::warn!(?grace, "shutdown grace period over; abandoning requests still in flight");
                Ok(())
            }
        }
    }
}
