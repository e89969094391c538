//! Wiring only: open the store, pick the firewall, start the workers, stop cleanly.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::asterisk::SourceKind;
use crate::clock::{Clock, SystemClock};
use crate::config::{BackendChoice, Config};
use crate::enforcer::{self, Enforcer};
use crate::firewall::{self, Firewall, NftBackend, RecordingBackend};
use crate::ingest::pipeline::Pipeline;
use crate::ingest::spool::Spool;
use crate::ingest::{self, cleanlog::CleanLog};
use crate::store::{self, Store};

mod manager;

pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {} (set data_dir / SIPWARDEN_DATA_DIR / --data-dir)",
            config.data_dir.display()
        )
    })?;
    // Said plainly before SQLite's "unable to open database file" can say it vaguely.
    let probe = config.data_dir.join(".sipwarden-write-test");
    std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe)).with_context(|| {
        format!(
            "the data directory {} is not writable; sipwarden keeps its database there",
            config.data_dir.display()
        )
    })?;
    if let Some(url) = &config.database_url {
        let store = Store::connect_postgres(url)
            .await
            .with_context(|| format!("cannot reach the shared database {}", store::shown_url(url)))?;
        return Ok(store.with_node(&config.node));
    }
    let path = config.database_path();
    private_files(&config.data_dir, &path)?;
    let store =
        Store::open(&path).await.with_context(|| format!("cannot open the database {}", path.display()))?;
    Ok(store.with_node(&config.node))
}

/// [`open_store`] that waits for a shared store that cannot be reached (the database
/// restarting, the network away): the kernel keeps enforcing the bans it holds
/// meanwhile, as nothing touches it. `None`: stopped by a signal while waiting.
async fn open_store_waiting(config: &Config, signals: &mut StopSignals) -> anyhow::Result<Option<Store>> {
    if let Some(url) = &config.database_url {
        // Before the first try, which can take seconds to fail.
        restore_bans(config, url);
    }
    let mut backoff = std::time::Duration::from_millis(500);
    let mut said = false;
    loop {
        let error = match open_store(config).await {
            Ok(store) => return Ok(Some(store)),
            Err(e) if config.database_url.is_some() && unreachable(&e) => e,
            Err(e) => return Err(e),
        };
        if !said {
            tracing::warn!(
                error = format!("{error:#}"),
                "shared store unreachable at start; the firewall keeps the bans it holds; waiting for it"
            );
            said = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = signals.received() => return Ok(None),
        }
        backoff = (backoff * 2).min(std::time::Duration::from_secs(10));
    }
}

/// On a shared store, the file that keeps the bans as last enforced.
fn snapshot_path(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("bans-snapshot.json")
}

/// An empty kernel (the host rebooted) gets the bans this PBX last enforced from the
/// shared store, rather than none until the store answers (if it does, the
/// enforcer's first pass puts the kernel to its bans at once).
fn restore_bans(config: &Config, url: &str) {
    let (firewall, _) = choose_firewall(config);
    let path = snapshot_path(config);
    let owner = store::shown_url(url);
    match enforcer::snapshot::restore(firewall.as_ref(), &path, &owner, SystemClock.now()) {
        Ok(Some(bans)) => tracing::warn!(
            bans,
            path = %path.display(),
            "the kernel held no bans: put back those last enforced, until the shared store's own"
        ),
        Ok(None) => {}
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), path = %path.display(), "cannot restore the bans")
        }
    }
}

/// Whether `error` says the database server could not be reached (not that it refused us).
fn unreachable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let sql = match cause.downcast_ref::<store::StoreError>() {
            Some(store::StoreError::Sql(e)) => Some(e),
            _ => cause.downcast_ref::<sqlx::Error>(),
        };
        sql.is_some_and(store::connection_lost)
    })
}

