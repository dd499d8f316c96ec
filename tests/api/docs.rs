//! `GET /docs`: Swagger UI served by sesame itself, so it works with no network access.

use reqwest::StatusCode;
use sesame_tests::{Backend, TestApp};

/// The values of every `src="…"` and `href="…"` attribute in a page.
fn referenced(page: &str) -> Vec<String> {
    ["src=\"", "href=\""]
        .iter()
        .flat_map(|attribute| {
            page.match_indices(attribute).filter_map(|(start, _)| {
                let value = &page[start + attribute.len()..];
                value.find('"').map(|end| value[..end].to_owned())
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_explorer_and_everything_it_loads_come_from_the_server_itself() {
    let app = TestApp::spawn(Backend::Sqlite, &[]).await;
    let page_url = url::Url::parse(&app.url("/docs")).unwrap();
    let response = app.http().get(page_url.clone()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"),
        "{policy}"
    );
    let page = response.text().await.unwrap();

    let references = referenced(&page);
    for expected in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
        "openapi.json",
    ] {
        assert!(
            references.iter().any(|r| r.contains(expected)),
            "the page loads {expected}"
        );
    }
    for reference in references.iter().filter(|r| !r.starts_with("data:")) {
        let url = page_url.join(reference).unwrap();
        assert_eq!(url.origin(), page_url.origin(), "{reference} is loaded from elsewhere");
        let response = app.http().get(url.clone()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        let expected = match url.path().rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("json") => "application/json",
            other => panic!("unexpected asset type {other:?} in {url}"),
        };
        assert_eq!(content_type, expected, "{url}");
        if url.path().starts_with("/docs/") {
            let caching = response.headers()["cache-control"].to_str().unwrap().to_owned();
            assert!(caching.contains("max-age"), "{url}: {caching}");
        }
        assert!(!response.bytes().await.unwrap().is_empty(), "{url} is empty");
    }

    // The set-up script points Swagger UI at the document beside the page.
    let initializer = references
        .iter()
        .find(|r| r.contains("swagger-initializer.js"))
        .unwrap();
    let script = app
        .http()
        .get(page_url.join(initializer).unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(script.contains("\"openapi.json\""), "{script}");
    // The session cookie goes along; nothing entered under Authorize is kept in the
    // browser's storage.
    assert!(script.contains("withCredentials: true") && script.contains("persistAuthorization: false"));
    assert!(!script.contains("localStorage") && !script.contains("sessionStorage"));
    app.stop().await;
}
