//! The real kernel: sipwarden's table in one network namespace, traffic from another
//! over a veth pair. Needs root, `nft` and `ip`; under `CI=true` a missing one fails
//! the test instead of skipping it.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use sipwarden::actions::{self, Actor};
use sipwarden::clock::{Clock, SystemClock};
use sipwarden::domain::TrustedNetworks;
use sipwarden::enforcer::Enforcer;
use sipwarden::firewall::NftBackend;
use sipwarden::store::Store;
use tokio::sync::Notify;

const ADMIN: Actor<'static> = Actor { name: "test", client_ip: None };

/// True when the test can run; false (skip) only outside CI.
pub(crate) fn can_run() -> bool {
    crate::common::runnable(
        "kernel test",
        &[
            ("root", nix::unistd::geteuid().is_root()),
            ("nft", crate::common::works("nft", &["--version"])),
            ("ip (iproute2)", crate::common::works("ip", &["-V"])),
        ],
    )
}

pub(crate) fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Two namespaces joined by a veth pair: `pbx` (10.77.0.1, fd77::1) runs sipwarden's
/// table, `outside` (10.77.0.2, fd77::2) sends. Both are deleted on drop.
pub(crate) struct Pair {
    pub(crate) pbx: String,
    pub(crate) outside: String,
}

