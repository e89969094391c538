//! Every module message sipwarden reads from the messages/full log, declared once:
//! the source file Asterisk names, how the message is recognised, how it is read,
//! what it means and real lines as annotated samples (as fail2ban keeps one per
//! failregex). [`FILES`], [`shape`] and the fuzz seeds (`fuzz/make_seeds.py`) derive
//! from this table, and the tests read every sample through the whole reader.
//! Adding a message is one row and one sample (docs/ASTERISK.md §2).

use std::sync::LazyLock;

use super::messages::{self as m, Parsed};
use crate::domain::{FailureKind, Outcome};

/// The message families sipwarden reads, in the order of [`SHAPES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    SipRegistration,
    SipHackingAttempt,
    SipCallFrom,
    SipRegistered,
    PjsipRequest,
    PjsipCall,
    PjsipAddedContact,
    /// A registration ending: no authentication outcome, a contact change only.
    PjsipRemovedContact,
    Security,
    AmiLogin,
    AmiLoggedOn,
    Iax,
    /// FreePBX's dialplan logging a call it refused (`Log()` lines, "Ext. <exten>: …").
    DialplanRejected,
    /// A call starting or ending in the dialplan (`pbx.c`): no authentication outcome.
    DialplanCall,
}

pub struct ShapeSpec {
    pub shape: Shape,
    /// The source file the envelope names.
    pub file: &'static str,
    /// Cheap test on the message: only lines that pass are read.
    pub recognise: fn(&str) -> bool,
    /// The message (and whether it spanned lines) → what it says; `None`: nothing counted.
    pub parse: fn(&str, bool) -> Option<Parsed>,
    pub means: &'static str,
    pub samples: &'static [Sample],
}

/// A real line and what sipwarden must read from it.
pub struct Sample {
    pub line: &'static str,
    pub expect: Expect,
}

