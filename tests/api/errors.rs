//! Answers to requests the API does not serve: they are problems too, with the headers
//! HTTP requires.

use reqwest::{Method, StatusCode};
use sesame_tests::{Backend, TestApp, expect_problem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_a_path_does_not_serve_is_a_problem_that_lists_the_allowed_ones() {
    let app = TestApp::spawn(Backend::Sqlite, &[]).await;
    for (method, path, allowed) in [
        (Method::PATCH, "/users", "POST"),
        (Method::POST, "/sessions/0193", "DELETE"),
        (Method::PUT, "/sessions", "GET,HEAD,DELETE"),
        (Method::DELETE, "/healthz", "GET,HEAD"),
    ] {
        let response = app.http().request(method.clone(), app.url(path)).send().await.unwrap();
        let allow = response.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
        expect_problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
        let allow = allow.unwrap_or_else(|| panic!("{method} {path} has no Allow header"));
        let mut listed: Vec<&str> = allow.split(',').map(str::trim).collect();
        let mut expected: Vec<&str> = allowed.split(',').collect();
        listed.sort_unstable();
        expected.sort_unstable();
        assert_eq!(listed, expected, "{method} {path}");
    }
    let unknown = app.http().get(app.url("/no/such/path")).send().await.unwrap();
    expect_problem(unknown, StatusCode::NOT_FOUND).await;
    app.stop().await;
}
