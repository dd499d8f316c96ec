//! A user's view of their own sessions: `GET /sessions`, `DELETE /sessions/{id}` and
//! `DELETE /sessions`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sesame_tests::{Backend, PASSWORD, Session, TestApp, expect_problem, on_both_backends, session_from};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

on_both_backends!(
    the_session_list_shows_each_live_session_and_marks_the_current_one,
    ending_another_of_ones_own_sessions_makes_its_cookie_useless,
    sessions_that_are_not_ones_own_are_not_found,
    ending_all_other_sessions_keeps_only_the_current_one,
);

async fn login_as_agent(app: &TestApp, email: &str, agent: &str) -> Session {
    let response = app
        .http()
        .post(app.url("/login"))
        .header("user-agent", agent)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    session_from(response).await
}

async fn list(app: &TestApp, session: &Session) -> Vec<Value> {
    let response = app
        .with_session(Method::GET, "/sessions", session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn ids(sessions: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = sessions.iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

async fn delete(app: &TestApp, session: &Session, path: &str) -> reqwest::Response {
    app.with_session(Method::DELETE, path, session).send().await.unwrap()
}

async fn the_session_list_shows_each_live_session_and_marks_the_current_one(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    app.user("grace@example.com").await;
    let laptop = login_as_agent(&app, "ada@example.com", "sesame-tests laptop/1.0").await;
    let phone = login_as_agent(&app, "ada@example.com", "sesame-tests phone/2.0").await;
    let ended = login_as_agent(&app, "ada@example.com", "sesame-tests old/0.1").await;
    let logout = app.with_session(Method::POST, "/logout", &ended).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    login_as_agent(&app, "grace@example.com", "someone else").await;

    let sessions = list(&app, &laptop).await;
    let mut expected = vec![laptop.id().to_owned(), phone.id().to_owned()];
    expected.sort();
    assert_eq!(ids(&sessions), expected, "only Ada's live sessions: {sessions:#?}");

    let now = OffsetDateTime::now_utc();
    for entry in &sessions {
        let instant = |field: &str| {
            OffsetDateTime::parse(
                entry[field].as_str().unwrap_or_else(|| panic!("{field} in {entry}")),
                &Rfc3339,
            )
            .unwrap_or_else(|e| panic!("{field} is RFC 3339: {e}"))
        };
        let (created, seen, expires) = (instant("created_at"), instant("last_seen_at"), instant("expires_at"));
        assert!(
            created <= seen && seen < expires && created <= now + time::Duration::seconds(1),
            "{entry}"
        );
        assert_eq!(entry["ip"], "127.0.0.1");
        let agent = if entry["id"] == laptop.id() {
            "sesame-tests laptop/1.0"
        } else {
            "sesame-tests phone/2.0"
        };
        assert_eq!(entry["user_agent"], agent);
        assert_eq!(entry["current"], entry["id"] == laptop.id(), "{entry}");
        assert!(!entry.to_string().contains(laptop.handle()) && !entry.to_string().contains(phone.handle()));
    }
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);

    // Asked from the other session, the other one is current.
    let from_phone = list(&app, &phone).await;
    let current: Vec<&Value> = from_phone.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], phone.id());
    app.stop().await;
}

async fn ending_another_of_ones_own_sessions_makes_its_cookie_useless(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    let keep = app.login("ada@example.com", PASSWORD).await;
    let lost = app.login("ada@example.com", PASSWORD).await;

    let response = delete(&app, &keep, &format!("/sessions/{}", lost.id())).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    expect_problem(app.me(&lost).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(app.me(&keep).await.status(), StatusCode::OK);
    assert_eq!(ids(&list(&app, &keep).await), [keep.id().to_owned()]);

    // Already gone: a second delete finds nothing.
    let again = delete(&app, &keep, &format!("/sessions/{}", lost.id())).await;
    expect_problem(again, StatusCode::NOT_FOUND).await;

    // Without the CSRF token it is refused.
    let third = app.login("ada@example.com", PASSWORD).await;
    let response = app
        .http()
        .delete(app.url(&format!("/sessions/{}", third.id())))
        .header("cookie", &keep.cookie)
        .send()
        .await
        .unwrap();
    expect_problem(response, StatusCode::FORBIDDEN).await;
    assert_eq!(app.me(&third).await.status(), StatusCode::OK);
    app.stop().await;
}

async fn sessions_that_are_not_ones_own_are_not_found(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    app.user("grace@example.com").await;
    let ada = app.login("ada@example.com", PASSWORD).await;
    let grace = app.login("grace@example.com", PASSWORD).await;

    let random = uuid::Uuid::new_v4().to_string();
    for path in [
        format!("/sessions/{}", grace.id()),
        format!("/sessions/{random}"),
        "/sessions/not-a-uuid".to_owned(),
    ] {
        let response = delete(&app, &ada, &path).await;
        expect_problem(response, StatusCode::NOT_FOUND).await;
    }
    assert_eq!(
        app.me(&grace).await.status(),
        StatusCode::OK,
        "Grace's session is untouched"
    );
    assert_eq!(app.me(&ada).await.status(), StatusCode::OK);
    app.stop().await;
}

async fn ending_all_other_sessions_keeps_only_the_current_one(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    app.user("grace@example.com").await;
    let current = app.login("ada@example.com", PASSWORD).await;
    let others = [
        app.login("ada@example.com", PASSWORD).await,
        app.login("ada@example.com", PASSWORD).await,
    ];
    let grace = app.login("grace@example.com", PASSWORD).await;

    let response = delete(&app, &current, "/sessions").await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for other in &others {
        expect_problem(app.me(other).await, StatusCode::UNAUTHORIZED).await;
    }
    assert_eq!(app.me(&current).await.status(), StatusCode::OK);
    assert_eq!(ids(&list(&app, &current).await), [current.id().to_owned()]);
    assert_eq!(app.me(&grace).await.status(), StatusCode::OK, "other users keep theirs");
    app.stop().await;
}