pub enum Expect {
    /// An authentication outcome from `ip` for `account`.
    Outcome { ip: &'static str, account: Option<&'static str>, outcome: Outcome },
    /// A registration of `aor` added or ended: no authentication outcome.
    Contact { aor: &'static str },
    /// A step of a call in the dialplan, for the toll-fraud breaker.
    Call,
}

const fn failure(ip: &'static str, account: Option<&'static str>, kind: FailureKind) -> Expect {
    Expect::Outcome { ip, account, outcome: Outcome::Failure(kind) }
}

const fn success(ip: &'static str, account: Option<&'static str>) -> Expect {
    Expect::Outcome { ip, account, outcome: Outcome::Success }
}

/// What the envelope names as the file of a dialplan `Log()` line.
pub const DIALPLAN_FILE: &str = "Ext.";

const CHAN_SIP: &str = "chan_sip.c";
const PJSIP_DISTRIBUTOR: &str = "res_pjsip/pjsip_distributor.c";
const PJSIP_REGISTRAR: &str = "res_pjsip_registrar.c";
const MANAGER: &str = "manager.c";

pub static SHAPES: [ShapeSpec; 14] = [
    ShapeSpec {
        shape: Shape::SipRegistration,
        file: CHAN_SIP,
        recognise: |msg| msg.starts_with("Registration from '"),
        parse: m::sip_registration,
        means: "chan_sip refused a REGISTER; the reason says why (fast::SIP_REASONS)",
        samples: &[Sample {
            line: r#"[Dec  1 21:46:09] NOTICE[20249] chan_sip.c: Registration from '"2001" <sip:2001@10.98.0.1>' failed for '10.98.0.77:5060' - Wrong password"#,
            expect: failure("10.98.0.77", Some("2001"), FailureKind::WrongPassword),
        }],
    },
    ShapeSpec {
        shape: Shape::SipHackingAttempt,
        file: CHAN_SIP,
        recognise: |msg| msg.starts_with("hacking attempt detected '"),
        parse: m::sip_hacking_attempt,
        means: "chan_sip saw a request it takes for an attack",
        samples: &[Sample {
            line: r#"[2015-03-16 18:46:34] NOTICE[3453] chan_sip.c: hacking attempt detected '192.0.2.6'"#,
            expect: failure("192.0.2.6", None, FailureKind::Rejected),
        }],
    },
    ShapeSpec {
        shape: Shape::SipCallFrom,
        file: CHAN_SIP,
        recognise: |msg| msg.starts_with("Call from '"),
        parse: m::sip_call,
        means: "chan_sip refused a call to an extension that does not exist (a scan for open dialling)",
        samples: &[Sample {
            line: r#"[Nov 24 20:57:50] NOTICE[15985][C-00000001] chan_sip.c: Call from '' (127.0.0.3:5060) to extension '1513705180' rejected because extension not found in context 'public'."#,
            expect: failure("127.0.0.3", Some("1513705180"), FailureKind::NoExtension),
        }],
    },
    ShapeSpec {
        shape: Shape::SipRegistered,
        file: CHAN_SIP,
        recognise: |msg| msg.starts_with("Registered SIP '"),
        parse: m::sip_registered,
        means: "a chan_sip peer registered: a successful login",
        samples: &[Sample {
            line: r#"[Dec  1 21:46:09] VERBOSE[20249] chan_sip.c: Registered SIP '2001' at 10.98.0.77:5060"#,
            expect: success("10.98.0.77", Some("2001")),
        }],
    },
    ShapeSpec {
        shape: Shape::PjsipRequest,
        file: PJSIP_DISTRIBUTOR,
        recognise: |msg| msg.starts_with("Request "),
        parse: m::pjsip_request,
        means: "res_pjsip refused a request; the reason says why (fast::PJSIP_REASONS)",
        samples: &[Sample {
            line: r#"[Nov 24 21:04:50] NOTICE[17045] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '"9999" <sip:9999@127.0.0.1>' failed for '127.0.0.13:5060' (callid: 539939352) - Failed to authenticate"#,
            expect: failure("127.0.0.13", Some("9999"), FailureKind::WrongPassword),
        }],
    },
    ShapeSpec {
        shape: Shape::PjsipCall,
        file: "res_pjsip_session.c",
        recognise: |msg| msg.starts_with("Call from '") || msg.contains(": Call ("),
        parse: m::pjsip_call,
        means: "res_pjsip refused a call to an extension that does not exist (three generations of wording)",
        samples: &[
            Sample {
                line: r#"[Nov 24 22:21:06] NOTICE[1] res_pjsip_session.c: Call from 'trunk' (UDP:[2001:db8::50]:5060) to extension '999' rejected because extension not found in context 'internal'."#,
                expect: failure("2001:db8::50", Some("999"), FailureKind::NoExtension),
            },
            Sample {
                line: r#"[Nov 24 22:21:06] NOTICE[1] res_pjsip_session.c:  2001: Call (UDP:192.168.1.50:46976) to extension '999' rejected because extension not found in context 'internal'."#,
                expect: failure("192.168.1.50", Some("999"), FailureKind::NoExtension),
            },
        ],
    },
    ShapeSpec {
        shape: Shape::PjsipAddedContact,
        file: PJSIP_REGISTRAR,
        recognise: |msg| msg.starts_with("Added contact '"),
        parse: m::pjsip_added_contact,
        means: "a phone registered; with rewrite_contact the host is the packet source, a successful login",
        samples: &[
            Sample {
                line: r#"[Dec  1 21:42:22] VERBOSE[20231] res_pjsip_registrar.c: Added contact 'sip:1001@10.98.0.20:49125;x-ast-orig-host=192.168.0.20:5060' to AOR '1001' with expiration of 60 seconds"#,
                expect: success("10.98.0.20", Some("1001")),
            },
            Sample {
                line: r#"[Dec  1 21:42:23] VERBOSE[20231] res_pjsip_registrar.c: Added contact 'sip:1003@10.98.0.21:54028' to AOR '1003' with expiration of 60 seconds"#,
                expect: Expect::Contact { aor: "1003" },
            },
        ],
    },
    ShapeSpec {
        shape: Shape::PjsipRemovedContact,
        file: PJSIP_REGISTRAR,
        recognise: |msg| msg.starts_with("Removed contact '"),
        parse: m::no_outcome,
        means: "a registration ended (expired or removed)",
        samples: &[Sample {
            line: r#"[Dec  1 21:44:49] VERBOSE[20244] res_pjsip_registrar.c: Removed contact 'sip:1001@10.98.0.20:46778' from AOR '1001' due to expiration"#,
            expect: Expect::Contact { aor: "1001" },
        }],
    },
    ShapeSpec {
        shape: Shape::Security,
        file: "res_security_log.c",
        recognise: |msg| msg.starts_with("SecurityEvent=\""),
        // Read by `security::SPECS`, one row per event.
        parse: m::no_outcome,
        means: "a security event copied into the messages/full log",
        samples: &[Sample {
            line: r#"[Nov 24 21:04:50] SECURITY[17061] res_security_log.c: SecurityEvent="InvalidAccountID",EventTV="2026-11-24T21:04:50.560+0000",Severity="Error",Service="PJSIP",EventVersion="1",AccountID="9999",SessionID="539939352",LocalAddress="IPV4/UDP/127.0.0.1/5060",RemoteAddress="IPV4/UDP/127.0.0.13/5060""#,
            expect: failure("127.0.0.13", Some("9999"), FailureKind::UnknownAccount),
        }],
    },
    ShapeSpec {
        shape: Shape::AmiLogin,
        file: MANAGER,
        recognise: |msg| {
            msg.contains(" failed to authenticate as '")
                || msg.contains(" tried to authenticate with nonexistent user '")
        },
        parse: m::ami_login,
        means: "a manager interface login failed",
        samples: &[
            Sample {
                line: r#"[Dec  1 21:45:59] NOTICE[25799] manager.c: 10.98.0.77 failed to authenticate as 'sipwarden'"#,
                expect: failure("10.98.0.77", Some("sipwarden"), FailureKind::WrongPassword),
            },
            Sample {
                line: r#"[2016-05-06 07:08:09] NOTICE[31554] manager.c: 192.0.2.5 tried to authenticate with nonexistent user 'opennms'"#,
                expect: failure("192.0.2.5", Some("opennms"), FailureKind::UnknownAccount),
            },
        ],
    },
    ShapeSpec {
        shape: Shape::AmiLoggedOn,
        file: MANAGER,
        recognise: |msg| msg.starts_with("Manager '") && msg.contains("' logged on from "),
        parse: m::ami_logged_on,
        means: "a manager interface login succeeded",
        samples: &[Sample {
            line: r#"[Dec  1 21:42:20] VERBOSE[20314] manager.c: Manager 'sipwarden' logged on from 10.98.0.1"#,
            expect: success("10.98.0.1", Some("sipwarden")),
        }],
    },
    ShapeSpec {
        shape: Shape::Iax,
        file: "chan_iax2.c",
        recognise: |msg| {
            msg.starts_with("Host ")
                || msg.starts_with("Rejected connect attempt from ")
                || msg.starts_with("No registration for peer '")
                || msg.starts_with("Peer '")
        },
        parse: m::iax,
        means: "chan_iax2 refused a login or registration (eight wordings, messages::IAX)",
        samples: &[
            Sample {
                line: r#"[Nov 24 22:21:49] NOTICE[25850] chan_iax2.c: Host 198.51.100.7 failed to authenticate as iaxuser"#,
                expect: failure("198.51.100.7", Some("iaxuser"), FailureKind::WrongPassword),
            },
            Sample {
                line: r#"[Nov 24 22:21:49] NOTICE[1] chan_iax2.c: Rejected connect attempt from [2001:db8::9]:4569, request 'x@y' does not exist"#,
                expect: failure("2001:db8::9", Some("x@y"), FailureKind::UnknownAccount),
            },
            Sample {
                line: r#"[Nov 24 22:21:49] NOTICE[25852] chan_iax2.c: Host 127.0.0.1 failed MD5 authentication for 'iaxuser' (e550e4756 != 723b21ba3)"#,
                expect: failure("127.0.0.1", Some("iaxuser"), FailureKind::WrongPassword),
            },
        ],
    },
    ShapeSpec {
        shape: Shape::DialplanRejected,
        file: DIALPLAN_FILE,
        recognise: |msg| msg.contains("\"Rejecting unknown SIP connection from "),
        parse: m::dialplan_rejected,
        means: "FreePBX's from-sip-external refused an anonymous call",
        samples: &[Sample {
            line: r#"[Nov 24 22:20:01] WARNING[1][C-00000244] Ext. s: "Rejecting unknown SIP connection from 192.0.2.5:52126""#,
            expect: failure("192.0.2.5", Some("s"), FailureKind::NoExtension),
        }],
    },
    ShapeSpec {
        shape: Shape::DialplanCall,
        file: super::dialplan::FILE,
        recognise: super::dialplan::is_call_line,
        parse: m::no_outcome,
        means: "a call's step in the dialplan, for the toll-fraud breaker",
        samples: &[Sample {
            line: r#"[Dec  1 21:45:21] VERBOSE[1][C-00000001] pbx.c: Executing [0088@from-internal:1] Answer("PJSIP/1001-00000001", "") in new stack"#,
            expect: Expect::Call,
        }],
    },
];

/// Files whose lines can be a [`Shape`], in table order; every other file's lines are
/// skipped unread.
pub static FILES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut files: Vec<&'static str> = Vec::new();
    for s in &SHAPES {
        if !files.contains(&s.file) {
            files.push(s.file);
        }
    }
    files
});