impl Pair {
    pub(crate) fn new() -> Pair {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let base = format!("swt-{}-{n}", std::process::id());
        let pair = Pair { pbx: format!("{base}-p"), outside: format!("{base}-o") };
        run(&["ip", "netns", "add", &pair.pbx]);
        run(&["ip", "netns", "add", &pair.outside]);
        run(&[
            "ip",
            "-n",
            &pair.pbx,
            "link",
            "add",
            "va",
            "type",
            "veth",
            "peer",
            "name",
            "vb",
            "netns",
            &pair.outside,
        ]);
        for (ns, dev, v4, v6) in [
            (&pair.pbx, "va", "10.77.0.1/24", "fd77::1/64"),
            (&pair.outside, "vb", "10.77.0.2/24", "fd77::2/64"),
        ] {
            run(&["ip", "-n", ns, "addr", "add", v4, "dev", dev]);
            run(&["ip", "-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }

    pub(crate) fn nft_prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.pbx].iter().map(|s| s.to_string()).collect()
    }

    pub(crate) fn nft(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(["netns", "exec", &self.pbx, "nft"]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Packets counted by the drop rules.
    fn dropped(&self) -> u64 {
        let json: serde_json::Value =
            serde_json::from_str(&self.nft(&["-j", "list", "table", "inet", "sipwarden"]))
                .unwrap_or_default();
        let mut total = 0;
        for obj in json["nftables"].as_array().into_iter().flatten() {
            for e in obj["rule"]["expr"].as_array().into_iter().flatten() {
                total += e["counter"]["packets"].as_u64().unwrap_or(0);
            }
        }
        total
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.pbx, &self.outside] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Runs `f` on a thread that entered namespace `ns`; sockets made there stay there.
pub(crate) fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let fd = File::open(path).unwrap();
        setns(&fd, CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// SIP listeners on the PBX side: UDP and TCP 5060, IPv4 and IPv6.
struct Listeners {
    udp4: UdpSocket,
    udp6: UdpSocket,
    _tcp4: TcpListener,
    _tcp6: TcpListener,
}

fn listen(pair: &Pair) -> Listeners {
    in_netns(&pair.pbx, || Listeners {
        udp4: UdpSocket::bind("10.77.0.1:5060").unwrap(),
        udp6: UdpSocket::bind("[fd77::1]:5060").unwrap(),
        _tcp4: TcpListener::bind("10.77.0.1:5060").unwrap(),
        _tcp6: TcpListener::bind("[fd77::1]:5060").unwrap(),
    })
}

fn udp_arrives(pair: &Pair, rx: &UdpSocket, dst: &str) -> bool {
    let any = if dst.starts_with('[') { "[::]" } else { "0.0.0.0" };
    udp_from(pair, rx, any, dst)
}

fn tcp_arrives(pair: &Pair, dst: &str) -> bool {
    let dst: SocketAddr = dst.parse().unwrap();
    in_netns(&pair.outside, move || TcpStream::connect_timeout(&dst, Duration::from_millis(400)).is_ok())
}

fn all_arrive(pair: &Pair, l: &Listeners) -> [bool; 4] {
    [
        udp_arrives(pair, &l.udp4, "10.77.0.1:5060"),
        tcp_arrives(pair, "10.77.0.1:5060"),
        udp_arrives(pair, &l.udp6, "[fd77::1]:5060"),
        tcp_arrives(pair, "[fd77::1]:5060"),
    ]
}

async fn enforcer_for(pair: &Pair, dir: &tempfile::TempDir) -> (Store, Arc<Enforcer>) {
    let (store, enforcer) = enforcer_in(pair, dir).await;
    (store, Arc::new(enforcer))
}

/// An enforcer of the nft table in `pair`'s PBX namespace, on a database in `dir`.
pub(crate) async fn enforcer_in(pair: &Pair, dir: &tempfile::TempDir) -> (Store, Enforcer) {
    let store = Store::open(&dir.path().join("sipwarden.db")).await.unwrap();
    let enforcer = Enforcer::new(
        store.clone(),
        Arc::new(NftBackend::new(pair.nft_prefix())),
        Arc::new(SystemClock),
        TrustedNetworks::default(),
        true,
        Arc::new(Notify::new()),
    );
    (store, enforcer)
}

async fn ban(store: &Store, ip: &str, seconds: Option<i64>) {
    let now = SystemClock.now();
    actions::ban(
        store,
        &TrustedNetworks::default(),
        &ADMIN,
        ip.parse().unwrap(),
        seconds.map(|s| now + s * 1000),
        "t",
        now,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn banned_addresses_are_dropped_silently_and_released_ones_arrive_again() {
    if !can_run() {
        return;
    }
    let pair = Pair::new();
    let dir = tempfile::tempdir().unwrap();
    let (store, enforcer) = enforcer_for(&pair, &dir).await;
    let l = listen(&pair);
    enforcer.reconcile_once().await.unwrap();
    assert_eq!(all_arrive(&pair, &l), [true; 4], "before any ban");

    ban(&store, "10.77.0.2", Some(3600)).await;
    ban(&store, "fd77::2", None).await;
    enforcer.sync_changes().await.unwrap();
    let before = pair.dropped();
    assert_eq!(all_arrive(&pair, &l), [false; 4], "banned: UDP and TCP, IPv4 and IPv6 dropped");
    assert!(pair.dropped() >= before + 4, "the drop rules counted the packets");

    let now = SystemClock.now();
    actions::release(&store, &ADMIN, "10.77.0.2".parse().unwrap(), now).await.unwrap();
    actions::release(&store, &ADMIN, "fd77::2".parse().unwrap(), now).await.unwrap();
    enforcer.sync_changes().await.unwrap();
    assert_eq!(all_arrive(&pair, &l), [true; 4], "released");
}

/// A release empties the ban sets it touches and puts back what stays, in one
/// transaction: every other ban stays in force, with the time it had left.
#[tokio::test(flavor = "multi_thread")]
async fn a_release_leaves_every_other_ban_in_force_with_its_time() {
    if !can_run() {
        return;
    }
    use sipwarden::firewall::Firewall;
    use sipwarden::firewall::render::SetName;
    let pair = Pair::new();
    let dir = tempfile::tempdir().unwrap();
    let (store, enforcer) = enforcer_for(&pair, &dir).await;
    let l = listen(&pair);
    enforcer.reconcile_once().await.unwrap();
    for (ip, seconds) in
        [("10.77.0.2", Some(3600)), ("fd77::2", None), ("198.51.100.7", Some(3600)), ("198.51.100.8", None)]
    {
        ban(&store, ip, seconds).await;
    }
    enforcer.sync_changes().await.unwrap();
    let now = SystemClock.now();
    for ip in ["198.51.100.7", "198.51.100.8"] {
        actions::release(&store, &ADMIN, ip.parse().unwrap(), now).await.unwrap();
    }
    assert_eq!(enforcer.sync_changes().await.unwrap(), 2);
    assert_eq!(all_arrive(&pair, &l), [false; 4], "the addresses still banned are still dropped");
    let kernel = NftBackend::new(pair.nft_prefix()).list().unwrap();
    let (set, left) = kernel.ban_of("10.77.0.2".parse().unwrap()).unwrap();
    assert_eq!(set, SetName::Ban4);
    assert!(left.is_some_and(|s| (3500..=3600).contains(&s)), "{left:?} of the hour left");
    assert_eq!(kernel.ban_of("fd77::2".parse().unwrap()), Some((SetName::Forever6, None)));
    assert_eq!(kernel.bans.len(), 2, "{:?}", kernel.bans);
    assert!(enforcer.reconcile_once().await.unwrap().repairs.is_empty(), "nothing left to put right");
}

/// A second sipwarden with another database (the CLI run from another directory, a
/// test install) finds the table stamped with the first one's database: it changes
/// nothing, says whose it is and how to remove it, and the bans keep dropping.
#[tokio::test(flavor = "multi_thread")]
async fn a_sipwarden_with_another_database_leaves_the_firewall_alone_and_says_whose_it_is() {
    if !can_run() {
        return;
    }
    let pair = Pair::new();
    let (dir, other_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (store, enforcer) = enforcer_for(&pair, &dir).await;
    let l = listen(&pair);
    enforcer.reconcile_once().await.unwrap();
    ban(&store, "10.77.0.2", None).await;
    ban(&store, "fd77::2", None).await;
    enforcer.sync_changes().await.unwrap();
    assert_eq!(all_arrive(&pair, &l), [false; 4], "banned");

    let (other_store, other) = enforcer_for(&pair, &other_dir).await;
    let err = other.reconcile_once().await.unwrap_err().to_string();
    assert!(err.contains(&format!("belong to the sipwarden of {}", store.location())), "{err}");
    assert!(err.contains("nft delete table inet sipwarden"), "{err}");
    ban(&other_store, "10.77.0.9", None).await;
    assert!(other.sync_changes().await.is_err(), "nothing is added to another's sets");
    assert_eq!(all_arrive(&pair, &l), [false; 4], "the first one's bans stay in force");
    let mut conn = other_store.acquire().await.unwrap();
    let health = sipwarden::store::health::all(&mut conn).await.unwrap();
    let firewall = health.iter().find(|h| h.component == sipwarden::enforcer::HEALTH_COMPONENT).unwrap();
    assert!(!firewall.ok && firewall.detail.contains("left untouched"), "{}", firewall.detail);
    // The owner goes on as before.
    assert_eq!(enforcer.reconcile_once().await.unwrap().repairs, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_banned_ipv6_prefix_drops_every_address_in_it_and_its_release_lets_them_in() {
    if !can_run() {
        return;
    }
    let pair = Pair::new();
    let dir = tempfile::tempdir().unwrap();
    let (store, enforcer) = enforcer_for(&pair, &dir).await;
    let l = listen(&pair);
    enforcer.reconcile_once().await.unwrap();
    // A member ban and the prefix ban over it: two sets, no overlapping intervals.
    ban(&store, "fd77::99", Some(3600)).await;
    {
        let now = SystemClock.now();
        let mut conn = store.acquire().await.unwrap();
        let prefix = sipwarden::store::bans::NewBan {
            ip: "fd77::/64",
            reason: "3 addresses of fd77::/64 banned within 1d",
            rung: 1,
            created_at: now,
            until_at: Some(now + 3_600_000),
        };
        sipwarden::store::bans::insert(&mut conn, &prefix).await.unwrap();
    }
    enforcer.sync_changes().await.unwrap();
    assert_eq!(all_arrive(&pair, &l), [true, true, false, false], "fd77::2 is inside the prefix");
    // The listing reads the prefix back: a full pass finds nothing to repair.
    let report = enforcer.reconcile_once().await.unwrap();
    assert!(report.repairs.is_empty(), "{:?}", report.repairs);
    let now = SystemClock.now();
    actions::release_target(&store, &ADMIN, "fd77::/64", now).await.unwrap();
    enforcer.sync_changes().await.unwrap();
    assert_eq!(all_arrive(&pair, &l), [true; 4], "prefix released");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_second_ban_expires_in_the_kernel_on_its_own() {
    if !can_run() {
        return;
    }
    let pair = Pair::new();
    let dir = tempfile::tempdir().unwrap();
    let (store, enforcer) = enforcer_for(&pair, &dir).await;
    let l = listen(&pair);
    ban(&store, "10.77.0.2", Some(1)).await;
    enforcer.reconcile_once().await.unwrap();
    assert!(!udp_arrives(&pair, &l.udp4, "10.77.0.1:5060"));
    // No sipwarden process acts from here on: the kernel expires the element.
    drop(enforcer);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(udp_arrives(&pair, &l.udp4, "10.77.0.1:5060"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flushed_ruleset_a_deleted_table_or_an_emptied_set_is_repaired_and_shown() {
    if !can_run() {
        return;
    }
    let pair = Pair::new();
    let dir = tempfile::tempdir().unwrap();
    let (store, enforcer) = enforcer_for(&pair, &dir).await;
    let l = listen(&pair);
    ban(&store, "10.77.0.2", Some(3600)).await;
    ban(&store, "fd77::2", Some(3600)).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = stop.clone();
    let task = tokio::spawn(enforcer.clone().run(Duration::from_millis(500), stopped));
    let deadline = Instant::now() + Duration::from_secs(5);
    while udp_arrives(&pair, &l.udp4, "10.77.0.1:5060") {
        assert!(Instant::now() < deadline, "ban never enforced");
    }
    let sabotage: [&[&str]; 3] = [
        &["flush", "ruleset"],
        &["delete", "table", "inet", "sipwarden"],
        &["flush", "set", "inet", "sipwarden", "ban4"],
    ];
    for args in sabotage {
        pair.nft(args);
        assert!(udp_arrives(&pair, &l.udp4, "10.77.0.1:5060"), "{args:?} really opened the door");
        let done = Instant::now();
        while udp_arrives(&pair, &l.udp4, "10.77.0.1:5060") {
            assert!(done.elapsed() < Duration::from_secs(3), "{args:?}: not repaired within the period");
        }
        assert!(!udp_arrives(&pair, &l.udp6, "[fd77::1]:5060"), "{args:?}: IPv6 kept or repaired too");
        // The panel's firewall line says what was repaired.
        let mut conn = store.acquire().await.unwrap();
        let health = sipwarden::store::health::all(&mut conn).await.unwrap();
        let firewall = health.iter().find(|h| h.component == sipwarden::enforcer::HEALTH_COMPONENT).unwrap();
        assert!(firewall.ok && firewall.detail.contains("last put right"), "{args:?}: {}", firewall.detail);
    }
    stop.cancel();
    task.await.unwrap();
}

pub(crate) fn udp_from(pair: &Pair, rx: &UdpSocket, from: &str, dst: &str) -> bool {
    let dst: SocketAddr = dst.parse().unwrap();
    let from = from.to_string();
    let payload = format!("REGISTER sip:x SIP/2.0 {}", NEXT.fetch_add(1, Ordering::SeqCst));
    let sent = payload.clone();
    in_netns(&pair.outside, move || {
        UdpSocket::bind(format!("{from}:0")).unwrap().send_to(sent.as_bytes(), dst).unwrap();
    });
    rx.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut buf = [0u8; 256];
    while let Ok((n, _)) = rx.recv_from(&mut buf) {
        if &buf[..n] == payload.as_bytes() {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_mode_admits_sip_only_from_extension_and_trunk_networks_and_always_deny_drops_everything() {
    if !can_run() {
        return;
    }
    let pair = Pair::new();
    for a in ["10.77.0.3/24", "10.77.0.4/24", "10.77.0.5/24"] {
        run(&["ip", "-n", &pair.outside, "addr", "add", a, "dev", "vb"]);
    }
    let dir = tempfile::tempdir().unwrap();
    let (store, enforcer) = enforcer_for(&pair, &dir).await;
    let l = listen(&pair);
    let other = in_netns(&pair.pbx, || UdpSocket::bind("10.77.0.1:9999").unwrap());
    let now = SystemClock.now();
    let mut conn = store.acquire().await.unwrap();
    use sipwarden::store::{networks, settings};
    networks::add(
        &mut conn,
        sipwarden::domain::NetworkList::Extensions,
        "10.77.0.3/32",
        "office phones",
        "test",
        now,
    )
    .await
    .unwrap();
    networks::add(&mut conn, sipwarden::domain::NetworkList::Trunk, "10.77.0.4/32", "provider", "test", now)
        .await
        .unwrap();
    settings::set_closed_services(&mut conn, &[sipwarden::domain::ClosableService::Sip]).await.unwrap();
    enforcer.reconcile_once().await.unwrap();
    assert!(!udp_from(&pair, &l.udp4, "10.77.0.2", "10.77.0.1:5060"), "unlisted address: SIP dropped");
    assert!(udp_from(&pair, &l.udp4, "10.77.0.3", "10.77.0.1:5060"), "extension network: SIP accepted");
    assert!(udp_from(&pair, &l.udp4, "10.77.0.4", "10.77.0.1:5060"), "trunk provider: SIP accepted");
    assert!(udp_from(&pair, &other, "10.77.0.2", "10.77.0.1:9999"), "other ports stay open");

    networks::add(&mut conn, sipwarden::domain::NetworkList::Deny, "10.77.0.5/32", "known bad", "test", now)
        .await
        .unwrap();
    settings::set_closed_services(&mut conn, &[]).await.unwrap();
    enforcer.reconcile_once().await.unwrap();
    assert!(udp_from(&pair, &l.udp4, "10.77.0.2", "10.77.0.1:5060"), "open mode again");
    assert!(!udp_from(&pair, &other, "10.77.0.5", "10.77.0.1:9999"), "always deny: every port dropped");
}
