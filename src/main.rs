use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use sipwarden::config::{BackendChoice, Config, Overrides};
use sipwarden::ingest::StartAt;

/// Watches Asterisk logs and bans SIP/AMI/IAX2 brute-force attackers.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (see sipwarden.example.toml).
    #[arg(long, global = true, env = "SIPWARDEN_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the database and the failed-auth log.
    #[arg(long, global = true, env = "SIPWARDEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Networks never banned (CIDR or address; repeatable or comma-separated).
    #[arg(long, global = true, env = "SIPWARDEN_TRUSTED", value_delimiter = ',')]
    trusted: Vec<String>,
    /// Address and port of the web panel (default 127.0.0.1:8575).
    #[arg(long, global = true, env = "SIPWARDEN_LISTEN")]
    listen: Option<String>,
    /// Firewall backend: auto (nft when usable, else a loud dry run), nft, dry-run.
    #[arg(long, global = true, env = "SIPWARDEN_FIREWALL", value_enum)]
    firewall: Option<BackendChoice>,
    /// A PostgreSQL database shared by several PBXes (postgres://user:password@host/db);
    /// default: the SQLite file in the data directory.
    #[arg(long, global = true, env = "SIPWARDEN_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// This PBX's name in a shared database (default: the host name).
    #[arg(long, global = true, env = "SIPWARDEN_NODE")]
    node: Option<String>,
    /// Country database: Tor's `geoip` file, e.g. /usr/share/tor/geoip from Debian's
    /// tor-geoipdb (its `geoip6` is read too).
    #[arg(long, global = true, env = "SIPWARDEN_GEOIP")]
    geoip: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Follow the Asterisk logs, store failures and decide bans.
    Serve {
        /// Log to follow: PATH, security:PATH or messages:PATH (repeatable).
        #[arg(long = "log", env = "SIPWARDEN_LOG", value_delimiter = ',')]
        logs: Vec<String>,
        /// Where to begin in a log seen for the first time.
        #[arg(long, env = "SIPWARDEN_START_AT", value_enum)]
        start_at: Option<StartAtArg>,
    },
    /// Ban an address now (through the database and the running enforcer).
    Ban {
        ip: IpAddr,
        /// How long, e.g. 30m, 1h, 7d.
        #[arg(
            long = "for",
            value_name = "DURATION",
            default_value = "1h",
            conflicts_with = "until_released"
        )]
        duration: String,
        /// Keep the ban until someone releases it.
        #[arg(long)]
        until_released: bool,
        #[arg(long, default_value = "banned by an admin")]
        reason: String,
    },
    /// Release every active ban of an address, or a banned IPv6 prefix.
    Unban {
        /// An address, or a banned IPv6 prefix such as 2001:db8:1:2::/64.
        #[arg(value_parser = parse_ban_target)]
        ip: ipnet::IpNet,
    },
    /// Unlock an extension a breach or toll-fraud incident locked.
    Unlock {
        /// The extension (endpoint or peer name), e.g. 1002.
        extension: String,
    },
    /// Switch protection: `on` enforces bans, `off` is monitor mode.
    Protection {
        #[arg(value_enum)]
        state: OnOff,
    },
    /// Protection state, ban and failure counts, firewall health, log sources.
    Status {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// The bans in force: address, reason, since, until, accounts tried, services.
    Bans {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// The network lists: trusted, admin addresses, extensions, trunk providers, deny.
    Networks {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Set a new random password for a panel account and print it (a forgotten password).
    ResetPassword {
        /// The account's user name.
        username: String,
    },
    /// Try it: the panel with a replayed attack, a temporary database and no real firewall.
    Demo {
        /// Time between two steps of the replayed attack.
        #[arg(long, default_value = "700ms", hide = true)]
        pace: String,
    },
    /// Parse log files offline and print per-address failures and verdicts.
    CheckLog {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(Clone, Copy, ValueEnum)]
enum StartAtArg {
    Beginning,
    End,
}

/// `203.0.113.7` or `2001:db8:1:2::/64`.
fn parse_ban_target(text: &str) -> Result<ipnet::IpNet, String> {
    sipwarden::domain::network::parse_ban_target(text)
        .ok_or_else(|| format!("{text:?} is not an address or a network like 2001:db8:1:2::/64"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIPWARDEN_LOG_LEVEL")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sipwarden: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut overrides = Overrides {
        data_dir: cli.data_dir,
        trusted: cli.trusted,
        backend: cli.firewall,
        listen: cli.listen,
        ami_secret: std::env::var("SIPWARDEN_AMI_SECRET").ok().filter(|s| !s.is_empty()),
        database_url: cli.database_url,
        node: cli.node,
        geoip: cli.geoip,
        ..Overrides::default()
    };
    match cli.command {
        Command::Serve { logs, start_at } => {
            overrides.logs = logs;
            overrides.start_at = start_at.map(|s| match s {
                StartAtArg::Beginning => StartAt::Beginning,
                StartAtArg::End => StartAt::End,
            });
            let config = Config::load(cli.config.as_deref(), overrides)?;
            runtime()?.block_on(sipwarden::app::serve(config))
        }
        Command::Ban { ip, duration, until_released, reason } => {
            let config = Config::load(cli.config.as_deref(), overrides)?;
            let ms = if until_released {
                None
            } else {
                let d = humantime::parse_duration(&duration).map_err(|e| {
                    anyhow::anyhow!("--for {duration:?}: not a duration like 30m, 1h, 7d ({e})")
                })?;
                Some(d.as_millis() as i64)
            };
            runtime()?.block_on(sipwarden::cli::ban(config, ip, ms, &reason))
        }
        Command::Unban { ip } => {
            let config = Config::load(cli.config.as_deref(), overrides)?;
            runtime()?.block_on(sipwarden::cli::unban(config, ip))
        }
        Command::Unlock { extension } => {
            let config = Config::load(cli.config.as_deref(), overrides)?;
            runtime()?.block_on(sipwarden::cli::unlock(config, &extension))
        }
        Command::Protection { state } => {
            let config = Config::load(cli.config.as_deref(), overrides)?;
            runtime()?.block_on(sipwarden::cli::protection(config, matches!(state, OnOff::On)))
        }
        Command::Status { format } => {
            let config = Config::load(cli.config.as_deref(), overrides)?;
            runtime()?.block_on(sipwarden::cli::status(config, matches!(format, Format::Json)))
        }
        Command::Bans { format } => {
            let config = Config::load(cli.config.as_deref(), overrides)?;
            runtime()?.block_on(sipwarden::cli::bans(config, matches!(format, Format::Json)))
        }
        Command::Networks { format } => {
            let config = Config::load(cli.config.as_deref(), overrides)?;
            runtime()?.block_on(sipwarden::cli::networks(config, matches!(format, Format::Json)))
        }
        Command::ResetPassword { username } => {
            let config = Config::load(cli.config.as_deref(), overrides)?;
            runtime()?.block_on(sipwarden::cli::reset_password(config, &username))
        }
        Command::Demo { pace } => {
            let pace = humantime::parse_duration(&pace).map_err(|e| anyhow::anyhow!("--pace: {e}"))?;
            runtime()?.block_on(sipwarden::demo::run(overrides.listen, pace))
        }
        Command::CheckLog { format, files } => {
            let config = Config::load(cli.config.as_deref(), overrides)?;
            let geo = config.geoip.as_deref().map(sipwarden::geo::Geo::open).transpose()?;
            let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
            // Drawn on a terminal only; hidden when the output is piped.
            let bar = indicatif::ProgressBar::new(total).with_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} reading logs {bar:40} {bytes}/{total_bytes} ({eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let mut report = sipwarden::checklog::check_files_with_progress(
                &files,
                sipwarden::checklog::Rules {
                    ladder: config.ladder,
                    trusted: config.trusted,
                    fraud: config.fraud,
                    countries: geo.as_ref().and_then(sipwarden::geo::Geo::table),
                },
                &|n| bar.inc(n),
            )?;
            bar.finish_and_clear();
            if let Some(geo) = &geo {
                report.add_countries(geo);
            }
            match format {
                Format::Text => print!("{}", sipwarden::checklog::render_text(&report)),
                Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            // The process ends here: leaving a big report to the system is quicker than
            // freeing it entry by entry.
            std::mem::forget(report);
            Ok(())
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

/// The error and its causes, leaving out a cause already quoted by the one before it
/// (database errors repeat their source in their own text).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}
