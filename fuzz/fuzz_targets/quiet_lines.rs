//! Passing over quiet lines (as check-log does) must give exactly what reading every
//! line gives: the same records, counts and resume offset.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipwarden::asterisk::read_bytes;

const REFERENCE: i64 = 1_767_225_600_000;

fuzz_target!(|data: &[u8]| {
    assert_eq!(read_bytes(data, REFERENCE, true), read_bytes(data, REFERENCE, false));
});
