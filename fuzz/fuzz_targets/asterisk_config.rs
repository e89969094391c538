//! Asterisk's own configuration files and CLI output, read when ACLs are applied.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipwarden::asterisk::acl::{self, Tech};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = acl::discover(text, Tech::Sip);
    let _ = acl::discover(text, Tech::Pjsip);
    let _ = acl::refused_config_line(text);
    let net = "10.0.0.0/8".parse().expect("a network");
    let _ = acl::shows_permit(text, &net);
    // The managed block is replaced, never duplicated: applying twice changes nothing.
    let once = acl::with_managed_block(text, "; block\n");
    assert_eq!(acl::with_managed_block(&once, "; block\n"), once);
    let included = acl::with_include(text);
    assert_eq!(acl::with_include(&included), included);
});
