//! §9 static claims: the operator attaches JSON values to a client's tokens.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sesame_tests::{Backend, TestApp, jwt_part, on_both_backends};

async fn static_claims_go_into_tokens_introspection_and_the_client_and_reserved_names_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let ada = app.signed_in("ada@example.com").await;
    // A user cannot set claims over HTTP: the member is not read.
    let response = app
        .with_session(Method::POST, "/clients", &ada)
        .json(&json!({"name": "Sync", "scopes": ["notes:read"], "claims": {"tenant": "evil"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let key = created["api_key"]["key"].as_str().unwrap().to_owned();
    let client_path = format!("/clients/{id}");
    let shown: Value = app.get_as(&ada, &client_path).await;
    assert_eq!(shown["claims"], json!({}));

    let printed = app
        .sesame(&[
            "client",
            "claims",
            &id,
            "--set",
            r#"tenant="acme""#,
            "--set",
            "tier=3",
            "--set",
            "flags=[1,2]",
        ])
        .await;
    assert!(printed.contains(r#""tenant":"acme""#), "{printed}");
    app.sesame(&["client", "claims", &id, "--unset", "flags"]).await;
    let expected = json!({"tenant": "acme", "tier": 3});
    let shown: Value = app.get_as(&ada, &client_path).await;
    assert_eq!(shown["claims"], expected);

    // Copied into each token at issue (another process changed them: within the key
    // cache's lifetime), and shown by introspection.
    let token = app.token(&id, &key, None).await;
    let claims = jwt_part(&token, 1);
    assert_eq!(
        (claims["tenant"].clone(), claims["tier"].clone()),
        ("acme".into(), 3.into())
    );
    assert!(claims.get("flags").is_none());
    assert_eq!(claims["sub"], id.as_str(), "no static claim overrides a registered one");
    assert!(app.accepts(&token).await);
    let introspected = app.introspect(&id, &key, &token).await;
    assert_eq!(
        (introspected["tenant"].clone(), introspected["tier"].clone()),
        ("acme".into(), 3.into())
    );

    // Refused, naming the problem, and nothing changes.
    for (set, named) in [
        (r#"sub="someone-else""#, "sub"),
        ("owner=1", "owner"),
        ("scope=\"admin\"", "scope"),
        ("tenant=acme", "tenant"),
    ] {
        let output = app.sesame_output(&["client", "claims", &id, "--set", set]).await;
        assert!(!output.status.success(), "{set}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{set}: {stderr}");
    }
    let big = format!("blob=\"{}\"", "x".repeat(1024));
    let output = app.sesame_output(&["client", "claims", &id, "--set", &big]).await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("1024"));
    let output = app
        .sesame_output(&["client", "claims", "cli_AAAAAAAAAAAAAAAAAAAAAA", "--set", "a=1"])
        .await;
    assert!(!output.status.success());
    let shown: Value = app.get_as(&ada, &client_path).await;
    assert_eq!(shown["claims"], expected);
}

on_both_backends!(static_claims_go_into_tokens_introspection_and_the_client_and_reserved_names_are_refused);
