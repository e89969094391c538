//! The admin panel: one route table, one file per page, typed templates.

mod accounts;
mod alerts;
mod assets;
mod audit;
mod auth;
mod bans;
mod chart;
mod connections;
pub(crate) mod countries;
mod dashboard;
mod error;
mod incidents;
mod log;
pub(crate) mod networks;
mod offenders;
pub(crate) mod protecting;
mod registrations;
mod session_store;
mod settings;
mod snapshot;
mod store_away;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::csrf::CsrfLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{Expiry, SessionManagerLayer};

pub use auth::CurrentAdmin;
pub use error::WebError;

use crate::clock::Clock;
use crate::domain::TrustedNetworks;
use crate::policy::Ladder;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct WebState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// Trusted networks from the config file (the panel adds its own in the database).
    pub trusted: TrustedNetworks,
    pub ladder: Ladder,
    pub protection_default: bool,
    /// Wakes the enforcer after a change.
    pub poke: Arc<Notify>,
    pub firewall_name: String,
    /// The firewall backend reaches the kernel; `firewall_fallback`: why it does not
    /// although `nft` was asked for (not root, nftables missing).
    pub firewall_enforces: bool,
    pub firewall_fallback: Option<String>,
    /// How many Asterisk logs are configured.
    pub log_sources: usize,
    /// One-time token that allows creating the first admin.
    pub setup_token: Arc<Mutex<Option<String>>>,
    pub login_per_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    pub login_per_user: Arc<DefaultKeyedRateLimiter<String>>,
    /// Asterisk's configuration, when sipwarden may write ACLs into it.
    pub pbx: Option<crate::pbx::Pbx>,
    /// Told by the ingest loop when log records cannot be stored.
    pub ingest: crate::ingest::IngestHealth,
    /// Page data shared between requests for a moment.
    pub snapshots: Arc<snapshot::Snapshots>,
    /// The running Asterisk, told when an admin unlocks an extension.
    pub pbx_control: Option<Arc<dyn crate::pbx::control::Control>>,
    /// The manager interface link, when configured.
    pub manager: Option<crate::ami::AmiHealth>,
    /// Where alerts are queued, when `serve` sends them.
    pub alerts: Option<crate::alerts::Alerts>,
    /// The ports closed mode closes, shown beside each service.
    pub closed_ports: crate::firewall::ServicePorts,
    /// Where refused panel logins go to be counted like any service's failures.
    pub panel_failures: Option<tokio::sync::mpsc::Sender<crate::domain::LogEvent>>,
    /// Where log batches wait while a shared store is unreachable.
    pub spool: Option<Arc<crate::ingest::spool::Spool>>,
    /// Countries of addresses (none configured: every one "—").
    pub geo: crate::geo::Geo,
    /// What the country rules dropped, when the firewall is sipwarden's.
    pub country_drops: Option<Arc<crate::enforcer::drops::CountryDrops>>,
}

impl WebState {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        trusted: TrustedNetworks,
        ladder: Ladder,
        protection_default: bool,
        poke: Arc<Notify>,
        firewall_name: String,
    ) -> Self {
        let per = |n: u32| NonZeroU32::new(n).expect("non-zero");
        WebState {
            store,
            clock,
            trusted,
            ladder,
            protection_default,
            poke,
            firewall_name,
            firewall_enforces: true,
            firewall_fallback: None,
            log_sources: 1,
            setup_token: Arc::new(Mutex::new(None)),
            // A person mistyping gets several tries; a guesser gets ten a minute.
            login_per_ip: Arc::new(RateLimiter::keyed(Quota::per_minute(per(10)).allow_burst(per(5)))),
            login_per_user: Arc::new(RateLimiter::keyed(Quota::per_minute(per(20)).allow_burst(per(10)))),
            pbx: None,
            ingest: Default::default(),
            snapshots: Default::default(),
            pbx_control: None,
            manager: None,
            alerts: None,
            closed_ports: Default::default(),
            panel_failures: None,
            spool: None,
            geo: crate::geo::Geo::none(),
            country_drops: None,
        }
    }

    pub fn with_country_drops(mut self, drops: Arc<crate::enforcer::drops::CountryDrops>) -> Self {
        self.country_drops = Some(drops);
        self
    }

    pub fn with_geo(mut self, geo: crate::geo::Geo) -> Self {
        self.geo = geo;
        self
    }

    pub fn with_spool(mut self, spool: Option<Arc<crate::ingest::spool::Spool>>) -> Self {
        self.spool = spool;
        self
    }

    pub fn with_panel_failures(mut self, tx: tokio::sync::mpsc::Sender<crate::domain::LogEvent>) -> Self {
        self.panel_failures = Some(tx);
        self
    }

    pub fn with_closed_ports(mut self, ports: crate::firewall::ServicePorts) -> Self {
        self.closed_ports = ports;
        self
    }

    pub fn with_ingest_health(mut self, ingest: crate::ingest::IngestHealth) -> Self {
        self.ingest = ingest;
        self
    }

    /// What `serve` runs with: whether bans reach the kernel, why not when they
    /// should, and how many logs it follows.
    pub fn with_protection_facts(
        mut self,
        enforces: bool,
        fallback: Option<String>,
        log_sources: usize,
    ) -> Self {
        (self.firewall_enforces, self.firewall_fallback, self.log_sources) =
            (enforces, fallback, log_sources);
        self
    }

    pub fn with_pbx(mut self, pbx: Option<crate::pbx::Pbx>) -> Self {
        self.pbx = pbx;
        self
    }

    pub fn with_alerts(mut self, alerts: crate::alerts::Alerts) -> Self {
        self.alerts = Some(alerts);
        self
    }

    pub fn with_manager(mut self, manager: Option<crate::ami::AmiHealth>) -> Self {
        self.manager = manager;
        self
    }

    pub fn with_pbx_control(mut self, control: Arc<dyn crate::pbx::control::Control>) -> Self {
        self.pbx_control = Some(control);
        self
    }
}

