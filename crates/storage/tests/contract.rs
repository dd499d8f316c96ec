//! The storage contract: every method of every store trait, with its edge cases, run on
//! SQLite and on Postgres from one test body each (`on_both_backends!`), so the two
//! backends cannot drift apart.
//!
//! Databases come from the black-box suite's support crate: SQLite gets a file in a
//! temporary directory, Postgres a fresh database per test on `SESAME_TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`), dropped afterwards. A
//! Postgres that cannot be reached fails the test; nothing is skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sesame_domain::{
    ApiKey, ApiKeyId, AuthorizationCode, ClientId, ClientType, CodeChallenge, CsrfToken, Email, RefreshToken, Scopes,
    SessionHandle, SessionHandleHash, SessionId, SessionOrigin, StaticClaims, ThrottleKey, User, UserId,
    parse_redirect_uris,
};
use sesame_storage::{
    ApiKeyRecord, AuthorizationSweep, Backend, ClientRecord, CodeRecord, DisabledUser, FamilyRecord, GrantChange,
    GrantOutcome, NewSession, Redemption, RefreshRotation, Revocation, RevocationKind, Rotation, SessionCutoffs,
    SessionRecord, SigningKeyRecord, StorageError, Store, UserRecord,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// A migrated store on a fresh database of `backend` (the suite's own: a temporary
/// SQLite file, or a Postgres database dropped afterwards; a missing Postgres fails).
async fn store_on(backend: sesame_tests::Backend) -> (std::sync::Arc<sesame_tests::TestDb>, Store) {
    let db = sesame_tests::TestDb::create(backend).await;
    let store = db.store().await;
    let expected = match backend {
        sesame_tests::Backend::Sqlite => Backend::Sqlite,
        sesame_tests::Backend::Postgres => Backend::Postgres,
    };
    assert_eq!(store.backend, expected);
    store.database.migrate().await.expect("migrate");
    (db, store)
}

/// Runs `test` on a fresh, migrated store of `backend`, then closes it.
async fn run_on(backend: sesame_tests::Backend, test: impl AsyncFnOnce(&Store)) {
    let (_db, store) = store_on(backend).await;
    test(&store).await;
    store.database.close().await;
}

/// Runs each named test body (an `async fn(&Store)`) once on SQLite and once on Postgres.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::run_on(sesame_tests::Backend::Sqlite, super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::run_on(sesame_tests::Backend::Postgres, super::$name).await;
                }
            )*
        }
    };
}

on_both_backends!(
    migrating_again_changes_nothing_and_the_database_answers_pings,
    a_created_user_is_found_by_email_and_by_id,
    a_missing_user_is_not_found,
    a_second_user_with_a_taken_email_is_email_taken,
    updating_a_password_hash_keeps_the_sessions,
    a_session_is_created_only_under_the_current_credential_version,
    changing_the_password_ends_every_other_session_of_that_user,
    disabling_a_user_ends_their_sessions_and_keeps_the_first_time,
    disabling_an_unknown_email_finds_no_one,
    granted_scopes_change_only_from_what_was_read_and_taking_one_away_revokes,
    client_claims_change_only_from_what_was_read,
    a_public_client_is_stored_without_a_key_with_its_redirect_uris,
    a_code_is_redeemed_once_and_every_later_presentation_is_a_replay,
    a_grant_only_widens_and_concurrent_approvals_lose_nothing,
    a_refresh_family_rotates_each_token_once_and_ends_whole,
    a_family_outlives_neither_its_grant_nor_its_lifetimes,
    a_session_is_found_by_its_handle_hash_with_its_user,
    a_reused_session_handle_hash_is_refused_but_is_no_email_conflict,
    touching_a_session_only_moves_last_seen_forward,
    deleting_a_session_by_hash_says_whether_there_was_one,
    deleting_another_users_session_returns_false,
    deleting_a_users_sessions_spares_the_kept_one_and_other_users,
    listing_sessions_leaves_out_expired_ones_newest_first,
    expired_sessions_are_deleted_on_either_deadline,
    recent_failures_are_those_of_the_asked_keys_inside_the_window,
    clearing_failures_forgets_one_key_only,
    concurrent_reservations_never_charge_past_a_limit,
    a_released_reservation_frees_its_place_and_a_settled_one_stays,
    pruning_failures_deletes_up_to_the_cutoff,
    a_created_client_is_found_with_its_first_key,
    listing_clients_gives_each_its_own_keys_oldest_first,
    missing_clients_and_keys_are_not_found,
    deleting_a_client_takes_its_keys_and_records_the_revocation,
    only_the_owner_can_delete_a_client,
    revoking_a_key_keeps_the_first_revocation_time,
    revoking_a_key_of_another_client_or_an_unknown_key_returns_false,
    touching_a_key_only_moves_last_used_forward,
    a_key_with_a_taken_id_is_refused,
    signing_keys_come_back_whole_in_the_order_they_were_added,
    a_signing_key_with_a_taken_kid_is_refused,
    revocations_since_are_bounded_by_creation_and_expiry,
    the_log_is_read_by_the_databases_clock_whatever_the_entries_say,
    pruning_revocations_deletes_what_has_expired_by_now,
);

// Fixtures.

/// A fixed instant plus `seconds`: whole microseconds, as both databases keep them.
fn at(seconds: i64) -> OffsetDateTime {
    datetime!(2030-01-01 00:00 UTC) + Duration::seconds(seconds)
}

fn email(text: &str) -> Email {
    Email::parse(text).expect("email")
}

async fn add_user(store: &Store, address: &str) -> User {
    let user = User {
        id: UserId::new(),
        email: email(address),
        created_at: at(0),
    };
    store
        .users
        .create_user(&user, "$argon2id$hash")
        .await
        .expect("create user");
    user
}

fn new_session(user: &User, created_at: OffsetDateTime) -> NewSession {
    NewSession {
        id: SessionId::new(),
        user_id: user.id,
        handle_hash: SessionHandle::generate().hash(),
        csrf_token: CsrfToken::generate(),
        created_at,
        origin: SessionOrigin {
            user_agent: Some("curl/8".to_owned()),
            ip: None,
        },
        credential_version: 0,
        frontend: None,
    }
}

async fn add_session(store: &Store, user: &User, created_at: OffsetDateTime) -> NewSession {
    let session = new_session(user, created_at);
    assert!(store.sessions.create_session(&session).await.expect("create session"));
    session
}

async fn session_exists(store: &Store, hash: &SessionHandleHash) -> bool {
    store.sessions.find_session(hash).await.expect("find session").is_some()
}

/// A session that must be there, with its user.
async fn stored_session(store: &Store, hash: &SessionHandleHash) -> (SessionRecord, UserRecord) {
    store.sessions.find_session(hash).await.unwrap().expect("session found")
}

fn client_of(owner: &User, name: &str, scopes: &str, created_at: OffsetDateTime) -> ClientRecord {
    ClientRecord {
        id: ClientId::generate(),
        owner_id: owner.id,
        name: name.to_owned(),
        scopes: Scopes::parse_space_separated(scopes).expect("scopes"),
        created_at,
        claims: StaticClaims::default(),
        client_type: ClientType::Confidential,
        redirect_uris: Vec::new(),
    }
}

fn key_of(client: &ClientRecord, created_at: OffsetDateTime) -> ApiKeyRecord {
    let (key, id) = ApiKey::generate();
    ApiKeyRecord {
        id,
        client_id: client.id.clone(),
        key_hash: key.hash(),
        created_at,
        last_used_at: None,
        revoked_at: None,
    }
}

/// A client with one key, stored.
async fn add_client(
    store: &Store,
    owner: &User,
    scopes: &str,
    created_at: OffsetDateTime,
) -> (ClientRecord, ApiKeyRecord) {
    let client = client_of(owner, "reporting", scopes, created_at);
    let key = key_of(&client, created_at);
    store
        .clients
        .create_client(&client, Some(&key))
        .await
        .expect("create client");
    (client, key)
}

