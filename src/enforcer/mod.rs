//! Converges the kernel to the database. The database is the truth: active bans
//! (while protection is on) minus trusted networks. `reconcile_once` compares a full
//! listing and repairs every difference; `sync_changes` applies just the bans
//! created or released since the last pass, for speed; `run` loops around both.

mod countries;
pub mod drops;
pub mod snapshot;

pub use countries::resolve as resolve_countries;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::domain::{TrustedNetworks, UnixMs};
use crate::firewall::{Access, Firewall, FirewallError, KernelBan, ServicePorts, render, state};
use crate::ingest::spool::Spool;
use crate::store::{self, Store};

pub const HEALTH_COMPONENT: &str = "firewall";

#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error("firewall task failed: {0}")]
    Task(String),
    /// nft refused the country table a moment ago; not tried again before its delay.
    #[error("{0} (tried again later)")]
    CountriesRefused(String),
    #[error(
        "the sipwarden rules in the firewall belong to the sipwarden of {0}, not to this one ({1}): \
         left untouched; if that sipwarden is gone, remove them with `nft delete table inet sipwarden`"
    )]
    ForeignTable(String, String),
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub enforced: usize,
    pub repairs: Vec<String>,
    /// The country table could not be put in the kernel (the bans were).
    pub countries_error: Option<String>,
}

/// Where `sync_changes` resumes.
#[derive(Debug, Default, Clone, Copy)]
struct Watermark {
    last_ban_id: i64,
    /// The last entry of `changes` applied (releases, access edits); by id, as every
    /// node of a shared store numbers them alike whatever its clock says.
    last_change_id: i64,
    /// A full pass has run (the first build of the table is routine, not a repair).
    built: bool,
}

/// Changes read per fast pass; more at once and a full pass is cheaper.
const CHANGES_PER_PASS: i64 = 1000;

pub struct Enforcer {
    store: Store,
    firewall: Arc<dyn Firewall>,
    clock: Arc<dyn Clock>,
    trusted: TrustedNetworks,
    protection_default: bool,
    poke: Arc<Notify>,
    watermark: Mutex<Watermark>,
    ports: ServicePorts,
    /// The latest repair of something changed behind sipwarden's back, for the panel.
    last_repair: std::sync::Mutex<Option<String>>,
    /// The database the firewall table is stamped with (`Store::location`).
    owner: String,
    /// Set while the table belongs to another database: nothing is written then.
    foreign: std::sync::Mutex<Option<String>>,
    /// Bans decided from this node's logs while the shared store is away.
    spool: Option<Arc<Spool>>,
    /// Local bans went to the kernel: once the store has judged their records, a full
    /// pass puts the kernel to the store's decisions.
    local_sent: std::sync::atomic::AtomicBool,
    /// The trusted networks of the last pass, for the local bans (the store may be away).
    last_trusted: std::sync::Mutex<TrustedNetworks>,
    /// The country database the country rules are resolved with.
    geo: crate::geo::Geo,
    countries: std::sync::Mutex<countries::Resolved>,
    /// On a shared store: the bans as last enforced, in a file (see `snapshot`).
    snapshot: Option<snapshot::Keeper>,
    /// What the country rules dropped (the panel reads it too).
    drops: Arc<drops::CountryDrops>,
}

/// Networks the kernel accepts before any ban: the configured ones and loopback.
fn kernel_trusted(trusted: &TrustedNetworks) -> Vec<IpNet> {
    let mut nets: Vec<IpNet> = trusted.networks().to_vec();
    for always in ["127.0.0.0/8", "::1/128"] {
        nets.push(always.parse().expect("loopback network"));
    }
    IpNet::aggregate(&nets)
}

/// Whether the kernel should hold a ban of `net`: a trusted address never is (a
/// trusted network inside a banned prefix is accepted before any ban is looked at).
fn enforceable(net: IpNet, trusted: &TrustedNetworks) -> bool {
    net.prefix_len() < net.max_prefix_len() || !trusted.contains(net.addr())
}

