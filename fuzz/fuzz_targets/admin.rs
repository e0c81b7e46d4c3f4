//! The admin API's request bodies and paths: arbitrary bytes as a `POST /admin/backends` body, a
//! `PATCH /admin/backends/{name}` body and a percent-encoded `{name}` must never panic, and whatever is
//! accepted must be within the documented ranges.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rrlb::testing::{parse_new_backend, parse_object, parse_patch};

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = parse_object(data) {
        if let Ok(spec) = parse_new_backend(&body) {
            assert!((1..=10_000).contains(&spec.weight));
            assert!(spec.url.starts_with("http://") || spec.url.starts_with("https://"));
            assert!(!spec.name.is_empty());
        }
        if let Ok(patch) = parse_patch(&body) {
            if let Some(w) = patch.weight {
                assert!((1..=10_000).contains(&w));
            }
            if patch.remove == Some(true) {
                assert_eq!(patch.drain, Some(true));
            }
        }
    }
    if let Ok(path) = std::str::from_utf8(data) {
        let _ = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    }
});
