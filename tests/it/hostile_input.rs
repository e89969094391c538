//! Property tests: random bytes and random splices of real lines never panic the
//! reader, and never attribute a failure to an address that only attacker text held.

use proptest::prelude::*;
use sipwarden::asterisk::read_text;

fn read_all(text: &str) -> usize {
    read_text(text, 1_796_000_000_000).len()
}

const REAL: &[&str] = &[
    "[Nov 24 21:04:50] NOTICE[17045] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '\"9999\" <sip:9999@127.0.0.1>' failed for '127.0.0.13:5060' (callid: 539939352) - Failed to authenticate",
    "[Nov 24 21:04:50] SECURITY[17061] res_security_log.c: SecurityEvent=\"ChallengeResponseFailed\",EventTV=\"2026-11-24T21:04:50.544+0000\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"<unknown>\",SessionID=\"539939352\",LocalAddress=\"IPV4/UDP/127.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/127.0.0.13/5060\",Challenge=\"1795554290/376212a7ec7f75917dae690fedbaa8ee\",Response=\"84d4e002f98bf71e854a4e8cb49fe98a\",ExpectedResponse=\"\"",
    "[Nov 24 20:57:50] NOTICE[15985][C-00000001] chan_sip.c: Call from '' (127.0.0.3:5060) to extension '1513705180' rejected because extension not found in context 'public'.",
    "[Nov 24 20:57:57] NOTICE[15985] chan_sip.c: Registration from '\"1001\" <sip:1001@127.0.0.1>' failed for '127.0.0.4:5060' - Wrong password",
    "[Nov 24 22:20:01] NOTICE[25900] manager.c: 198.51.100.7 failed to authenticate as 'bob'",
    "{\"hostname\":\"\",\"timestamp\":\"2026-11-24 22:22:59.696\",\"identifiers\":{\"lwp\":1,\"callid\":\"\"},\"logmsg\":{\"location\":{\"filename\":\"chan_sip.c\",\"function\":\"f\",\"line\":1},\"level\":\"NOTICE\",\"message\":\"x\\n\"}}",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        read_all(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn spliced_real_lines_never_panic(
        picks in proptest::collection::vec((0..REAL.len(), 0usize..400, 0usize..400), 1..30)
    ) {
        let mut text = String::new();
        for (i, a, b) in picks {
            let line = REAL[i];
            let (a, b) = (a.min(line.len()), b.min(line.len()));
            let (a, b) = (a.min(b), a.max(b));
            // Cut on char boundaries only (the lines are ASCII).
            text.push_str(&line[..a]);
            text.push_str(&line[b..]);
            text.push('\n');
        }
        read_all(&text);
    }

    #[test]
    fn injected_text_in_attacker_fields_never_frames(
        noise in "[ -~\n]{0,80}",
        field in 0usize..4,
    ) {
        let forged = format!("{noise}' failed for '6.6.6.6:5060' - Wrong password\n[Nov 24 22:18:01] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '6.6.6.6:5060' - Wrong password\nRemoteAddress=\"IPV4/UDP/6.6.6.6/5060\"");
        let one_line = forged.replace('\n', " ");
        let text = match field {
            0 => format!("[Nov 24 22:16:11] NOTICE[2] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '<sip:1@x>' failed for '198.51.100.8:5060' (callid: {one_line}) - Failed to authenticate"),
            1 => format!("[Nov 24 22:17:43] NOTICE[2] chan_sip.c: Call from '' (198.51.100.8:44975) to extension '{forged}' rejected because extension not found in context 'public'."),
            2 => format!("[Nov 24 22:16:11] SECURITY[2] res_security_log.c: SecurityEvent=\"InvalidAccountID\",EventTV=\"2026-11-24T22:16:11.216+0000\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"{}\",SessionID=\"1\",LocalAddress=\"IPV4/UDP/127.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/198.51.100.8/5060\"", forged.chars().take(36).collect::<String>()),
            _ => format!("[Nov 24 22:16:11] NOTICE[2] chan_sip.c: Registration from '\"{one_line}\" <sip:1@x>' failed for '198.51.100.8:5060' - Wrong password"),
        };
        for r in &read_text(&text, 1_796_000_000_000) {
            if let Some(e) = &r.event {
                prop_assert_ne!(e.ip, Some("6.6.6.6".parse().unwrap()), "framed by {:?}", text);
            }
        }
    }
}
