//! Whole log texts, fed in arbitrary pieces as a follower would read them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipwarden::asterisk::{RecordReader, read_text};

const REFERENCE: i64 = 1_767_225_600_000;

fuzz_target!(|data: &[u8]| {
    // The first byte picks where the text is cut in two, as a read can end mid-line.
    let (cut, bytes) = match data.split_first() {
        Some((c, rest)) => (*c as usize % (rest.len() + 1), rest),
        None => return,
    };
    let mut reader = RecordReader::new(REFERENCE, 0).with_calls().with_contacts();
    let mut out = Vec::new();
    let mut start = 0u64;
    for piece in [&bytes[..cut], &bytes[cut..]] {
        let end = start + piece.len() as u64;
        reader.push_bytes(piece, start, end, &mut out);
        start = end;
    }
    reader.finish(&mut out);
    check(&out);
    // A registration is an extension name Asterisk wrote and a contact from the text.
    for c in reader.take_contacts() {
        let text = String::from_utf8_lossy(bytes);
        assert!(text.contains(&c.change.account) && !c.change.account.contains(['\n', '\'']), "{c:?}");
    }
    check(&read_text(&String::from_utf8_lossy(bytes), REFERENCE));
});

/// An address is only ever taken from the record's own text.
fn check(records: &[sipwarden::asterisk::ReadRecord]) {
    for r in records {
        if let Some(std::net::IpAddr::V4(ip)) = r.event.as_ref().and_then(|e| e.ip) {
            assert!(r.raw.contains(&ip.to_string()), "{ip} attributed from {:?}", r.raw);
        }
    }
}
