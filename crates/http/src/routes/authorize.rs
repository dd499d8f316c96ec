//! The browser half of delegated access (§10): `GET /authorize`, the consent page and its
//! `POST /authorize`, and the sign-in page. These are pages for people, not API
//! operations, so the OpenAPI document does not list them (its OAuth flows point here).
//!
//! Every page works with no network access and sends a strict CSP with
//! `frame-ancestors 'none'` (no clickjacking of Approve).

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Form, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use html_escape::encode_double_quoted_attribute as attr;
use html_escape::encode_text as text;
use serde::Deserialize;
use sesame_core::authorizations::{AuthorizationRequest, Checked, Decision};
use sesame_domain::principal::UserSession;
use tower_cookies::Cookies;

use crate::auth::{MaybeSessionUser, authenticate};
use crate::error::ApiError;
use crate::state::AppState;

/// The sign-in page's body.
const SIGNIN_BODY: &str = include_str!("../../assets/pages/signin.html");
const SIGNIN_SCRIPT: &str = include_str!("../../assets/pages/signin.js");
const PAGES_CSS: &str = include_str!("../../assets/pages/pages.css");
/// The account page's body.
const ACCOUNT_BODY: &str = include_str!("../../assets/pages/account.html");
const ACCOUNT_SCRIPT: &str = include_str!("../../assets/pages/account.js");

/// The static pages, each made once.
static SIGNIN_PAGE: LazyLock<String> = LazyLock::new(|| document("Sign in", SIGNIN_BODY));
static ACCOUNT_PAGE: LazyLock<String> = LazyLock::new(|| document("Your account", ACCOUNT_BODY));

/// A whole page: the head every page shares, with `title` (escaped here), around `body`
/// (HTML, escaped by its maker).
fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<link rel=\"stylesheet\" href=\"/assets/pages.css\">\n</head>\n<body>\n{body}</body>\n</html>\n",
        text(title)
    )
}

