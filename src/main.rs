//! Start-up and shutdown. Everything else lives in the library.

use std::process::ExitCode;

/// jemalloc: allocation was a quarter of the gateway's instructions with glibc's malloc
/// (BENCHMARKS.md, "Where the gateway's CPU goes"). mimalloc was tried and dropped: it raised
/// peak memory by the size of a relayed 10 MB stream.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use llm_observability::config::{ProviderKind, Settings, digest_of};
use llm_observability::telemetry;
use llm_observability::{Application, Reloader};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.is_empty() {
        return command(&args);
    }
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

/// `keys hash`: reads a gateway key on standard input (one line) and prints the SHA-256 a
/// `[keys.NAME]` table's `sha256` holds; the key itself never goes into the file.
fn command(args: &[String]) -> ExitCode {
    match args {
        [keys, hash] if keys == "keys" && hash == "hash" => {
            let mut secret = String::new();
            if std::io::stdin().read_line(&mut secret).is_err() {
                eprintln!("keys hash: cannot read the key from standard input");
                return ExitCode::from(2);
            }
            let secret = secret.trim_end_matches(['\r', '\n']);
            if secret.is_empty() {
                eprintln!(
                    "keys hash: give the key on standard input, e.g. `printf %s \"$KEY\" | llm-observability keys hash`"
                );
                return ExitCode::from(2);
            }
            println!("{}", llm_observability::config::hex(&digest_of(secret)));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "usage: llm-observability              serve (configured by the environment; see README)\n       llm-observability keys hash    print the SHA-256 of the key read on standard input"
            );
            ExitCode::from(2)
        }
    }
}

async fn serve(settings: Settings) -> ExitCode {
    let routing = &settings.llm.routing;
    if routing.file.is_none() && routing.providers[0].kind == ProviderKind::Simulated {
        tracing::warn!(
            "SIMULATED PROVIDER: no GROQ_API_KEY (or LLM_PROVIDER=simulated): answers are generated locally, labelled \"provider\": \"simulated\", and no LLM is called"
        );
    }
    if !settings.llm.ignored_with_file.is_empty() {
        tracing::warn!(
            ignored = %settings.llm.ignored_with_file.join(","),
            "GATEWAY_CONFIG names the providers: these variables are not read (set base_url, api_key_env or api_key_file in the file instead)"
        );
    }
    let providers: Vec<String> = routing.providers.iter().map(|p| p.name.clone()).collect();
    let providers = providers.join(",");
    let routes = routing.routes.len();
    let config_file = routing.file.as_ref().map(|f| f.display().to_string());
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
    tokio::spawn(reload_on_sighup(app.reloader()));
    tracing::info!(
        api_port = app.port(),
        metrics_port = app.metrics_port(),
        providers,
        routes,
        config_file,
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

/// Re-reads `GATEWAY_CONFIG` on every SIGHUP; a bad file keeps the running configuration.
async fn reload_on_sighup(reloader: Reloader) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            // Building providers reads files (keys, CA, prices): off the async workers.
            let reloader = reloader.clone();
            match tokio::task::spawn_blocking(move || reloader.reload()).await {
                Ok(Ok(summary)) => tracing::info!("{summary}"),
                Ok(Err(why)) => {
                    tracing::error!("configuration not reloaded, the running one is kept: {why}")
                }
                Err(_) => tracing::error!("configuration reload panicked; the running one is kept"),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = reloader;
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
