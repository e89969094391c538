//! The SIP ports Asterisk really listens on, read from its configuration: pjsip's
//! `type=transport` sections (`bind=`, `protocol=`) and chan_sip's `[general]`
//! (`bindport=`, `udpbindaddr=`, `tcpenable=`/`tcpbindaddr=`, `tlsenable=`/
//! `tlsbindaddr=`). FreePBX moves chan_sip to 5160 when pjsip takes 5060; closed mode
//! must close both (docs/ASTERISK.md §5.7).

use std::collections::BTreeSet;

/// SIP ports by transport. WebSocket transports ride Asterisk's HTTP server and are
/// not SIP ports of their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SipPorts {
    pub udp: BTreeSet<u16>,
    pub tcp: BTreeSet<u16>,
}

const SIP_PORT: u16 = 5060;
const SIPS_PORT: u16 = 5061;

/// `name = value` lines by section, comments dropped.
fn sections(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for raw in text.lines() {
        let line = raw.split(';').next().unwrap_or("").trim();
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.split(']').next().unwrap_or("").trim().to_string();
            out.push((name, Vec::new()));
        } else if let (Some((key, value)), Some(section)) = (line.split_once('='), out.last_mut()) {
            let key = key.trim().trim_end_matches('>').trim().to_ascii_lowercase();
            section.1.push((key, value.trim().trim_start_matches('>').trim().to_string()));
        }
    }
    out
}

/// The port of `0.0.0.0:5160`, `[::]:5160` or a bare host (`default`).
fn port_of(bind: &str, default: u16) -> Option<u16> {
    let bind = bind.trim();
    let port = match bind.strip_prefix('[') {
        Some(v6) => v6.split_once("]:").map(|(_, p)| p),
        // One colon: host:port; more: a bare IPv6 address.
        None => bind.split_once(':').filter(|(_, p)| !p.contains(':')).map(|(_, p)| p),
    };
    match port {
        Some(p) => p.trim().parse().ok(),
        None => Some(default),
    }
}

/// pjsip transports of `pjsip` (all pjsip files in include order) and chan_sip's
/// general section of `sip`.
pub fn discover(sip: &str, pjsip: &str) -> SipPorts {
    let mut ports = SipPorts::default();
    for (_, lines) in sections(pjsip) {
        let get = |k: &str| lines.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        if get("type") != Some("transport") {
            continue;
        }
        let protocol = get("protocol").unwrap_or("udp").to_ascii_lowercase();
        let default = if protocol == "tls" { SIPS_PORT } else { SIP_PORT };
        let Some(port) = port_of(get("bind").unwrap_or("0.0.0.0"), default) else { continue };
        match protocol.as_str() {
            "udp" => ports.udp.insert(port),
            "tcp" | "tls" => ports.tcp.insert(port),
            _ => false,
        };
    }
    let general: Vec<(String, String)> =
        sections(sip).into_iter().filter(|(name, _)| name == "general").flat_map(|(_, l)| l).collect();
    if general.is_empty() {
        return ports;
    }
    let get = |k: &str| general.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let yes = |k: &str| {
        get(k).is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "1" | "on"))
    };
    let bindport = get("bindport").and_then(|p| p.parse().ok()).unwrap_or(SIP_PORT);
    if let Some(udp) = port_of(get("udpbindaddr").or(get("bindaddr")).unwrap_or("0.0.0.0"), bindport) {
        ports.udp.insert(udp);
    }
    if yes("tcpenable") {
        ports.tcp.extend(port_of(get("tcpbindaddr").unwrap_or("0.0.0.0"), bindport));
    }
    if yes("tlsenable") {
        ports.tcp.extend(port_of(get("tlsbindaddr").unwrap_or("0.0.0.0"), SIPS_PORT));
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freepbx_with_chan_sip_on_5160_and_pjsip_on_5060() {
        let sip = "[general]\nbindport=5160\nbindaddr=0.0.0.0\ntcpenable=yes\n; tlsenable=yes\n";
        let pjsip = "[0.0.0.0-udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0:5060\n\n\
                     [0.0.0.0-tcp]\ntype=transport\nprotocol=tcp\nbind=0.0.0.0:5060\n\n\
                     [0.0.0.0-ws]\ntype=transport\nprotocol=ws\nbind=0.0.0.0:8088\n\n\
                     [1001]\ntype=endpoint\n";
        let p = discover(sip, pjsip);
        assert_eq!(p.udp.into_iter().collect::<Vec<_>>(), [5060, 5160]);
        assert_eq!(p.tcp.into_iter().collect::<Vec<_>>(), [5060, 5160]);
    }

    #[test]
    fn defaults_ipv6_binds_and_tls() {
        let pjsip =
            "[t]\ntype = transport\nbind = [::]\n[tls]\ntype=transport\nprotocol=tls\nbind=[::]:5062\n";
        let sip = "[general]\nudpbindaddr=[::]:5070\ntlsenable=yes\n";
        let p = discover(sip, pjsip);
        assert_eq!(p.udp.into_iter().collect::<Vec<_>>(), [5060, 5070]);
        assert_eq!(p.tcp.into_iter().collect::<Vec<_>>(), [5061, 5062]);
        // A bare IPv6 address has no port: the default.
        assert_eq!(port_of("2001:db8::1", 5060), Some(5060));
        assert_eq!(port_of("0.0.0.0:notaport", 5060), None);
        assert_eq!(discover("", ""), SipPorts::default());
    }
}
