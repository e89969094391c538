//! Countries of addresses, from an offline database the admin installs and updates:
//! Debian's `tor-geoipdb` files (`/usr/share/tor/geoip` and `geoip6`, IPFire Location
//! data) or a MaxMind-format `.mmdb` (DB-IP Lite Country, GeoLite2 Country). Nothing
//! is fetched; without a database every country is unknown ("—"). The files are read
//! again when they change (a package update, a monthly download).

mod mmdb;
pub mod rules;
mod table;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

pub use table::{Ranges, Table};

pub use crate::domain::Country;

#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    #[error("cannot read the country database {0}: {1}")]
    Read(String, std::io::Error),
    #[error(
        "{0} holds no country ranges (expected Tor's geoip format, `start,end,CC` lines, or a MaxMind-format .mmdb)"
    )]
    Empty(String),
    #[error("cannot read the MaxMind-format database {0}: {1}")]
    Mmdb(String, maxminddb::MaxMindDbError),
}

/// What a database file is and when it last changed, to notice an update.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<Option<(SystemTime, u64)>>);

/// The IPv6 file beside an IPv4 `geoip` file: `geoip6`.
fn v6_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("6");
    PathBuf::from(name)
}

fn stamp(paths: &[PathBuf]) -> Stamp {
    Stamp(
        paths
            .iter()
            .map(|p| {
                std::fs::metadata(p).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
            })
            .collect(),
    )
}

/// Reads the MaxMind-format database at `path`, or Tor's `geoip` file there and its
/// `geoip6` beside it (when present).
pub fn load(path: &Path) -> Result<Table, GeoError> {
    let bytes = std::fs::read(path).map_err(|e| GeoError::Read(path.display().to_string(), e))?;
    if mmdb::is_mmdb(&bytes) || path.extension().is_some_and(|e| e == "mmdb") {
        let table = mmdb::read(bytes).map_err(|e| GeoError::Mmdb(path.display().to_string(), e))?;
        if table.v4.is_empty() && table.v6.is_empty() {
            return Err(GeoError::Empty(path.display().to_string()));
        }
        return Ok(table);
    }
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| GeoError::Read(p.display().to_string(), e));
    let v4 = String::from_utf8(bytes).map_err(|e| {
        GeoError::Read(path.display().to_string(), std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    })?;
    let v6_file = v6_path(path);
    let v6 = if v6_file.exists() { read(&v6_file)? } else { String::new() };
    let table = Table::parse(&v4, &v6);
    // A file cut short or replaced by something else is refused, not half used.
    if table.v4.is_empty() {
        return Err(GeoError::Empty(path.display().to_string()));
    }
    if !v6.is_empty() && table.v6.is_empty() {
        return Err(GeoError::Empty(v6_file.display().to_string()));
    }
    Ok(table)
}

/// The database in use, shared by everything that shows or judges countries, and
/// replaced whole when its files change.
#[derive(Clone, Default)]
pub struct Geo {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    path: Option<PathBuf>,
    table: RwLock<Option<Arc<Table>>>,
    stamp: std::sync::Mutex<Option<Stamp>>,
}

impl Geo {
    /// No database: every country unknown.
    pub fn none() -> Geo {
        Geo::default()
    }

    /// The database at `path`, read now.
    pub fn open(path: &Path) -> Result<Geo, GeoError> {
        let geo = Geo::at(path);
        geo.reload_if_changed()?;
        Ok(geo)
    }

    /// The database at `path`, not read yet (see [`Geo::reload_if_changed`]).
    pub fn at(path: &Path) -> Geo {
        Geo { inner: Arc::new(Inner { path: Some(path.to_owned()), ..Inner::default() }) }
    }

    /// Until `stop`: reads the files again whenever they change (checked every `every`).
    pub async fn follow(self, every: std::time::Duration, stop: tokio_util::sync::CancellationToken) {
        let mut last_error = None;
        loop {
            // Reading and sorting the files takes a while: off the async workers.
            let geo = self.clone();
            let result = tokio::task::spawn_blocking(move || geo.reload_if_changed()).await;
            match result.unwrap_or(Ok(false)) {
                Ok(_) => last_error = None,
                Err(e) => {
                    let text = e.to_string();
                    if last_error.as_ref() != Some(&text) {
                        tracing::warn!(error = %text, "country database not (re)loaded; countries show as —");
                    }
                    last_error = Some(text);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// A database file is configured (loaded or not).
    pub fn is_configured(&self) -> bool {
        self.inner.path.is_some()
    }

    pub fn is_loaded(&self) -> bool {
        self.current().is_some()
    }

    /// The database in use; the same `Arc` until the files change.
    pub fn table(&self) -> Option<Arc<Table>> {
        self.current()
    }

    fn current(&self) -> Option<Arc<Table>> {
        self.inner.table.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn country(&self, ip: IpAddr) -> Option<Country> {
        self.current()?.lookup(ip)
    }

    /// The country of an address given as text, as the store keeps addresses.
    pub fn country_of(&self, ip: &str) -> Option<Country> {
        self.country(ip.parse().ok()?)
    }

    /// [`Geo::country_of`] for display: `—` when unknown.
    pub fn shown(&self, ip: &str) -> String {
        self.country_of(ip).map_or_else(|| "—".into(), |c| c.to_string())
    }

    /// Reads the files again when they changed since the last read; `Ok(true)` when it
    /// did. A file that cannot be read leaves the database in use as it was.
    pub fn reload_if_changed(&self) -> Result<bool, GeoError> {
        let Some(path) = &self.inner.path else { return Ok(false) };
        let now = stamp(&[path.clone(), v6_path(path)]);
        if self.inner.stamp.lock().unwrap_or_else(|p| p.into_inner()).as_ref() == Some(&now) {
            return Ok(false);
        }
        let table = load(path)?;
        tracing::info!(
            path = %path.display(),
            ipv4_ranges = table.v4.len(),
            ipv6_ranges = table.v6.len(),
            unreadable_lines = table.unreadable,
            "country database loaded"
        );
        *self.inner.table.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(table));
        *self.inner.stamp.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
        Ok(true)
    }
}
