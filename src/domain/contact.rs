use super::UnixMs;

/// A phone's registration appearing or ending: the extension, the Contact it gave (the
/// phone's own words, or the packet source where Asterisk rewrote it) and its
/// User-Agent when known. Attacker text: shown, never used to ban or trust.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContactChange {
    pub account: String,
    pub uri: String,
    pub user_agent: Option<String>,
    /// Registered (or still registered); `false`: the registration ended.
    pub present: bool,
    /// Seconds the registration lasts unless renewed, when Asterisk says.
    pub expires_in_s: Option<u32>,
}

/// A contact change with the time Asterisk logged it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DatedContact {
    pub at: Option<UnixMs>,
    pub change: ContactChange,
}
