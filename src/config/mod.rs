//! One validated configuration value from the TOML file, `SIPWARDEN_*` variables
//! and command-line flags (flags win). Every error names the key that fixes it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::asterisk::SourceKind;
use crate::domain::{AfterHours, FraudLimits, Threshold, TrustedNetworks, UnixMs};
use crate::ingest::StartAt;
use crate::policy::{Ladder, Rung};

mod file;

pub use file::{
    AfterHoursConfig, AmiConfig, AsteriskConfig, BackendChoice, DEFAULT_LISTEN, DEFAULT_LOGS, FileConfig,
    FirewallConfig, FraudConfig, PanelConfig, PolicyConfig, RetentionConfig, RungConfig, UNTIL_RELEASED,
};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

fn ami_settings(
    a: AmiConfig,
    env_secret: Option<String>,
) -> Result<Option<crate::ami::AmiSettings>, ConfigError> {
    let Some(address) = a.address.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if address.parse::<std::net::SocketAddr>().is_err()
        && address.rsplit_once(':').is_none_or(|(_, p)| p.parse::<u16>().is_err())
    {
        return Err(ConfigError::Invalid {
            key: "ami.address",
            message: format!("{address:?} is not a host:port like 127.0.0.1:5038"),
        });
    }
    let secret = match (env_secret, a.secret, a.secret_file) {
        (Some(s), _, _) | (None, Some(s), _) => s,
        (None, None, Some(path)) => std::fs::read_to_string(&path)
            .map_err(|e| ConfigError::Invalid {
                key: "ami.secret_file",
                message: format!("cannot read {}: {e}", path.display()),
            })?
            .lines()
            .next()
            .unwrap_or("")
            .to_owned(),
        (None, None, None) => {
            return Err(ConfigError::Invalid {
                key: "ami.secret (SIPWARDEN_AMI_SECRET, ami.secret_file)",
                message: "the manager user's secret is needed with ami.address".into(),
            });
        }
    };
    Ok(Some(crate::ami::AmiSettings { address, username: a.username, secret }))
}

/// `"19:00"` as minutes after midnight.
fn time_of_day(text: &str, key: &'static str) -> Result<u16, ConfigError> {
    let parsed = text.trim().split_once(':').and_then(|(h, m)| {
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 && text.trim().len() == 5).then_some(h * 60 + m)
    });
    parsed.ok_or_else(|| ConfigError::Invalid {
        key,
        message: format!("{text:?} is not a time of day like 19:00"),
    })
}