fn revocation(
    kind: RevocationKind,
    subject: &str,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Revocation {
    Revocation {
        kind,
        subject: subject.to_owned(),
        created_at,
        expires_at,
    }
}

/// Changes `user`'s password to `$argon2id$new` at `seconds`, keeping the session `kept`:
/// what the change logged for the delegated tokens it ended.
async fn change_password(store: &Store, user: &User, kept: &NewSession, seconds: i64) -> Vec<Revocation> {
    store
        .users
        .change_password(
            user.id,
            "$argon2id$new",
            kept.id,
            revocation(RevocationKind::Owner, "", at(seconds), at(99)),
        )
        .await
        .unwrap()
}

/// Rotates `token` of `family` at `seconds` (to a successor nobody keeps), accepting a
/// token spent no earlier than `grace_since`.
async fn rotate_once(
    store: &Store,
    token: &RefreshToken,
    family: uuid::Uuid,
    seconds: i64,
    grace_since: i64,
) -> Rotation {
    store
        .authorizations
        .rotate_refresh(&RefreshRotation {
            hash: &token.hash(),
            family,
            next: &RefreshToken::generate().hash(),
            at: at(seconds),
            grace_since: at(grace_since),
        })
        .await
        .unwrap()
}

/// Ada with a session to keep (at 10 s) and two to end (11 s, 12 s), and Bob with one of
/// his own (13 s).
struct Household {
    ada: User,
    bob: User,
    kept: NewSession,
    ended: [NewSession; 2],
    bystander: NewSession,
}

async fn household(store: &Store) -> Household {
    let ada = add_user(store, "ada@example.com").await;
    let bob = add_user(store, "bob@example.com").await;
    Household {
        kept: add_session(store, &ada, at(10)).await,
        ended: [
            add_session(store, &ada, at(11)).await,
            add_session(store, &ada, at(12)).await,
        ],
        bystander: add_session(store, &bob, at(13)).await,
        ada,
        bob,
    }
}

/// An owner revocation logged at `at`, kept until `keep_until` (its subject left for
/// the store to fill in).
fn owner_revocation(at: OffsetDateTime, keep_until: OffsetDateTime) -> Revocation {
    Revocation {
        kind: RevocationKind::Owner,
        subject: String::new(),
        created_at: at,
        expires_at: keep_until,
    }
}

/// Sessions last seen after `at(seen)` and created after `at(created)` are live.
fn cutoffs(seen: i64, created: i64) -> SessionCutoffs {
    SessionCutoffs {
        seen: at(seen),
        created: at(created),
    }
}

/// The stored record of a user that exists.
async fn found_user(store: &Store, id: UserId) -> UserRecord {
    store.users.find_user_by_id(id).await.unwrap().expect("the user exists")
}

/// Disables a user that exists, its owner revocation kept until `at(4000)`.
async fn disabled_at(store: &Store, user: &User, when: OffsetDateTime) -> DisabledUser {
    let disabled = store
        .users
        .disable_user(&user.email, owner_revocation(when, at(4000)))
        .await
        .unwrap();
    disabled.expect("the user exists")
}

async fn revocations_of(store: &Store, subject: &str) -> Vec<Revocation> {
    let all = store
        .revocations
        .revocations_since(at(-1_000_000), at(-1_000_000))
        .await
        .expect("revocations");
    all.into_iter().filter(|r| r.subject == subject).collect()
}

fn key_ids(keys: &[ApiKeyRecord]) -> Vec<ApiKeyId> {
    keys.iter().map(|k| k.id).collect()
}

// Database.

async fn migrating_again_changes_nothing_and_the_database_answers_pings(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    store.database.migrate().await.expect("second migration");
    store.database.ping().await.expect("ping");
    assert!(store.users.find_user_by_id(user.id).await.unwrap().is_some());
}

// Users.

async fn a_created_user_is_found_by_email_and_by_id(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    for found in [
        store.users.find_user_by_email(&user.email).await.unwrap(),
        store.users.find_user_by_id(user.id).await.unwrap(),
    ] {
        let found = found.expect("user found");
        assert_eq!(found.user, user);
        assert_eq!(found.password_hash, "$argon2id$hash");
        assert_eq!(found.disabled_at, None);
        assert!(!found.is_disabled());
        // Its Debug, as a log line would print it, leaves the hash out.
        let shown = format!("{found:?}");
        assert!(!shown.contains("argon2id") && shown.contains("[redacted]"), "{shown}");
    }
}

async fn a_missing_user_is_not_found(store: &Store) {
    add_user(store, "ada@example.com").await;
    let by_email = store.users.find_user_by_email(&email("bob@example.com")).await;
    assert!(by_email.unwrap().is_none());
    assert!(store.users.find_user_by_id(UserId::new()).await.unwrap().is_none());
}

async fn a_second_user_with_a_taken_email_is_email_taken(store: &Store) {
    let first = add_user(store, "ada@example.com").await;
    let second = User {
        id: UserId::new(),
        email: email("ada@example.com"),
        created_at: at(5),
    };
    let outcome = store.users.create_user(&second, "$argon2id$other").await;
    assert!(matches!(outcome, Err(StorageError::EmailTaken)), "{outcome:?}");
    let found = store.users.find_user_by_email(&first.email).await.unwrap().unwrap();
    assert_eq!(found.user.id, first.id);
    assert!(store.users.find_user_by_id(second.id).await.unwrap().is_none());
}

async fn updating_a_password_hash_keeps_the_sessions(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    let session = add_session(store, &user, at(10)).await;
    // Only over the hash it replaces: a password changed meanwhile stays.
    assert!(
        !store
            .users
            .update_password_hash(user.id, "$argon2id$rehashed", "$argon2id$not-the-stored-one")
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .users
            .find_user_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$hash"
    );
    assert!(
        store
            .users
            .update_password_hash(user.id, "$argon2id$rehashed", "$argon2id$hash")
            .await
            .unwrap()
    );
    let found = found_user(store, user.id).await;
    assert_eq!(found.password_hash, "$argon2id$rehashed");
    assert!(session_exists(store, &session.handle_hash).await);
}

async fn a_session_is_created_only_under_the_current_credential_version(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    let kept = add_session(store, &user, at(10)).await;
    // "Log out everywhere" (or a password change) bumps the version and moves the kept
    // session to it.
    let logged = change_password(store, &user, &kept, 14).await;
    assert!(logged.is_empty(), "no grant, nothing delegated to end: {logged:?}");
    let found = found_user(store, user.id).await;
    assert_eq!(found.credential_version, 1);
    let (kept_record, _) = stored_session(store, &kept.handle_hash).await;
    assert_eq!(kept_record.credential_version, 1);
    // A login that verified against version 0 gets no session.
    let stale = new_session(&user, at(20));
    assert!(!store.sessions.create_session(&stale).await.unwrap());
    assert!(!session_exists(store, &stale.handle_hash).await);
    let current = NewSession {
        credential_version: 1,
        frontend: Some("shop".into()),
        ..new_session(&user, at(20))
    };
    assert!(store.sessions.create_session(&current).await.unwrap());
    // The cookie profile it was started through is kept.
    let (stored, _) = stored_session(store, &current.handle_hash).await;
    assert_eq!(stored.frontend.as_deref(), Some("shop"));
    assert_eq!(kept_record.frontend, None);
    store
        .sessions
        .delete_user_sessions(user.id, Some(current.id))
        .await
        .unwrap();
    let found = found_user(store, user.id).await;
    assert_eq!(found.credential_version, 2);
    // No session for a disabled user, whatever its version.
    store
        .users
        .disable_user(&user.email, owner_revocation(at(30), at(4000)))
        .await
        .unwrap();
    let disabled = NewSession {
        credential_version: 3,
        ..new_session(&user, at(40))
    };
    assert!(!store.sessions.create_session(&disabled).await.unwrap());
}

async fn changing_the_password_ends_every_other_session_of_that_user(store: &Store) {
    let Household {
        ada: user,
        bob: other,
        kept,
        ended,
        bystander,
    } = household(store).await;

    let logged = change_password(store, &user, &kept, 14).await;
    assert!(logged.is_empty(), "no grant, nothing delegated to end: {logged:?}");

    let found = found_user(store, user.id).await;
    assert_eq!(found.password_hash, "$argon2id$new");
    assert!(session_exists(store, &kept.handle_hash).await);
    for session in &ended {
        assert!(!session_exists(store, &session.handle_hash).await);
    }
    assert!(session_exists(store, &bystander.handle_hash).await);
    let other_found = found_user(store, other.id).await;
    assert_eq!(other_found.password_hash, "$argon2id$hash");
}

async fn disabling_a_user_ends_their_sessions_and_keeps_the_first_time(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    let other = add_user(store, "bob@example.com").await;
    let session = add_session(store, &user, at(10)).await;
    let bystander = add_session(store, &other, at(10)).await;

    let disabled = disabled_at(store, &user, at(20)).await;
    assert_eq!(disabled.id, user.id);
    // The owner revocation names the new credential version and is in the shared log.
    assert_eq!(disabled.revocation.kind, RevocationKind::Owner);
    assert_eq!(disabled.revocation.subject, format!("{}:1", user.id.0));
    assert_eq!(disabled.revocation.expires_at, at(4000));
    let logged = store.revocations.revocations_since(at(0), at(30)).await.unwrap();
    assert_eq!(logged, vec![disabled.revocation.clone()]);
    let found = found_user(store, user.id).await;
    assert_eq!(found.disabled_at, Some(at(20)));
    assert_eq!(found.credential_version, 1);
    assert!(found.is_disabled());
    assert!(!session_exists(store, &session.handle_hash).await);
    assert!(session_exists(store, &bystander.handle_hash).await);

    let again = disabled_at(store, &user, at(30)).await;
    assert_eq!(again.revocation.subject, format!("{}:2", user.id.0));
    let found = found_user(store, user.id).await;
    assert_eq!(found.disabled_at, Some(at(20)));
    let other_found = found_user(store, other.id).await;
    assert_eq!(other_found.disabled_at, None);
    assert_eq!(other_found.credential_version, 0);

    // Enabling lifts the disable and keeps the version.
    assert_eq!(store.users.enable_user(&user.email).await.unwrap(), Some(user.id));
    let found = found_user(store, user.id).await;
    assert!(!found.is_disabled());
    assert_eq!(found.credential_version, 2);
    assert_eq!(
        store.users.enable_user(&email("nobody@example.com")).await.unwrap(),
        None
    );
}

async fn granted_scopes_change_only_from_what_was_read_and_taking_one_away_revokes(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    let (_, key) = add_client(store, &user, "admin", at(10)).await;
    let none = Scopes::default();
    let admin = Scopes::from_list(["admin"]).unwrap();
    let both = Scopes::from_list(["admin", "billing"]).unwrap();
    let change = |from, to, revoke| GrantChange {
        user: user.id,
        from,
        to,
        revoke,
    };

    let granted = store
        .users
        .change_granted_scopes(&change(&none, &both, None))
        .await
        .unwrap();
    assert!(matches!(granted, GrantOutcome::Changed { revocation: None }));
    let record = found_user(store, user.id).await;
    assert_eq!((record.granted_scopes.clone(), record.token_version), (both.clone(), 0));
    let (_, _, owner) = store.clients.find_key(key.id).await.unwrap().unwrap();
    assert_eq!(owner.granted_scopes, both);

    // A change made from a stale read is refused, and changes nothing.
    let stale = store
        .users
        .change_granted_scopes(&change(&none, &admin, None))
        .await
        .unwrap();
    assert!(matches!(stale, GrantOutcome::Stale));

    // Taking one away bumps the token version and logs the owner revocation with it.
    let taken = store
        .users
        .change_granted_scopes(&change(&both, &admin, Some(owner_revocation(at(20), at(4000)))))
        .await
        .unwrap();
    let GrantOutcome::Changed {
        revocation: Some(revocation),
    } = taken
    else {
        panic!("a revocation: {taken:?}");
    };
    assert_eq!(revocation.kind, RevocationKind::Owner);
    assert_eq!(revocation.subject, format!("{}:1", user.id.0));
    let record = found_user(store, user.id).await;
    assert_eq!((record.granted_scopes, record.token_version), (admin, 1));
    let logged = store.revocations.revocations_since(at(0), at(100)).await.unwrap();
    assert!(logged.iter().any(|r| r.subject == revocation.subject), "{logged:?}");
}

async fn client_claims_change_only_from_what_was_read(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    let (client, key) = add_client(store, &user, "notes:read", at(10)).await;
    let none = StaticClaims::default();
    let acme = none.edited(&[r#"tenant="acme""#.into(), "tier=3".into()], &[]).unwrap();
    assert!(store.clients.set_client_claims(&client.id, &none, &acme).await.unwrap());
    assert!(
        !store.clients.set_client_claims(&client.id, &none, &none).await.unwrap(),
        "stale"
    );
    let found = store.clients.find_client(&client.id).await.unwrap().unwrap();
    assert_eq!(found.client.claims, acme);
    let (_, its_client, _) = store.clients.find_key(key.id).await.unwrap().unwrap();
    assert_eq!(its_client.claims, acme);
    let unknown = ClientId::generate();
    assert!(!store.clients.set_client_claims(&unknown, &none, &acme).await.unwrap());
}

async fn a_public_client_is_stored_without_a_key_with_its_redirect_uris(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    let uris = parse_redirect_uris(["com.example.app:/cb", "http://127.0.0.1/cb"]).unwrap();
    let client = ClientRecord {
        client_type: ClientType::Public,
        redirect_uris: uris.clone(),
        ..client_of(&user, "Phone app", "notes:read", at(10))
    };
    store.clients.create_client(&client, None).await.unwrap();
    let found = store.clients.find_client(&client.id).await.unwrap().unwrap();
    assert_eq!(found.client.client_type, ClientType::Public);
    assert_eq!(found.client.redirect_uris, uris);
    assert!(found.keys.is_empty());
}

fn code_for(client: &ClientRecord, user: &User, created_at: OffsetDateTime) -> (AuthorizationCode, CodeRecord) {
    let code = AuthorizationCode::generate();
    let record = CodeRecord {
        hash: code.hash(),
        client_id: client.id.clone(),
        user_id: user.id,
        redirect_uri: "https://app.example.com/cb".into(),
        challenge: CodeChallenge::from_stored("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        scopes: Scopes::from_list(["notes:read"]).unwrap(),
        resources: vec!["https://notes.example.com".into(), "https://b.example.com".into()],
        auth_time: created_at - Duration::seconds(30),
        created_at,
        expires_at: created_at + Duration::seconds(60),
        grant_version: 3,
    };
    (code, record)
}

async fn a_code_is_redeemed_once_and_every_later_presentation_is_a_replay(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    let (client, _) = add_client(store, &user, "notes:read", at(1)).await;
    let (code, record) = code_for(&client, &user, at(10));
    store.authorizations.insert_code(&record).await.unwrap();

    let codes = &store.authorizations;
    assert_eq!(
        codes.redeem_code(&code.hash(), at(20)).await.unwrap(),
        Redemption::Redeemed(record.clone())
    );
    let family = family_of(&record, at(20));
    codes
        .start_family(&code.hash(), "jti-1", &family, &RefreshToken::generate().hash())
        .await
        .unwrap();
    assert_eq!(
        codes.redeem_code(&code.hash(), at(21)).await.unwrap(),
        Redemption::Replayed {
            record: record.clone(),
            issued_jti: Some("jti-1".into()),
            family: Some(family.id),
        }
    );
    let unknown = AuthorizationCode::generate();
    assert_eq!(
        codes.redeem_code(&unknown.hash(), at(21)).await.unwrap(),
        Redemption::Unknown
    );

    // However many presentations race, one redeems.
    let (raced, raced_record) = code_for(&client, &user, at(30));
    codes.insert_code(&raced_record).await.unwrap();
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (store, hash) = (store.clone(), raced.hash());
        attempts.spawn(async move { store.authorizations.redeem_code(&hash, at(31)).await });
    }
    let outcomes = attempts.join_all().await;
    let redeemed = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Redemption::Redeemed(_))))
        .count();
    assert_eq!(redeemed, 1, "{outcomes:?}");

    // Expired codes are swept: the first expires at 70, the second at 90.
    assert_eq!(codes.delete_expired_codes(at(70)).await.unwrap(), 1);
    assert_eq!(
        codes.redeem_code(&code.hash(), at(71)).await.unwrap(),
        Redemption::Unknown
    );
    assert_eq!(codes.delete_expired_codes(at(90)).await.unwrap(), 1);
}

