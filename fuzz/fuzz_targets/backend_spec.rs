//! `URL[=WEIGHT]` → BackendConfig: never panics; an accepted backend displays to a string that
//! parses back to it, and its URL string parses back to the same place.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rrlb::config::{BackendConfig, check_backend_name, parse_backend_url};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = check_backend_name(text);
    let _ = parse_backend_url(text).map(|u| u.to_string());
    match text.parse::<BackendConfig>() {
        Err(e) => {
            let _ = e.to_string();
        }
        Ok(backend) => {
            let shown = backend.to_string();
            match shown.parse::<BackendConfig>() {
                Ok(again) => assert_eq!(again, backend, "{text:?} displayed as {shown:?}"),
                Err(e) => panic!("{text:?} displayed as {shown:?}, which does not parse: {e}"),
            }
            let url = backend.url_string();
            let again = BackendConfig::new(&url, Some(backend.weight), Some(&backend.name))
                .unwrap_or_else(|e| panic!("{url:?} does not parse: {e}"));
            assert!(again.same_url(&backend), "{url:?}");
            assert_eq!(again.url_string(), url);
            assert_eq!(again, backend);
        }
    }
});
