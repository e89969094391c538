//! The enforcer converging a firewall backend to the database: new bans, releases,
//! drift, the protection switch in both directions, and a failing `nft`.

use std::sync::Arc;

use sipwarden::actions::{self, Actor};
use sipwarden::clock::{Clock, ManualClock};
use sipwarden::domain::{HOUR_MS, TrustedNetworks};
use sipwarden::enforcer::Enforcer;
use sipwarden::firewall::render::SetName;
use sipwarden::firewall::{FirewallError, RecordingBackend};
use sipwarden::store::{self, Store};
use tokio::sync::Notify;

use crate::common::NOW;

const ADMIN: Actor<'static> = Actor { name: "test", client_ip: Some("192.0.2.1") };

struct Rig {
    _dir: tempfile::TempDir,
    store: Store,
    clock: ManualClock,
    fw: Arc<RecordingBackend>,
    enforcer: Enforcer,
    trusted: TrustedNetworks,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::backends::store_in(dir.path()).await;
    let clock = ManualClock::new(NOW);
    let fw = Arc::new(RecordingBackend::new("recording"));
    let trusted = TrustedNetworks::new(["192.168.1.0/24".parse().unwrap()]);
    let enforcer = Enforcer::new(
        store.clone(),
        fw.clone(),
        Arc::new(clock.clone()),
        trusted.clone(),
        true,
        Arc::new(Notify::new()),
    );
    Rig { _dir: dir, store, clock, fw, enforcer, trusted }
}

impl Rig {
    async fn ban(&self, ip: &str, until: Option<i64>) {
        actions::ban(
            &self.store,
            &self.trusted,
            &ADMIN,
            ip.parse().unwrap(),
            until,
            "test",
            self.clock.now(),
        )
        .await
        .unwrap();
    }

    fn kernel_has(&self, ip: &str) -> Option<(SetName, Option<u32>)> {
        self.fw.state().ban_of(ip.parse().unwrap())
    }

    async fn health(&self) -> (bool, String) {
        let mut conn = self.store.acquire().await.unwrap();
        let h = store::health::all(&mut conn).await.unwrap();
        let f = h.iter().find(|h| h.component == "firewall").expect("firewall health recorded");
        (f.ok, f.detail.clone())
    }
}

#[tokio::test]
async fn bans_reach_the_kernel_with_their_remaining_time_and_releases_leave_it() {
    let r = rig().await;
    r.enforcer.reconcile_once().await.unwrap();
    assert!(r.fw.state().structure_ok());
    r.ban("203.0.113.7", Some(NOW + HOUR_MS)).await;
    r.ban("2001:db8::66", None).await;
    assert_eq!(r.enforcer.sync_changes().await.unwrap(), 2);
    assert_eq!(r.kernel_has("203.0.113.7"), Some((SetName::Ban4, Some(3600))));
    assert_eq!(r.kernel_has("2001:db8::66"), Some((SetName::Forever6, None)));
    actions::release(&r.store, &ADMIN, "203.0.113.7".parse().unwrap(), NOW + 1000).await.unwrap();
    r.clock.set(NOW + 1000);
    r.enforcer.sync_changes().await.unwrap();
    assert_eq!(r.kernel_has("203.0.113.7"), None);
    assert!(r.kernel_has("2001:db8::66").is_some());
    // Releasing twice, or an address never in the kernel, is not an error.
    r.enforcer.reconcile_once().await.unwrap();
}

#[tokio::test]
async fn drift_is_detected_repaired_and_reported() {
    let r = rig().await;
    r.ban("203.0.113.7", Some(NOW + HOUR_MS)).await;
    r.enforcer.reconcile_once().await.unwrap();
    r.fw.flush();
    let report = r.enforcer.reconcile_once().await.unwrap();
    assert!(report.repairs.iter().any(|m| m.contains("rules were missing")), "{report:?}");
    assert_eq!(r.kernel_has("203.0.113.7"), Some((SetName::Ban4, Some(3600))));
    // An element removed by hand comes back; one added by hand goes.
    let mut extra = sipwarden::firewall::render::add_bans(&[sipwarden::firewall::KernelBan::address(
        "198.51.100.1".parse().unwrap(),
        None,
    )])
    .objects
    .into_owned();
    extra.extend(
        sipwarden::firewall::render::remove_bans(&["203.0.113.7/32".parse().unwrap()]).objects.into_owned(),
    );
    use sipwarden::firewall::Firewall;
    r.fw.apply(&nftables::schema::Nftables { objects: extra.into() }).unwrap();
    let report = r.enforcer.reconcile_once().await.unwrap();
    assert_eq!(report.repairs.len(), 2, "{report:?}");
    assert!(r.kernel_has("203.0.113.7").is_some());
    assert!(r.kernel_has("198.51.100.1").is_none());
}