/// The database `serve` made, for the admin commands: they never create one. An empty
/// new database next to wherever the command ran would hold no bans, and `protection
/// on` from it would clear the real ones from the kernel.
pub async fn open_existing_store(config: &Config) -> anyhow::Result<Store> {
    let path = config.database_path();
    if config.database_url.is_none() && !path.exists() {
        anyhow::bail!(
            "no sipwarden database at {}: sipwarden keeps it in the data directory `serve` uses. \
             Pass that configuration (--config /etc/sipwarden/sipwarden.toml) or --data-dir; \
             `serve` creates the database on its first start",
            path.display()
        );
    }
    open_store(config).await
}

/// The data directory holds password hashes, session ids and evidence: only its owner
/// may enter it, and the database is created 0600 (SQLite gives its -wal and -shm the
/// database's own mode).
fn private_files(dir: &std::path::Path, database: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // Another user (an admin running the CLI) may not own them: said, not fatal.
    let chmod = |p: &std::path::Path, mode: u32| {
        if let Err(e) = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)) {
            tracing::warn!(path = %p.display(), error = %e, "cannot restrict the permissions");
        }
    };
    chmod(dir, 0o700);
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(database) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            for suffix in ["", "-wal", "-shm"] {
                let mut name = database.as_os_str().to_owned();
                name.push(suffix);
                let file = std::path::PathBuf::from(name);
                if file.exists() {
                    chmod(&file, 0o600);
                }
            }
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create the database {}", database.display())),
    }
}

/// The backend `config` asks for. With `auto`, a host where `nft` cannot run gets a
/// dry run, and the returned warning says so.
pub fn choose_firewall(config: &Config) -> (Arc<dyn Firewall>, Option<String>) {
    let nft = || Arc::new(NftBackend::new(config.nft_prefix.clone())) as Arc<dyn Firewall>;
    match config.backend {
        BackendChoice::Nft => (nft(), None),
        BackendChoice::DryRun => (Arc::new(RecordingBackend::new("dry-run")), None),
        BackendChoice::Auto if !config.nft_prefix.is_empty() || firewall::nft_available() => (nft(), None),
        BackendChoice::Auto => (
            Arc::new(RecordingBackend::new("dry-run (nft unavailable: not root or not installed)")),
            Some(
                "DRY RUN: nft is not usable here (run as root or with CAP_NET_ADMIN, and install nftables); \
                 bans are decided and stored but NOT enforced"
                    .into(),
            ),
        ),
    }
}

pub fn enforcer_for(
    config: &Config,
    store: &Store,
    firewall: Arc<dyn Firewall>,
    poke: Arc<Notify>,
) -> Enforcer {
    Enforcer::new(
        store.clone(),
        firewall,
        Arc::new(SystemClock),
        config.trusted.clone(),
        config.protection_default,
        poke,
    )
    .with_ports(service_ports(config))
}

/// The ports closed mode closes: the SIP ports the config names and the port the
/// panel really listens on (IAX2 and AMI keep Asterisk's defaults).
pub fn service_ports(config: &Config) -> crate::firewall::ServicePorts {
    // The configured SIP ports and those Asterisk's configuration names: FreePBX's
    // chan_sip on 5160 is closed with pjsip's 5060.
    let found = crate::pbx::sip_ports(&config.asterisk_dir).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the SIP ports from Asterisk's configuration");
        Default::default()
    });
    let union = |configured: &[u16], found: &std::collections::BTreeSet<u16>| {
        let mut all: Vec<u16> = configured.iter().chain(found).copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    crate::firewall::ServicePorts {
        sip_udp: union(&config.sip_udp_ports, &found.udp),
        sip_tcp: union(&config.sip_tcp_ports, &found.tcp),
        panel: config.listen.port(),
        // The manager interface sipwarden is told to use is the one to close.
        ami: config
            .ami
            .as_ref()
            .and_then(|a| a.address.rsplit_once(':')?.1.parse().ok())
            .unwrap_or(crate::firewall::ServicePorts::default().ami),
        ..Default::default()
    }
}

