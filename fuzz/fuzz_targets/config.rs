//! TOML text → parse + validate: never panics; an accepted file prints (`--check`) to a file
//! that loads to the same configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rrlb::config::{Cli, Config};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cli = Cli::default();
    match Config::from_toml_str("fuzz.toml", text, &cli) {
        Err(e) => {
            // Rendering and the accessors must not panic either.
            let _ = (e.to_string(), e.kind(), e.key(), e.value(), e.location());
        }
        Ok(config) => {
            let printed = config.to_toml_string();
            let mut again = match Config::from_toml_str("fuzz.toml", &printed, &cli) {
                Ok(again) => again,
                Err(e) => panic!("the printed configuration does not load: {e}\n{printed}"),
            };
            // The token is printed as "<redacted>".
            again.admin.token = config.admin.token.clone();
            assert_eq!(again, config, "printed as:\n{printed}");
        }
    }
});
