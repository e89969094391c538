//! The config file as written: every key with its default, declared once here (or, for
//! the ban ladder, fraud levels, IPv6 prefix rule and SIP ports, in the type that
//! carries them). A key left out of the file takes the default; `sipwarden.example.toml`
//! is checked against these values by the tests below.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::domain::{FraudLimits, Ladder, UnixMs};
use crate::firewall::ServicePorts;
use crate::ingest::StartAt;
use crate::policy::prefix::PrefixRule;

/// The panel answers on loopback only until told otherwise.
/// 8575: no FreePBX or Asterisk component listens there (Asterisk's HTTP server has
/// 8088/8089, UCP 8001/8003, AMI 5038, IAX2 4569, chan_skinny 2000, SIP 5060/5061/5160/5161).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8575";
/// Looked for when no log is configured.
pub const DEFAULT_LOGS: [&str; 3] =
    ["security:/var/log/asterisk/security", "/var/log/asterisk/full", "/var/log/asterisk/messages"];

/// The whole file. Keys without a default (`logs`, `clean_log`, the manager
/// interface, office hours) are options: their absence means something of its own.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: PathBuf,
    /// Unset: whichever of [`DEFAULT_LOGS`] exist.
    pub logs: Option<Vec<String>>,
    pub start_at: StartAt,
    pub poll_interval: String,
    pub trusted: Vec<String>,
    /// Unset: `failed-auth.log` in the data directory.
    pub clean_log: Option<PathBuf>,
    /// Tor's `geoip` file (its `geoip6` beside it): countries of addresses. Unset: none.
    pub geoip: Option<PathBuf>,
    pub protection: bool,
    pub policy: PolicyConfig,
    pub firewall: FirewallConfig,
    pub panel: PanelConfig,
    pub asterisk: AsteriskConfig,
    pub retention: RetentionConfig,
    pub fraud: FraudConfig,
    pub ami: AmiConfig,
    pub store: StoreConfig,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            data_dir: PathBuf::from("sipwarden-data"),
            logs: None,
            start_at: StartAt::Beginning,
            poll_interval: "1s".into(),
            trusted: Vec::new(),
            clean_log: None,
            geoip: None,
            protection: true,
            policy: PolicyConfig::default(),
            firewall: FirewallConfig::default(),
            panel: PanelConfig::default(),
            asterisk: AsteriskConfig::default(),
            retention: RetentionConfig::default(),
            fraud: FraudConfig::default(),
            ami: AmiConfig::default(),
            store: StoreConfig::default(),
        }
    }
}

impl FileConfig {
    /// The file's text, as TOML; the error says where and what is wrong.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// `[policy]`: the ban ladder; its defaults are [`Ladder::default`] and [`PrefixRule::default`].
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    pub rungs: Vec<RungConfig>,
    pub known_good_failures: u32,
    pub known_good_for: String,
    pub repeat_within: String,
    pub repeat_ban: String,
    pub ipv6_prefix: u8,
    pub prefix_after: u32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        let (ladder, prefix) = (Ladder::default(), PrefixRule::default());
        PolicyConfig {
            rungs: ladder
                .rungs
                .iter()
                .map(|r| RungConfig {
                    failures: r.failures,
                    within: duration_text(r.within_ms),
                    ban: r.ban_ms.map_or_else(|| UNTIL_RELEASED.to_owned(), duration_text),
                })
                .collect(),
            known_good_failures: ladder.known_good_failures,
            known_good_for: duration_text(ladder.known_good_for_ms),
            repeat_within: duration_text(ladder.repeat_within_ms),
            repeat_ban: duration_text(ladder.repeat_ban_ms),
            ipv6_prefix: prefix.len,
            prefix_after: prefix.after,
        }
    }
}

/// How a ban that lasts until an admin releases it is written.
pub const UNTIL_RELEASED: &str = "until-released";

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RungConfig {
    pub failures: u32,
    pub within: String,
    /// A duration, or `until-released`.
    pub ban: String,
}

/// `[firewall]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FirewallConfig {
    pub backend: BackendChoice,
    pub command_prefix: Vec<String>,
    pub reconcile_interval: String,
}

impl Default for FirewallConfig {
    fn default() -> Self {
        FirewallConfig {
            backend: BackendChoice::Auto,
            command_prefix: Vec::new(),
            reconcile_interval: "5s".into(),
        }
    }
}

/// Which firewall backend `serve` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BackendChoice {
    /// `nft` when it works (root or CAP_NET_ADMIN), otherwise dry-run, loudly.
    Auto,
    Nft,
    DryRun,
}

/// `[panel]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PanelConfig {
    pub listen: String,
    pub secure_cookies: bool,
    pub session_idle: String,
}

impl Default for PanelConfig {
    fn default() -> Self {
        PanelConfig { listen: DEFAULT_LISTEN.into(), secure_cookies: false, session_idle: "12h".into() }
    }
}

/// `[asterisk]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AsteriskConfig {
    pub config_dir: PathBuf,
    pub command: Vec<String>,
    pub sip_udp_ports: Vec<u16>,
    pub sip_tcp_ports: Vec<u16>,
    pub resolve_interval: String,
}

impl Default for AsteriskConfig {
    fn default() -> Self {
        let ports = ServicePorts::default();
        AsteriskConfig {
            config_dir: PathBuf::from("/etc/asterisk"),
            command: vec!["asterisk".into()],
            sip_udp_ports: ports.sip_udp,
            sip_tcp_ports: ports.sip_tcp,
            resolve_interval: "5m".into(),
        }
    }
}

