//! `/docs` (Swagger UI, served from the binary) and `/openapi.json`.

use serde_json::Value;

use crate::support::app::spawn_app;

#[tokio::test]
async fn openapi_json_lists_every_endpoint_with_its_error_responses() {
    let app = spawn_app().await;

    let spec: Value = reqwest::get(app.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let chat = &spec["paths"]["/api/chat"]["post"];
    for status in ["200", "400", "413", "415", "422", "429", "502", "504"] {
        assert!(chat["responses"][status].is_object(), "missing {status}");
    }
    assert!(spec["paths"]["/healthz"]["get"].is_object());
    assert!(spec["paths"]["/readyz"]["get"].is_object());
    for admin in ["/admin/keys", "/admin/spend"] {
        let get = &spec["paths"][admin]["get"];
        assert!(get["responses"]["401"].is_object(), "{admin}: 401");
        assert_eq!(
            get["security"][0]["admin_key"],
            serde_json::json!([]),
            "{admin}"
        );
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["admin_key"]["scheme"],
        "bearer"
    );
    let schemas = &spec["components"]["schemas"];
    for schema in ["ChatRequest", "ChatResponse", "ErrorBody"] {
        assert!(schemas[schema].is_object(), "missing schema {schema}");
    }
    assert_eq!(
        schemas["ChatRequest"]["required"],
        serde_json::json!(["prompt"])
    );
    assert!(schemas["ChatRequest"]["example"].is_object());
}

#[tokio::test]
async fn docs_serve_swagger_ui_with_its_assets_offline() {
    let app = spawn_app().await;

    let page = reqwest::get(app.url("/docs/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // The bundle is vendored into the binary: it must be served locally, not from a CDN.
    let bundle = reqwest::get(app.url("/docs/swagger-ui-bundle.js"))
        .await
        .unwrap();
    assert_eq!(bundle.status(), 200);
    assert!(bundle.text().await.unwrap().len() > 100_000);
    let initializer = reqwest::get(app.url("/docs/swagger-initializer.js"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/openapi.json"), "{initializer}");
}
