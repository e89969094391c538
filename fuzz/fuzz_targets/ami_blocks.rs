//! Bytes from the manager interface, in the pieces a socket hands them over: whatever
//! a block holds, an authentication outcome names the address of the block's one
//! RemoteAddress header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipwarden::asterisk::address::parse_security_address;
use sipwarden::asterisk::ami::{Reader, Received, take_blocks};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let mut reader = Reader::default();
    let mut buffer = Vec::new();
    for piece in rest.chunks(usize::from(cut) + 1) {
        buffer.extend_from_slice(piece);
        for block in take_blocks(&mut buffer) {
            if let Received::Auth(event) = reader.read(&block) {
                let remote: Vec<&str> =
                    block.split("\r\n").filter_map(|l| l.strip_prefix("RemoteAddress: ")).collect();
                assert_eq!(remote.len(), 1, "{block:?}");
                assert_eq!(parse_security_address(remote[0]), event.ip, "{block:?}");
            }
        }
    }
});
