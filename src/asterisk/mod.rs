//! The only code that knows Asterisk's text formats: log envelopes, failure and
//! success messages, security events, and (later) the ACL renderer.

pub mod acl;
pub mod address;
pub mod ami;
mod attribution;
pub(crate) mod contacts;
pub(crate) mod dialplan;
pub mod envelope;
mod fast;
pub mod messages;
pub(crate) mod ports;
pub(crate) mod predial;
pub(crate) mod reader;
pub mod security;
pub mod shapes;
pub mod timestamp;

#[cfg(test)]
mod framing_tests;
#[cfg(test)]
mod tests;

pub use reader::{ReadRecord, ReadStats, RecordReader, read_bytes, read_text};

/// What kind of Asterisk log a file is, decided from its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// messages / full log (module lines; may also carry security events).
    Messages,
    /// A channel that only carries the SECURITY level.
    Security,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Messages => "messages",
            SourceKind::Security => "security",
        }
    }
}

/// Decides the kind from a file's first lines: a file whose log records are all
/// security events is a security log.
pub fn detect_kind<'a>(first_lines: impl IntoIterator<Item = &'a str>) -> SourceKind {
    let mut security = 0;
    for line in first_lines {
        if let Some(env) = envelope::parse(line) {
            if env.level != "SECURITY" {
                return SourceKind::Messages;
            }
            security += 1;
        }
    }
    if security > 0 { SourceKind::Security } else { SourceKind::Messages }
}
