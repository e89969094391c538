//! Plain types shared by every layer. No I/O here.

mod account;
mod ban_reason;
mod call;
mod contact;
mod country;
mod event;
mod incident;
mod ladder;
pub mod network;

pub use account::Role;
pub use ban_reason::BanReason;
pub use call::{CallEvent, CallStart, DatedCall};
pub use contact::{ContactChange, DatedContact};
pub use country::{Country, CountryRules, ServiceCountries};
pub use event::{FailureKind, LogEvent, Outcome, Service, Suspects, session_key};
pub use incident::{AfterHours, FraudLimits, IncidentKind, Severity, Threshold};
pub use ladder::{Ladder, Rung};
pub use network::{ClosableService, NetworkList, TrustedNetworks};

/// Milliseconds since the Unix epoch, the one time unit stored and compared everywhere.
pub type UnixMs = i64;

pub const SECOND_MS: UnixMs = 1_000;
pub const MINUTE_MS: UnixMs = 60 * SECOND_MS;
pub const HOUR_MS: UnixMs = 60 * MINUTE_MS;
pub const DAY_MS: UnixMs = 24 * HOUR_MS;
