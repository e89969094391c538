use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sipwarden::asterisk::SourceKind;
use sipwarden::clock::ManualClock;
use sipwarden::domain::{TrustedNetworks, UnixMs};
use sipwarden::ingest::pipeline::Pipeline;
use sipwarden::ingest::{self, Follower, StartAt, cleanlog::CleanLog};
use sipwarden::policy::Ladder;
use sipwarden::store::{self, Store};
use tokio::sync::Notify;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// 2026-11-24 21:10:00 UTC, just after the corpus was recorded.
pub const NOW: UnixMs = 1_795_554_600_000;

/// A sipwarden data directory with a real database file and the pipeline around it.
pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub clock: ManualClock,
    pub pipeline: Pipeline,
    pub followers: Vec<Follower>,
}

impl TestApp {
    pub async fn new(trusted: TrustedNetworks, security_source_present: bool) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        Self::open(dir, trusted, security_source_present).await
    }

    pub async fn open(
        dir: tempfile::TempDir,
        trusted: TrustedNetworks,
        security_source_present: bool,
    ) -> TestApp {
        let store = crate::backends::store_in(dir.path()).await;
        let clock = ManualClock::new(NOW);
        let pipeline = Pipeline {
            store: store.clone(),
            ladder: Ladder::default(),
            trusted,
            clock: Arc::new(clock.clone()),
            security_source_present,
            protection_default: true,
            clean_log: Some(CleanLog::new(dir.path().join("failed-auth.log"))),
            bans_changed: Arc::new(Notify::new()),
            health: Default::default(),
            attempts: Default::default(),
            corroboration: Default::default(),
            prefix_rule: Default::default(),
            count_per_node: false,
            watch: None,
            spool: None,
        };
        TestApp { dir, store, clock, pipeline, followers: Vec::new() }
    }

    /// Closes the database and opens it again from the same directory, as a restart does.
    pub async fn restart(self) -> TestApp {
        let TestApp { dir, store, pipeline, followers, .. } = self;
        let specs: Vec<_> = followers.iter().map(|f| (f.path().to_owned(), f.kind())).collect();
        let (trusted, security) = (pipeline.trusted.clone(), pipeline.security_source_present);
        drop(pipeline);
        store.close().await;
        let mut app = TestApp::open(dir, trusted, security).await;
        for (path, kind) in specs {
            app.follow(&path, kind, StartAt::Beginning).await;
        }
        app
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub async fn follow(&mut self, path: &Path, kind: Option<SourceKind>, start_at: StartAt) {
        let f = ingest::follower_for(&self.store, path.to_owned(), kind, start_at).await.unwrap();
        self.followers.push(f);
    }

    pub async fn poll(&mut self) -> u64 {
        ingest::poll_all(&mut self.followers, &self.pipeline).await
    }

    pub async fn counts(&self) -> Vec<(String, i64)> {
        let mut conn = self.store.acquire().await.unwrap();
        store::failures::count_by_ip(&mut conn).await.unwrap()
    }

    pub async fn count_for(&self, ip: &str) -> i64 {
        self.counts().await.into_iter().find(|(i, _)| i == ip).map_or(0, |(_, n)| n)
    }

    pub async fn active_bans(&self) -> Vec<store::bans::BanRow> {
        let mut conn = self.store.acquire().await.unwrap();
        store::bans::active(&mut conn, self.clock_now()).await.unwrap()
    }

    pub fn clock_now(&self) -> UnixMs {
        use sipwarden::clock::Clock;
        self.clock.now()
    }
}

pub fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A chan_sip wrong-password line from `ip`, dated in the ISO format.
pub fn sip_failure(ip: &str, user: &str, second: u32) -> String {
    sip_failure_dated(ip, user, &format!("2026-11-24 21:05:{:02}", second % 60))
}

/// A chan_sip wrong-password line from `ip` with the envelope's date text `date`.
pub fn sip_failure_dated(ip: &str, user: &str, date: &str) -> String {
    format!(
        "[{date}] NOTICE[15985] chan_sip.c: Registration from '\"{user}\" <sip:{user}@10.0.0.1>' failed for '{ip}:5060' - Wrong password\n"
    )
}

/// The envelope's date text of this moment, as Asterisk writes it in local time.
pub fn now_date() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn noise(n: usize) -> String {
    (0..n)
        .map(|i| format!("[2026-11-24 21:05:00] VERBOSE[17019] pbx.c: Executing [s@from-internal:{i}] NoOp(\"x\", \"\") in new stack\n"))
        .collect()
}

/// Whether a program answers `args` successfully.
pub fn works(cmd: &str, args: &[&str]) -> bool {
    std::process::Command::new(cmd).args(args).output().is_ok_and(|o| o.status.success())
}

/// True when every need is met. Otherwise the test is skipped, except under `CI=true`,
/// where a missing need fails it: CI must run the kernel and browser tests.
pub fn runnable(what: &str, needs: &[(&'static str, bool)]) -> bool {
    let missing: Vec<&str> = needs.iter().filter(|(_, ok)| !ok).map(|(name, _)| *name).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} needs {missing:?} and CI=true forbids skipping it");
    }
    eprintln!("skipping {what}: needs {missing:?}");
    false
}
