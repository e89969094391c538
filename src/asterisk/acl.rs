//! Asterisk ACL configuration rendered from sipwarden's lists (docs/ASTERISK.md §5): named
//! ACLs in an include of acl.conf, and `(+)` (chan_sip) / `(+type=endpoint)` (pjsip)
//! appends in FreePBX's custom files that attach them to the extensions and trunks the
//! admin assigned. Pure functions.
//!
//! Traps avoided on purpose: every ACL starts with `deny=0.0.0.0/0.0.0.0` AND
//! `deny=::/0` (IPv4 rules never match IPv6); an ACL with no permit is never written
//! or referenced (it would reject everyone); an object that already names an ACL is
//! never given the same one again (chan_sip deletes such a peer).

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

pub const ACL_INCLUDE: &str = "sipwarden_acl.conf";
pub const EXTENSIONS_ACL: &str = "sipwarden_extensions";
pub const BEGIN: &str = "; BEGIN sipwarden (managed by sipwarden: edit in its panel, not here)";
pub const END: &str = "; END sipwarden";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tech {
    Pjsip,
    Sip,
}

impl Tech {
    pub fn as_str(self) -> &'static str {
        match self {
            Tech::Pjsip => "pjsip",
            Tech::Sip => "sip",
        }
    }
}

/// An endpoint (pjsip) or peer (chan_sip) found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AsteriskObject {
    pub tech: Tech,
    pub name: String,
    /// ACL names it already references (`acl=a,b` lines).
    pub acls: BTreeSet<String>,
}

/// What the admin decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclPlan {
    pub extension_networks: Vec<IpNet>,
    /// Trunk name → networks its provider uses.
    pub trunk_networks: BTreeMap<String, Vec<IpNet>>,
    pub always_deny: Vec<IpNet>,
    /// Objects that are extensions.
    pub extensions: Vec<(Tech, String)>,
    /// Objects that are trunks, with the trunk name their networks are listed under.
    pub trunks: Vec<(Tech, String, String)>,
}

/// `sipwarden_trunk_<name>` with the name reduced to letters, digits, `-` and `_`.
pub fn trunk_acl_name(trunk: &str) -> String {
    let clean: String = trunk
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    format!("sipwarden_trunk_{clean}")
}

/// Asterisk's rule syntax: `addr/mask`, IPv4 masks dotted as acl.conf examples write them.
fn rule(net: &IpNet) -> String {
    match net {
        IpNet::V4(v4) => format!("{}/{}", v4.network(), v4.netmask()),
        IpNet::V6(v6) => format!("{}/{}", v6.network(), v6.prefix_len()),
    }
}

fn acl_section(name: &str, permits: &[IpNet], denies: &[IpNet]) -> String {
    let mut out = format!("[{name}]\ndeny=0.0.0.0/0.0.0.0\ndeny=::/0\n");
    for p in permits {
        out.push_str(&format!("permit={}\n", rule(p)));
    }
    // The last matching rule wins: "always deny" goes after the permits.
    for d in denies {
        out.push_str(&format!("deny={}\n", rule(d)));
    }
    out
}

/// The named ACLs that have at least one permit, by name.
pub fn acls(plan: &AclPlan) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if !plan.extension_networks.is_empty() {
        out.insert(
            EXTENSIONS_ACL.to_string(),
            acl_section(EXTENSIONS_ACL, &plan.extension_networks, &plan.always_deny),
        );
    }
    for (trunk, nets) in &plan.trunk_networks {
        if !nets.is_empty() {
            let name = trunk_acl_name(trunk);
            out.insert(name.clone(), acl_section(&name, nets, &plan.always_deny));
        }
    }
    out
}

/// `sipwarden_acl.conf`, the file acl.conf includes.
pub fn render_acl_include(plan: &AclPlan) -> String {
    let mut out =
        String::from("; Written by sipwarden from its networks page. Changes here are overwritten.\n");
    for section in acls(plan).values() {
        out.push('\n');
        out.push_str(section);
    }
    out
}

