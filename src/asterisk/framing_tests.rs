//! Forged addresses in security-event values: every counted event type, every
//! service, every field an attacker fills, before and after the real address.

use proptest::prelude::*;

use super::attribution::Grammar;
use super::security::{SPECS, SecurityRecord, parse};

const REAL: &str = "IPV4/UDP/10.98.0.77/46973";
const FORGED_IP: &str = "6.6.6.6";

/// A forged pair as an attacker writes it into a value, closing and reopening quotes:
/// `fields` 0 forges RemoteAddress alone, 1 with LocalAddress, 2 with a SessionID too.
fn forged_pair(key: &str, fields: u8) -> String {
    let session = if fields >= 2 { ",SessionID=\"0x1\"" } else { "" };
    let local = if fields >= 1 { ",LocalAddress=\"IPV4/UDP/10.98.0.1/5060\"" } else { "" };
    format!("\"{session}{local},RemoteAddress=\"IPV4/UDP/{FORGED_IP}/5060\",{key}=\"")
}

/// Which fields of an event an attacker fills, for a service, and how Asterisk writes
/// what they sent there.
fn attacker_fields(event: &str, service: &str) -> Vec<(&'static str, Grammar)> {
    let spec = SPECS.iter().find(|s| s.name == event).unwrap();
    let mut fields = vec![("AccountID", Grammar::Free)];
    if service == "PJSIP" {
        fields.push(("SessionID", Grammar::Free));
    }
    for &(key, grammar) in spec.required.iter().chain(spec.optional) {
        match (key, grammar) {
            ("AccountID", _) => {}
            ("Response", _) if service == "AMI" => fields.push((key, Grammar::Free)),
            (_, Grammar::Free | Grammar::Digest) => fields.push((key, grammar)),
            _ => {}
        }
    }
    fields
}

/// A record as Asterisk writes it, with `values` put into the fields they name.
fn record(event: &str, service: &str, values: &[(&str, String)], with_optional: bool) -> (String, bool) {
    let spec = SPECS.iter().find(|s| s.name == event).unwrap();
    let value = |key: &str, default: &str| -> String {
        values.iter().find(|(k, _)| *k == key).map_or(default.to_string(), |(_, v)| v.clone())
    };
    let session = if service == "PJSIP" { "1796@10.98.0.77" } else { "0x7fbd60038c90" };
    let mut text = format!(
        "SecurityEvent=\"{event}\",EventTV=\"2026-12-01T10:00:00.000+0000\",Severity=\"Error\",Service=\"{service}\",EventVersion=\"1\""
    );
    if spec.account_required {
        text += &format!(",AccountID=\"{}\"", value("AccountID", "1001"));
    }
    text += &format!(
        ",SessionID=\"{}\",LocalAddress=\"IPV4/UDP/10.98.0.1/5060\",RemoteAddress=\"{REAL}\"",
        value("SessionID", session)
    );
    // Whether the fields after the address can hold any text: then a forged reading
    // may hold as well as the real one.
    let mut free_tail = false;
    let optional = spec.optional.iter().filter(|_| with_optional);
    for &(key, grammar) in spec.required.iter().chain(optional) {
        let default = match (key, grammar) {
            ("UsingPassword", _) => "1",
            ("SessionTV", _) => "2026-12-01T10:00:00.000+0000",
            ("ACLName", _) => "not_match_endpoint_acl",
            (_, Grammar::Digest) => "1796161796/119553f0",
            _ => "x",
        };
        let grammar = if key == "Response" && service == "AMI" { Grammar::Free } else { grammar };
        free_tail |= grammar == Grammar::Free;
        text += &format!(",{key}=\"{}\"", value(key, default));
    }
    (text, free_tail)
}

fn counted_ip(msg: &str) -> Option<String> {
    match parse(msg, false) {
        SecurityRecord::Event(p, _) => p.ip.map(|ip| ip.to_string()),
        _ => None,
    }
}

