//! Third-party clients and their API keys, managed by a signed-in user (cookie + CSRF):
//! registration, listing without secrets, ownership, key rotation and revocation, and
//! deleting a client.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sesame_tests::{Backend, TestApp, expect_oauth_error, expect_problem, on_both_backends};

on_both_backends!(
    a_public_client_has_no_key_and_its_redirect_uris_follow_rfc_8252,
    registering_a_client_returns_its_id_scopes_and_a_first_key_shown_once,
    a_client_with_a_malformed_scope_or_an_empty_name_is_refused_with_422,
    registering_a_client_needs_a_session_and_its_csrf_token,
    listing_clients_shows_key_metadata_but_never_a_key,
    another_users_client_is_not_found_for_every_operation,
    unknown_and_malformed_client_and_key_ids_are_not_found,
    a_second_key_works_beside_the_first_and_use_is_recorded,
    a_revoked_key_and_the_tokens_it_bought_stop_working_while_the_other_key_goes_on,
    a_deleted_client_loses_its_keys_and_its_tokens,
);

async fn registering_a_client_returns_its_id_scopes_and_a_first_key_shown_once(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;

    let response = app
        .create_client_response(&session, "Spreadsheet sync", &["notes:read", "notes:write"])
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let client_id = body["client_id"].as_str().unwrap();
    assert!(client_id.starts_with("cli_"), "{client_id}");
    assert_eq!(body["name"], "Spreadsheet sync");
    assert_eq!(body["scopes"], json!(["notes:read", "notes:write"]));
    assert!(body["created_at"].is_string());
    let key = &body["api_key"];
    assert!(key["id"].is_string() && key["created_at"].is_string(), "{key}");
    let secret = key["key"].as_str().unwrap();
    assert!(secret.starts_with("sk_"), "{secret}");
    // At least 256 random bits, plus the embedded key id.
    assert!(secret.len() >= 3 + 43, "{secret}");

    // The key works, which is what being shown means.
    let token = app.token(client_id, secret, None).await;
    assert!(app.accepts(&token).await);
    app.stop().await;
}

async fn a_client_with_a_malformed_scope_or_an_empty_name_is_refused_with_422(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let too_long = "a".repeat(65);
    for (name, scopes, field) in [
        ("Client", vec!["Bad Scope"], "scopes"),
        ("Client", vec![too_long.as_str()], "scopes"),
        ("Client", vec!["notes:read", "a/b"], "scopes"),
        ("", vec!["notes:read"], "name"),
        ("   ", vec!["notes:read"], "name"),
    ] {
        let response = app.create_client_response(&session, name, &scopes).await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{name:?} {scopes:?}: {problem}");
    }
    // A scope of exactly 64 characters is fine.
    let ok = app.create_client_response(&session, "Client", &[&"a".repeat(64)]).await;
    assert_eq!(ok.status(), StatusCode::CREATED);
    let listed: Value = app
        .with_session(Method::GET, "/clients", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "only the valid client was kept");
    app.stop().await;
}

async fn registering_a_client_needs_a_session_and_its_csrf_token(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let body = json!({"name": "Client", "scopes": ["notes:read"]});

    let without_csrf = app
        .http()
        .post(app.url("/clients"))
        .header("cookie", &session.cookie)
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_problem(without_csrf, StatusCode::FORBIDDEN).await;

    let wrong_csrf = app
        .http()
        .post(app.url("/clients"))
        .header("cookie", &session.cookie)
        .header("x-csrf-token", "not-the-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_problem(wrong_csrf, StatusCode::FORBIDDEN).await;

    let without_session = app.post_json("/clients", &body).await;
    expect_problem(without_session, StatusCode::UNAUTHORIZED).await;

    let listed: Value = app
        .with_session(Method::GET, "/clients", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]), "no refused request registered anything");
    let unauthenticated_list = app.http().get(app.url("/clients")).send().await.unwrap();
    expect_problem(unauthenticated_list, StatusCode::UNAUTHORIZED).await;
    app.stop().await;
}

