//! The only code that knows nftables: the ruleset (render), the kernel state and
//! the plan that repairs it (state), and the backends that apply it.

pub(crate) mod backend;
pub mod countries;
pub mod render;
pub(crate) mod state;

pub use backend::{Firewall, FirewallError, NftBackend, RecordingBackend};
pub use render::{Access, KernelBan};
pub use state::{KernelState, Plan};

use crate::domain::ClosableService;

/// True when this process can change the host's firewall: root (or CAP_NET_ADMIN,
/// which `nft` itself checks) and an `nft` on the PATH.
pub fn nft_available() -> bool {
    std::process::Command::new("nft")
        .args(["list", "tables"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The ports of each service that closed mode can close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePorts {
    /// SIP over UDP and TCP (and TLS/WS ports, which are TCP).
    pub sip_udp: Vec<u16>,
    pub sip_tcp: Vec<u16>,
    pub iax2: u16,
    pub ami: u16,
    pub panel: u16,
}

impl Default for ServicePorts {
    fn default() -> Self {
        ServicePorts {
            sip_udp: vec![5060, 5061],
            sip_tcp: vec![5060, 5061],
            iax2: 4569,
            ami: 5038,
            panel: 8575,
        }
    }
}

impl ServicePorts {
    /// (TCP ports, UDP ports) of one service.
    pub fn of(&self, service: ClosableService) -> (Vec<u16>, Vec<u16>) {
        match service {
            ClosableService::Sip => (self.sip_tcp.clone(), self.sip_udp.clone()),
            ClosableService::Iax2 => (Vec::new(), vec![self.iax2]),
            ClosableService::Ami => (vec![self.ami], Vec::new()),
            ClosableService::Panel => (vec![self.panel], Vec::new()),
        }
    }

    /// (TCP ports, UDP ports) to close for `services`.
    pub fn closed(&self, services: &[ClosableService]) -> (Vec<u16>, Vec<u16>) {
        let (mut tcp, mut udp) = (Vec::new(), Vec::new());
        for s in services {
            let (t, u) = self.of(*s);
            tcp.extend(t);
            udp.extend(u);
        }
        tcp.sort_unstable();
        tcp.dedup();
        udp.sort_unstable();
        udp.dedup();
        (tcp, udp)
    }
}
