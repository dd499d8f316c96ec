//! Service-level tests of every lifecycle, on SQLite and Postgres, with a manual clock:
//! time is moved, never waited for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use sesame_core::accounts::Registrar;
use sesame_core::authorizations::{AuthorizationRequest, Decision, RedirectBack};
use sesame_core::clients::ClientSpec;
use sesame_core::sealing::Sealer;
use sesame_core::sessions::{Origin, StartedSession};
use sesame_core::tokens::{ClientAuth, Grant, GrantRequest, PresentedClient};
use sesame_core::{Core, CoreError, HashingPool, ManualClock, Settings, SigningAlg, TokenSettings};
use sesame_domain::password::{HashParams, PasswordHasher};
use sesame_domain::{Budget, Catalogue, PasswordPolicy, ScopeInfo, SessionPolicy, ThrottlePolicy};
use sesame_tests::{Backend, TestDb, on_both_backends};

on_both_backends!(
    the_authorization_code_flow_asks_consent_once_and_redeems_a_code_once,
    an_authorization_request_is_refused_on_a_page_or_sent_back_with_an_error,
    taking_a_scope_away_revokes_the_owners_tokens_at_once_and_later_ones_lack_it,
    a_session_ends_after_its_idle_lifetime_unless_used,
    a_session_ends_at_its_absolute_lifetime_however_it_is_used,
    logging_out_everywhere_ends_every_other_session,
    a_password_change_ends_every_other_session,
    disabling_a_user_ends_sessions_refuses_keys_and_revokes_tokens,
    a_revoked_key_stops_at_once_and_a_new_key_works,
    a_token_is_issued_verified_introspected_revoked_and_expires,
    revocations_are_pruned_once_no_token_they_concern_can_be_live,
    a_throttle_window_closes_on_the_budget_and_opens_when_it_passes,
    a_token_request_authenticates_the_client_however_it_presented_itself,
    the_refresh_grant_rotates_narrows_and_ends_a_family_reused_after_the_grace,
    a_refresh_family_ends_when_idle_at_its_absolute_lifetime_and_with_its_grant,
    a_profile_session_answers_only_through_its_profile_and_lives_by_its_lifetimes,
);

const PASSWORD: &str = "correct horse battery staple";
const IP: &str = "192.0.2.1";

fn settings() -> Settings {
    Settings {
        sessions: SessionPolicy {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3_600),
        },
        throttle: ThrottlePolicy {
            account_ip: Budget {
                limit: 3,
                window: Duration::from_secs(60),
            },
            ..ThrottlePolicy::default()
        },
        passwords: PasswordPolicy { min_length: 8 },
        registration_open: true,
        tokens: TokenSettings {
            issuer: "https://auth.example.com".into(),
            audience: "https://auth.example.com".into(),
            ttl: Duration::from_secs(900),
            alg: SigningAlg::EdDsa,
            publish_delay: Duration::from_secs(330),
            sealer: Arc::new(Sealer::default()),
            resources: Vec::new(),
            revocation_poll: sesame_core::tokens::revocation::POLL_INTERVAL,
            notifications: true,
        },
        scopes: Catalogue::Open,
        auth_code_ttl: Duration::from_secs(60),
        refresh: sesame_core::RefreshPolicy::default(),
        frontends: Vec::new(),
    }
}

/// The application on a fresh database of `backend`, reading time from a manual clock.
async fn core(backend: Backend) -> (Core, ManualClock, Arc<TestDb>) {
    core_with(backend, settings()).await
}

async fn core_with(backend: Backend, settings: Settings) -> (Core, ManualClock, Arc<TestDb>) {
    let db = TestDb::create(backend).await;
    let store = db.store().await;
    store.database.migrate().await.unwrap();
    let clock = ManualClock::new();
    let hashing = HashingPool::new(PasswordHasher::new(HashParams::default()).unwrap(), 2);
    let core = Core::new(settings, store, hashing, Arc::new(clock.clone()))
        .await
        .unwrap();
    (core, clock, db)
}

fn origin() -> Origin {
    Origin {
        ip: IP.into(),
        user_agent: Some("tests".into()),
    }
}

async fn signed_in(core: &Core, email: &str) -> StartedSession {
    if core.accounts().find(email).await.is_err() {
        core.accounts()
            .register(email, PASSWORD.into(), Registrar::Operator)
            .await
            .unwrap();
    }
    core.sessions()
        .login(email, PASSWORD.into(), &origin(), None)
        .await
        .unwrap()
}