/// A page's policy: its own stylesheet and script, calls to this server, forms posted to
/// `form_action` only, never framed.
fn policy(form_action: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
         form-action {form_action}; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// The pages and their assets.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/authorize", get(authorize).post(consent))
        .route("/signin", get(signin))
        // The account page (§11): the public JSON API, from a page of the binary's.
        .route(
            "/account",
            get(|| async { page(StatusCode::OK, ACCOUNT_PAGE.clone(), "'self'") }),
        )
        .route(
            "/assets/account.js",
            get(|| async { asset(ACCOUNT_SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/signin.js",
            get(|| async { asset(SIGNIN_SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/pages.css",
            get(|| async { asset(PAGES_CSS, "text/css; charset=utf-8") }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// An HTML page with its policy; never cached (it may carry a CSRF token).
fn page(status: StatusCode, html: String, form_action: &str) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Nothing of the page's URL leaves for another origin (the app sees no `Referer`),
    // while a form posted back here keeps its `Origin` (under `no-referrer` a browser
    // sends `Origin: null`, which the cross-site check rightly refuses).
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if let Ok(value) = HeaderValue::from_str(&policy(form_action)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// A page that says why the request cannot go on (never a redirect).
fn refusal(status: StatusCode, why: &str) -> Response {
    let body = format!(
        "<main>\n<h1>This request cannot continue</h1>\n<p class=\"error\" role=\"alert\">{}</p>\n\
         <p>Go back to the application and try again, or tell its developers.</p>\n</main>\n",
        text(why)
    );
    page(status, document("Cannot continue", &body), "'none'")
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            response.headers_mut().insert(header::LOCATION, value);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(_) => refusal(StatusCode::BAD_REQUEST, "The redirect URI cannot be used."),
    }
}

/// The request's parameters; one given twice is refused (RFC 6749 §3.1).
fn parse_request(query: &str) -> Result<(AuthorizationRequest, Option<i64>), String> {
    let mut request = AuthorizationRequest::default();
    let mut login_after = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        let slot = match name.as_ref() {
            "resource" => {
                request.resources.push(value);
                continue;
            }
            "login_after" => {
                login_after = value.parse().ok();
                continue;
            }
            "response_type" => &mut request.response_type,
            "client_id" => &mut request.client_id,
            "redirect_uri" => &mut request.redirect_uri,
            "scope" => &mut request.scope,
            "state" => &mut request.state,
            "code_challenge" => &mut request.code_challenge,
            "code_challenge_method" => &mut request.code_challenge_method,
            "prompt" => &mut request.prompt,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(format!("The parameter {name:?} is given more than once."));
        }
    }
    Ok((request, login_after))
}

/// `GET /authorize`.
async fn authorize(State(state): State<AppState>, MaybeSessionUser(session): MaybeSessionUser, uri: Uri) -> Response {
    let query = uri.query().unwrap_or_default();
    let (request, login_after) = match parse_request(query) {
        Ok(parsed) => parsed,
        Err(why) => return refusal(StatusCode::BAD_REQUEST, &why),
    };
    // `prompt=login` is met by a sign-in made after the request first came (the sign-in
    // page brings the browser back with `login_after` set).
    let fresh = session
        .as_ref()
        .zip(login_after)
        .is_some_and(|(s, after)| s.signed_in_at.unix_timestamp() >= after);
    match state
        .core
        .authorizations()
        .decide(&request, session.as_ref(), fresh)
        .await
    {
        Ok(decision) => answer(&state, decision, session.as_ref(), query),
        Err(error) => ApiError::from(error).into_response(),
    }
}

fn answer(state: &AppState, decision: Decision, session: Option<&UserSession>, query: &str) -> Response {
    match decision {
        Decision::Refused(why) => refusal(StatusCode::BAD_REQUEST, &why),
        Decision::Redirect(back) => see_other(&back.location()),
        Decision::SignIn => {
            let now = state.core.now().unix_timestamp();
            let without: String = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form_urlencoded::parse(query.as_bytes()).filter(|(n, _)| n != "login_after"))
                .finish();
            let return_to = format!("/authorize?{without}&login_after={now}");
            let target = format!(
                "{}?return_to={}",
                state.config.signin_url,
                form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
            );
            see_other(&target)
        }
        Decision::Consent(checked) => match session {
            Some(session) => consent_page(state, &checked, session, query),
            None => refusal(StatusCode::UNAUTHORIZED, "Sign in first."),
        },
    }
}

/// Where the consent form may send the browser: here, then the client's redirect URI.
fn form_action_for(redirect_uri: &str) -> String {
    let target = url::Url::parse(redirect_uri)
        .map(|url| match url.scheme() {
            "http" | "https" => url.origin().ascii_serialization(),
            scheme => format!("{scheme}:"),
        })
        .unwrap_or_default();
    format!("'self' {target}")
}

fn consent_page(state: &AppState, checked: &Checked, session: &UserSession, query: &str) -> Response {
    let catalogue = &state.core.settings().scopes;
    let scopes: String = checked
        .scopes
        .iter()
        .map(|scope| {
            let description = catalogue
                .get(scope.as_str())
                .and_then(|info| info.description.clone())
                .map(|d| format!(" — {}", text(&d)))
                .unwrap_or_default();
            format!("<li><code>{}</code>{description}</li>\n", text(scope.as_str()))
        })
        .collect();
    let scopes = if scopes.is_empty() {
        "<li>nothing beyond knowing who you are</li>\n".to_owned()
    } else {
        scopes
    };
    let client = &checked.client;
    let body = format!(
        "<main>\n<h1>Allow <strong>{name}</strong> to act for you?</h1>\n\
         <p>You are signed in as {email}. <strong>{name}</strong> (registered by user <code>{owner}</code>) asks to:</p>\n\
         <ul class=\"scopes\">\n{scopes}</ul>\n\
         <form method=\"post\" action=\"/authorize\">\n\
         <input type=\"hidden\" name=\"request\" value=\"{request}\">\n\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">\n\
         <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\n\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n\
         </form>\n</main>\n",
        name = text(&client.name),
        email = text(session.user.email.as_str()),
        owner = text(&client.owner_id.to_string()),
        request = attr(query),
        csrf = attr(session.csrf_token.expose()),
    );
    let html = document(&format!("Allow {}?", client.name), &body);
    page(StatusCode::OK, html, &form_action_for(&checked.redirect_uri))
}

/// The consent form.
#[derive(Deserialize)]
struct ConsentForm {
    request: String,
    csrf_token: String,
    decision: String,
}

/// `POST /authorize`: Approve or Deny, with the session and its CSRF token.
async fn consent(
    State(state): State<AppState>,
    cookies: Cookies,
    headers: axum::http::HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    let session = match authenticate(&state, &cookies, &headers).await {
        Ok(Some(session)) => session,
        Ok(None) | Err(ApiError::Unauthenticated) => {
            return refusal(
                StatusCode::UNAUTHORIZED,
                "Your session has ended: start again from the application.",
            );
        }
        Err(other) => return other.into_response(),
    };
    if !session.csrf_token.matches(&form.csrf_token) {
        return refusal(StatusCode::FORBIDDEN, "This form did not come from your session.");
    }
    let (request, _) = match parse_request(&form.request) {
        Ok(parsed) => parsed,
        Err(why) => return refusal(StatusCode::BAD_REQUEST, &why),
    };
    let flow = state.core.authorizations();
    let decided = match form.decision.as_str() {
        "approve" => flow.approve(&request, &session).await,
        "deny" => flow.deny(&request).await,
        _ => return refusal(StatusCode::BAD_REQUEST, "Choose Approve or Deny."),
    };
    match decided {
        Ok(decision) => answer(&state, decision, Some(&session), &form.request),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// `GET /signin`: the sign-in page (`SESAME_SIGNIN_URL` by default).
async fn signin() -> Response {
    page(StatusCode::OK, SIGNIN_PAGE.clone(), "'self'")
}
