//! Session-cookie authentication: reading the cookie, checking the session against the
//! lifetime policy, coalescing `last_seen_at` writes, clearing ended sessions' cookies,
//! and the CSRF token check on unsafe methods.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Uri, header};
use sesame_core::CoreError;
use sesame_domain::principal::UserSession;
use sesame_domain::{Principal, SessionHandle, SessionHandleHash};
use tower_cookies::{Cookie, Cookies};
use tracing::instrument;

use crate::error::{ApiError, CsrfFailure};
use crate::state::{AppState, CookieConfig, HttpConfig};

/// The header carrying the session's CSRF token on unsafe requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Whether a method can change state and so needs CSRF protection.
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// The `Set-Cookie` for a new session: HttpOnly, `Path=/`, no `Domain`, no `Max-Age`
/// (it lasts as long as the browser session; the server decides when it ends).
pub fn session_cookie(config: &CookieConfig, handle: &SessionHandle) -> Cookie<'static> {
    Cookie::build((config.name.clone(), handle.expose().to_owned()))
        .path("/")
        .http_only(true)
        .secure(config.secure)
        .same_site(config.same_site)
        .partitioned(config.partitioned)
        .build()
}

/// The `Set-Cookie` that removes the session cookie: same name, path and `Secure`.
pub fn clearing_cookie(config: &CookieConfig) -> Cookie<'static> {
    Cookie::build((config.name.clone(), ""))
        .path("/")
        .http_only(true)
        .secure(config.secure)
        .same_site(config.same_site)
        .partitioned(config.partitioned)
        .max_age(time::Duration::ZERO)
        .build()
}

/// A cookie profile as a request speaks for it (§11): its name (`None`: the default
/// profile) and its cookie.
#[derive(Debug, Clone, Copy)]
pub struct Profile<'a> {
    pub frontend: Option<&'a str>,
    pub cookie: &'a CookieConfig,
}

/// The profile an `Origin` belongs to: a front end's whose origins list it, else the
/// default (the issuer's own, no `Origin`, or any other).
pub fn profile_of_origin<'a>(config: &'a HttpConfig, origin: Option<&str>) -> Profile<'a> {
    origin
        .and_then(|origin| config.frontends.iter().find(|f| f.origins.iter().any(|o| o == origin)))
        .map_or(
            Profile {
                frontend: None,
                cookie: &config.cookie,
            },
            |f| Profile {
                frontend: Some(&f.name),
                cookie: &f.cookie,
            },
        )
}

/// Which profile's cookie authenticates a request (§11): the one its `Origin` maps to,
/// whatever other cookies came along. Without an `Origin`: the default profile's cookie
/// if sent, else the one profile cookie sent; several profiles' cookies and no default
/// one say nothing of which site asks, so none is used (`None`).
pub fn profile_of_request<'a>(config: &'a HttpConfig, headers: &HeaderMap, cookies: &Cookies) -> Option<Profile<'a>> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        return Some(profile_of_origin(config, origin.to_str().ok()));
    }
    let default = Profile {
        frontend: None,
        cookie: &config.cookie,
    };
    if config.frontends.is_empty() || cookies.get(&config.cookie.name).is_some() {
        return Some(default);
    }
    let mut sent = config
        .frontends
        .iter()
        .filter(|f| cookies.get(&f.cookie.name).is_some());
    match (sent.next(), sent.next()) {
        (None, _) => Some(default),
        (Some(only), None) => Some(Profile {
            frontend: Some(&only.name),
            cookie: &only.cookie,
        }),
        (Some(_), Some(_)) => None,
    }
}

/// The handle's hash from the request's session cookie, if it sent one.
/// `Err` when a cookie is present but could not have been issued by this server.
pub fn presented_handle(cookies: &Cookies, config: &CookieConfig) -> Option<Result<SessionHandleHash, ()>> {
    let cookie = cookies.get(&config.name)?;
    Some(SessionHandle::parse(cookie.value()).map(|h| h.hash()).ok_or(()))
}

