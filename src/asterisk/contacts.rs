//! Registrations appearing and ending (docs/ASTERISK.md §3): pjsip's registrar lines in
//! the full log, chan_sip's `Registered SIP` line, and the manager's `ContactStatus` and
//! `PeerStatus` events. The Contact URI is the phone's own text (rewritten to the packet
//! source only with `rewrite_contact=yes`): it is read for display, anchored on the
//! AOR Asterisk names after it, and never trusted as an address.

use crate::domain::ContactChange;

/// `Added contact '<uri>' to AOR '<aor>' with expiration of <n> seconds` and `Removed
/// contact '<uri>' from AOR '<aor>' due to <why>`, one line each. The AOR is a name from
/// Asterisk's configuration, so the last `' to AOR '` is the real one whatever the URI
/// holds.
pub fn from_registrar(msg: &str) -> Option<ContactChange> {
    if msg.contains('\n') {
        return None;
    }
    let (rest, present, joint) =
        match (msg.strip_prefix("Added contact '"), msg.strip_prefix("Removed contact '")) {
            (Some(rest), _) => (rest, true, "' to AOR '"),
            (None, Some(rest)) => (rest, false, "' from AOR '"),
            (None, None) => return None,
        };
    let (uri, tail) = rest.rsplit_once(joint)?;
    let (aor, after) = tail.split_once('\'')?;
    let seconds = after.strip_prefix(" with expiration of ").and_then(|t| t.strip_suffix(" seconds"));
    let expires = seconds.filter(|s| is_number(s)).and_then(|s| s.parse().ok());
    let well_formed = match present {
        true => expires.is_some(),
        false => after.strip_prefix(" due to ").is_some_and(|why| !why.is_empty()),
    };
    (well_formed && is_name(aor) && !uri.is_empty()).then(|| ContactChange {
        account: aor.to_owned(),
        uri: uri.to_owned(),
        user_agent: None,
        present,
        expires_in_s: expires,
    })
}

/// chan_sip's `Registered SIP '<peer>' at <address>`: the peer's address as chan_sip
/// keeps it (the packet source when NAT handling applies, the Contact otherwise).
pub fn from_sip_registered(msg: &str) -> Option<ContactChange> {
    let (peer, ip) = super::fast::registered(msg)?;
    let at = &msg[msg.rfind("' at ")? + 5..];
    (is_name(peer) && !ip.is_empty()).then(|| ContactChange {
        account: peer.to_owned(),
        uri: format!("sip:{peer}@{at}"),
        user_agent: None,
        present: true,
        expires_in_s: None,
    })
}

/// The manager's `ContactStatus` (pjsip) or `PeerStatus` (chan_sip) event, as its
/// header pairs after `Event`.
pub fn from_manager(name: &str, headers: &[(&str, &str)]) -> Option<ContactChange> {
    let get = |key: &str| headers.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    match name {
        "ContactStatus" => {
            let present = match get("ContactStatus")? {
                "Created" | "Updated" | "Reachable" | "Unreachable" | "NonQualified" | "Unknown" => true,
                "Removed" => false,
                _ => return None,
            };
            let account = get("AOR").or_else(|| get("EndpointName")).filter(|a| is_name(a))?;
            Some(ContactChange {
                account: account.to_owned(),
                uri: get("URI").filter(|u| !u.is_empty())?.to_owned(),
                user_agent: get("UserAgent").filter(|u| !u.is_empty()).map(str::to_owned),
                present,
                expires_in_s: None,
            })
        }
        "PeerStatus" if get("ChannelType") == Some("SIP") => {
            let peer = get("Peer")?.strip_prefix("SIP/").filter(|p| is_name(p))?;
            let present = match get("PeerStatus")? {
                "Registered" => true,
                "Unregistered" => false,
                _ => return None,
            };
            let address = get("Address").unwrap_or("");
            Some(ContactChange {
                account: peer.to_owned(),
                uri: format!("sip:{peer}@{address}"),
                user_agent: None,
                present,
                expires_in_s: None,
            })
        }
        _ => None,
    }
}

/// A `ContactList` event (the answer to `PJSIPShowContacts`): a registration in force
/// with the User-Agent the phone sent.
pub fn from_contact_list(headers: &[(&str, &str)]) -> Option<ContactChange> {
    let get = |key: &str| headers.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    // ObjectName is `<aor>;@<hash>`; Endpoint may be empty for a contact of no endpoint.
    let aor = get("ObjectName").and_then(|o| o.split(";@").next()).filter(|a| is_name(a));
    let account = get("Endpoint").filter(|e| is_name(e)).or(aor)?;
    Some(ContactChange {
        account: account.to_owned(),
        uri: get("Uri").filter(|u| !u.is_empty())?.to_owned(),
        user_agent: get("UserAgent").filter(|u| !u.is_empty()).map(str::to_owned),
        present: true,
        expires_in_s: None,
    })
}

