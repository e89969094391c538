//! The country table's transactions and stamp.

use nftables::schema::{FlushObject, NfCmd, NfListObject, NfObject, Nftables};

use super::load::FILL_CHUNK;
use super::*;

fn sip(only: Option<CountryRanges>, deny: CountryRanges) -> CountryAccess {
    CountryAccess {
        pass: vec!["192.0.2.0/24".parse().unwrap(), "10.1.0.0/16".parse().unwrap()],
        services: vec![ServiceRule {
            service: ClosableService::Sip,
            tcp: vec![5060],
            udp: vec![5060, 5061],
            only,
            deny,
        }],
    }
}

fn de() -> CountryRanges {
    CountryRanges {
        v4: vec![(0x0102_0300, 0x0102_03ff), (0x0505_0505, 0x0505_0505)],
        v6: vec![(1 << 120, (1 << 120) + 255)],
    }
}

fn json(n: &Nftables<'_>) -> String {
    serde_json::to_string(n).unwrap()
}

#[test]
fn an_allow_list_becomes_interval_sets_and_drops_the_rest_of_the_services_ports_only() {
    let steps = load(&sip(Some(de()), CountryRanges::default()), "fp", Generation::B);
    let fills: Vec<String> = steps.fills.iter().map(json).collect();
    assert_eq!(fills.len(), 2, "one transaction per family's set; empty deny sets are left out");
    assert!(fills[0].contains(r#""name":"only4_sip_b""#), "largest first: {fills:?}");
    assert!(fills[0].contains(r#"{"range":["1.2.3.0","1.2.3.255"]}"#), "{}", fills[0]);
    assert!(fills[0].contains(r#""5.5.5.5""#), "a one-address range is an address");
    assert!(fills[1].contains(r#"{"range":["100::","100::ff"]}"#));
    let commit = json(&steps.commit);
    assert!(commit.contains(r#"{"concat":["udp",5061]}"#) && commit.contains(r#"{"concat":["tcp",5060]}"#));
    assert!(commit.contains(r#""right":"@only4_sip_b","op":"!=""#), "only-list: not in it → drop");
    assert!(!commit.contains("deny4_sip_b"), "no deny list, no deny rule");
    assert!(commit.contains(r#""comment":"fp; sets b""#), "{commit}");
    // The office's own networks and private space pass first; 10.1/16 lies in 10/8.
    assert!(commit.contains(r#"{"prefix":{"addr":"10.0.0.0","len":8}}"#));
    assert!(!commit.contains(r#""addr":"10.1.0.0""#), "overlapping networks merged");
    assert!(commit.contains(r#"{"prefix":{"addr":"192.0.2.0","len":24}}"#));
    let deny_only = json(&load(&sip(None, de()), "fp", Generation::A).commit);
    assert!(!deny_only.contains("only4_sip_a") && deny_only.contains(r#""right":"@deny4_sip_a","op":"==""#));
}

#[test]
fn an_allow_list_without_ranges_of_a_family_still_drops_that_family() {
    let v4_only = CountryRanges { v4: de().v4, v6: Vec::new() };
    let steps = load(&sip(Some(v4_only), CountryRanges::default()), "fp", Generation::A);
    assert_eq!(steps.fills.len(), 1);
    let commit = json(&steps.commit);
    assert!(commit.contains(r#""right":"@only6_sip_a""#), "IPv6 not in the (empty) list: dropped");
}

#[test]
fn the_commit_switches_the_rules_and_deletes_the_other_generation_and_older_sets() {
    let steps = load(&sip(Some(de()), de()), "fp", Generation::A);
    let commit = &steps.commit.objects;
    let flush_chain = commit
        .iter()
        .position(|o| matches!(o, NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(_)))))
        .expect("the chain is flushed");
    let deleted: Vec<(usize, String)> = commit
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            NfObject::CmdObject(NfCmd::Delete(NfListObject::Set(s))) => Some((i, s.name.to_string())),
            _ => None,
        })
        .collect();
    for name in ["only4_sip_b", "deny6_sip_b", "only4_sip", "deny4_panel", "ports_iax2"] {
        assert!(deleted.iter().any(|(_, n)| n == name), "{name} deleted: {deleted:?}");
    }
    assert!(deleted.iter().all(|(i, n)| *i > flush_chain && !n.ends_with("_a")), "{deleted:?}");
    let last_rule = commit
        .iter()
        .rposition(|o| matches!(o, NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(_)))))
        .unwrap();
    assert!(last_rule > flush_chain);
    // The fills' sets are cleared before they are filled, not the ones in use.
    let prepare = json(&steps.prepare);
    assert!(
        prepare.contains(
            r#""delete":{"set":{"family":"inet","table":"sipwarden_countries","name":"only4_sip_a""#
        )
    );
    assert!(!prepare.contains("_b\"") && !prepare.contains(r#""name":"only4_sip""#), "{prepare}");
}

#[test]
fn a_big_set_is_filled_in_parts_that_together_hold_every_range() {
    let many: Vec<(u32, u32)> = (0..FILL_CHUNK as u32 * 2 + 5).map(|i| (i * 4, i * 4 + 1)).collect();
    let access = sip(Some(CountryRanges { v4: many.clone(), v6: de().v6 }), CountryRanges::default());
    let steps = load(&access, "fp", Generation::A);
    let parts: Vec<(String, usize)> = steps
        .fills
        .iter()
        .map(|f| match &f.objects[0] {
            NfObject::CmdObject(NfCmd::Add(NfListObject::Set(s))) => {
                (s.name.to_string(), s.elem.as_ref().map_or(0, |e| e.len()))
            }
            other => panic!("{other:?}"),
        })
        .collect();
    let v4: Vec<usize> = parts.iter().filter(|(n, _)| n == "only4_sip_a").map(|(_, len)| *len).collect();
    assert_eq!(v4, [FILL_CHUNK, FILL_CHUNK, 5], "largest first");
    assert_eq!(parts.last(), Some(&("only6_sip_a".to_string(), 1)));
    assert_eq!(v4.iter().sum::<usize>(), many.len());
}

#[test]
fn no_transaction_adds_elements_with_add_element() {
    // nft 1.0.6 reads every interval set in the kernel before an `add element`.
    let steps = load(&sip(Some(de()), de()), "fp", Generation::A);
    for t in steps.fills.iter().chain([&steps.prepare, &steps.commit]) {
        assert!(!json(t).contains(r#"{"add":{"element""#), "{}", json(t));
    }
}

#[test]
fn a_stamp_says_what_the_table_was_built_from_and_which_sets_it_uses() {
    let s = Stamp::parse("3 ranges, 00ff; sets b");
    assert_eq!((s.built_from.as_str(), s.generation), ("3 ranges, 00ff", Some(Generation::B)));
    assert_eq!(s.text(), "3 ranges, 00ff; sets b");
    let older = Stamp::parse("3 ranges, 00ff");
    assert_eq!((older.built_from.as_str(), older.generation), ("3 ranges, 00ff", None));
    let listed: Nftables = serde_json::from_value(serde_json::json!({"nftables": [{"set": {
        "family": "inet", "name": "fingerprint", "table": TABLE, "type": "ipv4_addr",
        "elem": [{"elem": {"val": "0.0.0.1", "comment": "fp; sets a"}}]}}]}))
    .unwrap();
    assert_eq!(fingerprint_of(&listed).as_deref(), Some("fp; sets a"), "read back as nft lists it");
}

#[test]
fn the_fingerprint_changes_with_any_range_port_network_or_owner() {
    let a = sip(Some(de()), CountryRanges::default());
    assert_eq!(a.fingerprint("db"), a.fingerprint("db"));
    assert!(a.fingerprint("db").starts_with("3 ranges, "));
    assert_ne!(a.fingerprint("db"), a.fingerprint("other db"));
    let mut b = a.clone();
    b.services[0].only.as_mut().unwrap().v4[1].1 += 1;
    assert_ne!(a.fingerprint("db"), b.fingerprint("db"));
    let mut c = a.clone();
    c.services[0].udp.push(5062);
    assert_ne!(a.fingerprint("db"), c.fingerprint("db"));
    let mut d = a.clone();
    d.pass.pop();
    assert_ne!(a.fingerprint("db"), d.fingerprint("db"));
}

#[test]
fn each_list_counts_its_drops_into_a_named_counter_made_before_its_rules() {
    let commit = json(&load(&sip(Some(de()), de()), "fp", Generation::A).commit);
    let made = commit.find(
        r#"{"add":{"counter":{"family":"inet","table":"sipwarden_countries","name":"dropped_sip_only""#,
    );
    let used = commit.find(r#"{"counter":"dropped_sip_only"}"#);
    assert!(made.is_some() && used.is_some() && made < used, "{commit}");
    assert!(commit.contains(r#"{"counter":"dropped_sip_never"}"#), "{commit}");
    assert!(!commit.contains("dropped_panel"), "no counters for a service without rules: {commit}");
}

#[test]
fn drops_are_read_from_what_nft_reset_counters_prints() {
    // nft 1.0.6's answer to `-j reset counters table inet sipwarden_countries`.
    let printed = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
        {"counter": {"family": "inet", "name": "dropped_sip_only", "table": "sipwarden_countries", "handle": 2, "packets": 5000000000, "bytes": 0}},
        {"counter": {"family": "inet", "name": "dropped_ami_never", "table": "sipwarden_countries", "handle": 3, "packets": 7, "bytes": 420}},
        {"counter": {"family": "inet", "name": "somebody_elses", "table": "sipwarden_countries", "handle": 4, "packets": 9, "bytes": 1}},
        {"counter": {"family": "inet", "name": "dropped_sip_only", "table": "other", "handle": 2, "packets": 3, "bytes": 0}}]}"#;
    assert_eq!(
        dropped_of(printed).unwrap(),
        [
            Dropped { service: ClosableService::Sip, only: true, packets: 5_000_000_000 },
            Dropped { service: ClosableService::Ami, only: false, packets: 7 },
        ]
    );
    assert!(dropped_of("not json").is_err());
}