/// The family a code starts when it is redeemed at `at`.
/// A code under version 0 of the user's grant, redeemed at `seconds` to start a family:
/// the code's record and the family's first refresh token.
async fn family_started(store: &Store, client: &ClientRecord, user: &User, seconds: i64) -> (CodeRecord, RefreshToken) {
    let (code, record) = code_for(client, user, at(seconds));
    let record = CodeRecord {
        grant_version: 0,
        ..record
    };
    store.authorizations.insert_code(&record).await.unwrap();
    let token = RefreshToken::generate();
    store
        .authorizations
        .start_family(&code.hash(), "jti", &family_of(&record, at(seconds)), &token.hash())
        .await
        .unwrap();
    (record, token)
}

fn family_of(code: &CodeRecord, at: OffsetDateTime) -> FamilyRecord {
    FamilyRecord {
        id: uuid::Uuid::now_v7(),
        client_id: code.client_id.clone(),
        user_id: code.user_id,
        scopes: code.scopes.clone(),
        resources: code.resources.clone(),
        auth_time: code.auth_time,
        grant_version: code.grant_version,
        created_at: code.created_at,
        last_used_at: at,
    }
}

async fn a_refresh_family_rotates_each_token_once_and_ends_whole(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    let (client, _) = add_client(store, &user, "notes:read", at(1)).await;
    let scopes = Scopes::from_list(["notes:read"]).unwrap();
    let grant = store
        .authorizations
        .widen_grant(user.id, &client.id, &scopes, at(5))
        .await
        .unwrap();
    let (code, record) = code_for(&client, &user, at(10));
    let record = CodeRecord {
        grant_version: grant.version,
        ..record
    };
    let store_ = &store.authorizations;
    store_.insert_code(&record).await.unwrap();
    store_.redeem_code(&code.hash(), at(11)).await.unwrap();
    let family = family_of(&record, at(11));
    let first = RefreshToken::generate();
    store_
        .start_family(&code.hash(), "jti-1", &family, &first.hash())
        .await
        .unwrap();

    let found = store_.find_refresh(&first.hash()).await.unwrap().expect("found");
    assert_eq!(found.family, family);
    assert!(found.grant_live);
    assert_eq!(found.spent_at, None);
    assert!(
        store_
            .find_refresh(&RefreshToken::generate().hash())
            .await
            .unwrap()
            .is_none()
    );

    // However many rotations race at 20 with a grace from 15, one spends the token and
    // each adds its successor; past the grace (from 21 on) they learn when it was spent.
    let mut attempts = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (store, hash, id) = (store.clone(), first.hash(), family.id);
        attempts.spawn(async move {
            let next = RefreshToken::generate();
            let rotation = RefreshRotation {
                hash: &hash,
                family: id,
                next: &next.hash(),
                at: at(20),
                grace_since: at(15),
            };
            let rotation = store.authorizations.rotate_refresh(&rotation).await.unwrap();
            (rotation, next)
        });
    }
    let outcomes = attempts.join_all().await;
    assert!(outcomes.iter().all(|(r, _)| *r == Rotation::Rotated), "{outcomes:?}");
    assert_eq!(
        store_.find_refresh(&first.hash()).await.unwrap().unwrap().spent_at,
        Some(at(20))
    );
    let late = rotate_once(store, &first, family.id, 32, 21).await;
    assert_eq!(late, Rotation::SpentBefore(Some(at(20))));

    // The successors joined the family, which is marked used (and only ever later).
    let second = outcomes[0].1.clone();
    let found = store_.find_refresh(&second.hash()).await.unwrap().unwrap();
    assert_eq!(found.family.last_used_at, at(20));
    assert_eq!(found.spent_at, None);
    let earlier = rotate_once(store, &second, family.id, 18, 10).await;
    assert_eq!(earlier, Rotation::Rotated);
    let second = outcomes[1].1.clone();
    assert_eq!(
        store_
            .find_refresh(&second.hash())
            .await
            .unwrap()
            .unwrap()
            .family
            .last_used_at,
        at(20)
    );

    // A password change keeps the consent but not what was delegated under it.
    let session = add_session(store, &user, at(21)).await;
    let logged = change_password(store, &user, &session, 22).await;
    let subject = format!("{}/{}:{}", user.id.0, client.id.as_str(), grant.version + 1);
    assert_eq!(
        logged,
        vec![revocation(RevocationKind::Owner, &subject, at(22), at(99))]
    );
    assert_eq!(revocations_of(store, &subject).await.len(), 1);
    assert!(
        store_.find_refresh(&second.hash()).await.unwrap().is_none(),
        "families end"
    );
    let kept = store_.grant(user.id, &client.id).await.unwrap().expect("consent stays");
    assert_eq!((kept.scopes, kept.version), (scopes.clone(), grant.version + 1));

    // A family ends whole, once, logging the revocation of its access tokens.
    let family = FamilyRecord {
        grant_version: kept.version,
        ..family_of(&record, at(30))
    };
    let (code, record) = code_for(&client, &user, at(30));
    store_.insert_code(&record).await.unwrap();
    let third = RefreshToken::generate();
    store_
        .start_family(&code.hash(), "jti-2", &family, &third.hash())
        .await
        .unwrap();
    assert!(store_.find_refresh(&third.hash()).await.unwrap().unwrap().grant_live);
    let ended = store_
        .end_family(family.id, revocation(RevocationKind::Token, "", at(31), at(99)))
        .await
        .unwrap();
    let expected = revocation(RevocationKind::Token, &family.id.to_string(), at(31), at(99));
    assert_eq!(ended, Some(expected));
    assert!(store_.find_refresh(&third.hash()).await.unwrap().is_none());
    let gone = rotate_once(store, &third, family.id, 32, 22).await;
    assert_eq!(gone, Rotation::SpentBefore(None), "a token gone with its family");
    let again = store_
        .end_family(family.id, revocation(RevocationKind::Token, "", at(34), at(99)))
        .await
        .unwrap();
    assert_eq!(again, None);
}