fn fraud_limits(f: FraudConfig) -> Result<FraudLimits, ConfigError> {
    let threshold = |[warning, critical]: [u32; 2], key: &'static str| {
        if critical > 0 && warning > critical {
            return Err(ConfigError::Invalid {
                key,
                message: format!("the warning level {warning} is above the critical level {critical}"),
            });
        }
        Ok(Threshold { warning, critical })
    };
    let prefixes = |list: Vec<String>, key: &'static str| {
        list.into_iter()
            .map(|p| {
                let p = p.trim().to_owned();
                if p.is_empty() || !p.trim_start_matches('+').bytes().all(|b| b.is_ascii_digit()) {
                    Err(ConfigError::Invalid {
                        key,
                        message: format!("{p:?} is not a dialling prefix like 00 or +44"),
                    })
                } else {
                    Ok(p)
                }
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let calls_per_minute = threshold(f.calls_per_minute, "fraud.calls_per_minute")?;
    let concurrent_international = threshold(f.concurrent_international, "fraud.concurrent_international")?;
    let high_risk_calls = threshold(f.high_risk_calls, "fraud.high_risk_calls")?;
    let same_prefix_calls = threshold(f.same_prefix_calls, "fraud.same_prefix_calls")?;
    let after_hours = match f.after_hours {
        None => None,
        Some(a) => {
            let (from_minute, to_minute) = (
                time_of_day(&a.from, "fraud.after_hours.from")?,
                time_of_day(&a.to, "fraud.after_hours.to")?,
            );
            if from_minute == to_minute {
                return Err(ConfigError::Invalid {
                    key: "fraud.after_hours.to",
                    message: "the office hours end when they begin".into(),
                });
            }
            // A measure not named at night keeps the day's level.
            let night =
                |pair: Option<[u32; 2]>, key, day: Threshold| pair.map_or(Ok(day), |p| threshold(p, key));
            Some(AfterHours {
                from_minute,
                to_minute,
                calls_per_minute: night(
                    a.calls_per_minute,
                    "fraud.after_hours.calls_per_minute",
                    calls_per_minute,
                )?,
                concurrent_international: night(
                    a.concurrent_international,
                    "fraud.after_hours.concurrent_international",
                    concurrent_international,
                )?,
                high_risk_calls: night(
                    a.high_risk_calls,
                    "fraud.after_hours.high_risk_calls",
                    high_risk_calls,
                )?,
                same_prefix_calls: night(
                    a.same_prefix_calls,
                    "fraud.after_hours.same_prefix_calls",
                    same_prefix_calls,
                )?,
            })
        }
    };
    Ok(FraudLimits {
        after_hours,
        calls_per_minute,
        concurrent_international,
        high_risk_calls,
        same_prefix_calls,
        international_prefixes: prefixes(f.international_prefixes, "fraud.international_prefixes")?,
        home_prefixes: prefixes(f.home_prefixes, "fraud.home_prefixes")?,
        high_risk_prefixes: prefixes(f.high_risk_prefixes, "fraud.high_risk_prefixes")?,
        inbound_contexts: f.inbound_contexts,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub failures: Option<Duration>,
    pub ended_bans: Option<Duration>,
    pub audit: Option<Duration>,
    pub clean_log_max_bytes: u64,
    pub clean_log_keep: u32,
}

impl Default for Retention {
    fn default() -> Self {
        retention(RetentionConfig::default()).expect("the declared retention defaults are valid")
    }
}

/// A retention period: a duration, or "keep" for forever.
fn kept_for(text: &str, key: &'static str) -> Result<Option<Duration>, ConfigError> {
    match text.trim() {
        "keep" => Ok(None),
        t => duration(t, key).map(Some),
    }
}

fn prefix_rule(p: &PolicyConfig) -> Result<crate::policy::prefix::PrefixRule, ConfigError> {
    let len = p.ipv6_prefix;
    if !(16..=127).contains(&len) {
        return Err(ConfigError::Invalid {
            key: "policy.ipv6_prefix",
            message: format!("{len} is not a prefix length from 16 to 127"),
        });
    }
    Ok(crate::policy::prefix::PrefixRule {
        len,
        after: p.prefix_after,
        within_ms: crate::policy::prefix::PrefixRule::default().within_ms,
    })
}

fn retention(r: RetentionConfig) -> Result<Retention, ConfigError> {
    let max_mib = r.failed_auth_log_max_mib;
    if max_mib == 0 {
        return Err(ConfigError::Invalid {
            key: "retention.failed_auth_log_max_mib",
            message: "must be at least 1".into(),
        });
    }
    Ok(Retention {
        failures: kept_for(&r.failures, "retention.failures")?,
        ended_bans: kept_for(&r.ended_bans, "retention.ended_bans")?,
        audit: kept_for(&r.audit, "retention.audit")?,
        clean_log_max_bytes: max_mib << 20,
        clean_log_keep: r.failed_auth_log_keep,
    })
}

/// A log to follow: `security:/var/log/asterisk/security`, `messages:PATH`, or a bare
/// path whose kind is detected from its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    pub path: PathBuf,
    pub kind: Option<SourceKind>,
}

impl SourceSpec {
    pub fn parse(spec: &str) -> Result<SourceSpec, ConfigError> {
        let (kind, path) = match spec.split_once(':') {
            Some(("security", p)) => (Some(SourceKind::Security), p),
            Some(("messages", p)) | Some(("full", p)) => (Some(SourceKind::Messages), p),
            _ => (None, spec),
        };
        if path.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "logs (SIPWARDEN_LOG, --log)",
                message: format!("{spec:?} names no file"),
            });
        }
        Ok(SourceSpec { path: PathBuf::from(path), kind })
    }
}

