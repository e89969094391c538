//! Passing over quiet lines (as check-log does) must give exactly what reading every
//! line gives: the same records, counts and resume offset.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipwarden::asterisk::RecordReader;

const REFERENCE: i64 = 1_767_225_600_000;

fn read(text: &[u8], skipping: bool) -> impl PartialEq + std::fmt::Debug {
    let mut reader = RecordReader::new(REFERENCE, 0);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        if skipping {
            pos += reader.skip_quiet_lines(&text[pos..], pos as u64);
            if pos == text.len() {
                break;
            }
        }
        let (line_end, next) =
            memchr::memchr(b'\n', &text[pos..]).map_or((text.len(), text.len()), |i| (pos + i, pos + i + 1));
        let line = &text[pos..line_end];
        if skipping {
            reader.push_decoded(line, pos as u64, next as u64, &mut out);
        } else {
            reader.push_bytes(line, pos as u64, next as u64, &mut out);
        }
        pos = next;
    }
    reader.finish(&mut out);
    (out, reader.stats, reader.settled_offset())
}

fuzz_target!(|data: &[u8]| {
    assert_eq!(read(data, true), read(data, false));
});