#[derive(Debug, Clone)]
pub struct PanelOptions {
    pub listen: SocketAddr,
    /// Mark the session cookie `Secure` (the panel is reached over HTTPS, e.g. behind a proxy).
    pub secure_cookies: bool,
    pub session_idle: time::Duration,
}

/// A request that may change something (every change is a POST) makes the shared
/// page data out of date once it is done.
async fn snapshots_follow_changes(
    axum::extract::State(state): axum::extract::State<WebState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let changes = !matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    let response = next.run(request).await;
    if changes {
        state.snapshots.invalidate();
    }
    response
}

/// THE route table.
pub fn router(state: WebState, sessions: SessionManagerLayer<session_store::PanelSessions>) -> Router {
    let state_for_outage = state.clone();
    let csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
               connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";
    Router::new()
        .route("/", get(dashboard::show))
        .route("/dashboard/live", get(dashboard::live))
        .route("/protection", post(dashboard::switch_protection))
        .route("/setup", get(auth::setup_form).post(auth::setup))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/password", get(auth::password_form).post(auth::change_password))
        .route("/offenders", get(offenders::list))
        .route("/offenders/{ip}", get(offenders::explain))
        .route("/offenders/{ip}/release", post(offenders::release))
        .route("/offenders/{ip}/release-and-trust", post(offenders::release_and_trust))
        .route("/offenders/{ip}/ban", post(offenders::ban))
        .route("/bans", get(bans::list).post(bans::ban))
        .route("/bans/release", post(bans::release_many))
        .route("/bans/{id}/release", post(bans::release))
        .route("/bans/{id}/release-and-trust", post(bans::release_and_trust))
        .route("/incidents", get(incidents::list))
        .route("/logins", get(registrations::list))
        .route("/alerts", get(alerts::show).post(alerts::save))
        .route("/alerts/test", post(alerts::test))
        .route("/incidents/{id}/unlock", post(incidents::unlock))
        .route("/log", get(log::list))
        .route("/log.csv", get(log::export))
        .route("/settings", get(settings::show).post(settings::save_ladder))
        .route("/settings/trusted", post(settings::add_trusted))
        .route("/settings/trusted/{id}/delete", post(settings::remove_trusted))
        .route("/networks", get(networks::show).post(networks::add))
        .route("/networks/{id}/delete", post(networks::remove))
        .route("/countries", get(countries::show).post(countries::save))
        .route("/countries/preview", post(countries::preview))
        .route("/networks/closed", post(networks::set_closed))
        .route("/networks/keep", post(networks::keep))
        .route("/networks/revert", post(networks::revert_now))
        .route("/networks/targets", post(networks::set_targets))
        .route("/networks/preview", get(networks::preview))
        .route("/networks/apply", post(networks::apply))
        .route("/audit", get(audit::list))
        .route("/accounts", get(accounts::list).post(accounts::add))
        .route("/accounts/{id}/role", post(accounts::set_role))
        .route("/accounts/{id}/password", post(accounts::reset_password))
        .route("/accounts/{id}/remove", post(accounts::remove))
        .route("/healthz", get(dashboard::healthz))
        .route("/static/{*path}", get(assets::serve))
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), snapshots_follow_changes))
        .with_state(state)
        .layer(sessions)
        // Before the sessions, which live in the store.
        .layer(axum::middleware::from_fn_with_state(state_for_outage, store_away::page))
        .layer(CsrfLayer::new())
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// Session cookies: HttpOnly, SameSite=Strict, Secure when served over HTTPS, idle expiry.
pub async fn sessions(
    store: &Store,
    options: &PanelOptions,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> anyhow::Result<SessionManagerLayer<session_store::PanelSessions>> {
    let session_store = session_store::PanelSessions::for_store(store).await?;
    let cleaner = session_store.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = cleaner.delete_expired().await {
                tracing::warn!(error = %e, "could not delete expired panel sessions");
            }
        }
    });
    Ok(SessionManagerLayer::new(session_store)
        .with_name("sipwarden_session")
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_secure(options.secure_cookies)
        .with_expiry(Expiry::OnInactivity(options.session_idle)))
}

/// Serves the panel until `stop` is cancelled.
/// `sessions` comes from [`sessions`], prepared before the workers start writing.
pub async fn serve(
    state: WebState,
    sessions: SessionManagerLayer<session_store::PanelSessions>,
    listener: tokio::net::TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let app = router(state, sessions);
    // `tap_io` only to reach axum's client-address support for any listener.
    let listener = connections::LimitedListener::new(listener, connections::MAX_CONNECTIONS).tap_io(|_| ());
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    Ok(())
}

/// A stored time as the admin reads it: local time, to the second.
pub fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// The PBXes sharing the store, for a list's PBX filter and column; empty with one.
pub(crate) async fn node_names(conn: &mut crate::store::Conn) -> Result<Vec<String>, WebError> {
    let nodes: Vec<String> = crate::store::nodes::all(conn).await?.into_iter().map(|n| n.name).collect();
    Ok(if nodes.len() < 2 { Vec::new() } else { nodes })
}
