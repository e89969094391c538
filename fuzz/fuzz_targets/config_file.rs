//! The configuration file and the values admins type into it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipwarden::config::{self, Config, FileConfig, Overrides, SourceSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(file) = FileConfig::parse(text) {
        let _ = Config::from_parts(file, Overrides::default());
    }
    let _ = config::parse_network(text, "fuzz");
    let _ = config::duration_ms(text, "fuzz");
    let _ = SourceSpec::parse(text);
});
