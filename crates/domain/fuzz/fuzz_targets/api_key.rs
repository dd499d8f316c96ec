//! API keys and client ids as presented by clients: any input is refused or parses to a
//! key that prints back exactly, and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sesame_domain::{ApiKey, ClientId};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(key) = ApiKey::parse(text) {
        assert_eq!(key.expose(), text);
        assert!(text.starts_with("sk_"));
        assert!(key.hash().matches(&ApiKey::parse(text).expect("reparses").hash()));
        assert!(!format!("{key:?}").contains(&text[36..]));
    }
    if let Some(id) = ClientId::parse(text) {
        assert_eq!(id.as_str(), text);
    }
});
