//! Log dates in any of the shapes Asterisk writes, and anything else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipwarden::asterisk::timestamp::Timestamper;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut stamps = Timestamper::new(1_767_225_600_000);
    // Twice: the second conversion runs with the year inferred from the first.
    for date in text.split('|').take(8) {
        let _ = stamps.convert(date);
        let _ = stamps.convert(date);
    }
});
