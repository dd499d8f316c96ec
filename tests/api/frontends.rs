//! §11 cookie profiles: two first-party front ends, each signed in as a different user
//! in the same browser, each answered for its own origin only.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sesame_tests::{Backend, CONFIG_FILE, PASSWORD, TestApp, on_both_backends};

on_both_backends!(
    two_profiles_sign_in_two_users_in_one_cookie_jar_each_answering_for_its_origin,
    logging_out_of_one_profile_leaves_the_other,
    a_cross_site_profile_sets_a_secure_samesite_none_partitioned_host_cookie,
);

const SHOP: &str = "https://shop.example.com";
const ADMIN: &str = "https://admin.example.com";

const PROFILES: &str = r#"
[frontends.shop]
origins = ["https://shop.example.com"]
cookie_name = "shop_session"

[frontends.admin]
origins = ["https://admin.example.com"]
cookie_name = "admin_session"
session_idle = "5m"
"#;

/// A signed-in front end: its cookie (`name=value`) and CSRF token.
struct Signed {
    cookie: String,
    csrf: String,
}

/// `POST /login` from a front end's page; the cookie it set.
async fn sign_in(app: &TestApp, origin: &str, email: &str) -> Signed {
    let response = app
        .http()
        .post(app.url("/login"))
        .header("origin", origin)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set = set_cookies(&response);
    assert_eq!(set.len(), 1, "one cookie: {set:?}");
    let cookie = set[0].split(';').next().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    Signed {
        cookie,
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    }
}

fn set_cookies(response: &Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// `GET /me` with these cookies, from `origin` (none: a same-origin request or a
/// navigation); the email it answers for, or the status.
async fn me(app: &TestApp, origin: Option<&str>, cookies: &[&Signed]) -> Result<String, StatusCode> {
    let jar = cookies.iter().map(|c| c.cookie.as_str()).collect::<Vec<_>>().join("; ");
    let mut request = app.http().get(app.url("/me")).header("cookie", jar);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    if response.status() != StatusCode::OK {
        return Err(response.status());
    }
    let body: Value = response.json().await.unwrap();
    Ok(body["user"]["email"].as_str().unwrap().to_owned())
}

async fn two_profiles_sign_in_two_users_in_one_cookie_jar_each_answering_for_its_origin(backend: Backend) {
    let app = TestApp::spawn(backend, &[(CONFIG_FILE, PROFILES)]).await;
    app.user("ada@example.com").await;
    app.user("bob@example.com").await;
    let shop = sign_in(&app, SHOP, "ada@example.com").await;
    let admin = sign_in(&app, ADMIN, "bob@example.com").await;
    assert!(shop.cookie.starts_with("shop_session="), "{}", shop.cookie);
    assert!(admin.cookie.starts_with("admin_session="), "{}", admin.cookie);
    let both = [&shop, &admin];

    // Each origin is answered by its own profile's cookie, whatever else is sent.
    assert_eq!(me(&app, Some(SHOP), &both).await, Ok("ada@example.com".into()));
    assert_eq!(me(&app, Some(ADMIN), &both).await, Ok("bob@example.com".into()));
    // No Origin: one profile cookie alone is used; two say nothing of which site asks.
    assert_eq!(me(&app, None, &[&shop]).await, Ok("ada@example.com".into()));
    assert_eq!(me(&app, None, &both).await, Err(StatusCode::UNAUTHORIZED));
    // The issuer's own origin is the default profile's, which has no session here.
    assert_eq!(me(&app, Some(&app.base), &both).await, Err(StatusCode::UNAUTHORIZED));
    // Another origin is not a profile's: the default one, so no session either.
    assert_eq!(
        me(&app, Some("https://elsewhere.example"), &both).await,
        Err(StatusCode::UNAUTHORIZED)
    );

    // A handle moved into another profile's cookie is no session there, and stays live
    // where it belongs.
    let moved = Signed {
        cookie: shop.cookie.replace("shop_session=", "admin_session="),
        csrf: shop.csrf.clone(),
    };
    assert_eq!(me(&app, Some(ADMIN), &[&moved]).await, Err(StatusCode::UNAUTHORIZED));
    assert_eq!(me(&app, Some(SHOP), &[&shop]).await, Ok("ada@example.com".into()));

    // GET /sessions names each session's profile.
    let sessions: Value = app
        .http()
        .get(app.url("/sessions"))
        .header("origin", SHOP)
        .header("cookie", &shop.cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sessions[0]["frontend"], "shop", "{sessions}");
    let default = app.login("ada@example.com", PASSWORD).await;
    let listed: Value = app.get_as(&default, "/sessions").await;
    let frontends: Vec<Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["frontend"].clone())
        .collect();
    assert_eq!(frontends, [Value::Null, json!("shop")], "newest first: {listed}");

    // A profile's origin is an allowed origin: CORS with credentials.
    let preflight = app
        .http()
        .request(Method::OPTIONS, app.url("/me"))
        .header("origin", ADMIN)
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    let allow = |name: &str| preflight.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(allow("access-control-allow-origin").as_deref(), Some(ADMIN));
    assert_eq!(allow("access-control-allow-credentials").as_deref(), Some("true"));

    // The served document names each profile's cookie.
    let document = app.get_json("/openapi.json").await;
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["session_cookie_shop"]["name"], "shop_session", "{schemes}");
    assert_eq!(schemes["session_cookie_shop"]["in"], "cookie");
    assert_eq!(schemes["session_cookie_admin"]["name"], "admin_session");
    app.stop().await;
}

