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

use support::{Browser, Callback, Spa};

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
    browser.sign_in("ada@example.com", PASSWORD).await;

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
    let password = browser.sign_in("ada@example.com", "not the password at all").await;
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
    browser.sign_in("ada@example.com", PASSWORD).await;
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

/// The account page, every action through a real Chromium with the keyboard and clicks,
/// each checked against the API from outside the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_page_does_everything_it_offers_end_to_end() {
    let app = TestApp::spawn(Backend::Sqlite, &[]).await;
    app.user("ada@example.com").await;
    // Ada elsewhere: another session, and an app she let act for her.
    let elsewhere = app.login("ada@example.com", PASSWORD).await;
    let bob = app.signed_in("bob@example.com").await;
    let app_client = grant_to_bobs_app(&app, &elsewhere, &bob).await;

    let browser = Browser::start().await;
    let page = browser.client();
    page.goto(&app.url("/account")).await.unwrap();
    browser.wait_for(Locator::Css("#signin-section:not([hidden])")).await;
    browser.sign_in("ada@example.com", PASSWORD).await;
    browser.wait_for(Locator::Css("#account:not([hidden])")).await;
    assert_eq!(browser.text_of("#who").await, "ada@example.com");
    let cookies = page.execute("return document.cookie", vec![]).await.unwrap();
    assert!(
        !cookies.as_str().unwrap_or_default().contains("sesame_session"),
        "{cookies}"
    );

    // Sessions: end the other one.
    browser
        .click(Locator::XPath(
            "//ul[@id='sessions']/li[not(starts-with(normalize-space(.), 'This session'))]//button",
        ))
        .await;
    browser.wait_for_text("#status", "The session has ended.").await;
    assert_eq!(status_of(&app, &elsewhere).await, StatusCode::UNAUTHORIZED);
    // ... and every other one.
    let another = app.login("ada@example.com", PASSWORD).await;
    browser.click(Locator::Css("#end-others")).await;
    browser.wait_for_text("#status", "Every other session has ended.").await;
    assert_eq!(status_of(&app, &another).await, StatusCode::UNAUTHORIZED);

    // A client: registered, its key shown once, copied, and working.
    page.find(Locator::Css("#client-name"))
        .await
        .unwrap()
        .send_keys("Backup job")
        .await
        .unwrap();
    let scopes = page.find(Locator::Css("#client-scopes")).await.unwrap();
    scopes.send_keys("notes:read").await.unwrap();
    scopes.send_keys(&Key::Enter.to_string()).await.unwrap();
    browser.wait_for(Locator::Css("#new-key:not([hidden])")).await;
    let client_id = browser.text_of("#new-key-client").await;
    let first_key = browser.text_of("#new-key-value").await;
    assert!(first_key.starts_with("sk_"), "{first_key}");
    assert!(
        !app.token_response(&client_id, &first_key, None)
            .await
            .status()
            .is_client_error()
    );
    browser.click(Locator::Css("#copy-key")).await;
    browser.wait_for_text("#status", "The key is copied.").await;
    browser.click(Locator::Css("#hide-key")).await;
    assert_eq!(browser.text_of("#new-key-value").await, "", "shown once");

    // A second key, then the first revoked (a destructive button asks twice).
    let client_row = format!("//li[@data-client='{client_id}']");
    browser
        .click(Locator::XPath(&format!(
            "{client_row}//button[normalize-space()='Add a key']"
        )))
        .await;
    browser.wait_for(Locator::Css("#new-key:not([hidden])")).await;
    let second_key = browser.text_of("#new-key-value").await;
    assert_ne!(second_key, first_key);
    browser.click(Locator::Css("#hide-key")).await;
    let first_key_id = app
        .token_body(&client_id, &first_key, None)
        .await
        .get("access_token")
        .map(|t| jwt_key_id(t.as_str().unwrap()))
        .expect("the first key still works");
    let revoke = format!("{client_row}//li[@data-key='{first_key_id}']//button");
    browser.click(Locator::XPath(&revoke)).await;
    browser.click(Locator::XPath(&revoke)).await;
    browser.wait_for_text("#status", "The key is revoked.").await;
    assert_eq!(
        app.token_response(&client_id, &first_key, None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.token_response(&client_id, &second_key, None).await.status(),
        StatusCode::OK
    );

    // The app acting for her: revoked.
    let grant = format!("//li[@data-grant='{app_client}']//button");
    browser.click(Locator::XPath(&grant)).await;
    browser.click(Locator::XPath(&grant)).await;
    browser.wait_for_text("#status", "can no longer act for you").await;

    // A screenshot for the README (phone width), before the password changes.
    page.execute("window.scrollTo(0, 0)", vec![]).await.unwrap();
    let shot = page.screenshot().await.unwrap();
    std::fs::write(std::env::temp_dir().join("sesame-account.png"), shot).ok();

    // The password.
    page.find(Locator::Css("#current-password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    let new = page.find(Locator::Css("#new-password")).await.unwrap();
    new.send_keys("a brand new passphrase").await.unwrap();
    new.send_keys(&Key::Enter.to_string()).await.unwrap();
    browser.wait_for_text("#status", "Password changed").await;
    let relogin = app
        .http()
        .post(app.url("/login"))
        .json(&json!({"email": "ada@example.com", "password": "a brand new passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(relogin.status(), StatusCode::OK);

    // The client deleted; its keys with it.
    let delete = format!("{client_row}//button[starts-with(normalize-space(), 'Delete client')]");
    browser.click(Locator::XPath(&delete)).await;
    browser.click(Locator::XPath(&delete)).await;
    browser.wait_for_text("#status", "Backup job is deleted.").await;
    assert_eq!(
        app.token_response(&client_id, &second_key, None).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Signing out ends the browser's session: the page asks to sign in again.
    browser.click(Locator::Css("#signout")).await;
    browser.wait_for(Locator::Css("#signin-section:not([hidden])")).await;
    page.refresh().await.unwrap();
    browser.wait_for(Locator::Css("#signin-section:not([hidden])")).await;

    let grants: Value = app
        .get_as(
            &app.login("ada@example.com", "a brand new passphrase").await,
            "/me/grants",
        )
        .await;
    assert_eq!(grants, json!([]), "the grant was revoked");
    browser.stop().await;
    app.stop().await;
}

/// Ada approves a public client of Bob's (over HTTP, with her other session); its id.
async fn grant_to_bobs_app(app: &TestApp, ada: &sesame_tests::Session, bob: &sesame_tests::Session) -> String {
    let callback = "https://app.example.com/cb";
    let client_id = app.public_client(bob, "Bob's notes", &["notes:read"], callback).await;
    app.approve(ada, &client_id, callback, "notes:read").await;
    client_id
}

/// `GET /me` with a session made over HTTP.
async fn status_of(app: &TestApp, session: &sesame_tests::Session) -> StatusCode {
    app.with_session(Method::GET, "/me", session)
        .send()
        .await
        .unwrap()
        .status()
}

/// The `key_id` claim of an access token.
fn jwt_key_id(token: &str) -> String {
    sesame_tests::jwt_part(token, 1)["key_id"].as_str().unwrap().to_owned()
}

/// A front end on another site than the API (§11): an SPA at `http://localhost:<port>`
/// signs in to sesame at `http://127.0.0.1:<port>` with `fetch(…, {credentials:
/// "include"})`, through a `samesite = "None"`, `partitioned` profile, and its next
/// requests are that user's. Both are loopback, which Chromium treats as secure, so the
/// `Secure` cookie needs no certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_front_end_on_another_site_signs_in_through_a_samesite_none_partitioned_profile() {
    let spa = Spa::start().await;
    let spa_origin = format!("http://localhost:{}", spa.port());
    let profile = format!(
        "[frontends.spa]\norigins = [\"{spa_origin}\"]\ncookie_name = \"spa_session\"\nsamesite = \"None\"\npartitioned = true\n"
    );
    let app = TestApp::spawn(
        Backend::Sqlite,
        &[(sesame_tests::CONFIG_FILE, &profile), ("SESAME_COOKIE_SECURE", "true")],
    )
    .await;
    app.user("ada@example.com").await;
    spa.serve_for(&app.base);

    let browser = Browser::start().await;
    let page = browser.client();
    page.goto(&format!("{spa_origin}/")).await.unwrap();
    browser.sign_in("ada@example.com", PASSWORD).await;
    // The SPA asks GET /me after signing in: the cookie went along, cross-site.
    browser.wait_for_text("#me", "ada@example.com").await;
    let cookies = page.execute("return document.cookie", vec![]).await.unwrap();
    assert_eq!(cookies, json!(""), "the SPA's own page sees no cookie");
    // The session is the profile's, and only the SPA's origin is answered by it.
    let sessions = browser.text_of("#sessions").await;
    assert!(sessions.contains("\"frontend\":\"spa\""), "{sessions}");

    browser.stop().await;
    app.stop().await;
}