async fn a_family_outlives_neither_its_grant_nor_its_lifetimes(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    let (client, _) = add_client(store, &user, "notes:read", at(1)).await;
    let scopes = Scopes::from_list(["notes:read"]).unwrap();
    let store_ = &store.authorizations;
    store_.widen_grant(user.id, &client.id, &scopes, at(5)).await.unwrap();
    let mut tokens = Vec::new();
    for started in [10, 20] {
        tokens.push(family_started(store, &client, &user, started).await.1);
    }
    let nothing = AuthorizationSweep {
        idle_before: at(0),
        created_before: at(0),
        codes_before: at(0),
    };
    // Unused since 10 (idle), or started at or before 10 (absolute): the first goes.
    let idle = AuthorizationSweep {
        idle_before: at(10),
        ..nothing
    };
    assert_eq!(store_.sweep_authorizations(&idle).await.unwrap(), 1);
    assert!(store_.find_refresh(&tokens[0].hash()).await.unwrap().is_none());
    assert!(store_.find_refresh(&tokens[1].hash()).await.unwrap().is_some());
    let old = AuthorizationSweep {
        created_before: at(20),
        ..nothing
    };
    assert_eq!(store_.sweep_authorizations(&old).await.unwrap(), 1);
    assert!(store_.find_refresh(&tokens[1].hash()).await.unwrap().is_none());

    // Ending the grant ends its families; its later ones see a grant no longer live.
    let (_, token) = family_started(store, &client, &user, 40).await;
    store_
        .end_grant(
            user.id,
            &client.id,
            revocation(RevocationKind::Owner, "", at(41), at(99)),
        )
        .await
        .unwrap();
    assert!(store_.find_refresh(&token.hash()).await.unwrap().is_none());

    // A disable ends them too.
    let granted = store_.widen_grant(user.id, &client.id, &scopes, at(50)).await.unwrap();
    let (code, record) = code_for(&client, &user, at(50));
    let record = CodeRecord {
        grant_version: granted.version,
        ..record
    };
    store_.insert_code(&record).await.unwrap();
    store_
        .start_family(&code.hash(), "jti", &family_of(&record, at(50)), &token.hash())
        .await
        .unwrap();
    assert!(store_.find_refresh(&token.hash()).await.unwrap().unwrap().grant_live);
    store
        .users
        .disable_user(&user.email, owner_revocation(at(51), at(99)))
        .await
        .unwrap();
    assert!(store_.find_refresh(&token.hash()).await.unwrap().is_none());
}

