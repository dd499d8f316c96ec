//! sesame's pages in a real Chromium (Debian's `chromium`, driven through its
//! `chromium-driver` over WebDriver): what a person does, key by key, and what the browser
//! enforces (the pages' Content-Security-Policy, `form-action` on the consent form's
//! redirect, HttpOnly cookies). `make test` installs both packages when they are missing (tests/install-tools.sh);
//! without them these tests fail, naming what to install.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use fantoccini::Locator;
use fantoccini::key::Key;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sesame_tests::{Backend, PASSWORD, TestApp};

use support::{Browser, Callback};

/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A person with no session follows an app's authorization request: the sign-in page
/// (typed into, submitted with Enter), back to the request, the consent page (approved
/// with the keyboard), and the browser lands on the app's loopback redirect URI with
/// `code`, `state` and `iss`; the app redeems the code with its verifier. The session
/// cookie never shows in `document.cookie`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_and_approves_and_the_browser_lands_on_the_app_with_a_code() {
    let app = TestApp::spawn(Backend::Sqlite, &[]).await;
    app.user("ada@example.com").await;
    let bob = app.signed_in("bob@example.com").await;
    let registered = app
        .with_session(Method::POST, "/clients", &bob)
        .json(&json!({
            "name": "Desktop notes",
            "scopes": ["notes:read"],
            "type": "public",
            "redirect_uris": ["http://127.0.0.1/callback"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let client_id = registered.json::<Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The app's loopback listener, on a port of its own choosing (RFC 8252 §7.3).
    let callback = Callback::start().await;
    let redirect_uri = format!("http://127.0.0.1:{}/callback", callback.port());
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("scope", "notes:read"),
            ("state", "st4te"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .finish();

    let browser = Browser::start().await;
    let page = browser.client();
    page.goto(&app.url(&format!("/authorize?{query}"))).await.unwrap();

    // No session: the sign-in page, with `return_to` back to the request.
    browser.wait_for_path("/signin").await;
    page.find(Locator::Css("#email"))
        .await
        .unwrap()
        .send_keys("ada@example.com")
        .await
        .unwrap();
    let password = page.find(Locator::Css("#password")).await.unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    password.send_keys(&Key::Enter.to_string()).await.unwrap();

    // Signed in, back at the request: the consent page names the app and the scope.
    let approve = browser.wait_for(Locator::Css("button[value=approve]")).await;
    let source = page.source().await.unwrap();
    assert!(
        source.contains("Desktop notes") && source.contains("notes:read"),
        "{source}"
    );
    let cookies: String = page
        .execute("return document.cookie", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!cookies.contains("sesame_session"), "HttpOnly: {cookies:?}");
    // Approved with the keyboard: focus the button, press Enter.
    page.execute("arguments[0].focus()", vec![serde_json::to_value(&approve).unwrap()])
        .await
        .unwrap();
    approve.send_keys(&Key::Enter.to_string()).await.unwrap();

    // The browser lands on the app, past the consent form's `form-action`.
    let landed = browser.wait_for_path("/callback").await;
    assert_eq!(landed.port(), Some(callback.port()), "{landed}");
    let param = |name: &str| {
        landed
            .query_pairs()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("state").as_deref(), Some("st4te"));
    assert_eq!(param("iss").as_deref(), Some(app.base.as_str()));
    let code = param("code").expect("a code");
    assert_eq!(callback.hits(), 1, "the app's page was loaded");
    let referers = callback.referers();
    assert!(
        !referers.iter().any(|r| r.starts_with(&app.base)),
        "sesame's URLs are not told to the app: {referers:?}"
    );

    let redeemed = app
        .post_form(
            "/login",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect_uri),
                ("code_verifier", VERIFIER),
                ("client_id", &client_id),
            ],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(redeemed.status(), StatusCode::OK);
    let token: Value = redeemed.json().await.unwrap();
    let me: Value = app
        .me_bearer(token["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["kind"], "delegated");
    assert_eq!(me["user"]["email"], "ada@example.com");

    browser.stop().await;
    app.stop().await;
}

/// A wrong password is said on the page, in its alert region, and the person stays there
/// to try again; nothing is followed but a path on sesame's own origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_page_says_a_password_is_wrong_and_never_follows_a_foreign_return_to() {
    let app = TestApp::spawn(Backend::Sqlite, &[]).await;
    app.user("ada@example.com").await;
    let browser = Browser::start().await;
    let page = browser.client();
    page.goto(&app.url("/signin?return_to=https://evil.example/steal"))
        .await
        .unwrap();
    page.find(Locator::Css("#email"))
        .await
        .unwrap()
        .send_keys("ada@example.com")
        .await
        .unwrap();
    let password = page.find(Locator::Css("#password")).await.unwrap();
    password.send_keys("not the password at all").await.unwrap();
    password.send_keys(&Key::Enter.to_string()).await.unwrap();
    let alert = browser.wait_for(Locator::Css("#error:not([hidden])")).await;
    assert_eq!(alert.attr("role").await.unwrap().as_deref(), Some("alert"));
    assert!(alert.text().await.unwrap().contains("incorrect"));

    password.clear().await.unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    password.send_keys(&Key::Enter.to_string()).await.unwrap();
    // The page shows that it is done instead of going anywhere.
    browser.wait_for(Locator::Css("#done:not([hidden])")).await;
    let here = page.current_url().await.unwrap();
    assert_eq!(here.host_str(), Some("127.0.0.1"), "stayed on sesame: {here}");
    assert_eq!(here.path(), "/signin");

    browser.stop().await;
    app.stop().await;
}

/// The API explorer runs the authorization-code flow with PKCE against a public client:
/// Authorize opens sesame's consent page in a popup, the popup comes back to the
/// explorer's redirect page, and the explorer redeems the code for a delegated token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_explorer_runs_the_authorization_code_flow_with_pkce() {
    let app = TestApp::spawn(Backend::Sqlite, &[]).await;
    app.user("ada@example.com").await;
    let bob = app.signed_in("bob@example.com").await;
    let registered = app
        .with_session(Method::POST, "/clients", &bob)
        .json(&json!({
            "name": "API explorer",
            "scopes": ["notes:read"],
            "type": "public",
            "redirect_uris": ["http://127.0.0.1/docs/oauth2-redirect.html"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let client_id = registered.json::<Value>().await.unwrap()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let browser = Browser::start().await;
    let page = browser.client();
    // Signed in first, through the sign-in page, which then goes on to the explorer.
    page.goto(&app.url("/signin?return_to=/docs")).await.unwrap();
    page.find(Locator::Css("#email"))
        .await
        .unwrap()
        .send_keys("ada@example.com")
        .await
        .unwrap();
    let password = page.find(Locator::Css("#password")).await.unwrap();
    password.send_keys(PASSWORD).await.unwrap();
    password.send_keys(&Key::Enter.to_string()).await.unwrap();
    browser.wait_for_path("/docs").await;
    let explorer = page.window().await.unwrap();

    browser
        .wait_for(Locator::Css("button.btn.authorize"))
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_for(Locator::Css("#client_id_authorizationCode"))
        .await
        .send_keys(&client_id)
        .await
        .unwrap();
    // The Authorize button of the authorization-code flow's own section.
    let clicked = page
        .execute(
            "let section = document.getElementById('client_id_authorizationCode'); \
             while (section && !section.querySelector('button.authorize')) { section = section.parentElement; } \
             if (!section) { return false; } \
             section.querySelector('button.authorize').click(); return true;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(clicked, json!(true), "the flow's Authorize button");

    // The popup: sesame's consent page.
    let popup = browser.wait_for_new_window(&explorer).await;
    page.switch_to_window(popup).await.unwrap();
    browser
        .wait_for(Locator::Css("button[value=approve]"))
        .await
        .click()
        .await
        .unwrap();
    // The popup closes itself once it has handed the code to the explorer.
    browser.wait_for_windows(1).await;
    page.switch_to_window(explorer).await.unwrap();

    let token = browser
        .wait_for_script(
            "const auth = window.ui.authSelectors.authorized().toJS().oauth2_client_credentials; \
             return auth && auth.token ? auth.token.access_token : null;",
        )
        .await;
    let token = token.as_str().expect("an access token").to_owned();
    let me: Value = app.me_bearer(&token).await.json().await.unwrap();
    assert_eq!(me["kind"], "delegated", "{me}");
    assert_eq!(me["user"]["email"], "ada@example.com");
    assert_eq!(me["client_id"], client_id.as_str());

    browser.stop().await;
    app.stop().await;
}