/// Values given on the command line or in `SIPWARDEN_*` variables.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub logs: Vec<String>,
    pub start_at: Option<StartAt>,
    pub trusted: Vec<String>,
    pub backend: Option<BackendChoice>,
    pub listen: Option<String>,
    /// `SIPWARDEN_AMI_SECRET`.
    pub ami_secret: Option<String>,
    /// `--database-url`, `SIPWARDEN_DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--node`, `SIPWARDEN_NODE`.
    pub node: Option<String>,
    /// `--geoip`, `SIPWARDEN_GEOIP`.
    pub geoip: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub sources: Vec<SourceSpec>,
    pub start_at: StartAt,
    pub poll_interval: Duration,
    pub trusted: TrustedNetworks,
    pub ladder: Ladder,
    pub clean_log: PathBuf,
    /// The country database (`geo`), when one is configured.
    pub geoip: Option<PathBuf>,
    /// Protection on a fresh install (before an admin switches it).
    pub protection_default: bool,
    pub backend: BackendChoice,
    /// Words before `nft`, e.g. `["ip", "netns", "exec", "pbx"]`.
    pub nft_prefix: Vec<String>,
    pub reconcile_interval: Duration,
    /// Where the panel listens.
    pub listen: std::net::SocketAddr,
    pub secure_cookies: bool,
    pub session_idle: Duration,
    /// Asterisk's configuration directory and CLI, for the ACLs the panel applies.
    pub asterisk_dir: PathBuf,
    pub asterisk_command: Vec<String>,
    pub sip_udp_ports: Vec<u16>,
    pub sip_tcp_ports: Vec<u16>,
    pub resolve_interval: Duration,
    pub retention: Retention,
    pub prefix_rule: crate::policy::prefix::PrefixRule,
    pub fraud: FraudLimits,
    /// The manager interface, when configured.
    pub ami: Option<crate::ami::AmiSettings>,
    /// The shared PostgreSQL store; `None`: the SQLite file in the data directory.
    pub database_url: Option<String>,
    /// This PBX's name among those sharing the store.
    pub node: String,
    /// The rules count this PBX's failures only (`[store] count_per_node`).
    pub count_per_node: bool,
}

impl Config {
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        let parsed = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                let mut parsed = FileConfig::parse(&text)
                    .map_err(|message| ConfigError::Parse { path: path.to_owned(), message })?;
                // A relative path in a file means the same wherever a command runs from
                // (joining an absolute path gives that path).
                let dir = path.parent().unwrap_or(Path::new("."));
                parsed.data_dir = dir.join(&parsed.data_dir);
                parsed.clean_log = parsed.clean_log.map(|p| dir.join(p));
                parsed.geoip = parsed.geoip.map(|p| dir.join(p));
                parsed.ami.secret_file = parsed.ami.secret_file.map(|p| dir.join(p));
                parsed
            }
            None => FileConfig::default(),
        };
        Self::from_parts(parsed, overrides)
    }

    pub fn from_parts(file: FileConfig, o: Overrides) -> Result<Config, ConfigError> {
        let data_dir = o.data_dir.unwrap_or(file.data_dir);
        let database_url = o.database_url.or(file.store.url).filter(|u| !u.trim().is_empty());
        let postgres = |u: &String| u.starts_with("postgres://") || u.starts_with("postgresql://");
        if database_url.as_ref().is_some_and(|u| !postgres(u)) {
            return Err(ConfigError::Invalid {
                key: "store.url (SIPWARDEN_DATABASE_URL, --database-url)",
                message: "must be a PostgreSQL URL like postgres://user:password@host/database \
                          (leave it out for the SQLite file in the data directory)"
                    .into(),
            });
        }
        let node = o.node.or(file.store.node).map(|n| n.trim().to_string()).unwrap_or_default();
        let node = if node.is_empty() { crate::store::default_node() } else { node };
        if node.len() > 64 || node.chars().any(|c| c.is_control() || c == ',') {
            return Err(ConfigError::Invalid {
                key: "store.node (SIPWARDEN_NODE, --node)",
                message: "a node name is at most 64 characters, without commas".into(),
            });
        }
        let log_specs: Vec<String> = if !o.logs.is_empty() {
            o.logs
        } else if let Some(logs) = file.logs {
            logs
        } else {
            DEFAULT_LOGS
                .iter()
                .filter(|s| Path::new(s.rsplit(':').next().unwrap_or(s)).exists())
                .map(|s| s.to_string())
                .collect()
        };
        let sources = log_specs.iter().map(|s| SourceSpec::parse(s)).collect::<Result<_, _>>()?;
        let trusted_specs = if o.trusted.is_empty() { file.trusted } else { o.trusted };
        let trusted = TrustedNetworks::new(
            trusted_specs
                .iter()
                .map(|s| parse_network(s, "trusted (SIPWARDEN_TRUSTED, --trusted)"))
                .collect::<Result<Vec<_>, _>>()?,
        );
        let clean_log = file.clean_log.unwrap_or_else(|| data_dir.join("failed-auth.log"));
        let reconcile_interval = duration(&file.firewall.reconcile_interval, "firewall.reconcile_interval")?;
        if reconcile_interval < Duration::from_millis(100) {
            return Err(ConfigError::Invalid {
                key: "firewall.reconcile_interval",
                message: "must be at least 100ms".into(),
            });
        }
        let listen_text = o.listen.unwrap_or(file.panel.listen);
        let listen = listen_text.parse().map_err(|_| ConfigError::Invalid {
            key: "panel.listen (SIPWARDEN_LISTEN, --listen)",
            message: format!("{listen_text:?} is not an address:port like 127.0.0.1:8575 or 0.0.0.0:8575"),
        })?;
        if file.asterisk.command.is_empty() {
            return Err(ConfigError::Invalid {
                key: "asterisk.command",
                message: "names no program; leave the key out for [\"asterisk\"]".into(),
            });
        }
        Ok(Config {
            asterisk_dir: file.asterisk.config_dir,
            asterisk_command: file.asterisk.command,
            sip_udp_ports: file.asterisk.sip_udp_ports,
            sip_tcp_ports: file.asterisk.sip_tcp_ports,
            resolve_interval: duration(&file.asterisk.resolve_interval, "asterisk.resolve_interval")?,
            listen,
            secure_cookies: file.panel.secure_cookies,
            session_idle: duration(&file.panel.session_idle, "panel.session_idle")?,
            protection_default: file.protection,
            backend: o.backend.unwrap_or(file.firewall.backend),
            nft_prefix: file.firewall.command_prefix,
            reconcile_interval,
            sources,
            start_at: o.start_at.unwrap_or(file.start_at),
            poll_interval: duration(&file.poll_interval, "poll_interval")?,
            trusted,
            prefix_rule: prefix_rule(&file.policy)?,
            ladder: ladder(file.policy)?,
            retention: retention(file.retention)?,
            fraud: fraud_limits(file.fraud)?,
            ami: ami_settings(file.ami, o.ami_secret)?,
            clean_log,
            geoip: o.geoip.or(file.geoip).filter(|p| !p.as_os_str().is_empty()),
            data_dir,
            database_url,
            node,
            count_per_node: file.store.count_per_node,
        })
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("sipwarden.db")
    }
}

