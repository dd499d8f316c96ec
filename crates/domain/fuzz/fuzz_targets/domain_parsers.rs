//! Every other parser of untrusted text in the domain: emails, scopes, durations,
//! throttle budgets, login passwords. None may panic; accepted values are normalized.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sesame_domain::{Budget, Email, Password, PasswordPolicy, Scopes, parse_duration};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(email) = Email::parse(text) {
        assert_eq!(
            Email::parse(email.as_str()).expect("idempotent").as_str(),
            email.as_str()
        );
    }
    if let Ok(scopes) = Scopes::parse_space_separated(text) {
        let _ = scopes.narrow(Some(text));
        assert_eq!(
            Scopes::parse_space_separated(&scopes.to_text()).expect("round trip"),
            scopes
        );
    }
    let _ = parse_duration(text);
    let _ = text.parse::<Budget>();
    let _ = Password::for_login(text.to_owned());
    if let Ok(password) = PasswordPolicy::default().parse_new(text.to_owned()) {
        assert_eq!(password.expose(), text);
    }
});