/// Seconds left, rounded up so the kernel never frees an address early.
fn remaining_secs(until: UnixMs, now: UnixMs) -> u32 {
    (((until - now).max(1) + 999) / 1000).min(i64::from(u32::MAX)) as u32
}

impl Enforcer {
    pub fn new(
        store: Store,
        firewall: Arc<dyn Firewall>,
        clock: Arc<dyn Clock>,
        trusted: TrustedNetworks,
        protection_default: bool,
        poke: Arc<Notify>,
    ) -> Self {
        Enforcer {
            drops: Arc::new(drops::CountryDrops::new(firewall.clone(), clock.clone())),
            firewall,
            clock,
            protection_default,
            poke,
            watermark: Mutex::new(Watermark::default()),
            ports: ServicePorts::default(),
            last_repair: Default::default(),
            owner: store.location().to_string(),
            foreign: Default::default(),
            spool: None,
            local_sent: Default::default(),
            last_trusted: std::sync::Mutex::new(trusted.clone()),
            geo: crate::geo::Geo::none(),
            countries: Default::default(),
            snapshot: None,
            trusted,
            store,
        }
    }

    /// Resolves the country rules with `geo` (without one they are not enforced).
    pub fn with_geo(mut self, geo: crate::geo::Geo) -> Self {
        self.geo = geo;
        self
    }

    /// Enforces the bans `spool` decides while the shared store is away.
    pub fn with_spool(mut self, spool: Arc<Spool>) -> Self {
        self.spool = Some(spool);
        self
    }

    /// Keeps the bans as last enforced in the file at `path` (see `snapshot`).
    pub fn with_snapshot(mut self, path: std::path::PathBuf) -> Self {
        self.snapshot = Some(snapshot::Keeper::new(path));
        self
    }

