//! Connection and request limits (SPEC §12), over real sockets: headers trickled one byte
//! at a time, idle keep-alive connections, a handler past the request timeout, and the
//! connection cap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use reqwest::StatusCode;
use sesame_tests::{Backend, TestApp, TestDb, eventually};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Slack for a loaded machine on top of a configured limit.
const SLACK: Duration = Duration::from_secs(2);

async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.base.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// Sends a request and reads its whole answer (the body is small and has a length).
async fn exchange(stream: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: sesame.test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    read_response(stream).await
}

async fn read_response(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.expect("read");
        assert!(
            n > 0,
            "closed before the whole answer: {:?}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

/// Waits for the server to close the connection; how long that took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the connection was still open after {limit:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_headers_is_disconnected_after_the_header_timeout() {
    let app = TestApp::spawn(Backend::Sqlite, &[("SESAME_HEADER_TIMEOUT", "1s")]).await;
    let stream = connect(&app).await;
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    // One header byte every 200 ms: each arrives well within any read timeout, but the
    // headers never end.
    let trickle = tokio::spawn(async move {
        let bytes = b"GET /healthz HTTP/1.1\r\nHost: sesame.test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for byte in bytes {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut buf = [0u8; 1024];
    let outcome = tokio::time::timeout(Duration::from_secs(1) + SLACK, reader.read(&mut buf)).await;
    let took = started.elapsed();
    trickle.abort();
    match outcome {
        Ok(Ok(0) | Err(_)) => {}
        Ok(Ok(n)) => panic!("answered instead of closing: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(_) => panic!("still connected after {took:?}"),
    }
    assert!(took >= Duration::from_millis(900), "closed too early: {took:?}");
    // A client that sends its headers at once is served.
    let mut ok = connect(&app).await;
    assert!(exchange(&mut ok, "/healthz").await.starts_with("HTTP/1.1 200"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let app = TestApp::spawn(
        Backend::Sqlite,
        &[("SESAME_IDLE_TIMEOUT", "1s"), ("SESAME_HEADER_TIMEOUT", "5s")],
    )
    .await;
    let mut stream = connect(&app).await;
    assert!(exchange(&mut stream, "/healthz").await.starts_with("HTTP/1.1 200"));
    // Reused within the timeout, the connection serves again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(exchange(&mut stream, "/healthz").await.starts_with("HTTP/1.1 200"));
    let idle = closed_within(&mut stream, Duration::from_secs(1) + SLACK).await;
    assert!(idle >= Duration::from_millis(900), "closed too early: {idle:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_past_the_request_timeout_is_answered_503_and_its_work_finishes() {
    let release = Arc::new(tokio::sync::Notify::new());
    let finished = Arc::new(AtomicBool::new(false));
    let slow = {
        let (release, finished) = (release.clone(), finished.clone());
        axum::Router::new()
            .route(
                "/slow",
                post(move || async move {
                    release.notified().await;
                    finished.store(true, Ordering::SeqCst);
                    "done"
                }),
            )
            .route(
                "/slow-read",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
    };
    let db = TestDb::create(Backend::Sqlite).await;
    let app = TestApp::spawn_with(db, &[("SESAME_REQUEST_TIMEOUT", "1s")], slow).await;
    // A read past the timeout is answered 503 too (and simply dropped).
    let read = app.http().get(app.url("/slow-read")).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(read.headers().contains_key("retry-after"));
    let started = Instant::now();
    let response = app.http().post(app.url("/slow")).send().await.unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(1) + SLACK,
        "{took:?}"
    );
    // The work the handler started is not abandoned.
    assert!(!finished.load(Ordering::SeqCst));
    release.notify_one();
    assert!(eventually(SLACK, || async { finished.load(Ordering::SeqCst) }).await);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_until_one_closes() {
    let app = TestApp::spawn(Backend::Sqlite, &[("SESAME_MAX_CONNECTIONS", "2")]).await;
    let mut first = connect(&app).await;
    let mut second = connect(&app).await;
    assert!(exchange(&mut first, "/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(exchange(&mut second, "/healthz").await.starts_with("HTTP/1.1 200"));
    // The third connects (the kernel's backlog takes it) but is not served...
    let mut third = connect(&app).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: sesame.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(700), third.read(&mut buf)).await;
    assert!(early.is_err(), "a third connection was served past the cap");
    // ...until one of the two closes.
    drop(first);
    let answer = tokio::time::timeout(SLACK, read_response(&mut third))
        .await
        .expect("served once a place was free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(second);
    app.stop().await;
}