/// `sipwarden serve`: follow the logs, decide and enforce bans, until SIGINT/SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Before any worker starts: a SIGTERM during start-up is a clean stop too (the
    // default action would kill the process on the spot).
    let mut signals = StopSignals::install();
    let Some(store) = open_store_waiting(&config, &mut signals).await? else { return Ok(()) };
    crate::shared::register(&store).await?;
    if store.is_shared() {
        tracing::info!(database = %store.location(), node = %store.node(), "shared store");
    }
    if config.sources.is_empty() {
        tracing::warn!("no Asterisk log configured or found; set logs / SIPWARDEN_LOG / --log");
    }
    let (firewall, warning) = choose_firewall(&config);
    if let Some(w) = &warning {
        tracing::warn!("{w}");
        let mut conn = store.acquire().await?;
        store::health::set(&mut conn, enforcer::HEALTH_COMPONENT, false, w, SystemClock.now()).await?;
    }
    let mut followers = Vec::new();
    for spec in &config.sources {
        tracing::info!(path = %spec.path.display(), kind = ?spec.kind, "following log");
        followers.push(ingest::follower_for(&store, spec.path.clone(), spec.kind, config.start_at).await?);
    }
    let security_source_present = config.sources.iter().any(|s| s.kind == Some(SourceKind::Security))
        || followers.iter().any(|f| f.kind() == Some(SourceKind::Security));
    let poke = Arc::new(Notify::new());
    let ingest_health = ingest::IngestHealth::default();
    let (alerts, alerts_queue) = crate::alerts::Alerts::new();
    let manager = manager::Manager::new(&config);
    let pbx_control = manager.control(&config);
    let geo = config.geoip.as_deref().map_or_else(crate::geo::Geo::none, crate::geo::Geo::at);
    let watch = Arc::new(crate::watch::Watch {
        store: store.clone(),
        clock: Arc::new(SystemClock),
        trusted: config.trusted.clone(),
        protection_default: config.protection_default,
        breaker: std::sync::Mutex::new(
            crate::policy::fraud::Breaker::new(config.fraud.clone())
                .with_time_of_day(crate::clock::local_minute_of_day),
        ),
        pbx: pbx_control.clone(),
        bans_changed: poke.clone(),
        alerts: Some(alerts.clone()),
        memory: Default::default(),
        geo: geo.clone(),
    });
    let corroboration = Arc::default();
    let spool = open_spool(&config, &store, &mut followers)?;
    let parts = PipelineParts {
        spool: &spool,
        store: &store,
        poke: &poke,
        health: &ingest_health,
        watch: &watch,
        corroboration: &corroboration,
    };
    let pipeline = pipeline(&config, &parts, security_source_present);
    let manager_pipeline = manager.is_some().then(|| pipeline_for_manager(&config, &parts));
    let panel_pipeline = pipeline_for_manager(&config, &parts);
    let (panel_failures, panel_failures_rx) = tokio::sync::mpsc::channel(crate::ingest::panel::QUEUE);
    let mut enforcer = enforcer_for(&config, &store, firewall, poke.clone()).with_geo(geo.clone());
    if let Some(spool) = &spool {
        enforcer = enforcer.with_spool(spool.clone()).with_snapshot(snapshot_path(&config));
    }
    let enforcer = Arc::new(enforcer);
    let poke_enforcer = poke.clone();
    tracing::info!(backend = %enforcer.firewall_name(), "firewall backend");
    let web_state = crate::web::WebState::new(
        store.clone(),
        Arc::new(SystemClock),
        config.trusted.clone(),
        config.ladder.clone(),
        config.protection_default,
        poke,
        enforcer.firewall_name(),
    )
    .with_ingest_health(ingest_health)
    .with_spool(spool.clone())
    .with_geo(geo.clone())
    .with_alerts(alerts.clone())
    .with_pbx_control(pbx_control)
    .with_manager(manager.health())
    .with_closed_ports(enforcer.ports().clone())
    .with_country_drops(enforcer.country_drops())
    .with_panel_failures(panel_failures)
    .with_protection_facts(enforcer.firewall_enforces(), warning.clone(), config.sources.len())
    .with_pbx(Some(crate::pbx::Pbx {
        config_dir: config.asterisk_dir.clone(),
        command: config.asterisk_command.clone(),
        log: config.sources.iter().find(|s| s.kind != Some(SourceKind::Security)).map(|s| s.path.clone()),
    }));
    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| {
        let holder = crate::port_holder::holder_of_tcp_port(config.listen.port())
            .map_or(String::new(), |h| format!("; {h} listens on port {}", config.listen.port()));
        format!("cannot listen on {}{holder} (set panel.listen / SIPWARDEN_LISTEN / --listen)", config.listen)
    })?;
    let panel_url = format!("http://{}", listener.local_addr()?);
    announce_setup(&config, &store, &web_state, &panel_url).await?;
    tracing::info!(url = %panel_url, "panel listening");
    let options = crate::web::PanelOptions {
        listen: config.listen,
        secure_cookies: config.secure_cookies,
        session_idle: time::Duration::seconds(config.session_idle.as_secs() as i64),
    };
    // One token stops every task; the tracker waits for them.
    let (stop, tasks) = (CancellationToken::new(), TaskTracker::new());
    // The session table is created before the workers start writing.
    let sessions = crate::web::sessions(&store, &options, &tasks, stop.clone()).await?;
    tasks.spawn(alerts.clone().run(alerts_queue, store.clone(), stop.clone()));
    tasks.spawn(geo.follow(GEO_CHECK_EVERY, stop.clone()));
    tasks.spawn(alert_digests(alerts, store.clone(), stop.clone()));
    tasks.spawn(lockout_and_dns(web_state.clone(), config.resolve_interval, stop.clone()));
    tasks.spawn({
        let stop = stop.clone();
        async move {
            if let Err(e) = crate::web::serve(web_state, sessions, listener, stop).await {
                tracing::error!(error = %e, "panel stopped");
            }
        }
    });
    tasks.spawn(ingest::run(followers, pipeline, config.poll_interval, stop.clone()));
    if let Some(manager_pipeline) = manager_pipeline {
        manager.spawn(&tasks, manager_pipeline, stop.clone());
    }
    tasks.spawn(crate::ingest::panel::feed(panel_failures_rx, panel_pipeline, stop.clone()));
    tasks.spawn(enforcer.clone().run(config.reconcile_interval, stop.clone()));
    tasks.spawn(crate::shared::run(store.clone(), poke_enforcer, stop.clone()));
    tasks.spawn(crate::retention::run(store.clone(), config.retention, Arc::new(SystemClock), stop.clone()));
    tasks.spawn(crate::control::serve(crate::control::socket_path(&config.data_dir), enforcer, stop.clone()));
    tasks.close();
    tracing::info!(data_dir = %config.data_dir.display(), "sipwarden running");
    signals.wait().await;
    tracing::info!("shutting down");
    stop.cancel();
    // Every batch is stored with its cursor, so a task cut short loses nothing; a stop
    // that takes longer than a service manager waits would end in SIGKILL anyway.
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait()).await.is_err() {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "tasks still busy at shutdown; stopping anyway");
    }
    store.close().await;
    Ok(())
}

