//! What a security review found, each closed with a test that fails without its fix:
//! wrong-typed secrets echoed, clients locked out by strangers naming them, IPv6 budgets
//! per /128, budgets overshot by concurrent attempts, unthrottled registration.

use std::collections::HashMap;

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

use sesame_tests::{
    Backend, PASSWORD, TestApp, basic_auth, eventually, expect_oauth_error, expect_problem, on_both_backends,
    on_postgres_polling_only,
};

on_both_backends!(
    a_wrong_typed_field_names_the_type_and_never_the_value,
    failures_that_merely_name_a_client_do_not_lock_it_out,
    ipv6_clients_are_counted_per_64,
    concurrent_wrong_passwords_never_overshoot_the_budget,
    concurrent_attempts_on_two_instances_never_overshoot_the_budget,
    registration_is_throttled_per_ip_and_a_taken_email_counts_too,
    disabling_a_user_ends_their_clients_keys_and_tokens_on_every_instance,
    the_operator_lists_deletes_and_revokes_clients,
    only_a_bearer_token_exempts_a_request_from_the_cross_site_checks,
    emails_are_nfkc_normalised_and_invisible_characters_refused,
    readiness_probes_the_database_at_most_once_a_second,
    an_invented_http_method_adds_no_metric_series,
    a_revocation_by_an_instance_whose_clock_is_behind_is_seen_by_the_others,
    a_client_revoking_its_own_tokens_cannot_grow_the_revocation_log_without_bound,
);

// What one instance ends, the others refuse within the bound without notifications too.
on_postgres_polling_only!(disabling_a_user_ends_their_clients_keys_and_tokens_on_every_instance,);

const WRONG: &str = "not the right passphrase";

/// A `POST /login` JSON body from `ip` (the app trusts `X-Forwarded-For`).
async fn login_from(app: &TestApp, ip: &str, email: &str, password: &str) -> Response {
    app.http()
        .post(app.url("/login"))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn a_wrong_typed_field_names_the_type_and_never_the_value(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let session = app.signed_in("ada@example.com").await;
    let secret_number = 918_273_645_u64;
    let secret_text = "zq-secret-value-7d1c";
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/login",
            json!({"email": "ada@example.com", "password": secret_number}),
            "password",
        ),
        ("/login", json!({"email": secret_number, "password": PASSWORD}), "email"),
        (
            "/login",
            json!({"email": "ada@example.com", "password": [secret_text]}),
            "password",
        ),
        (
            "/login",
            json!({"email": "ada@example.com", "password": {"x": secret_text}}),
            "password",
        ),
        (
            "/users",
            json!({"email": "b@example.com", "password": secret_number}),
            "password",
        ),
        (
            "/users",
            json!({"email": "b@example.com", "password": 1.5e300}),
            "password",
        ),
    ];
    for (path, body, field) in cases {
        let response = app.post_json(path, &body).await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        let text = problem.to_string();
        assert!(!text.contains("918273645"), "{path}: {text}");
        assert!(!text.contains(secret_text), "{path}: {text}");
        assert!(!text.contains("1.5e300"), "{path}: {text}");
        assert_eq!(problem["errors"][0]["field"], field, "{text}");
        let message = problem["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("expected"), "names the expected type: {message}");
    }
    // The same for cookie requests with other bodies.
    for body in [
        json!({"current_password": secret_number, "new_password": "a new fine passphrase"}),
        json!({"current_password": PASSWORD, "new_password": [secret_text]}),
    ] {
        let response = app
            .with_session(reqwest::Method::PUT, "/me/password", &session)
            .json(&body)
            .send()
            .await
            .unwrap();
        let text = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY)
            .await
            .to_string();
        assert!(!text.contains("918273645") && !text.contains(secret_text), "{text}");
    }
    let response = app
        .with_session(reqwest::Method::POST, "/clients", &session)
        .json(&json!({"name": "x", "scopes": secret_text}))
        .send()
        .await
        .unwrap();
    let text = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY)
        .await
        .to_string();
    assert!(!text.contains(secret_text), "{text}");
    app.stop().await;
}

