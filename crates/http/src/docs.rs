//! The documentation a person reads, served from the binary: the OpenAPI document at
//! `/openapi.json` and Swagger UI at `/docs`.
//!
//! Swagger UI's files are vendored from the `swagger-ui-dist` npm package into
//! `assets/swagger-ui/` (with its licence), and the page and its set-up script are ours, in
//! `assets/docs/`; so the explorer works with no network access. None of these routes is
//! an API operation, so none of them is in the document.

use std::hash::{DefaultHasher, Hasher as _};
use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use utoipa::openapi::OpenApi;

const SWAGGER_UI_BUNDLE: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_UI_CSS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui.css");
const INITIALIZER: &[u8] = include_bytes!("../assets/docs/swagger-initializer.js");
const PAGE_CSS: &[u8] = include_bytes!("../assets/docs/docs.css");
const PAGE: &str = include_str!("../assets/docs/index.html");
/// Where the explorer's OAuth popup comes back to (the authorization-code flow): Swagger
/// UI's own script, in a page of ours.
const REDIRECT_PAGE: &str = include_str!("../assets/docs/oauth2-redirect.html");
const REDIRECT_SCRIPT: &[u8] = include_bytes!("../assets/swagger-ui/oauth2-redirect.js");

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The page may load its own scripts and styles and call this server, nothing else.
/// Swagger UI sets inline styles and uses `data:` images, hence those two allowances.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                           img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
                           frame-ancestors 'none'";

/// Assets are addressed with `?v=<digest of their contents>`, so a browser may keep them
/// for good: a binary with other assets links them under another address.
const ASSET_CACHING: &str = "public, max-age=31536000, immutable";

/// The page and the document are small and change with the binary: revalidate each time.
const PAGE_CACHING: &str = "no-cache";

static ASSET_VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hasher = DefaultHasher::new();
    for asset in [
        SWAGGER_UI_BUNDLE,
        SWAGGER_UI_CSS,
        INITIALIZER,
        PAGE_CSS,
        REDIRECT_SCRIPT,
    ] {
        hasher.write(asset);
    }
    format!("{:016x}", hasher.finish())
});

/// The OpenAPI document exactly as `/openapi.json` serves it and `sesame openapi` prints
/// it: pretty-printed JSON with a final newline.
pub fn render_openapi(document: &OpenApi) -> String {
    // A document is strings, numbers and maps with string keys: serializing cannot fail.
    #[allow(clippy::expect_used)]
    let mut json = serde_json::to_string_pretty(document).expect("an OpenAPI document serializes to JSON");
    json.push('\n');
    json
}

/// `GET /openapi.json`, `GET /docs` and the explorer's assets.
pub fn routes<S: Clone + Send + Sync + 'static>(document: &OpenApi) -> Router<S> {
    let json = Bytes::from(render_openapi(document));
    let page = Bytes::from(PAGE.replace("{version}", &ASSET_VERSION));
    let redirect_page = Bytes::from(REDIRECT_PAGE.replace("{version}", &ASSET_VERSION));
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move { file(json, "application/json", PAGE_CACHING) }
            }),
        )
        .route(
            "/docs",
            get(move || {
                let page = page.clone();
                async move { html_page(page) }
            }),
        )
        .route(
            "/docs/oauth2-redirect.html",
            get(move || {
                let page = redirect_page.clone();
                async move { html_page(page) }
            }),
        )
        .route("/docs/oauth2-redirect.js", get(|| asset(REDIRECT_SCRIPT, JAVASCRIPT)))
        .route(
            "/docs/swagger-ui-bundle.js",
            get(|| asset(SWAGGER_UI_BUNDLE, JAVASCRIPT)),
        )
        .route("/docs/swagger-ui.css", get(|| asset(SWAGGER_UI_CSS, CSS)))
        .route("/docs/swagger-initializer.js", get(|| asset(INITIALIZER, JAVASCRIPT)))
        .route("/docs/docs.css", get(|| asset(PAGE_CSS, CSS)))
}

/// A page of the explorer, under its policy.
fn html_page(page: Bytes) -> Response {
    let mut response = file(page, "text/html; charset=utf-8", PAGE_CACHING);
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY));
    response
}

async fn asset(body: &'static [u8], content_type: &'static str) -> Response {
    file(Bytes::from_static(body), content_type, ASSET_CACHING)
}

fn file(body: Bytes, content_type: &'static str, caching: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(caching)),
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_versioned_assets_that_are_routed() {
        let page = PAGE.replace("{version}", &ASSET_VERSION);
        assert!(!page.contains("{version}"));
        for asset in [
            "swagger-ui-bundle.js",
            "swagger-ui.css",
            "swagger-initializer.js",
            "docs.css",
        ] {
            assert!(
                page.contains(&format!("docs/{asset}?v={}", *ASSET_VERSION)),
                "{asset} is linked"
            );
        }
    }

    #[test]
    fn the_oauth_redirect_page_links_its_versioned_script() {
        let page = REDIRECT_PAGE.replace("{version}", &ASSET_VERSION);
        assert!(page.contains(&format!("src=\"oauth2-redirect.js?v={}\"", *ASSET_VERSION)));
        assert!(!page.contains("<script>"), "no inline script: the policy forbids it");
    }

    #[test]
    fn the_rendered_document_ends_with_a_newline() {
        let json = render_openapi(&crate::openapi());
        assert!(json.starts_with("{\n") && json.ends_with("}\n"));
    }
}