/// Waits until another instance has `heard` (of a database notification), failing with
/// `never` after 5 s of wall time: what is awaited is a real listener, not the clock.
async fn heard_within_5s(heard: impl AsyncFn() -> bool, never: &str) {
    let started = std::time::Instant::now();
    while !heard().await {
        assert!(started.elapsed() < Duration::from_secs(5), "{never}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn is_live(core: &Core, session: &StartedSession) -> bool {
    match core.sessions().authenticate(&session.handle.hash()).await {
        Ok(_) => true,
        Err(CoreError::SessionEnded) => false,
        Err(other) => panic!("{other:?}"),
    }
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

/// Moves the clock on `n` minutes, then says whether the session still answers.
async fn live_after(core: &Core, clock: &ManualClock, session: &StartedSession, n: u64) -> bool {
    clock.advance(minutes(n));
    is_live(core, session).await
}

/// Uses a session `times` times, `every` minutes apart, asserting each time it is live.
async fn use_every(core: &Core, clock: &ManualClock, session: &StartedSession, every: u64, times: usize) {
    for time in 1..=times {
        assert!(
            live_after(core, clock, session, every).await,
            "used {time} × {every} min"
        );
    }
}

async fn a_session_ends_at_its_absolute_lifetime_however_it_is_used(backend: Backend) {
    let (core, clock, _db) = core(backend).await;
    let session = signed_in(&core, "ada@example.com").await;
    use_every(&core, &clock, &session, 20, 35).await;
    // 11 h 40 min so far; at 12 h it ends although it was used 20 minutes ago.
    assert!(!live_after(&core, &clock, &session, 20).await);
}

async fn a_session_ends_after_its_idle_lifetime_unless_used(backend: Backend) {
    let (core, clock, _db) = core(backend).await;
    let session = signed_in(&core, "ada@example.com").await;
    // Used every 29 minutes, it lives on past the idle lifetime.
    use_every(&core, &clock, &session, 29, 4).await;
    // Left alone for 30 minutes, it ends, and stays ended.
    assert!(!live_after(&core, &clock, &session, 30).await);
    clock.advance(time::Duration::minutes(-20));
    assert!(
        !is_live(&core, &session).await,
        "an ended session is deleted, not resumed"
    );
}

async fn logging_out_everywhere_ends_every_other_session(backend: Backend) {
    let (core, _clock, _db) = core(backend).await;
    let current = signed_in(&core, "ada@example.com").await;
    let others = [
        signed_in(&core, "ada@example.com").await,
        signed_in(&core, "ada@example.com").await,
    ];
    let bystander = signed_in(&core, "bob@example.com").await;
    let ended = core
        .sessions()
        .end_others(current.user.id, Some(current.session.session_id))
        .await
        .unwrap();
    assert_eq!(ended, 2);
    assert!(is_live(&core, &current).await);
    for other in &others {
        assert!(!is_live(&core, other).await);
    }
    assert!(is_live(&core, &bystander).await);
    assert_eq!(core.sessions().list(current.user.id).await.unwrap().len(), 1);
}

async fn a_password_change_ends_every_other_session(backend: Backend) {
    let (core, _clock, _db) = core(backend).await;
    let current = signed_in(&core, "ada@example.com").await;
    let other = signed_in(&core, "ada@example.com").await;
    // A wrong current password changes nothing.
    let wrong = core
        .accounts()
        .change_password(&current.session, "not it at all".into(), "a new passphrase".into(), IP)
        .await;
    assert!(matches!(wrong, Err(CoreError::WrongCurrentPassword)));
    assert!(is_live(&core, &other).await);
    core.accounts()
        .change_password(&current.session, PASSWORD.into(), "a new passphrase".into(), IP)
        .await
        .unwrap();
    assert!(is_live(&core, &current).await);
    assert!(!is_live(&core, &other).await);
    let old = core
        .sessions()
        .login("ada@example.com", PASSWORD.into(), &origin(), None)
        .await;
    assert!(matches!(old, Err(CoreError::InvalidCredentials)));
    core.sessions()
        .login("ada@example.com", "a new passphrase".into(), &origin(), None)
        .await
        .unwrap();
}

/// A client of `owner` with one scope; its id and key as a client presents them.
async fn client_of(core: &Core, owner: &StartedSession) -> PresentedClient {
    let created = core
        .clients()
        .register(owner.user.id, "sync", &["notes:read".to_owned()])
        .await
        .unwrap();
    PresentedClient {
        client_id: Some(created.client.id.as_str().to_owned()),
        secret: created.key.as_ref().unwrap().key.expose().into(),
    }
}

async fn taking_a_scope_away_revokes_the_owners_tokens_at_once_and_later_ones_lack_it(backend: Backend) {
    let scope = |name: &str| sesame_domain::Scope::parse(name).unwrap();
    let restricted = ScopeInfo {
        description: None,
        restricted: true,
    };
    let catalogue = Catalogue::declared([
        (scope("notes:read"), ScopeInfo::default()),
        (scope("admin"), restricted),
    ]);
    let (core, _clock, _db) = core_with(
        backend,
        Settings {
            scopes: catalogue,
            ..settings()
        },
    )
    .await;
    let ada = signed_in(&core, "ada@example.com").await;
    let both = ["admin".to_owned(), "notes:read".to_owned()];
    assert!(matches!(
        core.clients().register(ada.user.id, "admin tool", &both).await,
        Err(CoreError::Validation(_))
    ));
    assert!(
        !core
            .sessions()
            .authenticate(&ada.handle.hash())
            .await
            .unwrap()
            .held
            .contains("admin")
    );

    core.accounts()
        .grant_scopes("ada@example.com", &["admin".into()])
        .await
        .unwrap();
    let session = core.sessions().authenticate(&ada.handle.hash()).await.unwrap();
    assert!(session.held.contains("admin"), "a grant is seen at once by the session");
    let created = core.clients().register(ada.user.id, "admin tool", &both).await.unwrap();
    let client = PresentedClient {
        client_id: Some(created.client.id.as_str().to_owned()),
        secret: created.key.as_ref().unwrap().key.expose().into(),
    };
    let token = core.tokens().exchange(&client, None, IP).await.unwrap();
    assert_eq!(token.claims.scope, "admin notes:read");
    assert!(core.tokens().verify(&token.token).await.is_ok());

    core.accounts()
        .revoke_scopes("ada@example.com", &["admin".into()])
        .await
        .unwrap();
    assert!(core.tokens().verify(&token.token).await.is_err(), "revoked at once");
    let later = core.tokens().exchange(&client, None, IP).await.unwrap();
    assert_eq!(later.claims.scope, "notes:read");
    assert!(core.tokens().verify(&later.token).await.is_ok());
    assert!(matches!(
        core.tokens().exchange(&client, Some("admin"), IP).await,
        Err(CoreError::InvalidScope(_))
    ));
    let session = core.sessions().authenticate(&ada.handle.hash()).await.unwrap();
    assert!(!session.held.contains("admin"));
    // The session itself lives on: taking a scope away is not a logout.
    assert!(is_live(&core, &ada).await);
}

async fn disabling_a_user_ends_sessions_refuses_keys_and_revokes_tokens(backend: Backend) {
    let (core, _clock, _db) = core(backend).await;
    let ada = signed_in(&core, "ada@example.com").await;
    let client = client_of(&core, &ada).await;
    let token = core.tokens().exchange(&client, None, IP).await.unwrap().token;
    assert!(core.tokens().verify(&token).await.is_ok());

    core.accounts().disable("ada@example.com").await.unwrap();
    assert!(!is_live(&core, &ada).await);
    assert!(matches!(
        core.tokens().exchange(&client, None, IP).await,
        Err(CoreError::InvalidClient)
    ));
    assert!(core.tokens().verify(&token).await.is_err());
    assert!(core.tokens().introspect(&token).await.is_none());

    // Enabled again: the key works, the old token stays revoked, no session comes back.
    core.accounts().enable("ada@example.com").await.unwrap();
    let fresh = core.tokens().exchange(&client, None, IP).await.unwrap().token;
    assert!(core.tokens().verify(&fresh).await.is_ok());
    assert!(core.tokens().verify(&token).await.is_err());
    assert!(!is_live(&core, &ada).await);
}

async fn a_revoked_key_stops_at_once_and_a_new_key_works(backend: Backend) {
    let (core, _clock, _db) = core(backend).await;
    let ada = signed_in(&core, "ada@example.com").await;
    let first = client_of(&core, &ada).await;
    let client_id = first.client_id.clone().unwrap();
    // Exchanged once, the key is in the cache.
    let token = core.tokens().exchange(&first, None, IP).await.unwrap().token;
    let second = core.clients().add_key(ada.user.id, &client_id).await.unwrap();
    let second = PresentedClient {
        client_id: Some(client_id.clone()),
        secret: second.key.expose().into(),
    };
    let listed = core.clients().get(ada.user.id, &client_id).await.unwrap();
    let first_key = listed.keys[0].id.0.to_string();
    core.clients()
        .revoke_key(ada.user.id, &client_id, &first_key)
        .await
        .unwrap();
    // At once, although cached: the key, and every token exchanged with it.
    assert!(matches!(
        core.tokens().exchange(&first, None, IP).await,
        Err(CoreError::InvalidClient)
    ));
    assert!(core.tokens().verify(&token).await.is_err());
    let other = core.tokens().exchange(&second, None, IP).await.unwrap().token;
    assert!(core.tokens().verify(&other).await.is_ok());
    // Someone else's client is not found, and its keys cannot be touched.
    let bob = signed_in(&core, "bob@example.com").await;
    assert!(matches!(
        core.clients().revoke_key(bob.user.id, &client_id, &first_key).await,
        Err(CoreError::NotFound)
    ));
}

async fn a_token_is_issued_verified_introspected_revoked_and_expires(backend: Backend) {
    let (core, clock, _db) = core(backend).await;
    let ada = signed_in(&core, "ada@example.com").await;
    let client = client_of(&core, &ada).await;
    let caller = core.tokens().authenticate_client(&client, IP).await.unwrap();
    let issued = core.tokens().exchange(&client, Some("notes:read"), IP).await.unwrap();
    assert_eq!(issued.expires_in, 900);
    let sesame_domain::Principal::Client(verified) = core.tokens().verify(&issued.token).await.unwrap() else {
        panic!("a client-credentials token is the client");
    };
    assert_eq!(verified.client_id.as_str(), client.client_id.as_deref().unwrap());
    let introspected = core.tokens().introspect(&issued.token).await.unwrap();
    assert_eq!(introspected.owner.as_deref(), Some(ada.user.id.to_string().as_str()));
    assert!(matches!(
        core.tokens().exchange(&client, Some("admin"), IP).await,
        Err(CoreError::InvalidScope(_))
    ));

    core.tokens().revoke(&caller, &issued.token, IP).await.unwrap();
    assert!(core.tokens().verify(&issued.token).await.is_err());
    assert!(core.tokens().introspect(&issued.token).await.is_none());

    // Another token expires with its lifetime, give or take the 60 s leeway.
    let other = core.tokens().exchange(&client, None, IP).await.unwrap().token;
    clock.advance(Duration::from_secs(900 + 60));
    assert!(core.tokens().verify(&other).await.is_ok(), "within the leeway");
    clock.advance(Duration::from_secs(1));
    assert!(core.tokens().verify(&other).await.is_err());
}

async fn revocations_are_pruned_once_no_token_they_concern_can_be_live(backend: Backend) {
    let (core, clock, db) = core(backend).await;
    let ada = signed_in(&core, "ada@example.com").await;
    let client = client_of(&core, &ada).await;
    let caller = core.tokens().authenticate_client(&client, IP).await.unwrap();
    let token = core.tokens().exchange(&client, None, IP).await.unwrap().token;
    core.tokens().revoke(&caller, &token, IP).await.unwrap();
    let store = db.store().await;
    let logged = || async {
        store
            .revocations
            .revocations_since(time::OffsetDateTime::UNIX_EPOCH, time::OffsetDateTime::UNIX_EPOCH)
            .await
            .unwrap()
            .len()
    };
    assert_eq!(logged().await, 1);
    core.sweep().await;
    assert_eq!(logged().await, 1, "kept while the token could be live");
    clock.advance(Duration::from_secs(900 + 61));
    core.sweep().await;
    assert_eq!(logged().await, 0);
    store.database.close().await;
}

async fn a_throttle_window_closes_on_the_budget_and_opens_when_it_passes(backend: Backend) {
    let (core, clock, _db) = core(backend).await;
    core.accounts()
        .register("ada@example.com", PASSWORD.into(), Registrar::Operator)
        .await
        .unwrap();
    let login = |password: &'static str| {
        let core = core.clone();
        async move {
            core.sessions()
                .login("ada@example.com", password.into(), &origin(), None)
                .await
        }
    };
    for _ in 0..3 {
        assert!(matches!(
            login("wrong wrong wrong").await,
            Err(CoreError::InvalidCredentials)
        ));
    }
    // The budget (3 a minute) is spent: refused whatever the password, with the wait.
    match login(PASSWORD).await {
        Err(CoreError::Throttled { retry_after }) => {
            assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(60));
        }
        other => panic!("{other:?}"),
    }
    clock.advance(Duration::from_secs(59));
    assert!(matches!(login(PASSWORD).await, Err(CoreError::Throttled { .. })));
    // A minute after the failures, the window has passed them.
    clock.advance(Duration::from_secs(2));
    assert!(login(PASSWORD).await.is_ok());
}

async fn a_token_request_authenticates_the_client_however_it_presented_itself(backend: Backend) {
    let (core, _clock, _db) = core(backend).await;
    let ada = signed_in(&core, "ada@example.com").await;
    let client = client_of(&core, &ada).await;
    let (id, key) = (client.client_id.clone().unwrap(), client.secret.clone());
    let request = |client: ClientAuth, scope: Option<&str>| GrantRequest {
        grant: Grant::ClientCredentials,
        client,
        scope: scope.map(str::to_owned),
        resources: Vec::new(),
    };
    for auth in [
        ClientAuth::Basic {
            client_id: id.clone(),
            secret: key.clone(),
        },
        ClientAuth::Post {
            client_id: Some(id.clone()),
            secret: key.clone(),
        },
        ClientAuth::Post {
            client_id: None,
            secret: key.clone(),
        },
        ClientAuth::ApiKey { secret: key.clone() },
    ] {
        let granted = core
            .tokens()
            .grant(&request(auth, Some("notes:read")), IP)
            .await
            .unwrap();
        assert_eq!((granted.token_type, granted.scope.as_str()), ("Bearer", "notes:read"));
        assert!(core.tokens().verify(&granted.access_token).await.is_ok());
    }
    // A key presented under another client's id is no key at all.
    let bob = signed_in(&core, "bob@example.com").await;
    let other = client_of(&core, &bob).await;
    let mismatched = ClientAuth::Basic {
        client_id: other.client_id.unwrap(),
        secret: key,
    };
    assert!(matches!(
        core.tokens().grant(&request(mismatched, None), IP).await,
        Err(CoreError::InvalidClient)
    ));
}

/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const CALLBACK: &str = "https://app.example.com/cb";

async fn public_client(core: &Core, owner: &StartedSession) -> sesame_domain::Client {
    let spec = ClientSpec {
        name: "Notes app".into(),
        scopes: vec!["notes:read".into(), "notes:write".into()],
        client_type: sesame_domain::ClientType::Public,
        redirect_uris: vec![CALLBACK.into(), "http://127.0.0.1/cb".into()],
    };
    core.clients().register_spec(owner.user.id, &spec).await.unwrap().client
}

fn request_for(client: &sesame_domain::Client) -> AuthorizationRequest {
    AuthorizationRequest {
        response_type: Some("code".into()),
        client_id: Some(client.id.as_str().into()),
        redirect_uri: Some(CALLBACK.into()),
        scope: Some("notes:read".into()),
        state: Some("xyz".into()),
        code_challenge: Some(CHALLENGE.into()),
        code_challenge_method: Some("S256".into()),
        ..AuthorizationRequest::default()
    }
}

fn redirected(decision: Decision) -> RedirectBack {
    match decision {
        Decision::Redirect(back) => back,
        other => panic!("expected a redirect, got {other:?}"),
    }
}

async fn the_authorization_code_flow_asks_consent_once_and_redeems_a_code_once(backend: Backend) {
    let (core, clock, _db) = core(backend).await;
    let ada = signed_in(&core, "ada@example.com").await;
    // Bob's app acts for Ada.
    let bob = signed_in(&core, "bob@example.com").await;
    let client = public_client(&core, &bob).await;
    let request = request_for(&client);
    let flow = core.authorizations();

    // No session: sign in first, or, with prompt=none, login_required.
    assert!(matches!(
        flow.decide(&request, None, false).await.unwrap(),
        Decision::SignIn
    ));
    let silent = AuthorizationRequest {
        prompt: Some("none".into()),
        ..request.clone()
    };
    let back = redirected(flow.decide(&silent, None, false).await.unwrap());
    assert_eq!(back.param("error"), Some("login_required"));
    assert_eq!(back.param("state"), Some("xyz"));
    assert_eq!(back.param("iss"), Some("https://auth.example.com"));

    // Signed in, no grant yet: consent is asked (and never silently assumed).
    let session = &ada.session;
    assert!(matches!(
        flow.decide(&request, Some(session), false).await.unwrap(),
        Decision::Consent(_)
    ));
    let back = redirected(flow.decide(&silent, Some(session), false).await.unwrap());
    assert_eq!(back.param("error"), Some("consent_required"));
    let denied = redirected(flow.deny(&request).await.unwrap());
    assert_eq!(denied.param("error"), Some("access_denied"));

    // Approved: a code for the callback, with state and iss.
    let back = redirected(flow.approve(&request, session).await.unwrap());
    assert!(
        back.location().starts_with("https://app.example.com/cb?code=ac_"),
        "{}",
        back.location()
    );
    assert_eq!(
        (back.param("state"), back.param("iss")),
        (Some("xyz"), Some("https://auth.example.com"))
    );
    let code = back.param("code").unwrap().to_owned();

    // Granted once, the next request comes straight back with a code, unless consent is
    // asked for.
    let again = redirected(flow.decide(&request, Some(session), false).await.unwrap());
    assert!(again.param("code").is_some_and(|c| c != code));
    let ask = AuthorizationRequest {
        prompt: Some("consent".into()),
        ..request.clone()
    };
    assert!(matches!(
        flow.decide(&ask, Some(session), false).await.unwrap(),
        Decision::Consent(_)
    ));
    let login = AuthorizationRequest {
        prompt: Some("login".into()),
        ..request.clone()
    };
    assert!(matches!(
        flow.decide(&login, Some(session), false).await.unwrap(),
        Decision::SignIn
    ));
    assert!(matches!(
        flow.decide(&login, Some(session), true).await.unwrap(),
        Decision::Redirect(_)
    ));

    // Redeemed with the verifier: a delegated token for Ada.
    let token = flow
        .redeem(&client, &code, Some(CALLBACK), Some(VERIFIER))
        .await
        .unwrap();
    assert_eq!(token.issued.claims.sub, ada.user.id.to_string());
    assert_eq!(token.issued.claims.client_id, client.id.as_str());
    assert_eq!(token.issued.claims.scope, "notes:read");
    assert_eq!(
        token.issued.claims.auth_time,
        Some(session.signed_in_at.unix_timestamp())
    );
    assert!(token.issued.claims.key_id.is_empty());
    let verified = core.tokens().verify(&token.issued.token).await.unwrap();
    let sesame_domain::Principal::Delegated(delegated) = verified else {
        panic!("a delegated token acts for the user: {verified:?}");
    };
    assert_eq!(
        (delegated.user_id, delegated.client_id.clone()),
        (ada.user.id, client.id.clone())
    );
    assert!(verified_scope(&delegated.scopes));
    // Disabling the user revokes what acts for them at once (and its grant's codes are
    // theirs no more): the app's token first of all.
    let spare = redirected(flow.decide(&request, Some(session), false).await.unwrap());
    let spare = flow
        .redeem(&client, spare.param("code").unwrap(), Some(CALLBACK), Some(VERIFIER))
        .await
        .unwrap();
    core.accounts().disable("ada@example.com").await.unwrap();
    assert!(
        core.tokens().verify(&spare.issued.token).await.is_err(),
        "a disabled user's delegated token"
    );
    core.accounts().enable("ada@example.com").await.unwrap();
    let ada = signed_in(&core, "ada@example.com").await;
    let session = &ada.session;
    // The disable ended the grant too: consent is asked again.
    assert!(core.authorizations().grants(ada.user.id).await.unwrap().is_empty());
    assert!(matches!(
        flow.decide(&request, Some(session), false).await.unwrap(),
        Decision::Consent(_)
    ));
    flow.approve(&request, session).await.unwrap();

    // Presented again: refused, and the token it was exchanged for is revoked.
    assert!(matches!(
        flow.redeem(&client, &code, Some(CALLBACK), Some(VERIFIER)).await,
        Err(CoreError::InvalidGrant(_))
    ));
    assert!(core.tokens().verify(&token.issued.token).await.is_err());

    // Each binding is checked: verifier, redirect URI, client, lifetime.
    let fresh = || async {
        let back = redirected(flow.decide(&request, Some(session), false).await.unwrap());
        back.param("code").unwrap().to_owned()
    };
    let other = public_client(&core, &ada).await;
    let wrong_verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj";
    for (who, redirect, verifier) in [
        (&client, Some(CALLBACK), Some(wrong_verifier)),
        (&client, Some(CALLBACK), None),
        (&client, Some("http://127.0.0.1/cb"), Some(VERIFIER)),
        (&client, None, Some(VERIFIER)),
        (&other, Some(CALLBACK), Some(VERIFIER)),
    ] {
        let code = fresh().await;
        assert!(matches!(
            flow.redeem(who, &code, redirect, verifier).await,
            Err(CoreError::InvalidGrant(_))
        ));
    }
    let code = fresh().await;
    clock.advance(Duration::from_secs(61));
    assert!(matches!(
        flow.redeem(&client, &code, Some(CALLBACK), Some(VERIFIER)).await,
        Err(CoreError::InvalidGrant(_))
    ));
    assert!(matches!(
        flow.redeem(&client, "ac_not-a-code", Some(CALLBACK), Some(VERIFIER))
            .await,
        Err(CoreError::InvalidGrant(_))
    ));
}

async fn an_authorization_request_is_refused_on_a_page_or_sent_back_with_an_error(backend: Backend) {
    let (core, _clock, _db) = core(backend).await;
    let ada = signed_in(&core, "ada@example.com").await;
    let client = public_client(&core, &ada).await;
    let request = request_for(&client);
    let flow = core.authorizations();
    let session = Some(&ada.session);

    // What cannot be trusted is never redirected to.
    for untrusted in [
        AuthorizationRequest {
            client_id: Some("cli_AAAAAAAAAAAAAAAAAAAAAA".into()),
            ..request.clone()
        },
        AuthorizationRequest {
            client_id: None,
            ..request.clone()
        },
        AuthorizationRequest {
            redirect_uri: Some("https://evil.example.com/cb".into()),
            ..request.clone()
        },
        // Two are registered: the request must say which.
        AuthorizationRequest {
            redirect_uri: None,
            ..request.clone()
        },
    ] {
        let decision = flow.decide(&untrusted, session, false).await.unwrap();
        assert!(matches!(decision, Decision::Refused(_)), "{untrusted:?}: {decision:?}");
    }
    // A loopback redirect URI matches on any port.
    let loopback = AuthorizationRequest {
        redirect_uri: Some("http://127.0.0.1:53123/cb".into()),
        ..request.clone()
    };
    assert!(matches!(
        flow.decide(&loopback, session, false).await.unwrap(),
        Decision::Consent(_)
    ));

    // Everything else goes back to the client, with state and iss.
    for (bad, error) in [
        (
            AuthorizationRequest {
                response_type: Some("token".into()),
                ..request.clone()
            },
            "unsupported_response_type",
        ),
        (
            AuthorizationRequest {
                response_type: None,
                ..request.clone()
            },
            "invalid_request",
        ),
        (
            AuthorizationRequest {
                code_challenge: None,
                ..request.clone()
            },
            "invalid_request",
        ),
        (
            AuthorizationRequest {
                code_challenge_method: Some("plain".into()),
                ..request.clone()
            },
            "invalid_request",
        ),
        (
            AuthorizationRequest {
                scope: Some("admin".into()),
                ..request.clone()
            },
            "invalid_scope",
        ),
        (
            AuthorizationRequest {
                prompt: Some("select_account".into()),
                ..request.clone()
            },
            "invalid_request",
        ),
        (
            AuthorizationRequest {
                resources: vec!["https://evil.example.com".into()],
                ..request.clone()
            },
            "invalid_target",
        ),
    ] {
        let back = redirected(flow.decide(&bad, session, false).await.unwrap());
        assert_eq!(back.param("error"), Some(error), "{bad:?}");
        assert_eq!(back.param("state"), Some("xyz"));
        assert_eq!(back.param("iss"), Some("https://auth.example.com"));
        assert!(back.location().starts_with(CALLBACK));
    }
}

fn verified_scope(scopes: &sesame_domain::Scopes) -> bool {
    scopes.contains("notes:read") && !scopes.contains("notes:write")
}

/// Ada approves Bob's public app for `scope`; the code redeemed: the first delegated
/// token and refresh token.
async fn delegated_to(
    core: &Core,
    ada: &StartedSession,
    client: &sesame_domain::Client,
    scope: &str,
) -> sesame_core::authorizations::Delegated {
    let request = AuthorizationRequest {
        scope: Some(scope.into()),
        ..request_for(client)
    };
    let flow = core.authorizations();
    let back = redirected(flow.approve(&request, &ada.session).await.unwrap());
    flow.redeem(client, back.param("code").unwrap(), Some(CALLBACK), Some(VERIFIER))
        .await
        .unwrap()
}

fn refresh_request(client: &sesame_domain::Client, token: &str, scope: Option<&str>) -> GrantRequest {
    GrantRequest {
        grant: Grant::RefreshToken {
            refresh_token: token.to_owned(),
        },
        client: ClientAuth::None {
            client_id: client.id.as_str().to_owned(),
        },
        scope: scope.map(str::to_owned),
        resources: Vec::new(),
    }
}

async fn refreshed(
    core: &Core,
    client: &sesame_domain::Client,
    token: &str,
) -> Result<sesame_core::tokens::GrantResponse, CoreError> {
    core.tokens().grant(&refresh_request(client, token, None), IP).await
}

async fn the_refresh_grant_rotates_narrows_and_ends_a_family_reused_after_the_grace(backend: Backend) {
    let (core, clock, _db) = core(backend).await;
    let ada = signed_in(&core, "ada@example.com").await;
    let bob = signed_in(&core, "bob@example.com").await;
    let client = public_client(&core, &bob).await;
    let first = delegated_to(&core, &ada, &client, "notes:read notes:write").await;
    let family = first.issued.claims.refresh_family.clone().expect("a family claim");
    assert!(first.refresh.expose().starts_with("rt_"));

    // Rotation: a new pair, the old refresh token spent.
    let second = refreshed(&core, &client, first.refresh.expose()).await.unwrap();
    let next = second.refresh_token.clone().expect("the next refresh token");
    assert_ne!(next, first.refresh.expose());
    assert_eq!(second.scope, "notes:read notes:write");
    let principal = core.tokens().verify(&second.access_token).await.unwrap();
    assert!(matches!(principal, sesame_domain::Principal::Delegated(ref d) if d.user_id == ada.user.id));

    // Two tabs: the spent token still works within the grace, not after it.
    clock.advance(Duration::from_secs(10));
    let tab = refreshed(&core, &client, first.refresh.expose()).await.unwrap();
    assert!(core.tokens().verify(&tab.access_token).await.is_ok());

    // Scope only narrows; a request outside it is refused and spends nothing.
    let wider = core
        .tokens()
        .grant(&refresh_request(&client, &next, Some("notes:read admin")), IP)
        .await;
    assert!(matches!(wider, Err(CoreError::InvalidScope(_))), "{:?}", wider.err());
    let narrow = core
        .tokens()
        .grant(&refresh_request(&client, &next, Some("notes:read")), IP)
        .await
        .unwrap();
    assert_eq!(narrow.scope, "notes:read");
    // The family keeps the grant's scopes: the next refresh may ask for all of them.
    let after_narrow = refreshed(&core, &client, narrow.refresh_token.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(after_narrow.scope, "notes:read notes:write");

    // Another client's token is not this client's to use.
    let other = public_client(&core, &bob).await;
    let stolen = refreshed(&core, &other, after_narrow.refresh_token.as_deref().unwrap()).await;
    assert!(matches!(stolen, Err(CoreError::InvalidGrant(_))));

    // Past the grace, the spent first token ends the whole family: every refresh token
    // and every access token issued from it.
    clock.advance(Duration::from_secs(1));
    let reused = refreshed(&core, &client, first.refresh.expose()).await;
    assert!(matches!(reused, Err(CoreError::InvalidGrant(_))), "{:?}", reused.err());
    for access in [
        &first.issued.token,
        &second.access_token,
        &tab.access_token,
        &after_narrow.access_token,
    ] {
        assert!(
            core.tokens().verify(access).await.is_err(),
            "an access token of the ended family"
        );
    }
    let live = refreshed(&core, &client, after_narrow.refresh_token.as_deref().unwrap()).await;
    assert!(
        matches!(live, Err(CoreError::InvalidGrant(_))),
        "the family's newest token ends with it"
    );
    let flow = core.authorizations();
    assert!(
        flow.introspect_refresh(&client.id, after_narrow.refresh_token.as_deref().unwrap())
            .await
            .unwrap()
            .is_none()
    );

    // Another family of the same grant is untouched.
    let kept = delegated_to(&core, &ada, &client, "notes:read").await;
    assert_ne!(kept.issued.claims.refresh_family.as_deref(), Some(family.as_str()));
    assert!(refreshed(&core, &client, kept.refresh.expose()).await.is_ok());
}

async fn a_refresh_family_ends_when_idle_at_its_absolute_lifetime_and_with_its_grant(backend: Backend) {
    let settings = Settings {
        refresh: sesame_core::RefreshPolicy {
            idle: time::Duration::hours(1),
            absolute: time::Duration::hours(3),
        },
        ..settings()
    };
    let (core, clock, _db) = core_with(backend, settings).await;
    let ada = signed_in(&core, "ada@example.com").await;
    let bob = signed_in(&core, "bob@example.com").await;
    let client = public_client(&core, &bob).await;

    // Idle: used every 59 minutes it lives on, until the absolute lifetime.
    let delegated = delegated_to(&core, &ada, &client, "notes:read").await;
    let mut token = delegated.refresh.expose().to_owned();
    let introspected = core
        .authorizations()
        .introspect_refresh(&client.id, &token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(introspected.sub, ada.user.id.to_string());
    assert_eq!(
        introspected.exp,
        (core.now() + time::Duration::hours(1)).unix_timestamp()
    );
    for _ in 0..3 {
        clock.advance(minutes(59));
        token = refreshed(&core, &client, &token).await.unwrap().refresh_token.unwrap();
    }
    clock.advance(minutes(4));
    let past_absolute = refreshed(&core, &client, &token).await;
    assert!(
        matches!(past_absolute, Err(CoreError::InvalidGrant(_))),
        "3 h 1 min after the code"
    );

    // Left alone for an hour, a family ends.
    let delegated = delegated_to(&core, &ada, &client, "notes:read").await;
    clock.advance(minutes(60));
    let idle = refreshed(&core, &client, delegated.refresh.expose()).await;
    assert!(matches!(idle, Err(CoreError::InvalidGrant(_))));

    // Ending the grant ends its families and their access tokens.
    let delegated = delegated_to(&core, &ada, &client, "notes:read").await;
    core.authorizations()
        .end_grant(ada.user.id, client.id.as_str())
        .await
        .unwrap();
    assert!(refreshed(&core, &client, delegated.refresh.expose()).await.is_err());
    assert!(core.tokens().verify(&delegated.issued.token).await.is_err());

    // A password change ends every family and delegated token, and keeps the consent.
    let delegated = delegated_to(&core, &ada, &client, "notes:read").await;
    core.accounts()
        .change_password(&ada.session, PASSWORD.into(), "a new passphrase".into(), IP)
        .await
        .unwrap();
    assert!(refreshed(&core, &client, delegated.refresh.expose()).await.is_err());
    assert!(core.tokens().verify(&delegated.issued.token).await.is_err());
    assert_eq!(core.authorizations().grants(ada.user.id).await.unwrap().len(), 1);
    let ada = core
        .sessions()
        .login("ada@example.com", "a new passphrase".into(), &origin(), None)
        .await
        .unwrap();
    let silent = redirected(
        core.authorizations()
            .decide(&request_for(&client), Some(&ada.session), false)
            .await
            .unwrap(),
    );
    assert!(silent.param("code").is_some(), "the recorded consent stays");

    // Revoking a refresh token (RFC 7009) ends its family.
    let delegated = delegated_to(&core, &ada, &client, "notes:read").await;
    let public = ClientAuth::None {
        client_id: client.id.as_str().to_owned(),
    };
    core.tokens()
        .revoke_as(&public, delegated.refresh.expose(), IP)
        .await
        .unwrap();
    assert!(refreshed(&core, &client, delegated.refresh.expose()).await.is_err());
    assert!(core.tokens().verify(&delegated.issued.token).await.is_err());

    // A replayed code ends the family its first redemption started.
    let request = request_for(&client);
    let back = redirected(core.authorizations().approve(&request, &ada.session).await.unwrap());
    let code = back.param("code").unwrap();
    let first = core
        .authorizations()
        .redeem(&client, code, Some(CALLBACK), Some(VERIFIER))
        .await
        .unwrap();
    let replay = core
        .authorizations()
        .redeem(&client, code, Some(CALLBACK), Some(VERIFIER))
        .await;
    assert!(matches!(replay, Err(CoreError::InvalidGrant(_))));
    assert!(refreshed(&core, &client, first.refresh.expose()).await.is_err());
}

async fn a_profile_session_answers_only_through_its_profile_and_lives_by_its_lifetimes(backend: Backend) {
    let settings = Settings {
        frontends: vec![(
            "admin".to_owned(),
            SessionPolicy {
                idle: minutes(5),
                absolute: minutes(60),
            },
        )],
        ..settings()
    };
    let (core, clock, _db) = core_with(backend, settings).await;
    core.accounts()
        .register("ada@example.com", PASSWORD.into(), Registrar::Operator)
        .await
        .unwrap();
    let sessions = core.sessions();
    let admin = sessions
        .login_for("ada@example.com", PASSWORD.into(), &origin(), None, Some("admin"))
        .await
        .unwrap();
    let default = signed_in(&core, "ada@example.com").await;
    let hash = admin.handle.hash();
    // Through its own profile only; the default profile's cookie carrying it is nothing.
    assert!(sessions.authenticate_for(&hash, Some("admin")).await.is_ok());
    assert!(matches!(
        sessions.authenticate_for(&hash, None).await,
        Err(CoreError::SessionEnded)
    ));
    assert!(matches!(
        sessions.authenticate_for(&default.handle.hash(), Some("admin")).await,
        Err(CoreError::SessionEnded)
    ));
    assert!(
        sessions.authenticate_for(&hash, Some("admin")).await.is_ok(),
        "left alone"
    );
    let listed = sessions.list(admin.user.id).await.unwrap();
    let frontends: Vec<_> = listed.iter().map(|s| s.frontend.clone()).collect();
    assert_eq!(frontends, [None, Some("admin".to_owned())]);
    // Its own idle lifetime (5 min), not the default's (30 min).
    clock.advance(minutes(6));
    assert!(matches!(
        sessions.authenticate_for(&hash, Some("admin")).await,
        Err(CoreError::SessionEnded)
    ));
    assert!(is_live(&core, &default).await);
    assert_eq!(sessions.list(admin.user.id).await.unwrap().len(), 1);
}

/// Postgres tells every instance of a revocation, and of sessions ended, as it commits
/// (`NOTIFY`): an instance whose own poll is an hour away, and whose clock never lets a
/// cached session age, refuses a token revoked and a session ended elsewhere all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_another_instance_by_notification_without_its_poll() {
    let (a, _clock, db) = core(Backend::Postgres).await;
    let mut slow = settings();
    slow.tokens.revocation_poll = Duration::from_secs(3_600);
    let b = Core::new(
        slow,
        db.store().await,
        HashingPool::new(PasswordHasher::new(HashParams::default()).unwrap(), 1),
        Arc::new(ManualClock::new()),
    )
    .await
    .unwrap();
    let follower = tokio::spawn({
        let b = b.clone();
        async move { b.follow_changes().await }
    });
    let ada = signed_in(&a, "ada@example.com").await;
    let client = client_of(&a, &ada).await;
    let caller = a.tokens().authenticate_client(&client, IP).await.unwrap();
    // Whatever reads b's log first (the poll's immediate first tick, or the listener's
    // start), once b refuses a first revoked token the next tick is an hour away: from
    // then on only a notification can tell b anything.
    let refused_within = |token: String| {
        let (a, b, caller) = (a.clone(), b.clone(), caller.clone());
        async move {
            assert!(b.tokens().verify(&token).await.is_ok());
            a.tokens().revoke(&caller, &token, IP).await.unwrap();
            let heard = async || b.tokens().verify(&token).await.is_err();
            heard_within_5s(
                heard,
                "another instance never heard of the revocation (its poll is an hour away)",
            )
            .await;
        }
    };
    refused_within(a.tokens().exchange(&client, None, IP).await.unwrap().token).await;
    refused_within(a.tokens().exchange(&client, None, IP).await.unwrap().token).await;

    // Sessions: b's clock stands still, so its cached session never ages out; only the
    // database's word that it ended can make b refuse it.
    for end in ["logout", "all others"] {
        let session = signed_in(&a, "ada@example.com").await;
        let hash = session.handle.hash();
        assert!(b.sessions().authenticate(&hash).await.is_ok(), "cached on b");
        match end {
            "logout" => a.sessions().logout(&session.session, IP).await.unwrap(),
            _ => {
                let keeper = signed_in(&a, "ada@example.com").await;
                a.sessions()
                    .end_others(keeper.user.id, Some(keeper.session.session_id))
                    .await
                    .unwrap();
            }
        }
        let heard = async || b.sessions().authenticate(&hash).await.is_err();
        heard_within_5s(heard, &format!("b never heard that the session ended ({end})")).await;
    }
    follower.abort();
}