async fn failures_that_merely_name_a_client_do_not_lock_it_out(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        &[
            ("SESAME_TRUST_PROXY", "true"),
            ("SESAME_THROTTLE_ACCOUNT_IP", "3/1h"),
            ("SESAME_THROTTLE_ACCOUNT", "5/1h"),
        ],
    )
    .await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let bogus = "sk_00000000000000000000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    // A stranger names the client from five addresses, twice each: ten failures.
    for n in 1..=5 {
        let ip = format!("203.0.113.{n}");
        for _ in 0..2 {
            let response = app
                .post_form("/login", &[("grant_type", "client_credentials")])
                .header("authorization", basic_auth(&client.client_id, bogus))
                .header("x-forwarded-for", &ip)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "from {ip}");
        }
    }
    // The client, from its own address, is not locked out.
    let response = app
        .post_form_basic(
            "/login",
            &client.client_id,
            &client.key,
            &[("grant_type", "client_credentials")],
        )
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    // The (client_id, IP) budget still holds for the stranger's address.
    let stranger = "203.0.113.9";
    for expected in [401, 401, 401, 429] {
        let response = app
            .post_form(
                "/login",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client.client_id),
                    ("client_secret", bogus),
                ],
            )
            .header("x-forwarded-for", stranger)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected);
    }
    let response = app
        .post_form_basic(
            "/login",
            &client.client_id,
            &client.key,
            &[("grant_type", "client_credentials")],
        )
        .header("x-forwarded-for", stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

async fn ipv6_clients_are_counted_per_64(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        &[("SESAME_TRUST_PROXY", "true"), ("SESAME_THROTTLE_IP", "3/1h")],
    )
    .await;
    app.user("ada@example.com").await;
    // Three addresses of one /64, three accounts: the /64's budget is spent.
    for (ip, email) in [
        ("2001:db8:1:2::1", "ada@example.com"),
        ("2001:db8:1:2::2", "grace@example.com"),
        ("2001:db8:1:2:ffff:ffff:ffff:fffe", "alan@example.com"),
    ] {
        let response = login_from(&app, ip, email, WRONG).await;
        expect_problem(response, StatusCode::UNAUTHORIZED).await;
    }
    let response = login_from(&app, "2001:db8:1:2:abcd::9", "ada@example.com", PASSWORD).await;
    expect_problem(response, StatusCode::TOO_MANY_REQUESTS).await;
    // The next /64 has its own budget, and IPv4 addresses are still counted one by one.
    let response = login_from(&app, "2001:db8:1:3::1", "ada@example.com", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    app.stop().await;
}

/// Sends `requests` JSON `POST`s at once, each `(url, ip, body)`; the statuses.
async fn at_once(http: &reqwest::Client, requests: Vec<(String, String, Value)>) -> Vec<u16> {
    let mut set = tokio::task::JoinSet::new();
    for (url, ip, body) in requests {
        let http = http.clone();
        set.spawn(async move {
            http.post(url)
                .header("x-forwarded-for", ip)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    set.join_all().await
}

/// Sends `n` wrong-password logins at once, spread over `apps`; counts the answers.
async fn burst(apps: &[&TestApp], n: usize, email: &str) -> HashMap<u16, usize> {
    let requests = (0..n)
        .map(|i| {
            let app = apps[i % apps.len()];
            let body = json!({"email": email, "password": WRONG});
            (app.url("/login"), "192.0.2.10".to_owned(), body)
        })
        .collect();
    let mut counts = HashMap::new();
    for status in at_once(apps[0].http(), requests).await {
        *counts.entry(status).or_insert(0) += 1;
    }
    counts
}

/// After a burst, sends wrong passwords one at a time until refused; the total of 401s
/// (the attempts that were verified) must be exactly the budget.
async fn verified_in_all(app: &TestApp, mut counts: HashMap<u16, usize>, email: &str, budget: usize) {
    assert_eq!(
        counts.keys().filter(|s| **s != 401 && **s != 429).count(),
        0,
        "only 401 and 429: {counts:?}"
    );
    let mut verified = counts.remove(&401).unwrap_or(0);
    assert!(verified <= budget, "{verified} verified against a budget of {budget}");
    loop {
        let status = login_from(app, "192.0.2.10", email, WRONG).await.status().as_u16();
        match status {
            401 => verified += 1,
            429 => break,
            other => panic!("unexpected {other}"),
        }
        assert!(verified <= budget, "{verified} verified against a budget of {budget}");
    }
    assert_eq!(verified, budget);
}

async fn concurrent_wrong_passwords_never_overshoot_the_budget(backend: Backend) {
    let settings = [("SESAME_TRUST_PROXY", "true"), ("SESAME_THROTTLE_ACCOUNT_IP", "5/15m")];
    let app = TestApp::spawn(backend, &settings).await;
    app.user("ada@example.com").await;
    let counts = burst(&[&app], 40, "ada@example.com").await;
    verified_in_all(&app, counts, "ada@example.com", 5).await;
    app.stop().await;
}

async fn concurrent_attempts_on_two_instances_never_overshoot_the_budget(backend: Backend) {
    let settings = [("SESAME_TRUST_PROXY", "true"), ("SESAME_THROTTLE_ACCOUNT_IP", "4/15m")];
    let a = TestApp::spawn(backend, &settings).await;
    let b = TestApp::spawn_on(a.db.clone(), &settings).await;
    a.user("ada@example.com").await;
    let counts = burst(&[&a, &b], 30, "ada@example.com").await;
    verified_in_all(&b, counts, "ada@example.com", 4).await;
    b.stop().await;
    a.stop().await;
}

async fn registration_is_throttled_per_ip_and_a_taken_email_counts_too(backend: Backend) {
    let app = TestApp::spawn(
        backend,
        &[("SESAME_TRUST_PROXY", "true"), ("SESAME_THROTTLE_REGISTRATION", "3/1h")],
    )
    .await;
    let register = |ip: &'static str, email: &'static str| {
        let app = &app;
        async move {
            app.http()
                .post(app.url("/users"))
                .header("x-forwarded-for", ip)
                .json(&json!({"email": email, "password": PASSWORD}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        register("192.0.2.1", "ada@example.com").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        register("192.0.2.1", "ada@example.com").await.status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        register("192.0.2.1", "grace@example.com").await.status(),
        StatusCode::CREATED
    );
    let refused = register("192.0.2.1", "alan@example.com").await;
    assert!(refused.headers().contains_key("retry-after"));
    expect_problem(refused, StatusCode::TOO_MANY_REQUESTS).await;
    // Refused attempts do not count, and another address has its own budget.
    assert_eq!(
        register("192.0.2.2", "alan@example.com").await.status(),
        StatusCode::CREATED
    );
    // A burst from one address: exactly the budget gets through.
    let attempts = (0..12)
        .map(|i| {
            let body = json!({"email": format!("u{i}@example.com"), "password": PASSWORD});
            (app.url("/users"), "192.0.2.3".to_owned(), body)
        })
        .collect();
    let statuses = at_once(app.http(), attempts).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 9, "{statuses:?}");
    app.stop().await;
}

/// The bound on how late another process's action is seen by an instance, with margin.
const ELSEWHERE: Duration = Duration::from_millis(1_500);

async fn disabling_a_user_ends_their_clients_keys_and_tokens_on_every_instance(backend: Backend) {
    // Two instances behind one name; the refused exchanges below are failures, which
    // must not spend the budget the enabled client needs at the end.
    let settings = [
        ("SESAME_ISSUER", "https://auth.example.com"),
        ("SESAME_THROTTLE_ACCOUNT_IP", "1000/1m"),
        ("SESAME_THROTTLE_IP", "1000/1m"),
    ];
    let a = TestApp::spawn(backend, &settings).await;
    let b = TestApp::spawn_on(a.db.clone(), &settings).await;
    let ada = a.signed_in("ada@example.com").await;
    let client = a.create_client(&ada, &["notes:read", "notes:write"]).await;
    let bob = a.signed_in("bob@example.com").await;
    let witness = a.create_client(&bob, &["notes:read"]).await;
    let token = a.token(&client.client_id, &client.key, None).await;
    let narrow = b.token(&client.client_id, &client.key, Some("notes:read")).await;
    for app in [&a, &b] {
        let me = app.me_bearer(&token).await;
        assert_eq!(me.status(), StatusCode::OK, "{:?}", me.text().await);
        assert!(app.accepts(&narrow).await);
    }

    a.sesame(&["user", "disable", "ada@example.com"]).await;

    for app in [&a, &b] {
        // Keys refused, with a narrowed scope too; tokens issued before refused.
        assert!(
            eventually(ELSEWHERE, || async {
                app.token_response(&client.client_id, &client.key, Some("notes:read"))
                    .await
                    .status()
                    == StatusCode::UNAUTHORIZED
            })
            .await,
            "the disabled owner's key still works"
        );
        let refused = app.token_response(&client.client_id, &client.key, None).await;
        expect_oauth_error(refused, StatusCode::UNAUTHORIZED, "invalid_client").await;
        assert!(eventually(ELSEWHERE, || async { app.refuses(&token).await }).await);
        assert!(app.refuses(&narrow).await);
        for t in [&token, &narrow] {
            let body = app.introspect(&witness.client_id, &witness.key, t).await;
            assert_eq!(body, json!({"active": false}));
        }
        assert!(
            eventually(ELSEWHERE, || async {
                app.me(&ada).await.status() == StatusCode::UNAUTHORIZED
            })
            .await
        );
    }

    // Enabling revives nothing that ended, but the key, never revoked, works again.
    a.sesame(&["user", "enable", "ada@example.com"]).await;
    for app in [&a, &b] {
        assert!(
            eventually(ELSEWHERE, || async {
                app.token_response(&client.client_id, &client.key, None).await.status() == StatusCode::OK
            })
            .await,
            "the key of an enabled owner is refused"
        );
        let fresh = app.token(&client.client_id, &client.key, None).await;
        assert!(a.accepts(&fresh).await && b.accepts(&fresh).await);
        assert!(app.refuses(&token).await && app.refuses(&narrow).await);
        assert_eq!(app.me(&ada).await.status(), StatusCode::UNAUTHORIZED);
    }
    a.login("ada@example.com", PASSWORD).await;
    b.stop().await;
    a.stop().await;
}

async fn the_operator_lists_deletes_and_revokes_clients(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let ada = app.signed_in("ada@example.com").await;
    let first = app.create_client(&ada, &["notes:read"]).await;
    let (second_key_id, second_key) = app.add_key(&ada, &first.client_id).await;
    let bob = app.signed_in("bob@example.com").await;
    let other = app.create_client(&bob, &["files:read"]).await;
    let token = app.token(&first.client_id, &second_key, None).await;

    let all = app.sesame(&["client", "list"]).await;
    for expected in [&first.client_id, &other.client_id, &first.key_id, &second_key_id] {
        assert!(all.contains(expected.as_str()), "{all}");
    }
    for secret in [&first.key, &second_key, &other.key] {
        assert!(!all.contains(secret.as_str()), "a key is printed: {all}");
    }
    let adas = app.sesame(&["client", "list", "--owner", "ada@example.com"]).await;
    assert!(
        adas.contains(&first.client_id) && !adas.contains(&other.client_id),
        "{adas}"
    );

    app.sesame(&["client", "revoke-key", &first.client_id, &second_key_id])
        .await;
    assert!(
        eventually(ELSEWHERE, || async {
            app.token_response(&first.client_id, &second_key, None).await.status() == StatusCode::UNAUTHORIZED
        })
        .await
    );
    assert!(eventually(ELSEWHERE, || async { app.refuses(&token).await }).await);
    app.token(&first.client_id, &first.key, None).await;
    let listed = app.sesame(&["client", "list", "--owner", "ada@example.com"]).await;
    assert!(listed.contains("revoked"), "{listed}");

    app.sesame(&["client", "delete", &first.client_id]).await;
    assert!(
        eventually(ELSEWHERE, || async {
            app.token_response(&first.client_id, &first.key, None).await.status() == StatusCode::UNAUTHORIZED
        })
        .await
    );
    let after = app.sesame(&["client", "list"]).await;
    assert!(
        !after.contains(&first.client_id) && after.contains(&other.client_id),
        "{after}"
    );

    // Unknown ids are errors naming what is missing, and change nothing.
    let missing = app.sesame_output(&["client", "delete", "cli_nothing"]).await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no client"));
    app.token(&other.client_id, &other.key, None).await;
    app.stop().await;
}

async fn only_a_bearer_token_exempts_a_request_from_the_cross_site_checks(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    let body = json!({"email": "ada@example.com", "password": PASSWORD});
    for authorization in ["Basic YWRhOnNlY3JldA==", "Negotiate abc", "bearer"] {
        for (name, value) in [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")] {
            let response = app
                .http()
                .post(app.url("/login"))
                .header("authorization", authorization)
                .header(name, value)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(response.headers().get("set-cookie").is_none());
            expect_problem(response, StatusCode::FORBIDDEN).await;
        }
    }
    // A bearer token is no ambient credential: a request carrying one is not refused by
    // the cross-site checks (here it is merely an invalid token).
    let response = app
        .http()
        .post(app.url("/logout"))
        .header("authorization", "Bearer not-a-token")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_ne!(response.status(), StatusCode::FORBIDDEN);
    app.stop().await;
}

async fn emails_are_nfkc_normalised_and_invisible_characters_refused(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    app.user("ada@example.com").await;
    // A look-alike typed with fullwidth letters is the same account.
    let response = app.register("\u{FF41}\u{FF44}\u{FF41}@example.com", PASSWORD).await;
    expect_problem(response, StatusCode::CONFLICT).await;
    app.login("\u{FF41}da@example.com", PASSWORD).await;
    // Invisible characters would make a second account that looks like the first.
    for bad in [
        "ada\u{200B}@example.com",
        "ad\u{202E}a@example.com",
        "\u{FEFF}ada@example.com",
    ] {
        let problem = expect_problem(app.register(bad, PASSWORD).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(problem["errors"][0]["field"], "email", "{problem}");
        let login = app.login_response(bad, PASSWORD).await;
        assert_eq!(login.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    app.stop().await;
}

/// A Postgres that refuses new connections (`ALLOW_CONNECTIONS false`) after the pool's
/// connections were cut: every answer that needs the database is 503 with `Retry-After`,
/// never 500, and service resumes by itself once connections are allowed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_refusing_connections_answers_503_and_service_resumes() {
    use sqlx::Connection as _;

    let budgets = [
        ("SESAME_THROTTLE_ACCOUNT_IP", "1000/1m"),
        ("SESAME_THROTTLE_IP", "1000/1m"),
    ];
    let app = TestApp::spawn(Backend::Postgres, &budgets).await;
    let session = app.signed_in("ada@example.com").await;
    let name = app.db.postgres_name().expect("a Postgres database").to_owned();
    let mut admin = sqlx::PgConnection::connect(&sesame_tests::postgres_admin_url())
        .await
        .unwrap();
    let allow = |allowed: bool| sqlx::AssertSqlSafe(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allowed}"));
    sqlx::query(allow(false)).execute(&mut admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .unwrap();

    // Checked without panicking, so that connections are allowed again whatever happens
    // and the database can be dropped.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let ready = app.http().get(app.url("/readyz")).send().await.unwrap();
        seen.push(("/readyz", ready.status(), ready.headers().contains_key("retry-after")));
        let login = app.login_response("ada@example.com", PASSWORD).await;
        seen.push(("/login", login.status(), login.headers().contains_key("retry-after")));
        let registration = app.register("bob@example.com", PASSWORD).await;
        seen.push((
            "/users",
            registration.status(),
            registration.headers().contains_key("retry-after"),
        ));
        let me = app.me(&session).await;
        seen.push(("/me", me.status(), me.headers().contains_key("retry-after")));
    }
    sqlx::query(allow(true)).execute(&mut admin).await.unwrap();
    admin.close().await.ok();
    for (path, status, retry_after) in &seen {
        assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {seen:?}");
        assert!(retry_after, "{path} without Retry-After");
    }
    // Service resumes by itself.
    assert!(
        eventually(Duration::from_secs(5), || async {
            app.http().get(app.url("/readyz")).send().await.unwrap().status() == StatusCode::OK
        })
        .await
    );
    app.login("ada@example.com", PASSWORD).await;
    assert_eq!(app.me(&session).await.status(), StatusCode::OK);
    app.stop().await;
}

/// The number after a metric's name in `/metrics`.
async fn metric(app: &TestApp, name: &str) -> u64 {
    let text = app.metrics_text().await;
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

async fn readiness_probes_the_database_at_most_once_a_second(backend: Backend) {
    let clock = sesame_core::ManualClock::new();
    let app = TestApp::spawn_with_clock(backend, &[], clock.clone()).await;
    let before = metric(&app, "sesame_readiness_probes").await;
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (http, url) = (app.http().clone(), app.url("/readyz"));
        set.spawn(async move { http.get(url).send().await.unwrap().status() });
    }
    for status in set.join_all().await {
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(
        metric(&app, "sesame_readiness_probes").await,
        before + 1,
        "one probe for 50 calls"
    );
    clock.advance(Duration::from_millis(999));
    app.http().get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(metric(&app, "sesame_readiness_probes").await, before + 1);
    clock.advance(Duration::from_millis(1));
    app.http().get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        metric(&app, "sesame_readiness_probes").await,
        before + 2,
        "probed again a second later"
    );
    app.stop().await;
}

async fn an_invented_http_method_adds_no_metric_series(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    for n in 0..5 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{n}").as_bytes()).unwrap();
        app.http().request(method, app.url("/healthz")).send().await.unwrap();
    }
    let text = app.metrics_text().await;
    assert!(!text.contains("INVENTED"), "{text}");
    assert!(text.contains("method=\"OTHER\""), "{text}");
    app.stop().await;
}

async fn a_revocation_by_an_instance_whose_clock_is_behind_is_seen_by_the_others(backend: Backend) {
    let fleet = [("SESAME_ISSUER", "https://auth.example.com")];
    let b = TestApp::spawn(backend, &fleet).await;
    // Instance A's clock is 40 s behind (within the tokens' 60 s leeway).
    let behind = sesame_core::ManualClock::at(sesame_domain::now() - time::Duration::seconds(40));
    let a = TestApp::spawn_on_with_clock(b.db.clone(), &fleet, behind).await;
    let session = b.signed_in("ada@example.com").await;
    let client = b.create_client(&session, &["notes:read"]).await;
    let tokens = [
        b.token(&client.client_id, &client.key, None).await,
        b.token(&client.client_id, &client.key, None).await,
    ];
    assert!(b.accepts(&tokens[0]).await && a.accepts(&tokens[0]).await);

    let revoked = a.revoke(&client.client_id, &client.key, &tokens[0]).await;
    assert_eq!(revoked.status(), StatusCode::OK);
    assert!(a.refuses(&tokens[0]).await, "at once where it was revoked");
    assert!(
        eventually(ELSEWHERE, || async { b.refuses(&tokens[0]).await }).await,
        "a revocation stamped by a slow clock was lost"
    );
    assert!(b.accepts(&tokens[1]).await);
    a.stop().await;
    b.stop().await;
}

async fn a_client_revoking_its_own_tokens_cannot_grow_the_revocation_log_without_bound(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_THROTTLE_IP", "3/1m")]).await;
    let session = app.signed_in("ada@example.com").await;
    let client = app.create_client(&session, &["notes:read"]).await;
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(app.token(&client.client_id, &client.key, None).await);
    }
    let logged = || async {
        let store = app.store().await;
        let n = store
            .revocations
            .revocations_since(time::OffsetDateTime::UNIX_EPOCH, sesame_domain::now())
            .await
            .unwrap()
            .len();
        store.database.close().await;
        n
    };
    let before = logged().await;
    assert_eq!(
        app.revoke(&client.client_id, &client.key, &tokens[0]).await.status(),
        StatusCode::OK
    );
    // The same token again: answered alike, and nothing more is kept.
    for _ in 0..5 {
        assert_eq!(
            app.revoke(&client.client_id, &client.key, &tokens[0]).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(logged().await, before + 1);
    assert_eq!(
        app.revoke(&client.client_id, &client.key, &tokens[1]).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.revoke(&client.client_id, &client.key, &tokens[2]).await.status(),
        StatusCode::OK
    );
    // The client's budget of revocations is spent: the next is refused and kept nowhere.
    let refused = app.revoke(&client.client_id, &client.key, &tokens[3]).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(logged().await, before + 3);
    assert!(app.accepts(&tokens[3]).await);
    app.stop().await;
}
