//! Bearer tokens from anyone: raw strings, and well-formed JWTs with arbitrary headers
//! and claims. Nothing an attacker can write without the private key may verify, and
//! nothing may panic.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use sesame_core::tokens::keys::{KeyRing, SigningAlg, generate};
use sesame_core::tokens::service::{TokenSettings, verify_with};

fn ring() -> &'static (KeyRing, TokenSettings) {
    static RING: OnceLock<(KeyRing, TokenSettings)> = OnceLock::new();
    RING.get_or_init(|| {
        let now = sesame_domain::now();
        let records = [
            generate(SigningAlg::EdDsa, now).expect("key"),
            generate(SigningAlg::Es256, now).expect("key"),
        ];
        let ring = KeyRing::build(&records, now, Duration::from_secs(3_600)).expect("ring");
        let settings = TokenSettings {
            issuer: "https://auth.example".into(),
            audience: "https://auth.example".into(),
            ttl: Duration::from_secs(900),
            alg: SigningAlg::EdDsa,
            publish_delay: Duration::from_secs(330),
            resources: Vec::new(),
            sealer: std::sync::Arc::new(sesame_core::sealing::Sealer::default()),
            revocation_poll: std::time::Duration::from_secs(1),
            notifications: true,
        };
        (ring, settings)
    })
}

fuzz_target!(|data: &[u8]| {
    let (ring, settings) = ring();
    let now = sesame_domain::now();
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(verify_with(ring, settings, text, now).is_err());
    }
    // Structure-aware: header, claims and signature separated by NUL, each base64url
    // encoded, so the JSON parsers and the header checks are reached.
    let mut parts = data.splitn(3, |b| *b == 0);
    let (Some(header), Some(claims)) = (parts.next(), parts.next()) else {
        return;
    };
    let signature = parts.next().unwrap_or_default();
    let token = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims),
        URL_SAFE_NO_PAD.encode(signature)
    );
    assert!(verify_with(ring, settings, &token, now).is_err());
});