/// The record real Asterisk 20 wrote for a REGISTER from 10.98.0.77 whose Call-ID
/// carried a forged address.
#[test]
fn a_call_id_that_forges_an_address_before_the_real_one_is_read_as_its_sender() {
    let msg = "SecurityEvent=\"ChallengeResponseFailed\",EventTV=\"2026-12-01T09:12:31.101+0000\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"1001\",SessionID=\"a\",LocalAddress=\"IPV4/UDP/10.98.0.1/5060\",RemoteAddress=\"IPV4/UDP/6.6.6.6/5060\",Challenge=\"\",LocalAddress=\"IPV4/UDP/10.98.0.1/5060\",RemoteAddress=\"IPV4/UDP/10.98.0.77/46973\",Challenge=\"1796161796/119553f0d6cbe1b0d0f1a4a2f7c0e1b4\",Response=\"710b75e8f8c5c1d2e3f4a5b6c7d8e9f0\",ExpectedResponse=\"\"";
    match parse(msg, false) {
        SecurityRecord::Event(p, _) => {
            assert_eq!(p.ip.unwrap().to_string(), "10.98.0.77");
            assert!(p.tampered, "two addresses in one record is worth showing");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn escaped_quotes_in_a_nonce_or_response_after_the_address_create_no_reading() {
    let forged = forged_pair("Response", 1).replace('"', "\\\"");
    for key in ["Challenge", "Response"] {
        let (msg, _) = record("ChallengeResponseFailed", "PJSIP", &[(key, format!("n{forged}"))], false);
        assert_eq!(counted_ip(&msg).as_deref(), Some("10.98.0.77"), "{msg}");
    }
}

#[test]
fn readings_that_name_different_senders_count_against_no_one() {
    // RequestParams holds any text after the address, the Call-ID any text before it:
    // either address could be the real one.
    let (msg, _) = record(
        "RequestBadFormat",
        "PJSIP",
        &[("RequestParams", format!("p{}", forged_pair("RequestType", 1)))],
        true,
    );
    let SecurityRecord::Forged(suspects) = parse(&msg, false) else { panic!("not forged: {msg}") };
    // Both addresses are suspects, for the messages log's line of the attempt to decide.
    let mut named: Vec<String> = suspects.addresses.iter().map(ToString::to_string).collect();
    named.sort();
    assert_eq!(named, ["10.98.0.77", FORGED_IP]);
    assert_eq!(suspects.service, crate::domain::Service::Pjsip);
    assert!(suspects.at.is_some());
    let records = super::read_text(&format!("[Dec  1 10:00:00] SECURITY[1] res_security_log.c: {msg}\n"), 0);
    assert_eq!(records.len(), 1);
    assert!(records[0].event.is_none() && records[0].tampered);
    assert_eq!(records[0].suspects.as_deref(), Some(&suspects));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// No forged address is ever counted, whichever field holds it and wherever in the
    /// value; the real sender is counted whenever the event's fields leave one reading.
    #[test]
    fn no_forged_address_is_ever_counted(
        event in prop::sample::select(SPECS.iter().map(|s| s.name).collect::<Vec<_>>()),
        service in prop::sample::select(vec!["SIP", "PJSIP", "AMI"]),
        picks in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), "[ -~]{0,6}", "[ -~]{0,6}", 0u8..3), 1..3),
        with_optional in any::<bool>(),
    ) {
        let fields = attacker_fields(event, service);
        let spec = SPECS.iter().find(|s| s.name == event).unwrap();
        let keys: Vec<&str> = std::iter::once("SessionID")
            .chain(spec.required.iter().chain(spec.optional).map(|f| f.0))
            .collect();
        let mut values: Vec<(&str, String)> = Vec::new();
        for (field, key, before, after, local) in &picks {
            let (name, grammar) = fields[field.index(fields.len())];
            let mut forged = forged_pair(keys[key.index(keys.len())], *local);
            // What Asterisk writes for a digest value: every quote keeps its backslash.
            if grammar == Grammar::Digest {
                forged = forged.replace('"', "\\\"");
            }
            let (before, after) = (before.replace(['"', '\\'], ""), after.replace(['"', '\\'], ""));
            values.retain(|(k, _)| *k != name);
            values.push((name, format!("{before}{forged}{after}")));
        }
        let (msg, free_tail) = record(event, service, &values, with_optional);
        let got = counted_ip(&msg);
        prop_assert_ne!(got.as_deref(), Some(FORGED_IP), "framed by {}", msg);
        if !free_tail {
            prop_assert_eq!(got.as_deref(), Some("10.98.0.77"), "real sender lost in {}", msg);
        }
    }
}

#[test]
fn a_broken_address_in_request_text_does_not_swallow_the_next_real_event() {
    let not_allowed = "[Dec  1 10:00:00] SECURITY[1] res_security_log.c: SecurityEvent=\"RequestNotAllowed\",EventTV=\"2026-12-01T10:00:00.000+0000\",Severity=\"Error\",Service=\"AMI\",EventVersion=\"1\",AccountID=\"admin\",SessionID=\"0x7f01\",LocalAddress=\"IPV4/TCP/10.98.0.1/5038\",RemoteAddress=\"IPV4/TCP/10.98.0.77/40000\",RequestType=\"Originate\",SessionTV=\"2026-12-01T10:00:00.000+0000\",RequestParams=\"x\",RemoteAddress=\"junk\"";
    let (real, _) = record("InvalidPassword", "SIP", &[], false);
    let text = format!("{not_allowed}\n[Dec  1 10:00:01] SECURITY[1] res_security_log.c: {real}\n");
    let counted: Vec<String> = super::read_text(&text, 0)
        .into_iter()
        .filter_map(|r| r.event.and_then(|e| e.ip))
        .map(|ip| ip.to_string())
        .collect();
    assert_eq!(counted, ["10.98.0.77"]);
}