/// On a shared store, the file where log batches wait while it is unreachable
/// (`ingest::spool`); the followers resume after the batches a previous run kept.
fn open_spool(
    config: &Config,
    store: &Store,
    followers: &mut [ingest::Follower],
) -> anyhow::Result<Option<Arc<Spool>>> {
    if !store.is_shared() {
        return Ok(None);
    }
    let path = config.data_dir.join("spool.jsonl");
    let spool = Spool::open(&path).with_context(|| format!("cannot read the spool {}", path.display()))?;
    let (records, bans) = spool.counts();
    if records > 0 {
        tracing::info!(records, bans, path = %path.display(), "log records kept while the shared store was away; storing them");
    }
    for follower in followers {
        if let Some(cursor) = spool.last_cursor(&follower.path().display().to_string()) {
            follower.commit(cursor);
        }
    }
    Ok(Some(Arc::new(spool)))
}

/// What every pipeline of `serve` shares.
struct PipelineParts<'a> {
    store: &'a Store,
    poke: &'a Arc<Notify>,
    health: &'a ingest::IngestHealth,
    watch: &'a Arc<crate::watch::Watch>,
    /// One for both pipelines: the manager's events may settle the security log's forged records.
    corroboration: &'a Arc<std::sync::Mutex<crate::policy::corroborate::Corroboration>>,
    spool: &'a Option<Arc<Spool>>,
}

