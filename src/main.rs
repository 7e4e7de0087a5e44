//! Start-up and shutdown. Everything else lives in the library.

use std::process::ExitCode;

/// jemalloc: allocation was a quarter of the gateway's instructions with glibc's malloc
/// (BENCHMARKS.md, "Where the gateway's CPU goes"). mimalloc was tried and dropped: it raised
/// peak memory by the size of a relayed 10 MB stream.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use llm_observability::Application;
use llm_observability::config::{ProviderKind, Settings};
use llm_observability::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let guard = match telemetry::init(&settings.telemetry) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let code = serve(settings).await;

    // Shutdown phases, in order:
    // 1. the HTTP server has stopped accepting and drained in-flight requests (serve returned);
    // 2. the tracer provider flushes every queued span and stops its exporter. Its calls block,
    //    so they run on a blocking thread, after phase 1 so the last requests' spans are included.
    let _ = tokio::task::spawn_blocking(move || guard.shutdown()).await;
    code
}

async fn serve(settings: Settings) -> ExitCode {
    if settings.llm.provider == ProviderKind::Simulated {
        tracing::warn!(
            "SIMULATED PROVIDER: no GROQ_API_KEY (or LLM_PROVIDER=simulated): answers are generated locally, labelled \"provider\": \"simulated\", and no LLM is called"
        );
    }
    let provider = settings.llm.provider.as_str();
    let model = settings.llm.default_model.clone();
    // Where provider calls go out, without the proxy's credentials.
    let proxy = settings
        .llm
        .proxy
        .is_set()
        .then(|| settings.llm.proxy.describe());
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        api_port = app.port(),
        metrics_port = app.metrics_port(),
        provider,
        default_model = %model,
        egress_proxy = proxy.as_deref(),
        "listening: POST /api/chat, docs at /docs, metrics at /metrics on the metrics port"
    );
    match app.run_until_stopped(shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::from(1)
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining in-flight requests");
}
