//! Session cookies and CSRF tokens as presented by browsers: only the exact issued shape
//! parses, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sesame_domain::{CsrfToken, SessionHandle};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(handle) = SessionHandle::parse(text) {
        assert_eq!(handle.expose(), text);
        assert_eq!(text.len(), 43);
        assert_eq!(handle.hash(), SessionHandle::parse(text).expect("reparses").hash());
    }
    let token = CsrfToken::from_stored("a".repeat(43));
    let _ = token.matches(text);
});