    /// Gives the kernel the bans decided locally since the last call; needs no store.
    pub async fn enforce_local(&self) -> Result<usize, EnforceError> {
        let Some(spool) = &self.spool else { return Ok(0) };
        let bans = spool.take_unsent();
        if bans.is_empty() || self.foreign.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return Ok(0);
        }
        let now = self.clock.now();
        let trusted = self.last_trusted.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let add: Vec<KernelBan> = bans
            .iter()
            .map(|b| KernelBan {
                net: IpNet::from(b.ip),
                timeout_secs: b.until.map(|u| remaining_secs(u, now)),
            })
            .filter(|b| enforceable(b.net, &trusted) && b.timeout_secs.is_none_or(|s| s > 0))
            .collect();
        let ruleset = render::add_bans(&add);
        let ruleset = nftables::schema::Nftables { objects: ruleset.objects.into_owned().into() };
        if let Err(e) = self.blocking(move |fw| fw.apply(&ruleset)).await {
            spool.unsent_again(bans);
            return Err(e);
        }
        self.local_sent.store(true, std::sync::atomic::Ordering::SeqCst);
        for b in &add {
            tracing::info!(ip = %render::target_text(&b.net), seconds = ?b.timeout_secs, "banned in the kernel (decided locally)");
        }
        Ok(add.len())
    }

    /// The ports closed mode closes (default: SIP 5060/5061, IAX2 4569, AMI 5038, panel 8575);
    /// `serve` passes the configured ones (`app::service_ports`).
    pub fn with_ports(mut self, ports: ServicePorts) -> Self {
        self.ports = ports;
        self
    }

    /// The ports closed mode closes.
    pub fn ports(&self) -> &ServicePorts {
        &self.ports
    }

    /// What the country rules dropped, for the panel.
    pub fn country_drops(&self) -> Arc<drops::CountryDrops> {
        self.drops.clone()
    }

    pub fn firewall_name(&self) -> String {
        self.firewall.name()
    }

    pub fn firewall_enforces(&self) -> bool {
        self.firewall.enforces()
    }

    /// Configured trusted networks plus those added from the panel.
    async fn trusted_now(&self, conn: &mut store::Conn) -> Result<TrustedNetworks, EnforceError> {
        Ok(self.trusted.with(store::networks::trusted_nets(conn).await?))
    }

    async fn desired(&self, now: UnixMs) -> Result<(TrustedNetworks, Vec<KernelBan>), EnforceError> {
        let mut conn = self.store.acquire().await?;
        let on = store::settings::protection(&mut conn, self.protection_default).await?;
        if !on {
            return Ok((self.trusted_now(&mut conn).await?, Vec::new()));
        }
        let trusted = self.trusted_now(&mut conn).await?;
        *self.last_trusted.lock().unwrap_or_else(|p| p.into_inner()) = trusted.clone();
        let mut seen = HashSet::new();
        let mut bans = Vec::new();
        // Decided here while the store was away, until the store has judged those records.
        let local = self.spool.as_ref().map(|s| s.bans_in_force(now)).unwrap_or_default();
        let local = local.into_iter().map(|b| (b.ip.to_string(), b.until));
        // Strongest first, so an address banned twice gets its longest ban.
        for (target, until) in store::bans::active_targets(&mut conn, now).await?.into_iter().chain(local) {
            let Some(net) = crate::domain::network::parse_ban_target(&target) else { continue };
            if !enforceable(net, &trusted) || !seen.insert(net) {
                continue;
            }
            bans.push(KernelBan { net, timeout_secs: until.map(|u| remaining_secs(u, now)) });
        }
        Ok((trusted, bans))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Firewall) -> Result<T, FirewallError> + Send + 'static,
    ) -> Result<T, EnforceError> {
        let fw = self.firewall.clone();
        tokio::task::spawn_blocking(move || f(fw.as_ref()))
            .await
            .map_err(|e| EnforceError::Task(e.to_string()))?
            .map_err(EnforceError::from)
    }

    /// Trusted, allowed and denied networks and closed ports, as the database says now.
    async fn access(&self, trusted: &TrustedNetworks, now: UnixMs) -> Result<Access, EnforceError> {
        let mut conn = self.store.acquire().await?;
        let trusted = kernel_trusted(trusted);
        let mut allowed = trusted.clone();
        allowed.extend(store::networks::nets(&mut conn, crate::domain::NetworkList::Extensions, now).await?);
        allowed.extend(store::networks::trunk_nets(&mut conn, now).await?.into_iter().map(|(_, n)| n));
        // An interval set refuses overlapping elements (an admin's login address inside
        // the office network, an extension network inside a trusted one): merged first.
        let allowed = IpNet::aggregate(&allowed);
        let deny =
            IpNet::aggregate(&store::networks::nets(&mut conn, crate::domain::NetworkList::Deny, now).await?);
        let (closed_tcp, closed_udp) = self.ports.closed(&store::settings::closed_services(&mut conn).await?);
        Ok(Access { trusted, allowed, deny, closed_tcp, closed_udp, owner: self.owner.clone() })
    }

    /// Lists the kernel, compares it with the database and repairs every difference.
    pub async fn reconcile_once(&self) -> Result<Report, EnforceError> {
        let mut result = self.reconcile_inner().await;
        // After the bans' pass, and outside its lock: a new country table can take a
        // second to load, and bans must not wait for it. Its failure is shown, but it
        // does not put the bans' loop into its retry delay.
        if let Ok(report) = &mut result {
            report.countries_error = self.reconcile_countries().await.err().map(|e| e.to_string());
        }
        self.record_health(&result).await;
        result
    }

    async fn reconcile_inner(&self) -> Result<Report, EnforceError> {
        let now = self.clock.now();
        let mut watermark = self.watermark.lock().await;
        let (last_ban_id, last_change_id) = {
            let mut conn = self.store.acquire().await?;
            (store::bans::last_id(&mut conn).await?, store::changes::last_id(&mut conn).await?)
        };
        let (trusted, desired) = self.desired(now).await?;
        let kernel = self.blocking(|fw| fw.list()).await?;
        let access = self.access(&trusted, now).await?;
        let plan = state::plan(&kernel, &desired, &access);
        let foreign = plan.foreign_owner.clone();
        *self.foreign.lock().unwrap_or_else(|p| p.into_inner()) = foreign.clone();
        if let Some(owner) = foreign {
            return Err(EnforceError::ForeignTable(owner, self.owner.clone()));
        }
        if !plan.is_empty() {
            let rulesets = if plan.replace {
                vec![render::full_ruleset(&access, &desired)]
            } else {
                render::ban_changes(&plan.add, &plan.remove, &desired)
            };
            self.blocking(move |fw| rulesets.iter().try_for_each(|r| fw.apply(r))).await?;
            // The very first build of the table is routine; later rebuilds are repairs.
            let routine = plan.replace && !kernel.table && !watermark.built;
            for r in &plan.repairs {
                if routine {
                    tracing::info!(repair = %r, "firewall set up");
                } else {
                    tracing::warn!(repair = %r, "firewall repaired");
                }
            }
            if !routine && !plan.repairs.is_empty() {
                let at = chrono::DateTime::from_timestamp_millis(now)
                    .map(|d| d.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default();
                let mut what = plan.repairs.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
                if plan.repairs.len() > 3 {
                    what.push_str(&format!(" and {} more", plan.repairs.len() - 3));
                }
                *self.last_repair.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{at}: {what}"));
            }
        }
        *watermark = Watermark { last_ban_id, last_change_id, built: true };
        if let Some(keeper) = &self.snapshot {
            keeper.replace(&access, &desired, now);
        }
        Ok(Report { enforced: desired.len(), repairs: plan.repairs, countries_error: None })
    }

    /// Applies bans created, and releases made, since the last pass, without listing
    /// the kernel: the fast path after a poke.
    pub async fn sync_changes(&self) -> Result<usize, EnforceError> {
        let result = self.sync_inner().await;
        if result.is_err() {
            self.record_health(
                &result.as_ref().map(|_| Report::default()).map_err(|e| EnforceError::Task(e.to_string())),
            )
            .await;
        }
        result
    }

    async fn sync_inner(&self) -> Result<usize, EnforceError> {
        if let Some(owner) = self.foreign.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(EnforceError::ForeignTable(owner, self.owner.clone()));
        }
        let now = self.clock.now();
        let mut watermark = self.watermark.lock().await;
        let mut conn = self.store.acquire().await?;
        let judged = self.spool.as_ref().is_none_or(|s| !s.holding());
        if judged && self.local_sent.swap(false, std::sync::atomic::Ordering::SeqCst) {
            // The store has judged what was decided locally: the kernel follows it.
            drop((conn, watermark));
            return Ok(self.reconcile_inner().await?.enforced);
        }
        let changes = store::changes::after(&mut conn, watermark.last_change_id, CHANGES_PER_PASS).await?;
        let rebuild = changes.iter().any(|c| c.kind != store::changes::kind::RELEASE);
        if rebuild || changes.len() as i64 == CHANGES_PER_PASS {
            // Networks or protection changed (here or on another node): a full pass.
            drop((conn, watermark));
            return Ok(self.reconcile_inner().await?.enforced);
        }
        let on = store::settings::protection(&mut conn, self.protection_default).await?;
        let trusted = self.trusted_now(&mut conn).await?;
        let created = store::bans::active_created_after(&mut conn, watermark.last_ban_id, now).await?;
        let mut released: Vec<String> = changes.iter().map(|c| c.subject.clone()).collect();
        released.sort_unstable();
        released.dedup();
        let next = Watermark {
            last_ban_id: created.iter().map(|b| b.id).max().unwrap_or(watermark.last_ban_id),
            last_change_id: changes.last().map_or(watermark.last_change_id, |c| c.id),
            built: watermark.built,
        };
        let mut add = Vec::new();
        if on {
            for b in &created {
                let Some(net) = crate::domain::network::parse_ban_target(&b.ip) else {
                    continue;
                };
                if enforceable(net, &trusted) {
                    add.push(KernelBan { net, timeout_secs: b.until_at.map(|u| remaining_secs(u, now)) });
                }
            }
        }
        let mut remove = Vec::new();
        for ip in released {
            // Still banned by another row: the full pass decides what the kernel keeps.
            if store::bans::active_for(&mut conn, &ip, now).await?.is_none() {
                if let Some(net) = crate::domain::network::parse_ban_target(&ip) {
                    remove.push(net);
                }
            }
        }
        drop(conn);
        let changes = add.len() + remove.len();
        if changes > 0 {
            // A release puts back what the sets it touches keep (see `ban_changes`).
            let desired = if remove.is_empty() { Vec::new() } else { self.desired(now).await?.1 };
            let rulesets = render::ban_changes(&add, &remove, &desired);
            self.blocking(move |fw| rulesets.iter().try_for_each(|r| fw.apply(r))).await?;
            if let Some(keeper) = &self.snapshot {
                keeper.change(&add, &remove, now);
            }
            for b in &add {
                tracing::info!(ip = %render::target_text(&b.net), seconds = ?b.timeout_secs, "banned in the kernel");
            }
            for ip in &remove {
                tracing::info!(%ip, "released in the kernel");
            }
        }
        *watermark = next;
        Ok(changes)
    }

    async fn record_health(&self, result: &Result<Report, EnforceError>) {
        let (ok, detail) = match result {
            Ok(r) => {
                let mut detail = format!("{}: {} bans enforced", self.firewall.name(), r.enforced);
                if let Some(repair) = self.last_repair.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                    detail.push_str(&format!("; last put right {repair}"));
                }
                if let Some(e) = &r.countries_error {
                    detail.push_str(&format!("; country rules NOT applied: {e}"));
                }
                (r.countries_error.is_none(), detail)
            }
            Err(e) => (false, format!("{}: {e}", self.firewall.name())),
        };
        if let Ok(mut conn) = self.store.acquire().await {
            let _ = store::health::set(&mut conn, HEALTH_COMPONENT, ok, &detail, self.clock.now()).await;
        }
    }

    /// Soonest moment a timed ban ends, to wake then.
    async fn next_expiry(&self) -> Option<UnixMs> {
        let mut conn = self.store.acquire().await.ok()?;
        store::bans::next_expiry(&mut conn, self.clock.now()).await.ok().flatten()
    }

    /// Reconciles at start, then on every poke (fast path), at the next expiry and
    /// every `period` (full pass). Failures are retried with a doubling delay.
    pub async fn run(self: Arc<Self>, period: Duration, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(500);
        let mut full_due = true;
        loop {
            if let Err(e) = self.enforce_local().await {
                tracing::error!(error = %e, "could not enforce the bans decided locally; will retry");
            }
            let result = if full_due {
                self.reconcile_once().await.map(|_| ())
            } else {
                self.sync_changes().await.map(|_| ())
            };
            let wait = match result {
                Ok(()) => {
                    backoff = Duration::from_millis(500);
                    let until_expiry = self
                        .next_expiry()
                        .await
                        .map(|at| Duration::from_millis((at - self.clock.now()).max(0) as u64 + 50));
                    until_expiry.map_or(period, |d| d.min(period))
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_in = ?backoff, "firewall update failed; will retry");
                    let retry_at = tokio::time::Instant::now() + backoff;
                    let store_was_away = self.store.unreachable().is_some();
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    full_due = true;
                    // Bans decided locally (the store away) go to the kernel meanwhile.
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep_until(retry_at) => break,
                            _ = self.poke.notified() => {
                                if let Err(e) = self.enforce_local().await {
                                    tracing::error!(error = %e, "could not enforce the bans decided locally");
                                }
                                // The store answers again (the log reader stored its kept
                                // records): no need to wait out the backoff.
                                if store_was_away && self.store.unreachable().is_none() {
                                    break;
                                }
                            }
                            _ = stop.cancelled() => return,
                        }
                    }
                    continue;
                }
            };
            tokio::select! {
                _ = self.poke.notified() => full_due = false,
                _ = tokio::time::sleep(wait) => full_due = true,
                _ = stop.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_trusted_networks_become_one_interval_each() {
        // An admin's login address inside loopback and inside the office network.
        let trusted = TrustedNetworks::new(
            ["10.0.0.0/8", "10.1.0.0/16", "127.0.0.1/32", "10.0.0.5/32"].map(|n| n.parse().unwrap()),
        );
        let nets: Vec<String> = kernel_trusted(&trusted).iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "127.0.0.0/8", "::1/128"]);
    }
}
