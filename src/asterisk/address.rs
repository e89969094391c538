//! Address text exactly as Asterisk prints it from a packet source.

use std::net::IpAddr;

use crate::domain::network::canonical_ip;

/// `1.2.3.4`, `[2001:db8::1]`, `2001:db8::1` (unbracketed, as `ast_sockaddr_stringify_addr`
/// and older pjsip print it). IPv4-mapped IPv6 becomes the IPv4 host.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
    bare.parse::<IpAddr>().ok().map(canonical_ip)
}

/// Security-event address value: `IPV4/UDP/198.51.100.7/59060`, `IPV6/UDP/2001:db8::50/5060`,
/// or without the transport segment `IPV4/1.2.3.4/5060`.
pub fn parse_security_address(value: &str) -> Option<IpAddr> {
    let rest = value.strip_prefix("IPV4/").or_else(|| value.strip_prefix("IPV6/"))?;
    let slash = memchr::memrchr(b'/', rest.as_bytes())?;
    let (addr_and_maybe_transport, port) = (&rest[..slash], &rest[slash + 1..]);
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let addr = match memchr::memchr(b'/', addr_and_maybe_transport.as_bytes()) {
        Some(at) => &addr_and_maybe_transport[at + 1..],
        None => addr_and_maybe_transport,
    };
    parse_ip(addr)
}

/// The user part of a SIP URI inside attacker text (`"1001" <sip:1001@host>` → `1001`).
pub fn sip_user(text: &str) -> Option<&str> {
    let start = text.find("sip:").map(|i| i + 4).or_else(|| text.find("sips:").map(|i| i + 5))?;
    let rest = &text[start..];
    let end = rest.find(['@', '>', ';'])?;
    rest[end..].starts_with('@').then(|| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_every_printed_form() {
        assert_eq!(parse_ip("198.51.100.7"), Some("198.51.100.7".parse().unwrap()));
        assert_eq!(parse_ip("[2001:db8::50]"), Some("2001:db8::50".parse().unwrap()));
        assert_eq!(parse_ip("::1"), Some("::1".parse().unwrap()));
        assert_eq!(parse_ip("::ffff:10.0.0.1"), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(parse_ip("999.1.1.1"), None);
        assert_eq!(
            parse_security_address("IPV6/UDP/2001:db8::50/53470"),
            Some("2001:db8::50".parse().unwrap())
        );
        assert_eq!(parse_security_address("IPV4/1.2.3.4/5060"), Some("1.2.3.4".parse().unwrap()));
        assert_eq!(parse_security_address("IPV4/UDP/1.2.3.4/x"), None);
    }

    #[test]
    fn user_part_of_a_uri() {
        assert_eq!(sip_user("\"1001\" <sip:1001@127.0.0.1>"), Some("1001"));
        assert_eq!(sip_user("<sip:admin@[::1]>;tag=x"), Some("admin"));
        assert_eq!(sip_user("<sip:host.only>"), None);
    }
}