#[tokio::test]
async fn protection_off_empties_the_sets_and_on_enforces_what_was_decided_meanwhile() {
    let r = rig().await;
    r.ban("203.0.113.7", Some(NOW + HOUR_MS)).await;
    r.enforcer.reconcile_once().await.unwrap();
    actions::set_protection(&r.store, &ADMIN, false, NOW).await.unwrap();
    r.enforcer.reconcile_once().await.unwrap();
    assert!(r.fw.state().bans.is_empty(), "monitor mode holds no ban");
    assert!(r.fw.state().structure_ok());
    // Decided while off: recorded, not enforced.
    r.ban("198.51.100.2", None).await;
    r.enforcer.sync_changes().await.unwrap();
    assert!(r.fw.state().bans.is_empty());
    actions::set_protection(&r.store, &ADMIN, true, NOW).await.unwrap();
    r.enforcer.reconcile_once().await.unwrap();
    assert!(r.kernel_has("203.0.113.7").is_some());
    assert!(r.kernel_has("198.51.100.2").is_some());
    let mut conn = r.store.acquire().await.unwrap();
    let audit = store::audit::recent(&mut conn, 10).await.unwrap();
    assert_eq!(audit.iter().filter(|a| a.action == "protection").count(), 2);
}

#[tokio::test]
async fn a_failing_nft_is_shown_retried_and_loses_nothing() {
    let r = rig().await;
    r.fw.set_failing(Some(FirewallError::Spawn {
        program: "nft".into(),
        message: "No such file or directory".into(),
    }));
    r.ban("203.0.113.7", Some(NOW + HOUR_MS)).await;
    assert!(r.enforcer.reconcile_once().await.is_err());
    let (ok, detail) = r.health().await;
    assert!(!ok);
    assert!(detail.contains("cannot run nft"), "{detail}");
    r.fw.set_failing(None);
    r.enforcer.reconcile_once().await.unwrap();
    assert!(r.kernel_has("203.0.113.7").is_some(), "the ban waited in the database");
    assert!(r.health().await.0);
}

#[tokio::test]
async fn an_escalated_ban_refreshes_the_kernel_timeout() {
    let r = rig().await;
    r.ban("203.0.113.7", Some(NOW + HOUR_MS)).await;
    r.enforcer.reconcile_once().await.unwrap();
    r.ban("203.0.113.7", Some(NOW + 24 * HOUR_MS)).await;
    r.enforcer.reconcile_once().await.unwrap();
    assert_eq!(r.kernel_has("203.0.113.7"), Some((SetName::Ban4, Some(24 * 3600))));
}

#[tokio::test]
async fn trusted_addresses_are_refused_and_never_reach_the_kernel() {
    let r = rig().await;
    let err =
        actions::ban(&r.store, &r.trusted, &ADMIN, "192.168.1.20".parse().unwrap(), None, "x", NOW).await;
    assert!(err.unwrap_err().to_string().contains("trusted"));
    r.enforcer.reconcile_once().await.unwrap();
    assert!(r.fw.state().bans.is_empty());
    assert!(r.fw.state().trusted.contains(&"192.168.1.0/24".parse().unwrap()));
}

#[tokio::test]
async fn the_loop_enforces_a_poked_ban_without_waiting_for_the_period() {
    let r = rig().await;
    let poke = Arc::new(Notify::new());
    let enforcer = Arc::new(Enforcer::new(
        r.store.clone(),
        r.fw.clone(),
        Arc::new(r.clock.clone()),
        r.trusted.clone(),
        true,
        poke.clone(),
    ));
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(enforcer.run(std::time::Duration::from_secs(3600), stopped));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    r.ban("203.0.113.9", None).await;
    poke.notify_one();
    let mut waited = 0;
    while r.kernel_has("203.0.113.9").is_none() && waited < 250 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += 1;
    }
    assert!(
        r.kernel_has("203.0.113.9").is_some(),
        "enforced soon after the poke, not after the hour-long period"
    );
    stop.cancel();
    task.await.unwrap();
}
