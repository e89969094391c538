//! The only code that knows nftables: the ruleset (render), the kernel state and
//! the plan that repairs it (state), and the backends that apply it.

pub mod backend;
pub mod render;
pub mod state;

pub use backend::{Firewall, FirewallError, NftBackend, RecordingBackend};
pub use render::KernelBan;
pub use state::{KernelState, Plan};

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
