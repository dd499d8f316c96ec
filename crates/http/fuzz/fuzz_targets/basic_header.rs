//! `Authorization: Basic …` as any client may send it (RFC 6749 §2.3.1 decoding).
#![no_main]

use axum::http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use sesame_http::fuzzing::{basic_credentials, parse_form, presented_client};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value);
    let _ = basic_credentials(&headers);
    let form = parse_form(b"grant_type=client_credentials").expect("valid form");
    let _ = presented_client(&headers, &form);
});
