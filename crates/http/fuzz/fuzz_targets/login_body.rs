//! The JSON bodies of `POST /login`: malformed JSON is a 400, a wrong shape a 422, and
//! nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sesame_http::ApiError;
use sesame_http::fuzzing::parse_json as parse;
use sesame_http::fuzzing::{ApiKeyLogin, LoginRequest, PasswordLogin};

fuzz_target!(|data: &[u8]| {
    for result in [
        parse::<PasswordLogin>(data).map(|_| ()),
        parse::<ApiKeyLogin>(data).map(|_| ()),
        parse::<LoginRequest>(data).map(|_| ()),
    ] {
        match result {
            Ok(()) | Err(ApiError::BadRequest(_)) => {}
            Err(ApiError::Validation(errors)) => assert!(!errors.is_empty()),
            Err(other) => panic!("unexpected rejection {other:?}"),
        }
    }
});