/// `[retention]`: a duration or `keep` (forever).
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    pub failures: String,
    pub ended_bans: String,
    pub audit: String,
    pub failed_auth_log_max_mib: u64,
    pub failed_auth_log_keep: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            failures: "90d".into(),
            ended_bans: "365d".into(),
            audit: "keep".into(),
            failed_auth_log_max_mib: 10,
            failed_auth_log_keep: 10,
        }
    }
}

/// `[fraud]`: when an extension's calls look like toll fraud. Each measure is a pair
/// `[warning, critical]`; 0 turns a level off. Defaults: [`FraudLimits::default`].
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FraudConfig {
    pub calls_per_minute: [u32; 2],
    pub concurrent_international: [u32; 2],
    pub high_risk_calls: [u32; 2],
    pub same_prefix_calls: [u32; 2],
    pub international_prefixes: Vec<String>,
    pub home_prefixes: Vec<String>,
    pub high_risk_prefixes: Vec<String>,
    pub inbound_contexts: Vec<String>,
    pub after_hours: Option<AfterHoursConfig>,
}

impl Default for FraudConfig {
    fn default() -> Self {
        let d = FraudLimits::default();
        let pair = |t: crate::domain::Threshold| [t.warning, t.critical];
        FraudConfig {
            calls_per_minute: pair(d.calls_per_minute),
            concurrent_international: pair(d.concurrent_international),
            high_risk_calls: pair(d.high_risk_calls),
            same_prefix_calls: pair(d.same_prefix_calls),
            international_prefixes: d.international_prefixes,
            home_prefixes: d.home_prefixes,
            high_risk_prefixes: d.high_risk_prefixes,
            inbound_contexts: d.inbound_contexts,
            after_hours: None,
        }
    }
}

/// `[fraud.after_hours]`: other levels while the office is closed (local time); a
/// measure not named keeps the day's level.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AfterHoursConfig {
    pub from: String,
    pub to: String,
    pub calls_per_minute: Option<[u32; 2]>,
    pub concurrent_international: Option<[u32; 2]>,
    pub high_risk_calls: Option<[u32; 2]>,
    pub same_prefix_calls: Option<[u32; 2]>,
}

/// `[ami]`: Asterisk's manager interface, off unless `address` is set.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmiConfig {
    pub address: Option<String>,
    pub username: String,
    pub secret: Option<String>,
    /// A file holding the secret (its first line), readable by sipwarden only.
    pub secret_file: Option<PathBuf>,
}

impl Default for AmiConfig {
    fn default() -> Self {
        AmiConfig { address: None, username: "sipwarden".into(), secret: None, secret_file: None }
    }
}

/// A span in the largest unit that divides it: `3600000` → `1h`, `7 days` → `7d`.
fn duration_text(ms: UnixMs) -> String {
    const UNITS: [(UnixMs, &str); 4] = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
    UNITS
        .iter()
        .find(|(unit, _)| ms > 0 && ms % unit == 0)
        .map_or_else(|| format!("{ms}ms"), |(unit, name)| format!("{}{name}", ms / unit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Overrides};

    const EXAMPLE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/sipwarden.example.toml"));

    /// The example's lines, with the ones marked `# example` (values that are not
    /// defaults) left out.
    fn example_defaults() -> String {
        EXAMPLE.lines().filter(|l| !l.trim_end().ends_with("# example")).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn every_value_the_example_shows_is_the_default() {
        let shown = Config::from_parts(FileConfig::parse(&example_defaults()).unwrap(), Overrides::default());
        let defaults = Config::from_parts(FileConfig::default(), Overrides::default());
        assert_eq!(format!("{:#?}", shown.unwrap()), format!("{:#?}", defaults.unwrap()));
    }

    #[test]
    fn every_key_is_in_the_example_in_its_section() {
        let keys = serde_json::to_value(FileConfig::default()).unwrap();
        let mut missing = Vec::new();
        for (key, value) in keys.as_object().unwrap() {
            match value.as_object() {
                Some(section) => {
                    let at = EXAMPLE
                        .find(&format!("\n[{key}]\n"))
                        .unwrap_or_else(|| panic!("the example has no [{key}] section"));
                    let text = &EXAMPLE[at + 1..];
                    let text = &text[..text[1..].find("\n[").map_or(text.len(), |n| n + 1)];
                    missing
                        .extend(section.keys().filter(|k| !documents(text, k)).map(|k| format!("{key}.{k}")));
                }
                None if !documents(EXAMPLE, key) => missing.push(key.clone()),
                None => {}
            }
        }
        assert!(missing.is_empty(), "keys the example does not show: {missing:?}");
    }

    /// `key = …`, `# key = …` or a `[section.key]` table at the start of a line.
    fn documents(text: &str, key: &str) -> bool {
        text.lines().any(|l| {
            let l = l.trim_start_matches('#').trim_start();
            l.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('='))
                || (l.starts_with('[') && l.ends_with(&format!(".{key}]")))
        })
    }

    #[test]
    fn durations_are_written_in_their_largest_whole_unit() {
        assert_eq!(duration_text(3_600_000), "1h");
        assert_eq!(duration_text(7 * 86_400_000), "7d");
        assert_eq!(duration_text(90_000), "90s");
        assert_eq!(duration_text(1_500), "1500ms");
    }
}

/// `[store]`: where the bans live. Unset `url`: the SQLite file in the data directory.
/// Several PBXes share one ban list through one PostgreSQL database, each under its
/// own node name.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://user:password@host/database`.
    pub url: Option<String>,
    /// This PBX's name in a shared store; unset: the host name.
    pub node: Option<String>,
    /// The rules count only this PBX's failures (default: every PBX's, so a scanner
    /// trying each PBX once is banned on all of them).
    pub count_per_node: bool,
}
