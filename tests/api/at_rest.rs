//! What sits on disk (SPEC §12): the SQLite files are the owner's alone, and signing keys
//! are sealed under the operator's secret, opened with the previous one during a
//! rotation, and never replaced when they cannot be opened.

use reqwest::StatusCode;
use sesame_tests::{Backend, TestApp, TestDb, on_both_backends};

on_both_backends!(
    signing_keys_are_sealed_and_a_wrong_or_missing_secret_refuses_to_start,
    keys_stored_unencrypted_are_sealed_by_rewrap_and_sealed_again_under_a_new_secret,
);

const SECRET: &str = "the operator's secret, at least thirty-two bytes long";
const NEXT: &str = "the next secret, rotated in, also thirty-two bytes or more";
const MAGIC: &[u8] = b"sesame-sealed:v1:";

/// The stored private parts of every signing key, oldest first.
async fn stored_keys(db: &TestDb) -> Vec<(String, Vec<u8>)> {
    let store = db.store().await;
    let keys = store.signing_keys.signing_keys().await.unwrap();
    store.database.close().await;
    keys.into_iter().map(|k| (k.kid, k.private_der)).collect()
}

/// Mints a token on a fresh app over `db` with `settings`.
async fn token_on(db: &std::sync::Arc<TestDb>, settings: &[(&str, &str)], email: &str) -> (TestApp, String) {
    let app = TestApp::spawn_on(db.clone(), settings).await;
    let session = app.signed_in(email).await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let token = app.token(&client.client_id, &client.key, None).await;
    (app, token)
}

/// `sesame serve` on `db` with `settings` must refuse to start: exit status 2, naming the
/// secret's setting.
async fn refuses_to_start(db: &TestDb, settings: &[(&str, &str)]) {
    let mut all = vec![("SESAME_LISTEN", "127.0.0.1:0")];
    all.extend_from_slice(settings);
    let output = db.sesame(&["serve"], &all).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("SESAME_SECRET_KEY"), "{stderr}");
    assert!(
        !stderr.contains(SECRET) && !stderr.contains(NEXT),
        "a secret is printed: {stderr}"
    );
}

async fn signing_keys_are_sealed_and_a_wrong_or_missing_secret_refuses_to_start(backend: Backend) {
    let db = TestDb::create(backend).await;
    let settings = [
        ("SESAME_SECRET_KEY", SECRET),
        ("SESAME_ISSUER", "https://auth.example.com"),
    ];
    let (app, token) = token_on(&db, &settings, "ada@example.com").await;
    assert!(app.accepts(&token).await);
    app.stop().await;
    let stored = stored_keys(&db).await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].1.starts_with(MAGIC), "the key is stored unsealed");

    refuses_to_start(&db, &[("SESAME_SECRET_KEY", NEXT)]).await;
    refuses_to_start(&db, &[]).await;
    // Nothing was replaced: the keys are as they were, and the right secret still works.
    assert_eq!(stored_keys(&db).await, stored);
    let app = TestApp::spawn_on(db.clone(), &settings).await;
    assert!(app.accepts(&token).await);
    app.stop().await;
}

async fn keys_stored_unencrypted_are_sealed_by_rewrap_and_sealed_again_under_a_new_secret(backend: Backend) {
    let db = TestDb::create(backend).await;
    let (app, token) = token_on(&db, &[], "ada@example.com").await;
    // Tokens are checked against the same issuer on each app below.
    let issuer = app.base.clone();
    app.stop().await;
    let plain = stored_keys(&db).await;
    assert!(!plain[0].1.starts_with(MAGIC));

    // Without a secret there is nothing to seal under.
    assert!(!db.sesame(&["keys", "rewrap"], &[]).await.status.success());
    let rewrap = db.sesame(&["keys", "rewrap"], &[("SESAME_SECRET_KEY", SECRET)]).await;
    assert!(rewrap.status.success(), "{}", String::from_utf8_lossy(&rewrap.stderr));
    let sealed = stored_keys(&db).await;
    assert!(sealed.iter().all(|(_, der)| der.starts_with(MAGIC)));
    assert_eq!(sealed[0].0, plain[0].0, "the same key, sealed");

    // The secret from a file, its trailing newline ignored.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let file = file.to_str().unwrap();
    let settings = [("SESAME_SECRET_KEY_FILE", file), ("SESAME_ISSUER", issuer.as_str())];
    let app = TestApp::spawn_on(db.clone(), &settings).await;
    assert!(app.accepts(&token).await, "a token signed before the rewrap");
    app.stop().await;
    // Both the variable and the file: a start-up error.
    let both = db
        .sesame(
            &["migrate"],
            &[("SESAME_SECRET_KEY", SECRET), ("SESAME_SECRET_KEY_FILE", file)],
        )
        .await;
    assert_eq!(both.status.code(), Some(2));

    // Rotating the secret: the old one opens what the new one seals again.
    let rotating = [("SESAME_SECRET_KEY", NEXT), ("SESAME_SECRET_KEY_OLD", SECRET)];
    let rewrap = db.sesame(&["keys", "rewrap"], &rotating).await;
    assert!(rewrap.status.success(), "{}", String::from_utf8_lossy(&rewrap.stderr));
    refuses_to_start(&db, &[("SESAME_SECRET_KEY", SECRET)]).await;
    let app = TestApp::spawn_on(
        db.clone(),
        &[("SESAME_SECRET_KEY", NEXT), ("SESAME_ISSUER", issuer.as_str())],
    )
    .await;
    assert!(app.accepts(&token).await, "a token signed before both rewraps");
    let response = app.http().get(app.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.stop().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;

    let mode = |path: &str| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let app = TestApp::spawn(Backend::Sqlite, &[]).await;
    app.signed_in("ada@example.com").await;
    let file = app.db.url.trim_start_matches("sqlite://").to_owned();
    for path in [file.clone(), format!("{file}-wal"), format!("{file}-shm")] {
        assert_eq!(mode(&path), 0o600, "{path}");
    }
    app.stop().await;

    // A file left readable by others is narrowed at start.
    let db = TestDb::create(Backend::Sqlite).await;
    let path = db.url.trim_start_matches("sqlite://").to_owned();
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let app = TestApp::spawn_on(db, &[]).await;
    app.signed_in("ada@example.com").await;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&format!("{path}-wal")), 0o600);
    app.stop().await;
}