async fn listing_clients_shows_key_metadata_but_never_a_key(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let first = app.create_client(&session, &["notes:read"]).await;
    let second = app.create_client(&session, &["billing:read"]).await;
    let (second_key_id, second_key) = app.add_key(&session, &first.client_id).await;
    let secrets = [&first.key, &second.key, &second_key];

    let response = app
        .with_session(Method::GET, "/clients", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "a key is listed: {text}");
        // Not even the secret part after the embedded id (`sk_<id>_<secret>`).
        let random_part = secret.splitn(3, '_').nth(2).unwrap();
        assert_eq!(random_part.len(), 43, "{secret}");
        assert!(!text.contains(random_part), "{text}");
    }
    let listed: Value = serde_json::from_str(&text).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let found = listed
        .iter()
        .find(|c| c["client_id"] == first.client_id.as_str())
        .unwrap();
    assert_eq!(found["scopes"], json!(["notes:read"]));
    let keys = found["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    for key in keys {
        for member in ["id", "created_at", "last_used_at", "revoked_at"] {
            assert!(key.get(member).is_some(), "{member} missing from {key}");
        }
        assert!(key.get("key").is_none() && key.get("key_hash").is_none(), "{key}");
        assert!(key["last_used_at"].is_null() && key["revoked_at"].is_null(), "{key}");
    }
    let ids: Vec<&str> = keys.iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&first.key_id.as_str()) && ids.contains(&second_key_id.as_str()));

    let one = app
        .with_session(Method::GET, &format!("/clients/{}", first.client_id), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), StatusCode::OK);
    let text = one.text().await.unwrap();
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "a key is shown: {text}");
    }
    let one: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(one["client_id"], first.client_id.as_str());
    assert_eq!(one["keys"].as_array().unwrap().len(), 2);
    app.stop().await;
}

async fn another_users_client_is_not_found_for_every_operation(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let ada = app.signed_in("ada@example.com").await;
    let eve = app.signed_in("eve@example.com").await;
    let client = app.create_client(&ada, &["notes:read"]).await;
    let id = &client.client_id;

    for (method, path) in [
        (Method::GET, format!("/clients/{id}")),
        (Method::DELETE, format!("/clients/{id}")),
        (Method::POST, format!("/clients/{id}/keys")),
        (Method::DELETE, format!("/clients/{id}/keys/{}", client.key_id)),
    ] {
        let response = app.with_session(method, &path, &eve).send().await.unwrap();
        expect_problem(response, StatusCode::NOT_FOUND).await;
    }
    let eves: Value = app
        .with_session(Method::GET, "/clients", &eve)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(eves, json!([]), "Eve lists none of Ada's clients");

    // Nothing Eve tried had an effect: the client has one live key, which works.
    let ours: Value = app
        .with_session(Method::GET, &format!("/clients/{id}"), &ada)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = ours["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0]["revoked_at"].is_null());
    app.token(id, &client.key, None).await;
    app.stop().await;
}

async fn unknown_and_malformed_client_and_key_ids_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let id = &client.client_id;
    let unknown_client = "cli_AAAAAAAAAAAAAAAAAAAAAA";
    let unknown_key = uuid::Uuid::now_v7().to_string();

    for (method, path) in [
        (Method::GET, format!("/clients/{unknown_client}")),
        (Method::GET, "/clients/garbage".to_owned()),
        (Method::GET, "/clients/cli_%27%3B--".to_owned()),
        (Method::DELETE, format!("/clients/{unknown_client}")),
        (Method::DELETE, "/clients/garbage".to_owned()),
        (Method::POST, format!("/clients/{unknown_client}/keys")),
        (Method::POST, "/clients/garbage/keys".to_owned()),
        (Method::DELETE, format!("/clients/{id}/keys/{unknown_key}")),
        (Method::DELETE, format!("/clients/{id}/keys/not-a-uuid")),
        (
            Method::DELETE,
            format!("/clients/{unknown_client}/keys/{}", client.key_id),
        ),
    ] {
        let response = app.with_session(method.clone(), &path, &session).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
        expect_problem(response, StatusCode::NOT_FOUND).await;
    }
    app.stop().await;
}