fn pipeline(config: &Config, parts: &PipelineParts<'_>, security_source_present: bool) -> Pipeline {
    Pipeline {
        store: parts.store.clone(),
        ladder: config.ladder.clone(),
        trusted: config.trusted.clone(),
        clock: Arc::new(SystemClock),
        security_source_present,
        protection_default: config.protection_default,
        clean_log: Some(
            CleanLog::new(config.clean_log.clone())
                .rotating(config.retention.clean_log_max_bytes, config.retention.clean_log_keep),
        ),
        bans_changed: parts.poke.clone(),
        health: parts.health.clone(),
        attempts: Default::default(),
        corroboration: parts.corroboration.clone(),
        prefix_rule: config.prefix_rule,
        count_per_node: config.count_per_node,
        watch: Some(parts.watch.clone()),
        spool: parts.spool.clone(),
    }
}

/// The manager interface's own pipeline: it counts authentication outcomes only where
/// no log does (no log configured); its logins and calls always reach the watch.
/// The pipeline of a source other than the logs (the manager link, the panel's logins).
fn pipeline_for_manager(config: &Config, parts: &PipelineParts<'_>) -> Pipeline {
    let mut p = pipeline(config, parts, !config.sources.is_empty());
    // The failed-auth log is written by the log pipeline; two writers would interleave.
    if !config.sources.is_empty() {
        p.clean_log = None;
    }
    p
}