/// The host a Contact URI names (`sip:1001@10.0.0.5:5060;transport=udp` → `10.0.0.5`),
/// and the host the phone itself gave when Asterisk rewrote it (`x-ast-orig-host`).
pub fn hosts(uri: &str) -> (Option<std::net::IpAddr>, Option<String>) {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let (hostport, params) = rest.split_once(';').unwrap_or((rest, ""));
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, _)| h),
        None => Some(hostport.rsplit_once(':').map_or(hostport, |(h, _)| h)),
    };
    let original = params
        .split(';')
        .find_map(|p| p.strip_prefix("x-ast-orig-host="))
        .map(|h| h.rsplit_once(':').map_or(h, |(h, _)| h).to_owned());
    (host.and_then(|h| h.parse().ok()), original)
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// An endpoint, AOR or peer name as configured: no quotes, spaces or line breaks.
fn is_name(text: &str) -> bool {
    !text.is_empty() && text.len() <= 80 && !text.contains(['\'', '"', ' ', '\n', '\r', '/'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrar_lines_of_the_recorded_office_day() {
        let c = from_registrar(
            "Added contact 'sip:1001@10.98.0.20:49125' to AOR '1001' with expiration of 60 seconds",
        )
        .unwrap();
        assert_eq!(
            (c.account.as_str(), c.uri.as_str(), c.present),
            ("1001", "sip:1001@10.98.0.20:49125", true)
        );
        assert_eq!(c.expires_in_s, Some(60));
        let c =
            from_registrar("Removed contact 'sip:1001@10.98.0.20:46778' from AOR '1001' due to expiration")
                .unwrap();
        assert!(!c.present);
        // svcrack's registration, rewritten by Asterisk: the phone claimed 1.1.1.1.
        let c = from_registrar(
            "Added contact 'sip:123@10.98.0.66:5060;x-ast-orig-host=1.1.1.1:0' to AOR '1002' with expiration of 3600 seconds",
        )
        .unwrap();
        assert_eq!(c.account, "1002");
        assert_eq!(hosts(&c.uri), (Some("10.98.0.66".parse().unwrap()), Some("1.1.1.1".into())));
    }

    #[test]
    fn a_uri_cannot_name_another_aor_or_break_the_line() {
        // The phone's URI carries the text Asterisk writes after it: the AOR is still
        // the one Asterisk wrote last.
        let c = from_registrar(
            "Added contact 'sip:x@6.6.6.6' to AOR '1001' with expiration of 60 seconds' to AOR '1003' with expiration of 60 seconds",
        )
        .unwrap();
        assert_eq!(c.account, "1003");
        assert!(
            from_registrar(
                "Added contact 'sip:x@1.2.3.4\nforged' to AOR '1001' with expiration of 60 seconds"
            )
            .is_none()
        );
        assert!(
            from_registrar("Added contact 'sip:x@1.2.3.4' to AOR '1001' with expiration of soon").is_none()
        );
    }

    #[test]
    fn manager_events_of_the_recorded_office_day() {
        let headers = [
            ("URI", "sip:1003@10.98.0.30:44244"),
            ("ContactStatus", "NonQualified"),
            ("AOR", "1003"),
            ("EndpointName", "1003"),
            ("RoundtripUsec", "0"),
        ];
        let c = from_manager("ContactStatus", &headers).unwrap();
        assert_eq!((c.account.as_str(), c.present), ("1003", true));
        let removed = [("URI", "sip:1003@10.98.0.30:44244"), ("ContactStatus", "Removed"), ("AOR", "1003")];
        assert!(!from_manager("ContactStatus", &removed).unwrap().present);
        let peer = [
            ("ChannelType", "SIP"),
            ("Peer", "SIP/2001"),
            ("PeerStatus", "Registered"),
            ("Address", "10.98.0.77:5060"),
        ];
        let c = from_manager("PeerStatus", &peer).unwrap();
        assert_eq!((c.account.as_str(), c.uri.as_str()), ("2001", "sip:2001@10.98.0.77:5060"));
        // A pjsip endpoint's reachability is no registration of its own.
        let reachable = [("ChannelType", "PJSIP"), ("Peer", "PJSIP/1001"), ("PeerStatus", "Reachable")];
        assert!(from_manager("PeerStatus", &reachable).is_none());
    }

    #[test]
    fn a_listed_contact_carries_its_user_agent() {
        let headers = [
            ("ObjectType", "contact"),
            ("ObjectName", "1003;@6fa2c8b1f5b5e4a1"),
            ("Endpoint", "1003"),
            ("Uri", "sip:1003@10.98.0.30:44244"),
            ("UserAgent", "Yealink SIP-T46U 108.86.0.20"),
            ("ExpirationTime", "1796162003"),
        ];
        let c = from_contact_list(&headers).unwrap();
        assert_eq!(
            (c.account.as_str(), c.user_agent.as_deref()),
            ("1003", Some("Yealink SIP-T46U 108.86.0.20"))
        );
        assert!(c.present);
        assert!(from_contact_list(&[("ObjectName", "1003;@x")]).is_none(), "no URI, no registration");
    }

    #[test]
    fn hosts_of_ipv6_and_plain_uris() {
        assert_eq!(hosts("sip:2002@[2001:db8::5]:5060").0, Some("2001:db8::5".parse().unwrap()));
        assert_eq!(hosts("sip:1001@phone.example").0, None);
    }
}