/// The `[name](+)` appends for one technology, skipping objects that would get an ACL
/// they already have or one that is not defined.
pub fn render_appends(plan: &AclPlan, tech: Tech, existing: &[AsteriskObject]) -> String {
    let defined = acls(plan);
    let mut wanted: BTreeMap<String, String> = BTreeMap::new();
    for (t, name) in &plan.extensions {
        if *t == tech && defined.contains_key(EXTENSIONS_ACL) {
            wanted.insert(name.clone(), EXTENSIONS_ACL.to_string());
        }
    }
    for (t, name, trunk) in &plan.trunks {
        let acl = trunk_acl_name(trunk);
        if *t == tech && defined.contains_key(&acl) {
            wanted.insert(name.clone(), acl);
        }
    }
    let mut out = String::new();
    for (name, acl) in wanted {
        let already = existing.iter().any(|o| o.tech == tech && o.name == name && o.acls.contains(&acl));
        let known = existing.iter().any(|o| o.tech == tech && o.name == name);
        // An append to an unknown section is an error in Asterisk; a repeated ACL deletes the peer.
        if already || !known {
            continue;
        }
        // pjsip: the typed append, as an aor or auth of the same name may come first
        // (Asterisk would refuse `acl` there and the whole reload with it).
        let append = match tech {
            Tech::Pjsip => "+type=endpoint",
            Tech::Sip => "+",
        };
        out.push_str(&format!("[{name}]({append})\nacl={acl}\n\n"));
    }
    out
}

