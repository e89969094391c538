//! One security-log message body (the text after the envelope).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = std::str::from_utf8(data) {
        let _ = sipwarden::asterisk::security::parse(msg, false);
        let _ = sipwarden::asterisk::security::parse(msg, true);
    }
});
