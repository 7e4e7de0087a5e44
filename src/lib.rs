//! LLM observability gateway: calls an LLM provider and traces and counts every call.
//!
//! The binary and the tests share this library: [`Application::build`] binds the API and
//! metrics listeners (port 0 picks free ports), [`Application::run_until_stopped`] serves until
//! the shutdown future completes, then drains within the grace period.

pub mod api;
pub mod config;
pub mod error;
mod http_client;
pub mod llm;
mod server;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use config::Settings;
use llm::{ChatService, ConcurrencyLimit, PriceTable, Provider};
use telemetry::Metrics;

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct AppState {
    /// The traced, counted LLM calls.
    pub chat: Arc<ChatService>,
    /// Model used when a request names none.
    pub default_model: Arc<str>,
    /// Longest accepted `/api/chat` prompt, in characters.
    pub max_prompt_chars: usize,
}

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
    /// The pricing file is unreadable or invalid.
    #[error("{0}")]
    Pricing(String),
    /// The upstream client could not be built.
    #[error("{0}")]
    Provider(String),
}

/// The bound, ready-to-serve application.
pub struct Application {
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
        let metrics = Arc::new(Metrics::new());
        let pricing = match &settings.pricing_file {
            Some(path) => PriceTable::from_file(path).map_err(StartupError::Pricing)?,
            None => PriceTable::builtin(),
        };
        let provider = Provider::from_settings(&settings).map_err(StartupError::Provider)?;
        let chat = ChatService::new(
            provider,
            pricing,
            metrics.clone(),
            settings.telemetry.capture_message_content,
            ConcurrencyLimit::new(
                settings.max_concurrency,
                settings.max_queue,
                settings.queue_timeout,
            ),
        );
        let state = AppState {
            chat: Arc::new(chat),
            default_model: settings.default_model.as_str().into(),
            max_prompt_chars: settings.max_prompt_chars,
        };
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartupError::Bind { addr, source })
        };
        let listener = bind((settings.app_host, settings.app_port).into()).await?;
        let metrics_listener = bind((settings.metrics_host, settings.metrics_port).into()).await?;
        Ok(Self {
            listener,
            metrics_listener,
            router: api::router(
                state,
                metrics.clone(),
                settings.max_body_bytes,
                api::GatewayKeys(settings.gateway_api_keys.clone().into()),
                api::ClientRateLimit::new(settings.client_rate_limit, settings.client_rate_burst),
                &settings.cors_allowed_origins,
            ),
            metrics_router: telemetry::metrics_router(metrics.clone()),
            shutdown_grace: settings.shutdown_grace,
            header_read_timeout: settings.header_read_timeout,
        })
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