async fn a_grant_only_widens_and_concurrent_approvals_lose_nothing(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    let (client, _) = add_client(store, &user, "a b c d e f", at(1)).await;
    let grants = &store.authorizations;
    let scopes = |list: &str| Scopes::parse_space_separated(list).unwrap();
    assert_eq!(grants.grant(user.id, &client.id).await.unwrap(), None);
    // Each approval answers the whole grant: what it held and what was asked.
    for (asked, seconds, held) in [("a", 10, "a"), ("b", 11, "a b")] {
        let (asked, at) = (scopes(asked), at(seconds));
        let widened = grants.widen_grant(user.id, &client.id, &asked, at).await.unwrap();
        assert_eq!(widened.scopes, scopes(held));
    }
    let mut approvals = tokio::task::JoinSet::new();
    for scope in ["c", "d", "e", "f"] {
        let (store, id, asked) = (store.clone(), client.id.clone(), scopes(scope));
        approvals.spawn(async move { store.authorizations.widen_grant(user.id, &id, &asked, at(12)).await });
    }
    for approved in approvals.join_all().await {
        approved.unwrap();
    }
    let grant = grants.grant(user.id, &client.id).await.unwrap().unwrap();
    assert_eq!((grant.scopes.clone(), grant.version), (scopes("a b c d e f"), 0));
    let listed = grants.list_grants(user.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].client_name.as_str(), listed[0].scopes.clone()),
        ("reporting", grant.scopes)
    );

    // Ended: no scopes, a new version, the revocation logged with it; a later consent
    // starts afresh under that version.
    let entry = revocation(RevocationKind::Owner, "", at(20), at(4000));
    let ended = grants
        .end_grant(user.id, &client.id, entry.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.subject, format!("{}/{}:1", user.id.0, client.id.as_str()));
    assert_eq!(grants.grant(user.id, &client.id).await.unwrap(), None);
    assert!(grants.list_grants(user.id).await.unwrap().is_empty());
    assert!(grants.end_grant(user.id, &client.id, entry).await.unwrap().is_none());
    let again = grants
        .widen_grant(user.id, &client.id, &scopes("a"), at(30))
        .await
        .unwrap();
    assert_eq!((again.scopes, again.version), (scopes("a"), 1));
}

async fn disabling_an_unknown_email_finds_no_one(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    assert_eq!(
        store
            .users
            .disable_user(&email("bob@example.com"), owner_revocation(at(20), at(4000)))
            .await
            .unwrap()
            .map(|d| d.id),
        None
    );
    assert_eq!(found_user(store, user.id).await.disabled_at, None);
}

// Sessions.

async fn a_session_is_found_by_its_handle_hash_with_its_user(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    let with_agent = add_session(store, &user, at(10)).await;
    let bare = NewSession {
        origin: SessionOrigin {
            user_agent: None,
            ip: Some("192.0.2.7".to_owned()),
        },
        ..new_session(&user, at(11))
    };
    store.sessions.create_session(&bare).await.unwrap();

    for session in [&with_agent, &bare] {
        let (found, owner) = stored_session(store, &session.handle_hash).await;
        assert_eq!(found.id, session.id);
        assert_eq!(found.user_id, user.id);
        assert_eq!(found.csrf_token.expose(), session.csrf_token.expose());
        assert_eq!(found.created_at, session.created_at);
        assert_eq!(found.last_seen_at, session.created_at);
        assert_eq!(found.origin, session.origin);
        assert_eq!(owner.user, user);
    }
    assert!(!session_exists(store, &SessionHandle::generate().hash()).await);
}

async fn a_reused_session_handle_hash_is_refused_but_is_no_email_conflict(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    let first = add_session(store, &user, at(10)).await;
    let again = NewSession {
        id: SessionId::new(),
        ..first.clone()
    };
    let outcome = store.sessions.create_session(&again).await;
    assert!(matches!(outcome, Err(StorageError::Other(_))), "{outcome:?}");
    let (found, _) = stored_session(store, &first.handle_hash).await;
    assert_eq!(found.id, first.id);
}

async fn touching_a_session_only_moves_last_seen_forward(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    let session = add_session(store, &user, at(10)).await;
    let last_seen = async || stored_session(store, &session.handle_hash).await.0.last_seen_at;

    store.sessions.touch_session(session.id, at(70)).await.unwrap();
    assert_eq!(last_seen().await, at(70));
    store.sessions.touch_session(session.id, at(40)).await.unwrap();
    assert_eq!(last_seen().await, at(70));
    store.sessions.touch_session(session.id, at(130)).await.unwrap();
    assert_eq!(last_seen().await, at(130));
    // An unknown session is no error: it may have ended in the meantime.
    store.sessions.touch_session(SessionId::new(), at(140)).await.unwrap();
}

async fn deleting_a_session_by_hash_says_whether_there_was_one(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    let session = add_session(store, &user, at(10)).await;
    let other = add_session(store, &user, at(11)).await;
    assert!(
        store
            .sessions
            .delete_session_by_hash(&session.handle_hash)
            .await
            .unwrap()
    );
    assert!(!session_exists(store, &session.handle_hash).await);
    assert!(
        !store
            .sessions
            .delete_session_by_hash(&session.handle_hash)
            .await
            .unwrap()
    );
    assert!(session_exists(store, &other.handle_hash).await);
}

async fn deleting_another_users_session_returns_false(store: &Store) {
    let ada = add_user(store, "ada@example.com").await;
    let bob = add_user(store, "bob@example.com").await;
    let session = add_session(store, &ada, at(10)).await;

    assert!(!store.sessions.delete_user_session(bob.id, session.id).await.unwrap());
    assert!(session_exists(store, &session.handle_hash).await);
    assert!(
        !store
            .sessions
            .delete_user_session(ada.id, SessionId::new())
            .await
            .unwrap()
    );
    assert!(store.sessions.delete_user_session(ada.id, session.id).await.unwrap());
    assert!(!session_exists(store, &session.handle_hash).await);
    assert!(!store.sessions.delete_user_session(ada.id, session.id).await.unwrap());
}

