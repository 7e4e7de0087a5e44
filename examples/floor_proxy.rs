//! The stack's floor: the gateway's own building blocks (tokio's multi-thread runtime, axum
//! over hyper, reqwest with the gateway's client settings, jemalloc) relaying one endpoint to
//! one upstream, with nothing of the gateway's own: no telemetry, no logs, no JSON, no
//! routing. `bench/run.sh` measures it next to nginx and the gateway, so the goal row shows how
//! much of the gateway's CPU per request is the stack it is built on and how much is its work.
//!
//! With `--bare`, the layer below: hyper's HTTP/1 server and hyper-util's pooled client, no
//! axum and no reqwest (what a gateway written on hyper alone would start from).
//!
//!   cargo run --release --example floor_proxy -- --port 8090 --upstream http://127.0.0.1:9000 [--bare]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Clone)]
struct Upstream {
    client: reqwest::Client,
    url: reqwest::Url,
}

async fn relay(State(up): State<Upstream>, headers: HeaderMap, body: Bytes) -> Response {
    let mut request = reqwest::Request::new(reqwest::Method::POST, up.url.clone());
    if let Some(kind) = headers.get(header::CONTENT_TYPE) {
        request
            .headers_mut()
            .insert(header::CONTENT_TYPE, kind.clone());
    }
    *request.body_mut() = Some(body.into());
    let answer = match up.client.execute(request).await {
        Ok(answer) => answer,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = answer.status();
    let kind = answer.headers().get(header::CONTENT_TYPE).cloned();
    match answer.bytes().await {
        Ok(bytes) => {
            let mut response = (status, bytes).into_response();
            if let Some(kind) = kind {
                response.headers_mut().insert(header::CONTENT_TYPE, kind);
            }
            response
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

type BareClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<Bytes>,
>;

/// `--bare`: the same relay on hyper alone.
async fn bare(listener: tokio::net::TcpListener, uri: axum::http::Uri) {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let client: BareClient = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .build(connector);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (client, uri) = (client.clone(), uri.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let (client, uri) = (client.clone(), uri.clone());
                async move {
                    let kind = request.headers().get(header::CONTENT_TYPE).cloned();
                    let body = request.into_body().collect().await?.to_bytes();
                    let mut upstream = hyper::Request::new(Full::new(body));
                    *upstream.method_mut() = hyper::Method::POST;
                    *upstream.uri_mut() = uri;
                    if let Some(kind) = kind {
                        upstream.headers_mut().insert(header::CONTENT_TYPE, kind);
                    }
                    let answer = match client.request(upstream).await {
                        Ok(answer) => answer,
                        Err(_) => {
                            let mut response = hyper::Response::new(Full::new(Bytes::new()));
                            *response.status_mut() = StatusCode::BAD_GATEWAY;
                            return Ok::<_, hyper::Error>(response);
                        }
                    };
                    let (parts, body) = answer.into_parts();
                    let bytes = body.collect().await?.to_bytes();
                    Ok(hyper::Response::from_parts(parts, Full::new(bytes)))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| {
                panic!("usage: floor_proxy --port P --upstream URL (missing {name})")
            })
    };
    let upstream = arg("--upstream");
    let url = reqwest::Url::parse(&format!(
        "{}/openai/v1/chat/completions",
        upstream.trim_end_matches('/')
    ))
    .expect("--upstream must be a URL");
    // As the gateway builds its provider clients (src/http_client.rs): pooled, no redirects.
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .http1_only()
        .tcp_nodelay(true)
        .build()
        .expect("reqwest client");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", arg("--port").parse().unwrap()))
        .await
        .expect("bind");
    println!("listening on {}", listener.local_addr().unwrap());
    if args.iter().any(|a| a == "--bare") {
        return bare(listener, url.as_str().parse().expect("an http URI")).await;
    }
    let app = axum::Router::new()
        .fallback(axum::routing::post(relay))
        .with_state(Upstream { client, url });
    axum::serve(listener, app).await.unwrap();
}