pub fn spec(shape: Shape) -> &'static ShapeSpec {
    &SHAPES[shape as usize]
}

/// The shape of a message of `file`, picked cheaply from its first words.
pub fn shape(file: &str, msg: &str) -> Option<Shape> {
    SHAPES.iter().find(|s| s.file == file && (s.recognise)(msg)).map(|s| s.shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asterisk::reader::{RecordReader, read_bytes};

    const REFERENCE: crate::domain::UnixMs = 1_796_000_000_000;

    /// Fails to compile when a shape is added: give it a row and a sample in [`SHAPES`].
    const EVERY_SHAPE: [Shape; 14] = {
        use Shape::*;
        let every = [
            SipRegistration,
            SipHackingAttempt,
            SipCallFrom,
            SipRegistered,
            PjsipRequest,
            PjsipCall,
            PjsipAddedContact,
            PjsipRemovedContact,
            Security,
            AmiLogin,
            AmiLoggedOn,
            Iax,
            DialplanRejected,
            DialplanCall,
        ];
        match every[0] {
            SipRegistration | SipHackingAttempt | SipCallFrom | SipRegistered | PjsipRequest | PjsipCall
            | PjsipAddedContact | PjsipRemovedContact | Security | AmiLogin | AmiLoggedOn | Iax
            | DialplanRejected | DialplanCall => every,
        }
    };

    #[test]
    fn every_shape_has_its_row_in_order_and_a_sample() {
        for (i, shape) in EVERY_SHAPE.into_iter().enumerate() {
            assert_eq!(SHAPES[i].shape, shape, "row {i} of SHAPES");
            assert!(!SHAPES[i].samples.is_empty(), "{shape:?} has no sample");
        }
    }

    #[test]
    fn every_sample_is_read_through_the_whole_reader_as_annotated() {
        for spec in &SHAPES {
            for sample in spec.samples {
                let env = crate::asterisk::envelope::parse(sample.line).expect(sample.line);
                assert_eq!(shape(&env.file, &env.message), Some(spec.shape), "{}", sample.line);
                // Passing over quiet lines first, as a follower of a large log does: a
                // file missing from FILES would be passed over here.
                let text = format!("{}\n", sample.line);
                let (records, _, _) = read_bytes(text.as_bytes(), REFERENCE, true);
                let events: Vec<_> = records.into_iter().filter_map(|r| r.event).collect();
                match &sample.expect {
                    Expect::Outcome { ip, account, outcome } => {
                        assert_eq!(events.len(), 1, "{}", sample.line);
                        let e = &events[0];
                        assert_eq!(e.ip, Some(ip.parse().unwrap()), "{}", sample.line);
                        assert_eq!(e.account.as_deref(), *account, "{}", sample.line);
                        assert_eq!(e.outcome, *outcome, "{}", sample.line);
                        assert!(!e.tampered, "{}", sample.line);
                    }
                    Expect::Contact { aor } => {
                        assert!(events.is_empty(), "{}", sample.line);
                        let mut reader = RecordReader::new(REFERENCE, 0).with_contacts();
                        reader.push(sample.line, 0, text.len() as u64, &mut Vec::new());
                        let contacts = reader.take_contacts();
                        assert_eq!(contacts.len(), 1, "{}", sample.line);
                        assert_eq!(contacts[0].change.account, *aor, "{}", sample.line);
                    }
                    Expect::Call => {
                        assert!(events.is_empty(), "{}", sample.line);
                        let mut reader = RecordReader::new(REFERENCE, 0).with_calls();
                        let mut out = Vec::new();
                        reader.push(sample.line, 0, text.len() as u64, &mut out);
                        reader.finish(&mut out);
                        assert_eq!(reader.take_calls().len(), 1, "{}", sample.line);
                    }
                }
            }
        }
    }
}