async fn deleting_a_users_sessions_spares_the_kept_one_and_other_users(store: &Store) {
    let Household {
        ada,
        bob: _,
        kept,
        ended,
        bystander,
    } = household(store).await;

    assert_eq!(
        store
            .sessions
            .delete_user_sessions(ada.id, Some(kept.id))
            .await
            .unwrap(),
        2
    );
    assert!(session_exists(store, &kept.handle_hash).await);
    for session in &ended {
        assert!(!session_exists(store, &session.handle_hash).await);
    }
    assert_eq!(store.sessions.delete_user_sessions(ada.id, None).await.unwrap(), 1);
    assert!(!session_exists(store, &kept.handle_hash).await);
    assert_eq!(store.sessions.delete_user_sessions(ada.id, None).await.unwrap(), 0);
    assert!(session_exists(store, &bystander.handle_hash).await);
}

async fn listing_sessions_leaves_out_expired_ones_newest_first(store: &Store) {
    let ada = add_user(store, "ada@example.com").await;
    let bob = add_user(store, "bob@example.com").await;
    let created_too_early = add_session(store, &ada, at(100)).await; // created_at == cutoff: out
    let oldest_live = add_session(store, &ada, at(101)).await;
    let idle = add_session(store, &ada, at(102)).await; // last seen == cutoff: out
    let newest_live = add_session(store, &ada, at(103)).await;
    add_session(store, &bob, at(104)).await;
    for session in [&created_too_early, &oldest_live, &newest_live] {
        store.sessions.touch_session(session.id, at(300)).await.unwrap();
    }
    store.sessions.touch_session(idle.id, at(200)).await.unwrap();

    let listed = store
        .sessions
        .list_user_sessions(ada.id, cutoffs(200, 100))
        .await
        .unwrap();
    let ids: Vec<SessionId> = listed.iter().map(|s| s.id).collect();
    assert_eq!(ids, [newest_live.id, oldest_live.id]);
    assert_eq!(listed[0].last_seen_at, at(300));
    assert_eq!(listed[0].created_at, at(103));
    assert!(listed.iter().all(|s| s.user_id == ada.id));

    let everything = store.sessions.list_user_sessions(ada.id, cutoffs(0, 0)).await.unwrap();
    assert_eq!(everything.len(), 4);
    assert!(
        store
            .sessions
            .list_user_sessions(UserId::new(), cutoffs(0, 0))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn expired_sessions_are_deleted_on_either_deadline(store: &Store) {
    let user = add_user(store, "ada@example.com").await;
    let too_old = add_session(store, &user, at(100)).await; // created_at == deadline: deleted
    let idle = add_session(store, &user, at(150)).await; // last seen == deadline: deleted
    let live = add_session(store, &user, at(150)).await;
    store.sessions.touch_session(too_old.id, at(500)).await.unwrap();
    store.sessions.touch_session(idle.id, at(200)).await.unwrap();
    store.sessions.touch_session(live.id, at(201)).await.unwrap();

    assert_eq!(
        store.sessions.delete_expired_sessions(cutoffs(200, 100)).await.unwrap(),
        2
    );
    assert!(!session_exists(store, &too_old.handle_hash).await);
    assert!(!session_exists(store, &idle.handle_hash).await);
    assert!(session_exists(store, &live.handle_hash).await);
    assert_eq!(
        store.sessions.delete_expired_sessions(cutoffs(200, 100)).await.unwrap(),
        0
    );
}

// Login failures.

async fn fail(store: &Store, keys: &[ThrottleKey], at: OffsetDateTime) {
    store.throttle.record_failure(keys, at).await.unwrap();
}

async fn failures(store: &Store, keys: &[ThrottleKey], since: OffsetDateTime) -> Vec<(String, OffsetDateTime)> {
    store.throttle.recent_failures(keys, since).await.unwrap()
}

async fn recent_failures_are_those_of_the_asked_keys_inside_the_window(store: &Store) {
    let account = ThrottleKey::account("ada@example.com");
    let ip = ThrottleKey::ip("192.0.2.7");
    let pair = ThrottleKey::account_ip("ada@example.com", "192.0.2.7");
    let elsewhere = ThrottleKey::ip("198.51.100.1");
    fail(store, &[account.clone(), ip.clone()], at(10)).await;
    fail(store, std::slice::from_ref(&account), at(20)).await;
    fail(store, std::slice::from_ref(&elsewhere), at(20)).await;

    let mut all = failures(store, &[account.clone(), ip.clone(), pair.clone()], at(0)).await;
    all.sort();
    let expected = [
        (account.as_str().to_owned(), at(10)),
        (account.as_str().to_owned(), at(20)),
        (ip.as_str().to_owned(), at(10)),
    ];
    assert_eq!(all, expected);

    // The window is open at its start: a failure exactly at `since` no longer counts.
    let recent = failures(store, &[account.clone(), ip], at(10)).await;
    assert_eq!(recent, [(account.as_str().to_owned(), at(20))]);
    assert!(failures(store, &[pair], at(0)).await.is_empty());
    assert!(failures(store, &[], at(0)).await.is_empty());
}

async fn clearing_failures_forgets_one_key_only(store: &Store) {
    let pair = ThrottleKey::account_ip("ada@example.com", "192.0.2.7");
    let account = ThrottleKey::account("ada@example.com");
    fail(store, &[pair.clone(), account.clone()], at(10)).await;
    fail(store, std::slice::from_ref(&pair), at(11)).await;

    store.throttle.clear_failures(&pair).await.unwrap();
    let left = failures(store, &[pair.clone(), account.clone()], at(0)).await;
    assert_eq!(left, [(account.as_str().to_owned(), at(10))]);
    store.throttle.clear_failures(&pair).await.unwrap();
}

fn charges(keys: &[&ThrottleKey], limit: u32) -> Vec<sesame_storage::Charge> {
    keys.iter()
        .map(|key| sesame_storage::Charge {
            key: (*key).clone(),
            limit,
            since: at(0),
        })
        .collect()
}

async fn concurrent_reservations_never_charge_past_a_limit(store: &Store) {
    let pair = ThrottleKey::account_ip("ada@example.com", "192.0.2.7");
    let ip = ThrottleKey::ip("192.0.2.7");
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..30 {
        let store = store.clone();
        let charges = charges(&[&pair, &ip], 5);
        set.spawn(async move {
            store
                .throttle
                .reserve(&charges, uuid::Uuid::now_v7(), at(10))
                .await
                .unwrap()
                .charged
        });
    }
    let charged = set.join_all().await.into_iter().filter(|c| *c).count();
    assert_eq!(charged, 5);
    let recorded = failures(store, &[pair, ip], at(0)).await;
    assert_eq!(recorded.len(), 10, "five charges under each of two keys");
}

async fn a_released_reservation_frees_its_place_and_a_settled_one_stays(store: &Store) {
    let pair = ThrottleKey::account_ip("ada@example.com", "192.0.2.7");
    let (first, second, third) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let limit_two = charges(&[&pair], 2);
    let reserve = |attempt| {
        let limit_two = limit_two.clone();
        async move { store.throttle.reserve(&limit_two, attempt, at(10)).await.unwrap() }
    };
    assert_eq!(reserve(first).await.counts, [0]);
    assert!(reserve(second).await.charged);
    let refused = reserve(third).await;
    assert!(!refused.charged);
    assert_eq!(refused.counts, [2]);
    // A success takes its charge back, so the third attempt fits.
    store.throttle.release(second).await.unwrap();
    assert!(reserve(third).await.charged);
    // A settled failure is cleared by a success's reset; one in flight is not.
    store.throttle.settle(first).await.unwrap();
    store.throttle.clear_failures(&pair).await.unwrap();
    let left = failures(store, &[pair], at(0)).await;
    assert_eq!(left.len(), 1, "only the in-flight reservation stays: {left:?}");
}

async fn pruning_failures_deletes_up_to_the_cutoff(store: &Store) {
    let key = ThrottleKey::ip("192.0.2.7");
    for second in [10, 20, 30] {
        fail(store, std::slice::from_ref(&key), at(second)).await;
    }
    assert_eq!(store.throttle.prune_failures(at(20)).await.unwrap(), 2);
    let left = failures(store, std::slice::from_ref(&key), at(0)).await;
    assert_eq!(left, [(key.as_str().to_owned(), at(30))]);
    assert_eq!(store.throttle.prune_failures(at(20)).await.unwrap(), 0);
}

// Clients and their keys.

async fn a_created_client_is_found_with_its_first_key(store: &Store) {
    let owner = add_user(store, "ada@example.com").await;
    let (client, key) = add_client(store, &owner, "read:reports write:reports", at(10)).await;

    let found = store
        .clients
        .find_client(&client.id)
        .await
        .unwrap()
        .expect("client found");
    assert_eq!(found.client.id, client.id);
    assert_eq!(found.client.owner_id, owner.id);
    assert_eq!(found.client.name, "reporting");
    assert_eq!(found.client.scopes, client.scopes);
    assert_eq!(found.client.created_at, at(10));
    assert_eq!(key_ids(&found.keys), [key.id]);
    assert_eq!(found.keys[0].key_hash, key.key_hash);
    assert_eq!(found.keys[0].client_id, client.id);
    assert_eq!(found.keys[0].created_at, at(10));
    assert_eq!(found.keys[0].last_used_at, None);
    assert_eq!(found.keys[0].revoked_at, None);

    let (found_key, its_client, owner) = store.clients.find_key(key.id).await.unwrap().expect("key found");
    assert_eq!(
        owner,
        sesame_storage::OwnerState {
            disabled: false,
            token_version: 0,
            granted_scopes: Scopes::default(),
        }
    );
    assert_eq!(found_key.id, key.id);
    assert_eq!(found_key.key_hash, key.key_hash);
    assert_eq!(its_client.id, client.id);
    assert_eq!(its_client.scopes, client.scopes);
}

async fn listing_clients_gives_each_its_own_keys_oldest_first(store: &Store) {
    let ada = add_user(store, "ada@example.com").await;
    let bob = add_user(store, "bob@example.com").await;
    let (newer, newer_key) = add_client(store, &ada, "read:reports", at(20)).await;
    let (older, older_first_key) = add_client(store, &ada, "write:reports", at(10)).await;
    let (_, bobs_key) = add_client(store, &bob, "read:reports", at(5)).await;
    let older_second_key = key_of(&older, at(30));
    let older_earlier_key = key_of(&older, at(15));
    store.clients.add_key(&older_second_key).await.unwrap();
    store.clients.add_key(&older_earlier_key).await.unwrap();

    let listed = store.clients.list_clients(ada.id).await.unwrap();
    let ids: Vec<&ClientId> = listed.iter().map(|c| &c.client.id).collect();
    assert_eq!(ids, [&older.id, &newer.id]);
    assert_eq!(
        key_ids(&listed[0].keys),
        [older_first_key.id, older_earlier_key.id, older_second_key.id]
    );
    assert_eq!(key_ids(&listed[1].keys), [newer_key.id]);
    assert!(listed.iter().flat_map(|c| &c.keys).all(|k| k.id != bobs_key.id));

    assert_eq!(store.clients.list_clients(bob.id).await.unwrap().len(), 1);
    assert!(store.clients.list_clients(UserId::new()).await.unwrap().is_empty());
}

async fn missing_clients_and_keys_are_not_found(store: &Store) {
    let owner = add_user(store, "ada@example.com").await;
    add_client(store, &owner, "read:reports", at(10)).await;
    let client = store.clients.find_client(&ClientId::generate()).await;
    assert!(client.unwrap().is_none());
    assert!(store.clients.find_key(ApiKeyId::new()).await.unwrap().is_none());
}

async fn deleting_a_client_takes_its_keys_and_records_the_revocation(store: &Store) {
    let owner = add_user(store, "ada@example.com").await;
    let (client, key) = add_client(store, &owner, "read:reports", at(10)).await;
    let (kept, kept_key) = add_client(store, &owner, "read:reports", at(11)).await;
    let entry = revocation(RevocationKind::Client, client.id.as_str(), at(20), at(3600));

    assert!(store.clients.delete_client(owner.id, &client.id, &entry).await.unwrap());
    assert!(store.clients.find_client(&client.id).await.unwrap().is_none());
    assert!(store.clients.find_key(key.id).await.unwrap().is_none());
    assert_eq!(
        revocations_of(store, client.id.as_str()).await,
        std::slice::from_ref(&entry)
    );
    assert!(store.clients.find_client(&kept.id).await.unwrap().is_some());
    assert!(store.clients.find_key(kept_key.id).await.unwrap().is_some());

    assert!(!store.clients.delete_client(owner.id, &client.id, &entry).await.unwrap());
    assert_eq!(revocations_of(store, client.id.as_str()).await.len(), 1);
}

async fn only_the_owner_can_delete_a_client(store: &Store) {
    let ada = add_user(store, "ada@example.com").await;
    let bob = add_user(store, "bob@example.com").await;
    let (client, _) = add_client(store, &ada, "read:reports", at(10)).await;
    let entry = revocation(RevocationKind::Client, client.id.as_str(), at(20), at(3600));

    assert!(!store.clients.delete_client(bob.id, &client.id, &entry).await.unwrap());
    assert!(store.clients.find_client(&client.id).await.unwrap().is_some());
    assert!(revocations_of(store, client.id.as_str()).await.is_empty());
}

async fn revoking_a_key_keeps_the_first_revocation_time(store: &Store) {
    let owner = add_user(store, "ada@example.com").await;
    let (client, key) = add_client(store, &owner, "read:reports", at(10)).await;
    let other_key = key_of(&client, at(11));
    store.clients.add_key(&other_key).await.unwrap();
    let subject = key.id.to_string();
    let first = revocation(RevocationKind::Key, &subject, at(20), at(3600));

    assert!(store.clients.revoke_key(&client.id, key.id, &first).await.unwrap());
    let (found, _, _) = store.clients.find_key(key.id).await.unwrap().unwrap();
    assert_eq!(found.revoked_at, Some(at(20)));
    assert!(revocations_of(store, &subject).await.contains(&first));
    let (untouched, _, _) = store.clients.find_key(other_key.id).await.unwrap().unwrap();
    assert_eq!(untouched.revoked_at, None);

    let again = revocation(RevocationKind::Key, &subject, at(40), at(3600));
    assert!(store.clients.revoke_key(&client.id, key.id, &again).await.unwrap());
    let (found, _, _) = store.clients.find_key(key.id).await.unwrap().unwrap();
    assert_eq!(found.revoked_at, Some(at(20)));

    let listed = store.clients.find_client(&client.id).await.unwrap().unwrap();
    assert_eq!(listed.keys[0].revoked_at, Some(at(20)));
    assert_eq!(listed.keys[1].revoked_at, None);
}

async fn revoking_a_key_of_another_client_or_an_unknown_key_returns_false(store: &Store) {
    let owner = add_user(store, "ada@example.com").await;
    let (client, key) = add_client(store, &owner, "read:reports", at(10)).await;
    let (other_client, _) = add_client(store, &owner, "read:reports", at(11)).await;
    let entry = revocation(RevocationKind::Key, &key.id.to_string(), at(20), at(3600));

    assert!(
        !store
            .clients
            .revoke_key(&other_client.id, key.id, &entry)
            .await
            .unwrap()
    );
    assert!(
        !store
            .clients
            .revoke_key(&client.id, ApiKeyId::new(), &entry)
            .await
            .unwrap()
    );
    let (found, _, _) = store.clients.find_key(key.id).await.unwrap().unwrap();
    assert_eq!(found.revoked_at, None);
    assert!(revocations_of(store, &key.id.to_string()).await.is_empty());
}

async fn touching_a_key_only_moves_last_used_forward(store: &Store) {
    let owner = add_user(store, "ada@example.com").await;
    let (_, key) = add_client(store, &owner, "read:reports", at(10)).await;
    let last_used = async || store.clients.find_key(key.id).await.unwrap().unwrap().0.last_used_at;

    store.clients.touch_key(key.id, at(70)).await.unwrap();
    assert_eq!(last_used().await, Some(at(70)));
    store.clients.touch_key(key.id, at(40)).await.unwrap();
    assert_eq!(last_used().await, Some(at(70)));
    store.clients.touch_key(key.id, at(130)).await.unwrap();
    assert_eq!(last_used().await, Some(at(130)));
    store.clients.touch_key(ApiKeyId::new(), at(140)).await.unwrap();
}

async fn a_key_with_a_taken_id_is_refused(store: &Store) {
    let owner = add_user(store, "ada@example.com").await;
    let (client, key) = add_client(store, &owner, "read:reports", at(10)).await;
    let duplicate = ApiKeyRecord {
        id: key.id,
        ..key_of(&client, at(20))
    };
    let outcome = store.clients.add_key(&duplicate).await;
    assert!(matches!(outcome, Err(StorageError::Other(_))), "{outcome:?}");
    let found = store.clients.find_client(&client.id).await.unwrap().unwrap();
    assert_eq!(found.keys.len(), 1);
    assert_eq!(found.keys[0].key_hash, key.key_hash);

    // A client whose first key cannot be stored is not stored either.
    let orphan = client_of(&owner, "orphan", "read:reports", at(30));
    let orphan_key = ApiKeyRecord {
        id: key.id,
        ..key_of(&orphan, at(30))
    };
    assert!(store.clients.create_client(&orphan, Some(&orphan_key)).await.is_err());
    assert!(store.clients.find_client(&orphan.id).await.unwrap().is_none());
}

// Signing keys.

fn signing_key(kid: &str, created_at: OffsetDateTime) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        alg: "EdDSA".to_owned(),
        private_der: kid.bytes().chain([0, 255, 7]).collect(),
        created_at,
        signs_from: None,
    }
}