/// `text` with sipwarden's block replaced by `block` (added at the end if absent);
/// everything the admin wrote around it is kept.
pub fn with_managed_block(text: &str, block: &str) -> String {
    let mut kept = String::new();
    let mut inside = false;
    // Lines are kept byte for byte, line endings included: `lines()` would drop one
    // `\r` of every line at each apply.
    for line in text.split_inclusive('\n') {
        if line.trim_end() == BEGIN {
            inside = true;
            continue;
        }
        if inside {
            if line.trim_end() == END {
                inside = false;
            }
            continue;
        }
        kept.push_str(line);
    }
    // A lone `\r` left by an editor's line ending counts as an empty line too, or
    // each apply would add another blank line in front of the block.
    let kept = kept.trim_end_matches(['\n', '\r']);
    let mut out = String::from(kept);
    if !out.is_empty() {
        out.push_str("\n\n");
    }
    out.push_str(BEGIN);
    out.push('\n');
    out.push_str(block.trim_end_matches('\n'));
    if !block.trim().is_empty() {
        out.push('\n');
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// acl.conf with the include line sipwarden needs, added once.
pub fn with_include(acl_conf: &str) -> String {
    let line = format!("#include {ACL_INCLUDE}");
    if acl_conf.lines().any(|l| l.trim() == line) {
        return acl_conf.to_string();
    }
    let mut out = acl_conf.trim_end_matches('\n').to_string();
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// Endpoints (pjsip `type=endpoint`) or peers (chan_sip `type=peer|friend`, and
/// children of templates that are) in one configuration file, with their `acl=` lines.
/// Templates (`(!)`) are not objects; their ACLs pass to children.
pub fn discover(text: &str, tech: Tech) -> Vec<AsteriskObject> {
    struct Section {
        name: String,
        template: bool,
        parents: Vec<String>,
        append: bool,
        types: Vec<String>,
        acls: BTreeSet<String>,
    }
    let mut sections: Vec<Section> = Vec::new();
    for raw in text.lines() {
        let line = raw.split(';').next().unwrap_or("").trim();
        if let Some(rest) = line.strip_prefix('[') {
            let Some(close) = rest.find(']') else { continue };
            let name = rest[..close].trim().to_string();
            let opts = rest[close + 1..].trim();
            let opts = opts.strip_prefix('(').and_then(|o| o.strip_suffix(')')).unwrap_or("");
            let words: Vec<String> =
                opts.split(',').map(|w| w.trim().to_string()).filter(|w| !w.is_empty()).collect();
            // `(+)` appends to the section of that name; `(+type=endpoint)` to the one of
            // that type, where pjsip's endpoint, aor and auth share a name.
            sections.push(Section {
                name,
                template: words.iter().any(|w| w == "!"),
                append: words.iter().any(|w| w.starts_with('+')),
                types: words
                    .iter()
                    .filter_map(|w| w.strip_prefix("+type="))
                    .map(|t| t.trim().to_string())
                    .collect(),
                parents: words.into_iter().filter(|w| w != "!" && !w.starts_with('+')).collect(),
                acls: BTreeSet::new(),
            });
            continue;
        }
        let Some(section) = sections.last_mut() else { continue };
        let Some((key, value)) = line.split_once('=') else { continue };
        let (key, value) =
            (key.trim().trim_end_matches('>').trim(), value.trim().trim_start_matches('>').trim());
        match key {
            "type" => section.types.push(value.to_string()),
            "acl" => {
                section.acls.extend(value.split(',').map(|a| a.trim().to_string()).filter(|a| !a.is_empty()))
            }
            _ => {}
        }
    }
    let find = |name: &str| sections.iter().find(|s| s.name == name && s.template);
    let mut out: BTreeMap<String, AsteriskObject> = BTreeMap::new();
    for s in sections.iter().filter(|s| !s.template) {
        let mut types = s.types.clone();
        let mut acls = s.acls.clone();
        for p in &s.parents {
            if let Some(t) = find(p) {
                types.extend(t.types.iter().cloned());
                acls.extend(t.acls.iter().cloned());
            }
        }
        let is_object = match tech {
            Tech::Pjsip => types.iter().any(|t| t == "endpoint"),
            Tech::Sip => types.iter().any(|t| t == "peer" || t == "friend" || t == "user"),
        };
        // An untyped append goes to whatever section of that name came first.
        let untyped_append = s.append && types.is_empty();
        if let Some(existing) = out.get_mut(&s.name) {
            if is_object || untyped_append {
                existing.acls.extend(acls);
            }
        } else if is_object {
            out.insert(s.name.clone(), AsteriskObject { tech, name: s.name.clone(), acls });
        }
    }
    out.into_values().collect()
}

/// Log text that means Asterisk kept its old configuration (docs/ASTERISK.md §5.6).
const REFUSED: [&str; 4] = [
    "was listed as a #include but it does not exist",
    "are invalid and cannot be parsed",
    "Retaining existing configuration",
    "occurs multiple times in ACL definition",
];

/// The first log line in `text` saying a reload was refused.
pub fn refused_config_line(text: &str) -> Option<&str> {
    text.lines().find(|l| REFUSED.iter().any(|r| l.contains(r))).map(str::trim)
}

/// Whether `acl show NAME` output lists `net` as allowed (Asterisk prints IPv6 masks
/// as `ffff:…`, so the network address is what is compared).
pub fn shows_permit(acl_show: &str, net: &IpNet) -> bool {
    let needle = format!("{}/", net.network());
    acl_show.lines().any(|l| l.contains("allow") && l.contains(&needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_the_shared_example_objects_and_their_acls() {
        let sip = include_str!("../../tests/fixtures/example-acl/sip.conf");
        let pjsip = include_str!("../../tests/fixtures/example-acl/pjsip.conf");
        let peers = discover(sip, Tech::Sip);
        let names: Vec<_> = peers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["1001", "itsp"]);
        assert!(peers[0].acls.contains("lan_phones"), "inherited from the template");
        let endpoints = discover(pjsip, Tech::Pjsip);
        let names: Vec<_> = endpoints.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["2001", "itsp"]);
    }

    #[test]
    fn no_permit_no_acl_and_no_reference() {
        let plan = AclPlan { extensions: vec![(Tech::Pjsip, "2001".into())], ..AclPlan::default() };
        assert!(acls(&plan).is_empty());
        let existing = [AsteriskObject { tech: Tech::Pjsip, name: "2001".into(), acls: BTreeSet::new() }];
        assert_eq!(render_appends(&plan, Tech::Pjsip, &existing), "");
    }

    #[test]
    fn never_the_same_acl_twice_nor_an_append_to_an_unknown_object() {
        let plan = AclPlan {
            extension_networks: vec!["192.168.0.0/16".parse().unwrap()],
            extensions: vec![
                (Tech::Sip, "1001".into()),
                (Tech::Sip, "1002".into()),
                (Tech::Sip, "9999".into()),
            ],
            ..AclPlan::default()
        };
        let existing = [
            AsteriskObject {
                tech: Tech::Sip,
                name: "1001".into(),
                acls: [EXTENSIONS_ACL.to_string()].into(),
            },
            AsteriskObject { tech: Tech::Sip, name: "1002".into(), acls: BTreeSet::new() },
        ];
        assert_eq!(render_appends(&plan, Tech::Sip, &existing), "[1002](+)\nacl=sipwarden_extensions\n\n");
    }

    #[test]
    fn the_managed_block_is_replaced_and_the_rest_kept() {
        let first = with_managed_block("[1001](+)\ndescription=kept\n", "[2001](+)\nacl=x\n");
        let second = with_managed_block(&first, "[2002](+)\nacl=y\n");
        assert!(second.starts_with("[1001](+)\ndescription=kept\n\n; BEGIN sipwarden"));
        assert!(second.contains("[2002](+)") && !second.contains("[2001](+)"));
        assert_eq!(with_include(&with_include("[x]\n")), "[x]\n#include sipwarden_acl.conf\n");
    }

    /// Found by the `asterisk_config` fuzz target: a file ending in a bare `\r` grew
    /// by one blank line at every apply.
    #[test]
    fn applying_twice_to_a_file_with_a_carriage_return_changes_nothing() {
        for text in ["\r", "a\r", "[x]\r\n\r\n", "\r\n\r", "sa\r\r\r\nb=1\n"] {
            let once = with_managed_block(text, "; block\n");
            assert_eq!(with_managed_block(&once, "; block\n"), once, "{text:?}");
        }
    }

    #[test]
    fn freepbx_pjsip_layouts_with_shared_names_get_a_typed_append_in_either_order() {
        // FreePBX writes the endpoint, its aor and its auth under one name; the order varies.
        let aor_first = "[1001]\ntype=aor\nmax_contacts=1\n\n[1001]\ntype=auth\nusername=1001\n\n[1001]\ntype=endpoint\naors=1001\n";
        let endpoint_first =
            "[1001]\ntype=endpoint\naors=1001\n\n[1001]\ntype=aor\nmax_contacts=1\n\n[1001]\ntype=auth\n";
        let mut plan = AclPlan::default();
        plan.extension_networks.push("192.168.1.0/24".parse().unwrap());
        plan.extensions.push((Tech::Pjsip, "1001".into()));
        for layout in [aor_first, endpoint_first] {
            let objects = discover(layout, Tech::Pjsip);
            assert_eq!(objects.len(), 1, "one endpoint in {layout:?}");
            let appends = render_appends(&plan, Tech::Pjsip, &objects);
            assert_eq!(appends, "[1001](+type=endpoint)\nacl=sipwarden_extensions\n\n");
            // Once written, the typed append is read back as the endpoint's ACL: nothing more to add.
            let applied = discover(&format!("{layout}\n{appends}"), Tech::Pjsip);
            assert!(applied[0].acls.contains(EXTENSIONS_ACL), "{applied:?}");
            assert_eq!(render_appends(&plan, Tech::Pjsip, &applied), "");
        }
        // chan_sip keeps the plain append: one section per peer.
        let peers = discover("[2001]\ntype=friend\n", Tech::Sip);
        plan.extensions.push((Tech::Sip, "2001".into()));
        assert_eq!(render_appends(&plan, Tech::Sip, &peers), "[2001](+)\nacl=sipwarden_extensions\n\n");
    }
}
