//! Properties of the domain parsers and policies, over generated inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use proptest::prelude::*;
use sesame_domain::{Budget, Email, PasswordPolicy, Scopes, parse_duration};

proptest! {
    /// Normalizing twice changes nothing, and the result is trimmed and lower-case.
    #[test]
    fn email_normalization_is_idempotent(raw in "\\PC{0,300}") {
        if let Ok(email) = Email::parse(&raw) {
            let again = Email::parse(email.as_str()).expect("a normalized email parses");
            prop_assert_eq!(again.as_str(), email.as_str());
            prop_assert_eq!(email.as_str(), email.as_str().trim().to_lowercase());
            prop_assert!(email.as_str().chars().count() <= 254);
            prop_assert_eq!(email.as_str().matches('@').count(), 1);
        }
    }

    /// Case and surrounding whitespace never make two accounts.
    #[test]
    fn emails_differing_in_case_and_padding_are_one(local in "[a-z0-9.]{1,20}", domain in "[a-z]{1,10}\\.[a-z]{2,5}") {
        let plain = Email::parse(&format!("{local}@{domain}")).unwrap();
        let shouted = Email::parse(&format!("  {}@{} ", local.to_uppercase(), domain.to_uppercase())).unwrap();
        prop_assert_eq!(plain, shouted);
    }

    /// A new password is accepted exactly when long enough, short enough and uncommon,
    /// and is kept byte for byte.
    #[test]
    fn password_rules_are_length_and_list_only(raw in "\\PC{0,80}", min in 8usize..=64) {
        let policy = PasswordPolicy { min_length: min };
        let length = raw.chars().count();
        match policy.parse_new(raw.clone()) {
            Ok(password) => {
                prop_assert!(length >= min);
                prop_assert_eq!(password.expose(), raw.as_str());
            }
            Err(_) => prop_assert!(length < min || sesame_domain::password::is_common(&raw)),
        }
    }

    /// Every well-formed duration parses to its value in seconds.
    #[test]
    fn durations_parse_to_their_value(count in 1u64..100_000, unit in prop::sample::select(vec![('s', 1u64), ('m', 60), ('h', 3_600), ('d', 86_400)])) {
        let text = format!("{count}{}", unit.0);
        match parse_duration(&text) {
            Ok(duration) => prop_assert_eq!(duration, Duration::from_secs(count * unit.1)),
            Err(_) => prop_assert!(count * unit.1 > 10 * 366 * 86_400),
        }
    }

    /// Garbage never parses as a duration or a budget, and never panics.
    #[test]
    fn odd_durations_and_budgets_are_refused_without_panic(raw in "\\PC{0,20}") {
        let _ = parse_duration(&raw);
        let _ = raw.parse::<Budget>();
    }

    /// Narrowing yields a subset of the granted scopes, or an error.
    #[test]
    fn narrowing_never_grants_more(granted in prop::collection::vec("[a-z:]{1,8}", 0..6), requested in prop::collection::vec("[a-z:]{1,8}", 0..6)) {
        let granted = Scopes::from_list(granted.iter().map(String::as_str)).unwrap();
        let text = requested.join(" ");
        if let Ok(narrowed) = granted.narrow(Some(&text)) {
            for scope in narrowed.iter() {
                prop_assert!(granted.contains(scope.as_str()));
            }
            if !text.trim().is_empty() {
                for scope in narrowed.iter() {
                    prop_assert!(requested.iter().any(|r| r == scope.as_str()));
                }
            }
        } else {
            prop_assert!(requested.iter().any(|r| !granted.contains(r)));
        }
    }
}
