//! One messages/full-log message body, for every source file sipwarden reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipwarden::asterisk::messages;

fuzz_target!(|data: &[u8]| {
    let Some((pick, rest)) = data.split_first() else { return };
    let Ok(msg) = std::str::from_utf8(rest) else { return };
    let file = messages::FILES[*pick as usize % messages::FILES.len()];
    if let Some(shape) = messages::shape(file, msg) {
        let _ = messages::is_incomplete(shape, msg);
        let _ = messages::incomplete_call_sender(shape, msg);
        let _ = messages::parse(shape, msg, false);
        let _ = messages::parse(shape, msg, true);
    }
    let _ = sipwarden::asterisk::envelope::parse(msg);
    let _ = sipwarden::asterisk::address::sip_user(msg);
    let _ = sipwarden::asterisk::address::parse_security_address(msg);
});