/// Looks up the session behind the request's cookie.
///
/// - no cookie → `Ok(None)`;
/// - a live session of an enabled user → `Ok(Some(..))`, its last-seen time refreshed
///   when the coalescing interval has passed;
/// - anything else (malformed, unknown, expired, disabled user) → `Unauthenticated`, and
///   the response clears the cookie.
#[instrument(skip_all)]
pub async fn authenticate(
    state: &AppState,
    cookies: &Cookies,
    headers: &HeaderMap,
) -> Result<Option<UserSession>, ApiError> {
    let Some(profile) = profile_of_request(&state.config, headers, cookies) else {
        return Ok(None);
    };
    let cookie_config = profile.cookie;
    let Some(presented) = presented_handle(cookies, cookie_config) else {
        return Ok(None);
    };
    let ended = || {
        cookies.add(clearing_cookie(cookie_config));
        ApiError::Unauthenticated
    };
    let hash = presented.map_err(|()| ended())?;
    match state.core.sessions().authenticate_for(&hash, profile.frontend).await {
        Ok(session) => Ok(Some(session)),
        Err(CoreError::SessionEnded) => Err(ended()),
        Err(other) => Err(other.into()),
    }
}

/// Checks the `X-CSRF-Token` header against the session's token.
pub fn check_csrf(parts: &Parts, session: &UserSession) -> Result<(), ApiError> {
    let presented = parts
        .headers
        .get(CSRF_HEADER)
        .ok_or(ApiError::Csrf(CsrfFailure::MissingToken))?;
    let presented = presented
        .to_str()
        .map_err(|_| ApiError::Csrf(CsrfFailure::WrongToken))?;
    if session.csrf_token.matches(presented) {
        Ok(())
    } else {
        Err(ApiError::Csrf(CsrfFailure::WrongToken))
    }
}

async fn cookies_of(parts: &mut Parts) -> Result<Cookies, ApiError> {
    Cookies::from_request_parts(parts, &())
        .await
        .map_err(|(_, message)| ApiError::internal(std::io::Error::other(message)))
}

/// A request authenticated by a live session cookie, with the CSRF token checked when
/// the method is unsafe. No cookie, or an ended session → 401.
#[derive(Debug, Clone)]
pub struct SessionUser(pub UserSession);

extractor!(SessionUser, |parts, state| {
    let MaybeSessionUser(session) = MaybeSessionUser::from_request_parts(parts, state).await?;
    session.map(Self).ok_or(ApiError::Unauthenticated)
});

/// Like [`SessionUser`], but a request without a live session is let through as `None`
/// (its stale cookie cleared). Used where "not signed in" is a fine answer (logout).
#[derive(Debug, Clone)]
pub struct MaybeSessionUser(pub Option<UserSession>);

extractor!(MaybeSessionUser, |parts, state| {
    let state = AppState::from_ref(state);
    let cookies = cookies_of(parts).await?;
    let session = match authenticate(&state, &cookies, &parts.headers).await {
        Ok(session) => session,
        Err(ApiError::Unauthenticated) => None,
        Err(other) => return Err(other),
    };
    if let Some(session) = &session
        && is_unsafe(&parts.method)
    {
        check_csrf(parts, session)?;
    }
    Ok(Self(session))
});

/// The bearer token in `Authorization`, if that header is present.
///
/// - no header → `Ok(None)`;
/// - `Bearer <token>` → `Ok(Some(token))`;
/// - another scheme, or a malformed header → `NoCredential` (RFC 6750 §3.1: no error
///   code when the request carries no bearer token at all);
/// - a token in the query string as well → `InvalidBearerRequest`.
pub fn bearer_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    if query_has_token(&parts.uri) {
        return Err(ApiError::InvalidBearerRequest(
            "Send the token in the Authorization header only.",
        ));
    }
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::NoCredential),
    }
}

/// Whether the query string carries an `access_token` (RFC 6750 §2.3), which sesame never
/// accepts as a credential.
pub fn query_has_token(uri: &Uri) -> bool {
    uri.query()
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(name, _)| name == "access_token"))
}