/// A CIDR or a single address. Host bits set are refused with the network to use.
pub fn parse_network(text: &str, key: &'static str) -> Result<IpNet, ConfigError> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => match text.parse::<std::net::IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) => {
                return Err(ConfigError::Invalid {
                    key,
                    message: format!("{text:?} is not an address or CIDR network"),
                });
            }
        },
    };
    if net.trunc() != net {
        return Err(ConfigError::Invalid {
            key,
            message: format!("{text} has host bits set; did you mean {}?", net.trunc()),
        });
    }
    Ok(net)
}

fn duration(text: &str, key: &'static str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text.trim()).map_err(|e| ConfigError::Invalid {
        key,
        message: format!("{text:?} is not a duration like 30s, 1h, 7d: {e}"),
    })
}

pub fn duration_ms(text: &str, key: &'static str) -> Result<UnixMs, ConfigError> {
    Ok(duration(text, key)?.as_millis() as UnixMs)
}

fn ladder(p: PolicyConfig) -> Result<Ladder, ConfigError> {
    if p.rungs.is_empty() {
        return Err(ConfigError::Invalid {
            key: "policy.rungs",
            message: "at least one rung is needed".into(),
        });
    }
    let rungs = p
        .rungs
        .iter()
        .map(|r| {
            if r.failures == 0 {
                return Err(ConfigError::Invalid {
                    key: "policy.rungs.failures",
                    message: "must be at least 1".into(),
                });
            }
            let ban_ms = match r.ban.trim() {
                UNTIL_RELEASED | "forever" | "permanent" => None,
                other => Some(duration_ms(other, "policy.rungs.ban")?),
            };
            Ok(Rung {
                failures: r.failures,
                within_ms: duration_ms(&r.within, "policy.rungs.within")?,
                ban_ms,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Ladder {
        rungs,
        known_good_failures: p.known_good_failures,
        known_good_for_ms: duration_ms(&p.known_good_for, "policy.known_good_for")?,
        repeat_within_ms: duration_ms(&p.repeat_within, "policy.repeat_within")?,
        repeat_ban_ms: duration_ms(&p.repeat_ban, "policy.repeat_ban")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_to_the_documented_defaults() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sipwarden.example.toml")).unwrap();
        let file: FileConfig = toml::from_str(&text).unwrap();
        let c = Config::from_parts(file, Overrides::default()).unwrap();
        assert_eq!(c.ladder, Ladder::default());
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.sources[0].kind, Some(SourceKind::Security));
        assert!(c.trusted.contains("192.168.1.20".parse().unwrap()));
        assert_eq!(c.retention, Retention::default());
        assert_eq!(c.prefix_rule, crate::policy::prefix::PrefixRule::default());
    }

    #[test]
    fn a_relative_data_dir_in_a_file_is_beside_the_file_wherever_a_command_runs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sipwarden.toml");
        std::fs::write(&file, "data_dir = \"data\"\nclean_log = \"/var/log/f.log\"\n").unwrap();
        let c = Config::load(Some(&file), Overrides::default()).unwrap();
        assert_eq!(c.data_dir, dir.path().join("data"));
        assert_eq!(c.clean_log, PathBuf::from("/var/log/f.log"));
        // A flag is the admin's own words, read from where they typed it.
        let o = Overrides { data_dir: Some("here".into()), ..Overrides::default() };
        assert_eq!(Config::load(Some(&file), o).unwrap().data_dir, PathBuf::from("here"));
        // The default too: one file means one data directory.
        std::fs::write(&file, "protection = false\n").unwrap();
        let c = Config::load(Some(&file), Overrides::default()).unwrap();
        assert_eq!(c.data_dir, dir.path().join("sipwarden-data"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = parse_network("192.168.1.7/24", "trusted").unwrap_err().to_string();
        assert!(err.contains("did you mean 192.168.1.0/24"), "{err}");
        let err = parse_network("10.0.0.300", "trusted").unwrap_err().to_string();
        assert!(err.starts_with("trusted:"), "{err}");
        let file: FileConfig =
            toml::from_str("[policy]\nrungs = [{ failures = 2, within = \"soon\", ban = \"1h\" }]").unwrap();
        let err = Config::from_parts(file, Overrides::default()).unwrap_err().to_string();
        assert!(err.starts_with("policy.rungs.within"), "{err}");
        assert!(toml::from_str::<FileConfig>("unknown_key = 1").is_err());
    }

    #[test]
    fn after_hours_levels_keep_the_days_where_not_named_and_bad_times_are_refused() {
        let text = "[fraud]\ncalls_per_minute = [3, 5]\n[fraud.after_hours]\nfrom = \"19:00\"\nto = \"07:30\"\ncalls_per_minute = [1, 2]\n";
        let c = Config::from_parts(toml::from_str(text).unwrap(), Overrides::default()).unwrap();
        let a = c.fraud.after_hours.expect("after hours set");
        assert_eq!((a.from_minute, a.to_minute), (19 * 60, 7 * 60 + 30));
        assert_eq!(a.calls_per_minute, Threshold { warning: 1, critical: 2 });
        assert_eq!(a.concurrent_international, c.fraud.concurrent_international, "the day's level");
        for (from, key) in [("7pm", "fraud.after_hours.from"), ("24:00", "fraud.after_hours.from")] {
            let text = format!("[fraud.after_hours]\nfrom = \"{from}\"\nto = \"07:00\"\n");
            let err = Config::from_parts(toml::from_str(&text).unwrap(), Overrides::default()).unwrap_err();
            assert!(err.to_string().starts_with(key), "{err}");
        }
        let text = "[fraud.after_hours]\nfrom = \"07:00\"\nto = \"07:00\"\n";
        assert!(Config::from_parts(toml::from_str(text).unwrap(), Overrides::default()).is_err());
    }

    #[test]
    fn flags_override_the_file() {
        let file: FileConfig = toml::from_str("data_dir = \"/a\"\nlogs = [\"/x\"]").unwrap();
        let o = Overrides {
            data_dir: Some("/b".into()),
            logs: vec!["security:/y".into()],
            ..Overrides::default()
        };
        let c = Config::from_parts(file, o).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/b"));
        assert_eq!(c.sources, vec![SourceSpec { path: "/y".into(), kind: Some(SourceKind::Security) }]);
    }
}