async fn logging_out_of_one_profile_leaves_the_other(backend: Backend) {
    let app = TestApp::spawn(backend, &[(CONFIG_FILE, PROFILES)]).await;
    app.user("ada@example.com").await;
    let shop = sign_in(&app, SHOP, "ada@example.com").await;
    let admin = sign_in(&app, ADMIN, "ada@example.com").await;
    let jar = format!("{}; {}", shop.cookie, admin.cookie);
    let out = app
        .http()
        .post(app.url("/logout"))
        .header("origin", ADMIN)
        .header("cookie", &jar)
        .header("x-csrf-token", &admin.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let cleared = set_cookies(&out);
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    assert!(
        cleared[0].starts_with("admin_session=;") && cleared[0].contains("Max-Age=0"),
        "{cleared:?}"
    );
    assert_eq!(me(&app, Some(ADMIN), &[&admin]).await, Err(StatusCode::UNAUTHORIZED));
    assert_eq!(me(&app, Some(SHOP), &[&shop]).await, Ok("ada@example.com".into()));
    // Signing in again from the shop replaces only the shop's session (no fixation).
    let again = sign_in(&app, SHOP, "ada@example.com").await;
    let fixated = app
        .http()
        .post(app.url("/login"))
        .header("origin", SHOP)
        .header("cookie", &again.cookie)
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(fixated.status(), StatusCode::OK);
    assert_eq!(me(&app, Some(SHOP), &[&again]).await, Err(StatusCode::UNAUTHORIZED));
    app.stop().await;
}

async fn a_cross_site_profile_sets_a_secure_samesite_none_partitioned_host_cookie(backend: Backend) {
    let profile = "[frontends.spa]\norigins = [\"https://app.example.net\"]\nsamesite = \"None\"\npartitioned = true\n";
    let app = TestApp::spawn(backend, &[(CONFIG_FILE, profile), ("SESAME_COOKIE_SECURE", "true")]).await;
    app.user("ada@example.com").await;
    let response = app
        .http()
        .post(app.url("/login"))
        .header("origin", "https://app.example.net")
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set = set_cookies(&response);
    assert_eq!(set.len(), 1, "{set:?}");
    let cookie = &set[0];
    assert!(cookie.starts_with("__Host-spa_session="), "{cookie}");
    for attribute in ["HttpOnly", "Secure", "SameSite=None", "Partitioned", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    app.stop().await;
}
