//! Database faults: the database stops under load and comes back. Every answer meanwhile
//! is a success that needed no database, or 503 with Retry-After — never a 500, never a
//! hang past the pool's 3 s acquire timeout — and service resumes by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sesame_tests::{PASSWORD, PrivateCluster, TestApp, TestDb};
use tokio::sync::Mutex;

/// The longest any request may take during an outage: the pool's acquire timeout (3 s)
/// plus scheduling slack on a loaded machine.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Before = 0,
    Outage = 1,
    After = 2,
}

#[derive(Debug)]
struct Observation {
    phase: u8,
    path: &'static str,
    status: StatusCode,
    retry_after: bool,
    took: Duration,
    ended: Instant,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_answers_503_and_service_resumes_within_two_seconds() {
    let cluster = Arc::new(PrivateCluster::start());
    let settings = [
        ("SESAME_THROTTLE_IP", "1000000/1m"),
        ("SESAME_THROTTLE_ACCOUNT", "1000000/1m"),
        ("SESAME_THROTTLE_ACCOUNT_IP", "1000000/1m"),
    ];
    let app = Arc::new(TestApp::spawn_on(TestDb::on_cluster(&cluster), &settings).await);
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;

    let phase = Arc::new(AtomicU8::new(Phase::Before as u8));
    let running = Arc::new(AtomicBool::new(true));
    let seen = Arc::new(Mutex::new(Vec::<Observation>::new()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut workers = Vec::new();
    for path in ["/me", "/sessions", "/login", "/readyz"] {
        let (app, phase, running, seen, client, session) = (
            app.clone(),
            phase.clone(),
            running.clone(),
            seen.clone(),
            client.clone(),
            session.clone(),
        );
        workers.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let started = Instant::now();
                let at = phase.load(Ordering::Relaxed);
                let request = match path {
                    "/login" => client
                        .post(app.url(path))
                        .json(&serde_json::json!({"email": "ada@example.com", "password": "not it at all"})),
                    _ => client.get(app.url(path)).header("cookie", &session.cookie),
                };
                let response = request.send().await.expect("an answer, not a hang or a reset");
                seen.lock().await.push(Observation {
                    phase: at,
                    path,
                    status: response.status(),
                    retry_after: response.headers().contains_key("retry-after"),
                    took: started.elapsed(),
                    ended: Instant::now(),
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopper = cluster.clone();
    tokio::task::spawn_blocking(move || stopper.stop()).await.unwrap();
    let stopped = Instant::now();
    phase.store(Phase::Outage as u8, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let ready = app.http().get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.headers().contains_key("retry-after"));

    let resuming = Instant::now();
    let starter = cluster.clone();
    tokio::task::spawn_blocking(move || starter.resume()).await.unwrap();
    let back = Instant::now();
    // The first request that needs the database and succeeds.
    loop {
        let response = app
            .with_session(reqwest::Method::GET, "/sessions", &session)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(2),
            "not recovered 2 s after the database returned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered_in = back.elapsed();
    let recovered = Instant::now();
    phase.store(Phase::After as u8, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    running.store(false, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    let seen = seen.lock().await;
    let outage: Vec<_> = seen.iter().filter(|o| o.phase == Phase::Outage as u8).collect();
    assert!(
        outage
            .iter()
            .filter(|o| o.status == StatusCode::SERVICE_UNAVAILABLE)
            .count()
            >= 4,
        "{outage:?}"
    );
    for o in &outage {
        assert!(o.took <= ANSWER_WITHIN, "a request hung: {o:?}");
        match o.status {
            StatusCode::SERVICE_UNAVAILABLE => assert!(o.retry_after, "503 without Retry-After: {o:?}"),
            // A request that waited for a connection and got one once the database was
            // back.
            StatusCode::OK | StatusCode::UNAUTHORIZED if o.ended >= resuming => {}
            // A session trusted from the cache (for at most 1 s) needs no database, and a
            // readiness answer may be up to 1 s old.
            StatusCode::OK
                if (o.path == "/me" || o.path == "/readyz") && o.ended < stopped + Duration::from_millis(1_500) => {}
            other => panic!("unexpected {other} during the outage: {o:?}"),
        }
    }
    for o in seen.iter().filter(|o| o.phase == Phase::After as u8) {
        // A readiness answer may be up to 1 s old.
        if o.path == "/readyz" && o.ended < recovered + Duration::from_millis(1_500) {
            continue;
        }
        let expected = if o.path == "/login" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        assert_eq!(o.status, expected, "after recovery: {o:?}");
    }
    // The session made before the outage still works.
    let me = app.me(&session).await;
    assert_eq!(me.status(), StatusCode::OK, "recovered in {recovered_in:?}");
}

/// Sets or clears the immutable attribute, which stops writes even by root and even
/// through files already open.
fn immutable(paths: &[std::path::PathBuf], on: bool) {
    for path in paths.iter().filter(|p| p.exists()) {
        let flag = if on { "+i" } else { "-i" };
        let status = std::process::Command::new("chattr")
            .arg(flag)
            .arg(path)
            .status()
            .expect("chattr");
        assert!(
            status.success(),
            "chattr {flag} {} (needs root and a filesystem with attributes)",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_sqlite_file_answers_503_and_service_resumes_when_writable() {
    // Budgets wide enough for the wrong passwords below: they are there to write.
    let budgets = [
        ("SESAME_THROTTLE_ACCOUNT_IP", "1000/1m"),
        ("SESAME_THROTTLE_ACCOUNT", "1000/1m"),
        ("SESAME_THROTTLE_IP", "1000/1m"),
    ];
    let app = Arc::new(TestApp::spawn(sesame_tests::Backend::Sqlite, &budgets).await);
    app.user("ada@example.com").await;
    let session = app.login("ada@example.com", PASSWORD).await;
    let file = std::path::PathBuf::from(app.db.url.trim_start_matches("sqlite://"));
    let files = [file.clone(), file.with_extension("db-wal")];

    immutable(&files, true);
    let (app2, session2) = (app.clone(), session.clone());
    // In a task of its own, so that a failed assertion still lets the files be restored.
    let outcome = tokio::spawn(async move {
        let (app, session) = (app2, session2);
        let client = reqwest::Client::builder().timeout(ANSWER_WITHIN).build().unwrap();
        let ready = client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(ready.headers().contains_key("retry-after"));
        for _ in 0..3 {
            // Each of these must write: a failed login is recorded, a user is created.
            let login = client
                .post(app.url("/login"))
                .json(&serde_json::json!({"email": "ada@example.com", "password": "wrong password!"}))
                .send()
                .await
                .unwrap();
            assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(login.headers().contains_key("retry-after"));
            let register = app.register("bob@example.com", PASSWORD).await;
            assert_eq!(register.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
        // Reading still works: the signed-in user is still signed in.
        assert_eq!(app.me(&session).await.status(), StatusCode::OK);
    })
    .await;
    immutable(&files, false);
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure.into_panic());
    }

    let back = Instant::now();
    loop {
        if app.register("bob@example.com", PASSWORD).await.status() == StatusCode::CREATED {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(2),
            "not writable again 2 s after the file was"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Readiness follows within its 1 s, then every kind of request works again, on every
    // pooled connection.
    assert!(
        sesame_tests::eventually(Duration::from_millis(1_500), || async {
            app.http().get(app.url("/readyz")).send().await.unwrap().status() == StatusCode::OK
        })
        .await
    );
    for _ in 0..20 {
        assert_eq!(
            app.http().get(app.url("/readyz")).send().await.unwrap().status(),
            StatusCode::OK
        );
        let wrong = app.login_response("ada@example.com", "wrong password!").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.me(&session).await.status(), StatusCode::OK);
    app.login("bob@example.com", PASSWORD).await;
}