async fn signing_keys_come_back_whole_in_the_order_they_were_added(store: &Store) {
    assert!(store.signing_keys.signing_keys().await.unwrap().is_empty());
    let newest = SigningKeyRecord {
        alg: "ES256".to_owned(),
        ..signing_key("k-newest", at(5))
    };
    // The order is the database's, whatever the writers' clocks said.
    for key in [
        &signing_key("k-old", at(30)),
        &signing_key("k-a", at(10)),
        &signing_key("k-b", at(10)),
    ] {
        store
            .signing_keys
            .add_signing_key(key, std::time::Duration::ZERO)
            .await
            .unwrap();
    }
    let before = sesame_domain::now();
    store
        .signing_keys
        .add_signing_key(&newest, std::time::Duration::from_secs(330))
        .await
        .unwrap();
    let keys = store.signing_keys.signing_keys().await.unwrap();
    let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, ["k-old", "k-a", "k-b", "k-newest"]);
    let last = &keys[3];
    assert_eq!(last.alg, "ES256");
    assert_eq!(last.private_der, newest.private_der);
    assert_eq!(last.created_at, at(5));
    // It signs from the database's clock plus the delay.
    let signs_from = last.signs_from.expect("a start");
    let wait = signs_from - before;
    assert!(
        wait > time::Duration::seconds(300) && wait < time::Duration::seconds(400),
        "{wait}"
    );
}

