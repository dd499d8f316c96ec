//! Registration (`POST /users`): the account shape, taken emails, closed registration,
//! and the password rules (NIST SP 800-63B: length and a common-password list, nothing
//! else; compared byte-exact).

use reqwest::StatusCode;
use serde_json::Value;
use sesame_tests::{Backend, PASSWORD, TestApp, expect_problem, on_both_backends};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

on_both_backends!(
    a_registration_returns_the_user_with_a_normalized_email,
    an_email_taken_in_another_case_or_spacing_is_a_conflict,
    closed_registration_refuses_new_accounts,
    an_invalid_email_is_a_validation_error_naming_the_email,
    passwords_outside_the_policy_are_validation_errors_naming_the_password,
    a_long_passphrase_and_a_unicode_passphrase_are_accepted_and_compared_exactly,
);

/// The `field`s of a 422 problem's `errors`.
fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("422 without errors: {problem}"))
        .iter()
        .map(|error| {
            assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{error}");
            error["field"].as_str().expect("field").to_owned()
        })
        .collect()
}

async fn a_registration_returns_the_user_with_a_normalized_email(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let response = app.register("  Ada.Lovelace@Example.COM ", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    uuid::Uuid::parse_str(body["id"].as_str().expect("id")).expect("id is a uuid");
    assert_eq!(body["email"], "ada.lovelace@example.com");
    let created = OffsetDateTime::parse(body["created_at"].as_str().expect("created_at"), &Rfc3339)
        .expect("created_at is RFC 3339");
    assert!(
        created >= before && created <= OffsetDateTime::now_utc() + time::Duration::seconds(1),
        "{created}"
    );
    assert!(!body.to_string().contains(PASSWORD), "the password is never echoed");

    // The normalized address is the account: logging in with the typed form works too.
    let session = app.login("ADA.LOVELACE@example.com", PASSWORD).await;
    assert_eq!(session.body["user"]["id"], body["id"]);
    app.stop().await;
}

async fn an_email_taken_in_another_case_or_spacing_is_a_conflict(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let first = app.user("ada@example.com").await;
    for variant in ["ada@example.com", "  ADA@Example.com\t"] {
        let response = app.register(variant, "another fine passphrase").await;
        expect_problem(response, StatusCode::CONFLICT).await;
    }
    // The first account keeps its password.
    let session = app.login("ada@example.com", PASSWORD).await;
    assert_eq!(session.body["user"]["id"], first["id"]);
    let refused = app.login_response("ada@example.com", "another fine passphrase").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn closed_registration_refuses_new_accounts(backend: Backend) {
    let app = TestApp::spawn(backend, &[("SESAME_REGISTRATION", "closed")]).await;
    let response = app.register("ada@example.com", PASSWORD).await;
    expect_problem(response, StatusCode::FORBIDDEN).await;
    // Nothing was created: the same address cannot log in.
    let login = app.login_response("ada@example.com", PASSWORD).await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn an_invalid_email_is_a_validation_error_naming_the_email(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let too_long = format!("{}@example.com", "a".repeat(250));
    for email in [
        "",
        "not-an-email",
        "ada@",
        "@example.com",
        "ada@@example.com",
        "ada lovelace@example.com",
        too_long.as_str(),
    ] {
        let response = app.register(email, PASSWORD).await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(fields(&problem), ["email"], "{email:?}: {problem}");
    }
    app.stop().await;
}

async fn passwords_outside_the_policy_are_validation_errors_naming_the_password(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let too_long = "x".repeat(1025);
    for password in ["short", "1234567", "password123", "qwertyuiop", too_long.as_str()] {
        let response = app.register("ada@example.com", password).await;
        let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(
            fields(&problem),
            ["password"],
            "{}: {problem}",
            &password[..password.len().min(20)]
        );
        assert!(!problem.to_string().contains(password), "the password is never echoed");
    }
    // The account was never created, so the address is still free.
    app.user("ada@example.com").await;

    // Both fields wrong at once: both are named.
    let response = app.register("nope", "short").await;
    let problem = expect_problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    let mut named = fields(&problem);
    named.sort();
    assert_eq!(named, ["email", "password"]);
    app.stop().await;
}

async fn a_long_passphrase_and_a_unicode_passphrase_are_accepted_and_compared_exactly(backend: Backend) {
    let app = TestApp::spawn(backend, &[]).await;
    let long: String = "Tr0ub4dor&3-".chars().cycle().take(64).collect();
    let unicode = "  Çà et là, 🦀 das Passwort ist schön  ";
    for (email, password) in [("long@example.com", long.as_str()), ("unicode@example.com", unicode)] {
        let response = app.register(email, password).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{email}");
        let session = app.login(email, password).await;
        assert_eq!(session.body["user"]["email"], email);

        let trimmed = password.trim().to_owned();
        let upper = password.to_uppercase();
        let lower = password.to_lowercase();
        let shortened: String = password.chars().take(password.chars().count() - 1).collect();
        for variant in [trimmed, upper, lower, shortened] {
            if variant == password {
                continue;
            }
            let response = app.login_response(email, &variant).await;
            expect_problem(response, StatusCode::UNAUTHORIZED).await;
        }
    }
    app.stop().await;
}
