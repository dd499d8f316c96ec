//! §10 in the browser's steps, over HTTP: `GET /authorize`, the sign-in redirect, the
//! consent page and its form, and the code redeemed at `POST /login` with PKCE.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sesame_tests::{
    Backend, Session, TestApp, eventually, expect_oauth_error, header_text, jwt_part, on_both_backends,
    on_postgres_polling_only,
};

/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const CALLBACK: &str = "https://app.example.com/cb";

async fn public_client(app: &TestApp, session: &Session) -> String {
    let response = app
        .with_session(Method::POST, "/clients", session)
        .json(&json!({"name": "Notes <app>", "scopes": ["notes:read", "notes:write"], "type": "public", "redirect_uris": [CALLBACK]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["client_id"].as_str().unwrap().to_owned()
}

fn query(client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", CALLBACK),
        ("scope", "notes:read"),
        ("state", "xyz"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    pairs.retain(|(name, _)| !extra.iter().any(|(n, _)| n == name));
    pairs.extend_from_slice(extra);
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn get_authorize(app: &TestApp, query: &str, session: Option<&Session>) -> reqwest::Response {
    let path = format!("/authorize?{query}");
    let request = match session {
        Some(session) => app.with_session(Method::GET, &path, session),
        None => app.http().get(app.url(&path)),
    };
    request.send().await.unwrap()
}

fn location(response: &reqwest::Response) -> url::Url {
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "a redirect");
    url::Url::parse(&header_text(response, "location")).expect("an absolute Location")
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(n, _)| n == name).map(|(_, v)| v.into_owned())
}

async fn consent(app: &TestApp, session: &Session, query: &str, decision: &str) -> reqwest::Response {
    app.http()
        .post(app.url("/authorize"))
        .header("cookie", &session.cookie)
        // The browser's origin: the issuer's.
        .header("origin", app.config.issuer.as_deref().unwrap_or(&app.base))
        .form(&[
            ("request", query),
            ("csrf_token", session.csrf.as_str()),
            ("decision", decision),
        ])
        .send()
        .await
        .unwrap()
}

async fn redeem(app: &TestApp, client_id: &str, code: &str, verifier: &str) -> reqwest::Response {
    app.post_form(
        "/login",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier),
            ("client_id", client_id),
        ],
    )
    .send()
    .await
    .unwrap()
}

async fn a_browser_signs_in_consents_and_the_app_redeems_its_code_once(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let ada = app.signed_in("ada@example.com").await;
    let client_id = public_client(&app, &ada).await;
    let query = query(&client_id, &[]);

    // Not signed in: to the sign-in page, with a way back here.
    let to_signin = location(&get_authorize(&app, &query, None).await);
    assert_eq!(to_signin.path(), "/signin");
    let return_to = param(&to_signin, "return_to").unwrap();
    assert!(
        return_to.starts_with("/authorize?") && return_to.contains("state=xyz"),
        "{return_to}"
    );
    let signin = app.http().get(to_signin.as_str()).send().await.unwrap();
    assert_eq!(signin.status(), StatusCode::OK);
    assert!(header_text(&signin, "content-security-policy").contains("frame-ancestors 'none'"));
    assert!(signin.text().await.unwrap().contains("<label for=\"password\">"));

    // Signed in: the consent page, escaped, unframeable, with Approve and Deny.
    let page = get_authorize(&app, &query, Some(&ada)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let policy = header_text(&page, "content-security-policy");
    assert!(
        policy.contains("frame-ancestors 'none'") && policy.contains("form-action 'self' https://app.example.com"),
        "{policy}"
    );
    // `no-referrer` would make a browser post the form with `Origin: null`.
    assert_eq!(header_text(&page, "referrer-policy"), "same-origin");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Notes &lt;app&gt;") && !html.contains("Notes <app>"),
        "{html}"
    );
    assert!(html.contains("value=\"approve\"") && html.contains("value=\"deny\"") && html.contains("notes:read"));

    // Denied: back to the app with access_denied, state and iss.
    let denied = location(&consent(&app, &ada, &query, "deny").await);
    assert_eq!(param(&denied, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&denied, "state").as_deref(), Some("xyz"));
    assert_eq!(param(&denied, "iss").as_deref(), Some(app.base.as_str()));

    // A form without the session's CSRF token is refused.
    let forged = app
        .http()
        .post(app.url("/authorize"))
        .header("cookie", &ada.cookie)
        .form(&[
            ("request", query.as_str()),
            ("csrf_token", "wrong"),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    // Approved: a code for the callback; the app redeems it with its verifier.
    let approved = location(&consent(&app, &ada, &query, "approve").await);
    assert!(approved.as_str().starts_with(CALLBACK));
    assert_eq!(param(&approved, "state").as_deref(), Some("xyz"));
    assert_eq!(param(&approved, "iss").as_deref(), Some(app.base.as_str()));
    let code = param(&approved, "code").unwrap();
    let response = redeem(&app, &client_id, &code, VERIFIER).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_text(&response, "cache-control"), "no-store");
    let token: Value = response.json().await.unwrap();
    assert_eq!(
        (token["token_type"].clone(), token["scope"].clone()),
        ("Bearer".into(), "notes:read".into())
    );
    let access = token["access_token"].as_str().unwrap().to_owned();
    let claims = jwt_part(&access, 1);
    let me: Value = app.me(&ada).await.json().await.unwrap();
    assert_eq!(claims["sub"], me["user"]["id"]);
    assert_eq!(claims["client_id"], client_id.as_str());
    assert!(claims["auth_time"].is_i64());
    // The app, acting for Ada: `kind: delegated`, her user, its scopes.
    let me_as_app: Value = app.me_bearer(&access).await.json().await.unwrap();
    assert_eq!(me_as_app["kind"], "delegated", "{me_as_app}");
    assert_eq!(me_as_app["user"], me["user"]);
    assert_eq!(me_as_app["client_id"], client_id.as_str());
    assert_eq!(me_as_app["scopes"], json!(["notes:read"]));

    // Granted once, the next request comes straight back with a code.
    let again = location(&get_authorize(&app, &query, Some(&ada)).await);
    let second = param(&again, "code").expect("a code without asking again");
    assert_ne!(second, code);

    // The first code again: refused, and the token it bought is revoked.
    let replay = redeem(&app, &client_id, &code, VERIFIER).await;
    expect_oauth_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(app.refuses(&access).await);
    // A wrong verifier is refused too (and spends the code).
    let wrong = redeem(&app, &client_id, &second, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj").await;
    expect_oauth_error(wrong, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

async fn an_untrusted_redirect_uri_gets_a_page_and_other_errors_go_back_to_the_app(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let ada = app.signed_in("ada@example.com").await;
    let client_id = public_client(&app, &ada).await;

    for untrusted in [
        query(&client_id, &[("redirect_uri", "https://evil.example.com/cb")]),
        query("cli_AAAAAAAAAAAAAAAAAAAAAA", &[]),
        format!("{}&state=again", query(&client_id, &[])),
    ] {
        let response = get_authorize(&app, &untrusted, Some(&ada)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{untrusted}");
        assert!(response.headers().get("location").is_none());
        assert!(header_text(&response, "content-type").starts_with("text/html"));
    }
    for (extra, error) in [
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("response_type", "token")], "unsupported_response_type"),
        (vec![("scope", "admin")], "invalid_scope"),
        (vec![("resource", "https://evil.example.com")], "invalid_target"),
    ] {
        let back = location(&get_authorize(&app, &query(&client_id, &extra), Some(&ada)).await);
        assert!(back.as_str().starts_with(CALLBACK));
        assert_eq!(param(&back, "error").as_deref(), Some(error), "{extra:?}");
        assert_eq!(param(&back, "state").as_deref(), Some("xyz"));
    }
    let silent = location(&get_authorize(&app, &query(&client_id, &[("prompt", "none")]), None).await);
    assert_eq!(param(&silent, "error").as_deref(), Some("login_required"));

    // A confidential client's code needs its key; a public client never gets tokens by
    // naming itself for client credentials.
    let metadata = app.metadata().await;
    assert_eq!(metadata["authorization_endpoint"], format!("{}/authorize", app.base));
    assert_eq!(metadata["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(metadata["response_types_supported"], json!(["code"]));
    assert_eq!(metadata["authorization_response_iss_parameter_supported"], true);
}

async fn a_user_lists_and_ends_the_grants_they_made(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let ada = app.signed_in("ada@example.com").await;
    let client_id = public_client(&app, &ada).await;
    let query = query(&client_id, &[]);
    let token_for = |code: String| {
        let (app, client_id) = (&app, client_id.clone());
        async move {
            let response = redeem(app, &client_id, &code, VERIFIER).await;
            assert_eq!(response.status(), StatusCode::OK);
            let body: Value = response.json().await.unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let approved = location(&consent(&app, &ada, &query, "approve").await);
    let token = token_for(param(&approved, "code").unwrap()).await;
    assert!(app.accepts(&token).await);

    let listed: Value = app.get_as(&ada, "/me/grants").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["client_id"], client_id.as_str());
    assert_eq!(listed[0]["client_name"], "Notes <app>");
    assert_eq!(listed[0]["scopes"], json!(["notes:read"]));

    // Ending it needs the CSRF token; then the app's tokens stop at once, the list is
    // empty, and the next request asks for consent again.
    let path = format!("/me/grants/{client_id}");
    let no_csrf = app
        .http()
        .delete(app.url(&path))
        .header("cookie", &ada.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    let ended = app.with_session(Method::DELETE, &path, &ada).send().await.unwrap();
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    assert!(app.refuses(&token).await);
    let listed: Value = app.get_as(&ada, "/me/grants").await;
    assert_eq!(listed, json!([]));
    assert_eq!(get_authorize(&app, &query, Some(&ada)).await.status(), StatusCode::OK);
    let again = app.with_session(Method::DELETE, &path, &ada).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);

    // Consent given anew makes tokens that work, while the old one stays revoked.
    let approved = location(&consent(&app, &ada, &query, "approve").await);
    let fresh = token_for(param(&approved, "code").unwrap()).await;
    assert!(app.accepts(&fresh).await);
    assert!(app.refuses(&token).await);

    // The public app revokes its own token by naming itself (RFC 7009 §2.1).
    let revoked = app
        .post_form(
            "/oauth/revoke",
            &[("token", fresh.as_str()), ("client_id", client_id.as_str())],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert!(app.refuses(&fresh).await);
}

/// Ending a grant through one instance stops its tokens on another within the contract's
/// 1 s (with margin for the poll).
async fn ending_a_grant_ends_its_tokens_on_every_instance(backend: Backend) {
    let fleet = [("SESAME_ISSUER", "https://auth.example.com")];
    let a = TestApp::spawn(backend, &fleet).await;
    let b = TestApp::spawn_on(a.db.clone(), &fleet).await;
    let ada = a.signed_in("ada@example.com").await;
    let client_id = public_client(&a, &ada).await;
    let query = query(&client_id, &[]);
    let approved = location(&consent(&a, &ada, &query, "approve").await);
    let response = redeem(&b, &client_id, &param(&approved, "code").unwrap(), VERIFIER).await;
    assert_eq!(response.status(), StatusCode::OK);
    let token: Value = response.json().await.unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    assert!(a.accepts(&token).await && b.accepts(&token).await);

    let ended = a
        .with_session(Method::DELETE, &format!("/me/grants/{client_id}"), &ada)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), StatusCode::NO_CONTENT);
    assert!(a.refuses(&token).await, "at once on the instance that ended it");
    let elsewhere = std::time::Duration::from_millis(1_500);
    assert!(eventually(elsewhere, || async { b.refuses(&token).await }).await);
}

on_both_backends!(
    refresh_tokens_rotate_are_introspected_and_revoked_and_end_their_family_everywhere,
    ending_a_grant_ends_its_tokens_on_every_instance,
    a_user_lists_and_ends_the_grants_they_made,
    a_browser_signs_in_consents_and_the_app_redeems_its_code_once,
    an_untrusted_redirect_uri_gets_a_page_and_other_errors_go_back_to_the_app,
);

// What one instance ends, the others refuse within the bound without notifications too.
on_postgres_polling_only!(ending_a_grant_ends_its_tokens_on_every_instance,);

/// A confidential client with a redirect URI: its id and key.
async fn confidential_client(app: &TestApp, session: &Session) -> (String, String) {
    let response = app
        .with_session(Method::POST, "/clients", session)
        .json(&json!({"name": "Notes server", "scopes": ["notes:read", "notes:write"], "redirect_uris": [CALLBACK]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    (
        body["client_id"].as_str().unwrap().to_owned(),
        body["api_key"]["key"].as_str().unwrap().to_owned(),
    )
}

/// `grant_type=refresh_token` with HTTP Basic, and `extra` parameters.
async fn refresh(app: &TestApp, client: &(String, String), token: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut pairs = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    pairs.extend_from_slice(extra);
    app.post_form_basic("/login", &client.0, &client.1, &pairs)
        .send()
        .await
        .unwrap()
}

/// The token response's access and refresh tokens.
async fn pair(response: reqwest::Response) -> (String, String) {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header_text(&response, "cache-control"), "no-store");
    let body: Value = response.json().await.unwrap();
    let refresh = body["refresh_token"].as_str().expect("a refresh token").to_owned();
    assert!(refresh.starts_with("rt_") && refresh.len() == 46, "{refresh}");
    (body["access_token"].as_str().unwrap().to_owned(), refresh)
}

async fn refresh_tokens_rotate_are_introspected_and_revoked_and_end_their_family_everywhere(backend: Backend) {
    let fleet = [
        ("SESAME_ISSUER", "https://auth.example.com"),
        ("SESAME_RESOURCES", "https://notes.example.com"),
    ];
    let a = TestApp::spawn(backend, &fleet).await;
    let b = TestApp::spawn_on(a.db.clone(), &fleet).await;
    let grants: Vec<String> = serde_json::from_value(a.metadata().await["grant_types_supported"].clone()).unwrap();
    assert_eq!(grants, ["client_credentials", "authorization_code", "refresh_token"]);
    let ada = a.signed_in("ada@example.com").await;
    let client = confidential_client(&a, &ada).await;
    let query = query(&client.0, &[("scope", "notes:read notes:write")]);
    let approved = location(&consent(&a, &ada, &query, "approve").await);
    let code = param(&approved, "code").unwrap();
    let redeemed = b
        .post_form_basic(
            "/login",
            &client.0,
            &client.1,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", VERIFIER),
            ],
        )
        .send()
        .await
        .unwrap();
    let (first_access, first_refresh) = pair(redeemed).await;

    // Rotation on another instance: a new pair; the spent token is no longer active.
    let (second_access, second_refresh) = pair(refresh(&a, &client, &first_refresh, &[]).await).await;
    assert_ne!(second_refresh, first_refresh);
    assert!(a.accepts(&second_access).await);
    let introspected = a.introspect(&client.0, &client.1, &second_refresh).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["token_type"], "refresh_token");
    assert_eq!(introspected["client_id"], client.0.as_str());
    assert_eq!(introspected["scope"], "notes:read notes:write");
    assert_eq!(introspected["sub"], jwt_part(&second_access, 1)["sub"]);
    assert!(introspected["exp"].as_i64().unwrap() > jwt_part(&second_access, 1)["exp"].as_i64().unwrap());
    assert_eq!(
        a.introspect(&client.0, &client.1, &first_refresh).await,
        json!({"active": false})
    );
    let other = confidential_client(&a, &ada).await;
    assert_eq!(
        a.introspect(&other.0, &other.1, &second_refresh).await,
        json!({"active": false}),
        "another client's refresh token reveals nothing"
    );

    // Narrowing only, within the grant's resources; a refused request spends nothing.
    let wider = refresh(&a, &client, &second_refresh, &[("scope", "notes:read admin")]).await;
    expect_oauth_error(wider, StatusCode::BAD_REQUEST, "invalid_scope").await;
    let elsewhere = refresh(
        &a,
        &client,
        &second_refresh,
        &[("resource", "https://notes.example.com")],
    )
    .await;
    expect_oauth_error(elsewhere, StatusCode::BAD_REQUEST, "invalid_target").await;
    let narrow = refresh(&b, &client, &second_refresh, &[("scope", "notes:read")]).await;
    let (narrow_access, third_refresh) = pair(narrow).await;
    assert_eq!(jwt_part(&narrow_access, 1)["scope"], "notes:read");
    assert!(jwt_part(&narrow_access, 1)["refresh_family"].is_string());

    // Malformed requests.
    let missing = a
        .post_form_basic("/login", &client.0, &client.1, &[("grant_type", "refresh_token")])
        .send()
        .await
        .unwrap();
    expect_oauth_error(missing, StatusCode::BAD_REQUEST, "invalid_request").await;
    let forged = refresh(&a, &client, "rt_not-a-token", &[]).await;
    expect_oauth_error(forged, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let stolen = refresh(&a, &other, &third_refresh, &[]).await;
    expect_oauth_error(stolen, StatusCode::BAD_REQUEST, "invalid_grant").await;

    // Revoking the refresh token (RFC 7009) ends the family: its refresh tokens, and its
    // access tokens at once here and within the bound on the other instance.
    let revoked = a
        .post_form_basic("/oauth/revoke", &client.0, &client.1, &[("token", &third_refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let ended = refresh(&b, &client, &third_refresh, &[]).await;
    expect_oauth_error(ended, StatusCode::BAD_REQUEST, "invalid_grant").await;
    for access in [&first_access, &second_access, &narrow_access] {
        assert!(a.refuses(access).await, "at once on the instance that revoked it");
    }
    let bound = std::time::Duration::from_millis(1_500);
    assert!(eventually(bound, || async { b.refuses(&narrow_access).await }).await);

    // A password change ends every family and delegated token; the consent stays.
    let approved = location(&get_authorize(&a, &query, Some(&ada)).await);
    let code = param(&approved, "code").expect("consent stays: straight back with a code");
    let redeemed = a
        .post_form_basic(
            "/login",
            &client.0,
            &client.1,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("code_verifier", VERIFIER),
            ],
        )
        .send()
        .await
        .unwrap();
    let (access, refresh_token) = pair(redeemed).await;
    let changed = a
        .with_session(Method::PUT, "/me/password", &ada)
        .json(&json!({"current_password": sesame_tests::PASSWORD, "new_password": "a whole new passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert!(a.refuses(&access).await);
    assert!(eventually(bound, || async { b.refuses(&access).await }).await);
    let after = refresh(&b, &client, &refresh_token, &[]).await;
    expect_oauth_error(after, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let listed: Value = a.get_as(&ada, "/me/grants").await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    b.stop().await;
    a.stop().await;
}

/// The account page (§11) is the binary's: a strict policy, never framed, and everything
/// it loads comes from this server.
#[tokio::test]
async fn the_account_page_and_what_it_loads_come_from_this_server() {
    let app = TestApp::spawn(Backend::Sqlite, &[]).await;
    let page = app.http().get(app.url("/account")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let policy = header_text(&page, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(directive), "{directive}: {policy}");
    }
    assert_eq!(header_text(&page, "cache-control"), "no-store");
    let html = page.text().await.unwrap();
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script>"));
    for asset in ["/assets/account.js", "/assets/pages.css"] {
        assert!(html.contains(asset), "{asset}");
        let response = app.http().get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{asset} reaches nowhere else"
        );
    }
    app.stop().await;
}