/// Every minute: the ban digest and the morning summary, when due.
async fn alert_digests(alerts: crate::alerts::Alerts, store: Store, stop: CancellationToken) {
    loop {
        let now = SystemClock.now();
        if let Err(e) = crate::alerts::digest_step(&alerts, &store, now).await {
            tracing::warn!(error = %e, "ban digest");
        }
        if let Err(e) = crate::alerts::summary_step(&alerts, &store, now).await {
            tracing::warn!(error = %e, "daily summary");
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// How often the country database's files are checked for an update.
const GEO_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the tasks get to finish their current step after SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(1500);

/// Reverts firewall changes nobody kept within 60 s, and resolves host-name entries.
async fn lockout_and_dns(
    state: crate::web::WebState,
    resolve_every: std::time::Duration,
    stop: CancellationToken,
) {
    let mut last_resolve: Option<std::time::Instant> = None;
    let mut last_verdict: Option<(bool, String)> = None;
    loop {
        // For `sipwarden status`, which cannot ask this process's memory.
        if let Ok(mut conn) = state.store.acquire().await {
            if let Ok(verdict) = crate::web::protecting::now(&state, &mut conn).await {
                let row = verdict.as_health();
                if last_verdict.as_ref() != Some(&row) {
                    if let (false, Some(alerts)) = (row.0, &state.alerts) {
                        alerts.raise(crate::alerts::Alert {
                            kind: crate::alerts::AlertKind::NotProtecting,
                            subject: "sipwarden is NOT protecting the PBX".into(),
                            text: row.1.clone(),
                            at: state.clock.now(),
                        });
                    }
                    let component = crate::web::protecting::HEALTH_COMPONENT;
                    let saved =
                        store::health::set(&mut conn, component, row.0, &row.1, state.clock.now()).await;
                    if saved.is_ok() {
                        last_verdict = Some(row);
                    }
                }
            }
        }
        match crate::lockout::revert_when_due(&state.store, state.clock.now()).await {
            Ok(true) => state.poke.notify_one(),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "could not check pending firewall changes"),
        }
        if last_resolve.is_none_or(|t| t.elapsed() >= resolve_every) {
            crate::resolver::resolve_all(&state.store, &*state.clock, &state.poke).await;
            last_resolve = Some(std::time::Instant::now());
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// With no admin yet, prints a one-time setup address (and keeps it in a 0600 file).
async fn announce_setup(
    config: &Config,
    store: &Store,
    state: &crate::web::WebState,
    url: &str,
) -> anyhow::Result<()> {
    let mut conn = store.acquire().await?;
    let path = config.data_dir.join("setup-url");
    if store::admins::count(&mut conn).await? > 0 {
        let _ = std::fs::remove_file(&path);
        return Ok(());
    }
    let token: String = {
        use rand::Rng;
        let bytes: [u8; 24] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    *state.setup_token.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
    let setup = format!("{url}/setup?token={token}");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(&path);
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
        writeln!(f, "{setup}")?;
    }
    // Not println!: a closed stdout (a service manager, a pipe) must not stop sipwarden.
    let notice = format!(
        "\n  No administrator yet. Open this address once to create one:\n\n    {setup}\n\n  (also written to {})\n\n",
        path.display()
    );
    let mut out = std::io::stdout();
    let _ = std::io::Write::write_all(&mut out, notice.as_bytes());
    let _ = std::io::Write::flush(&mut out);
    Ok(())
}

/// SIGINT and SIGTERM, caught from the moment they are installed.
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> StopSignals {
        use tokio::signal::unix::{SignalKind, signal};
        StopSignals {
            interrupt: signal(SignalKind::interrupt()).expect("SIGINT handler installs"),
            terminate: signal(SignalKind::terminate()).expect("SIGTERM handler installs"),
        }
    }

    async fn wait(mut self) {
        self.received().await;
    }

    async fn received(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(test)]
mod ports_tests {
    use crate::config::{Config, FileConfig, Overrides};
    use crate::domain::ClosableService;

    fn config(toml_text: &str) -> Config {
        let file: FileConfig = toml::from_str(toml_text).unwrap();
        Config::from_parts(file, Overrides::default()).unwrap()
    }

    #[test]
    fn closed_mode_closes_the_configured_sip_ports_and_the_panels_real_port() {
        let c = config(
            "[asterisk]\nsip_udp_ports = [5160]\nsip_tcp_ports = [5160, 5161]\n[panel]\nlisten = \"127.0.0.1:9000\"\n",
        );
        let ports = super::service_ports(&c);
        let (tcp, udp) = ports.closed(&[ClosableService::Sip, ClosableService::Panel]);
        assert_eq!(udp, vec![5160]);
        assert_eq!(tcp, vec![5160, 5161, 9000]);
    }

    #[test]
    fn closed_mode_also_closes_the_sip_ports_asterisks_configuration_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sip.conf"), "[general]\n#include sip_general_additional.conf\n")
            .unwrap();
        std::fs::write(dir.path().join("sip_general_additional.conf"), "bindport=5160\ntcpenable=yes\n")
            .unwrap();
        std::fs::write(
            dir.path().join("pjsip.transports.conf"),
            "[0.0.0.0-udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0:5060\n",
        )
        .unwrap();
        let c = config(&format!(
            "[asterisk]\nconfig_dir = \"{}\"\nsip_udp_ports = [5060]\nsip_tcp_ports = []\n",
            dir.path().display()
        ));
        let (tcp, udp) = super::service_ports(&c).closed(&[ClosableService::Sip]);
        assert_eq!(udp, vec![5060, 5160]);
        assert_eq!(tcp, vec![5160]);
    }

    #[test]
    fn closed_mode_closes_the_manager_port_sipwarden_is_told_to_use() {
        let c = config("[ami]\naddress = \"127.0.0.1:15038\"\nsecret = \"s\"\n");
        assert_eq!(super::service_ports(&c).closed(&[ClosableService::Ami]).0, vec![15038]);
        assert_eq!(super::service_ports(&config("")).closed(&[ClosableService::Ami]).0, vec![5038]);
    }

    #[test]
    fn the_default_panel_port_is_not_asterisks_http_port() {
        let c = config("");
        let (tcp, _) = super::service_ports(&c).closed(&[ClosableService::Panel]);
        assert_eq!(tcp, vec![8575]);
        assert!(!tcp.contains(&8088), "FreePBX's Asterisk HTTP server listens on 8088");
    }
}