async fn a_signing_key_with_a_taken_kid_is_refused(store: &Store) {
    store
        .signing_keys
        .add_signing_key(&signing_key("k-1", at(10)), std::time::Duration::ZERO)
        .await
        .unwrap();
    let outcome = store
        .signing_keys
        .add_signing_key(&signing_key("k-1", at(20)), std::time::Duration::ZERO)
        .await;
    assert!(matches!(outcome, Err(StorageError::Other(_))), "{outcome:?}");
    let keys = store.signing_keys.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].created_at, at(10));
}

// Revocations.

async fn revocations_since_are_bounded_by_creation_and_expiry(store: &Store) {
    let at_since = revocation(RevocationKind::Token, "jti-at-since", at(100), at(1000)); // created == since: out
    let after = revocation(RevocationKind::Token, "jti-after", at(101), at(1000));
    let expired_now = revocation(RevocationKind::Key, "key-expired", at(150), at(500)); // expires == now: out
    let live_key = revocation(RevocationKind::Key, "key-live", at(150), at(501));
    let live_client = revocation(RevocationKind::Client, "cli-live", at(200), at(900));
    for entry in [&at_since, &after, &expired_now, &live_key, &live_client] {
        store.revocations.revoke(entry).await.unwrap();
    }

    let mut found = store.revocations.revocations_since(at(100), at(500)).await.unwrap();
    found.sort_by(|a, b| a.subject.cmp(&b.subject));
    assert_eq!(found, [live_client.clone(), after, live_key]);
    assert_eq!(
        store.revocations.revocations_since(at(150), at(500)).await.unwrap(),
        [live_client]
    );
    assert!(
        store
            .revocations
            .revocations_since(at(200), at(0))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.revocations.revocations_since(at(0), at(0)).await.unwrap().len(),
        5
    );
}

async fn the_log_is_read_by_the_databases_clock_whatever_the_entries_say(store: &Store) {
    let far_future = sesame_domain::now() + time::Duration::days(1);
    // Stamped by an instance whose clock is in 1970: the database logs it by its own.
    let skewed = revocation(RevocationKind::Token, "jti-skewed", at(10), far_future);
    store.revocations.revoke(&skewed).await.unwrap();
    let (first, clock) = store
        .revocations
        .logged_since(None, sesame_domain::now())
        .await
        .unwrap();
    assert_eq!(first, std::slice::from_ref(&skewed));
    assert!(
        (clock - sesame_domain::now()).abs() < time::Duration::minutes(5),
        "{clock}"
    );
    let later = revocation(RevocationKind::Key, "key-later", at(5), far_future);
    store.revocations.revoke(&later).await.unwrap();
    let (new, _) = store
        .revocations
        .logged_since(Some(clock), sesame_domain::now())
        .await
        .unwrap();
    // The later entry, however old its own stamp; the first only if it was logged in the
    // same clock step as the read.
    assert!(new.contains(&later), "{new:?}");
    assert!(new.iter().all(|e| *e == later || *e == skewed), "{new:?}");
}

async fn pruning_revocations_deletes_what_has_expired_by_now(store: &Store) {
    for (subject, expires) in [("a", 100), ("b", 200), ("c", 201)] {
        store
            .revocations
            .revoke(&revocation(RevocationKind::Token, subject, at(10), at(expires)))
            .await
            .unwrap();
    }
    assert_eq!(store.revocations.prune_revocations(at(200)).await.unwrap(), 2);
    let left = store.revocations.revocations_since(at(0), at(0)).await.unwrap();
    let subjects: Vec<&str> = left.iter().map(|r| r.subject.as_str()).collect();
    assert_eq!(subjects, ["c"]);
    assert_eq!(store.revocations.prune_revocations(at(200)).await.unwrap(), 0);
}