async fn a_second_key_works_beside_the_first_and_use_is_recorded(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;

    let response = app
        .with_session(Method::POST, &format!("/clients/{}/keys", client.client_id), &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let second: Value = response.json().await.unwrap();
    let second_key = second["key"].as_str().unwrap();
    assert!(second_key.starts_with("sk_") && second_key != client.key);
    assert!(second["id"].is_string() && second["created_at"].is_string(), "{second}");
    assert_ne!(second["id"], client.key_id.as_str());

    // Rotation: both keys are live at once.
    let by_first = app.token(&client.client_id, &client.key, None).await;
    let by_second = app.token(&client.client_id, second_key, None).await;
    assert!(app.accepts(&by_first).await && app.accepts(&by_second).await);

    let shown: Value = app
        .with_session(Method::GET, &format!("/clients/{}", client.client_id), &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in shown["keys"].as_array().unwrap() {
        let used_at = key["last_used_at"]
            .as_str()
            .unwrap_or_else(|| panic!("use recorded: {key}"));
        let used_at = time::OffsetDateTime::parse(used_at, &time::format_description::well_known::Rfc3339).unwrap();
        let age = time::OffsetDateTime::now_utc() - used_at;
        assert!(age.whole_seconds().abs() < 60, "{key}");
    }
    app.stop().await;
}

async fn a_revoked_key_and_the_tokens_it_bought_stop_working_while_the_other_key_goes_on(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let (other_key_id, other_key) = app.add_key(&session, &client.client_id).await;
    let doomed_token = app.token(&client.client_id, &client.key, None).await;
    let surviving_token = app.token(&client.client_id, &other_key, None).await;
    assert!(app.accepts(&doomed_token).await);

    app.revoke_key(&session, &client.client_id, &client.key_id).await;

    let refused = app.token_response(&client.client_id, &client.key, None).await;
    expect_oauth_error(refused, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let refused_json = app.post_json("/login", &json!({"api_key": client.key})).await;
    expect_oauth_error(refused_json, StatusCode::UNAUTHORIZED, "invalid_client").await;

    assert!(
        !app.accepts(&doomed_token).await,
        "a token of a revoked key is refused at once"
    );
    assert_eq!(
        app.introspect(&client.client_id, &other_key, &doomed_token).await,
        json!({"active": false})
    );

    assert!(app.accepts(&surviving_token).await);
    assert_eq!(
        app.introspect(&client.client_id, &other_key, &surviving_token).await["active"],
        true
    );
    let fresh = app.token(&client.client_id, &other_key, None).await;
    assert!(app.accepts(&fresh).await);

    let shown: Value = app
        .with_session(Method::GET, &format!("/clients/{}", client.client_id), &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in shown["keys"].as_array().unwrap() {
        let revoked = !key["revoked_at"].is_null();
        assert_eq!(revoked, key["id"] == client.key_id.as_str(), "{key}");
        if key["id"] == other_key_id.as_str() {
            assert!(!revoked);
        }
    }
    app.stop().await;
}

async fn a_deleted_client_loses_its_keys_and_its_tokens(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let (_, second_key) = app.add_key(&session, &client.client_id).await;
    let bystander = app.create_client(&session, &["notes:read"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;
    let other_token = app.token(&client.client_id, &second_key, None).await;
    let bystander_token = app.token(&bystander.client_id, &bystander.key, None).await;

    app.delete_client(&session, &client.client_id).await;

    for key in [&client.key, &second_key] {
        let refused = app.token_response(&client.client_id, key, None).await;
        expect_oauth_error(refused, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    for token in [&token, &other_token] {
        assert!(!app.accepts(token).await, "a deleted client's token is refused at once");
        assert_eq!(
            app.introspect(&bystander.client_id, &bystander.key, token).await,
            json!({"active": false})
        );
    }
    assert!(app.accepts(&bystander_token).await, "other clients are untouched");

    let gone = app
        .with_session(Method::GET, &format!("/clients/{}", client.client_id), &session)
        .send()
        .await
        .unwrap();
    expect_problem(gone, StatusCode::NOT_FOUND).await;
    let again = app
        .with_session(Method::DELETE, &format!("/clients/{}", client.client_id), &session)
        .send()
        .await
        .unwrap();
    expect_problem(again, StatusCode::NOT_FOUND).await;
    app.stop().await;
}

async fn a_public_client_has_no_key_and_its_redirect_uris_follow_rfc_8252(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let ada = app.signed_in("ada@example.com").await;
    let register = |body: Value| app.with_session(Method::POST, "/clients", &ada).json(&body).send();

    let uris = json!([
        "com.example.notes:/callback",
        "http://127.0.0.1/callback",
        "https://notes.example.com/cb"
    ]);
    let response =
        register(json!({"name": "Phone", "scopes": ["notes:read"], "type": "public", "redirect_uris": uris}))
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let public: Value = response.json().await.unwrap();
    assert_eq!(public["type"], "public");
    assert_eq!(public["redirect_uris"], uris);
    assert!(public.get("api_key").is_none(), "{public}");
    let id = public["client_id"].as_str().unwrap();
    let shown = app.get_as(&ada, &format!("/clients/{id}")).await;
    assert_eq!(
        (shown["type"].clone(), shown["redirect_uris"].clone()),
        ("public".into(), uris.clone())
    );
    assert_eq!(shown["keys"], json!([]));
    let key = app
        .with_session(Method::POST, &format!("/clients/{id}/keys"), &ada)
        .send()
        .await
        .unwrap();
    expect_problem(key, StatusCode::UNPROCESSABLE_ENTITY).await;

    // It cannot use client credentials; a confidential client naming itself alone has
    // not authenticated.
    let response = app
        .post_form("/login", &[("grant_type", "client_credentials"), ("client_id", id)])
        .send()
        .await
        .unwrap();
    expect_oauth_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    let confidential = app.create_client(&ada, &["notes:read"]).await;
    assert_eq!(confidential.body["type"], "confidential");
    assert_eq!(confidential.body["redirect_uris"], json!([]));
    let response = app
        .post_form(
            "/login",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &confidential.client_id),
            ],
        )
        .send()
        .await
        .unwrap();
    expect_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;

    // Refused, naming the field: a public client without a redirect URI, and every URI
    // RFC 8252 and RFC 9700 rule out.
    let eleven: Vec<String> = (0..11).map(|i| format!("https://notes.example.com/{i}")).collect();
    for body in [
        json!({"name": "Phone", "scopes": [], "type": "public"}),
        json!({"name": "Web", "scopes": [], "redirect_uris": ["http://localhost:8080/cb"]}),
        json!({"name": "Web", "scopes": [], "redirect_uris": ["http://notes.example.com/cb"]}),
        json!({"name": "Web", "scopes": [], "redirect_uris": ["https://notes.example.com/cb#top"]}),
        json!({"name": "Web", "scopes": [], "redirect_uris": ["https://*.example.com/cb"]}),
        json!({"name": "Web", "scopes": [], "redirect_uris": ["/cb"]}),
        json!({"name": "Web", "scopes": [], "redirect_uris": ["notes:/cb"]}),
        json!({"name": "Web", "scopes": [], "redirect_uris": eleven}),
    ] {
        let response = register(body.clone()).await.unwrap();
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(
            problem["errors"].to_string().contains("redirect_uris"),
            "{body}: {problem}"
        );
    }
    let response = register(json!({"name": "Web", "scopes": [], "type": "secretive"}))
        .await
        .unwrap();
    expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;

    // The operator registers one from the command line, and sees it listed.
    let printed = app
        .sesame(&[
            "client",
            "add",
            "--owner",
            "ada@example.com",
            "--name",
            "Desktop",
            "--public",
            "--redirect-uri",
            "http://[::1]/cb",
        ])
        .await;
    assert!(
        printed.contains("client_id: cli_") && !printed.contains("sk_"),
        "{printed}"
    );
    let listed = app.sesame(&["client", "list", "--owner", "ada@example.com"]).await;
    assert!(
        listed.contains("type=public") && listed.contains("redirect_uri http://[::1]/cb"),
        "{listed}"
    );
    let output = app
        .sesame_output(&[
            "client",
            "add",
            "--owner",
            "ada@example.com",
            "--name",
            "Desktop",
            "--public",
        ])
        .await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("redirect_uris"));
}
