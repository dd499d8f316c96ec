//! Form bodies on the token path: repeated parameters, odd percent-encodings, invalid
//! UTF-8. A repeated name is always refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sesame_http::fuzzing::parse_form;

fuzz_target!(|data: &[u8]| {
    match parse_form(data) {
        Ok(params) => {
            let names: Vec<_> = form_names(data);
            let mut unique = names.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), names.len(), "a repeated parameter was accepted");
            assert_eq!(params.len(), names.len());
        }
        Err(error) => assert_eq!(error.error(), "invalid_request"),
    }
});

fn form_names(data: &[u8]) -> Vec<String> {
    sesame_http::fuzzing::form_pairs(data)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}