/// Verifies a bearer token minted for `audience` into a client principal; every failure
/// is `invalid_token`.
#[instrument(skip_all)]
pub async fn authenticate_bearer(state: &AppState, token: &str, audience: &str) -> Result<Principal, ApiError> {
    Ok(state.core.tokens().verify_for(token, audience).await?)
}

/// The audience a protected route serves (RFC 8707): a bearer token is accepted only if
/// its `aud` names it. [`SesameAudience`] is `SESAME_AUDIENCE`; a resource server with a
/// name of its own (one of `SESAME_RESOURCES`) declares it:
///
/// ```ignore
/// struct Notes;
/// impl Audience for Notes {
///     fn audience(_: &AppState) -> String {
///         "https://notes.example.com".into()
///     }
/// }
/// async fn list_notes(caller: RequireScope<NotesRead, Notes>) -> … { … }
/// ```
pub trait Audience {
    fn audience(state: &AppState) -> String;
}

/// sesame's own audience, `SESAME_AUDIENCE` (the issuer unless set).
#[derive(Debug, Clone, Copy)]
pub struct SesameAudience;

impl Audience for SesameAudience {
    fn audience(state: &AppState) -> String {
        state.core.tokens().settings().audience.clone()
    }
}

/// Any caller authenticated for the audience `A`: a bearer token whose `aud` names it, or
/// the session cookie (as [`Authenticated`]).
#[derive(Debug, Clone)]
pub struct AuthenticatedFor<A: Audience>(pub Principal, pub std::marker::PhantomData<A>);

impl<A, S> FromRequestParts<S> for AuthenticatedFor<A>
where
    A: Audience,
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        if let Some(token) = bearer_token(parts)? {
            let audience = A::audience(&state);
            let caller = authenticate_bearer(&state, token, &audience).await?;
            return Ok(Self(caller, std::marker::PhantomData));
        }
        let cookies = cookies_of(parts).await?;
        let session = authenticate(&state, &cookies, &parts.headers)
            .await?
            .ok_or(ApiError::NoCredential)?;
        if is_unsafe(&parts.method) {
            check_csrf(parts, &session)?;
        }
        Ok(Self(Principal::User(session), std::marker::PhantomData))
    }
}

/// Any authenticated caller: a bearer token if `Authorization` is present (it alone
/// decides), else the session cookie (with the CSRF check on unsafe methods).
///
/// Use it in your own handlers to protect routes with sesame:
///
/// ```ignore
/// async fn list_notes(Authenticated(caller): Authenticated) -> Result<Json<Vec<Note>>, ApiError> {
///     require_scope(&caller, "notes:read")?;
///     // …
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

extractor!(Authenticated, |parts, state| {
    let AuthenticatedFor(caller, _) = AuthenticatedFor::<SesameAudience>::from_request_parts(parts, state).await?;
    Ok(Self(caller))
});

/// Refuses a caller without `scope` with 403 `insufficient_scope`.
pub fn require_scope(caller: &Principal, scope: &str) -> Result<(), ApiError> {
    if caller.has_scope(scope) {
        Ok(())
    } else {
        Err(ApiError::InsufficientScope(scope.to_owned()))
    }
}

/// Names a scope at the type level, for [`RequireScope`].
pub trait ScopeName {
    const SCOPE: &'static str;
}

/// A caller authenticated for the audience `A` (sesame's own by default) that holds the
/// scope `S::SCOPE`: a token carrying it, or a session whose user holds it.
#[derive(Debug, Clone)]
pub struct RequireScope<S: ScopeName, A: Audience = SesameAudience>(
    pub Principal,
    pub std::marker::PhantomData<(S, A)>,
);

impl<S, A, St> FromRequestParts<St> for RequireScope<S, A>
where
    S: ScopeName,
    A: Audience,
    AppState: FromRef<St>,
    St: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let AuthenticatedFor(caller, _) = AuthenticatedFor::<A>::from_request_parts(parts, state).await?;
        require_scope(&caller, S::SCOPE)?;
        Ok(Self(caller, std::marker::PhantomData))
    }
}
