//! Several PBXes, one ban list: `sipwarden serve` processes sharing one PostgreSQL
//! database, each running in its own network namespace with its own nft table, and
//! reaching PostgreSQL over a veth pair through a relay on the host side that the test
//! can cut (the database going away). Needs root, nft, ip and a PostgreSQL server;
//! under `CI=true` a missing one fails the test.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{append, runnable, works};
use crate::harness::{Running, Serve, eventually};

mod restart;

fn can_run() -> Option<String> {
    let url = crate::backends::postgres_url();
    runnable(
        "shared-store test",
        &[
            ("root", nix::unistd::geteuid().is_root()),
            ("nft", works("nft", &["--version"])),
            ("ip (iproute2)", works("ip", &["-V"])),
            ("a PostgreSQL server (SIPWARDEN_TEST_DATABASE_URL)", url.is_some()),
        ],
    )
    .then_some(url?)
}

/// How a node reaches the database server.
#[derive(Clone, Copy)]
enum Road {
    /// Through a relay on the host the test can cut.
    Relay,
    /// Straight to the server, on the host's end of the node's veth.
    Direct,
}

/// One PBX: a network namespace with a veth to the host, a relay there to PostgreSQL,
/// a data directory, a log, a running serve.
struct Node {
    ns: String,
    /// The namespace's end of the veth: the panel listens there.
    address: String,
    /// Its road to the database.
    relay: Relay,
    dir: tempfile::TempDir,
    log: PathBuf,
    serve: Option<Running>,
}

/// `ip ARGS`, which must succeed.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

impl Node {
    /// A PBX using database `database` (a URL of the PostgreSQL server on loopback),
    /// through a relay the test can cut.
    fn start(name: &str, database: &str) -> Node {
        Node::start_reaching(name, database, Road::Relay)
    }

    /// A PBX that reaches `database` as `road` says.
    fn start_reaching(name: &str, database: &str, road: Road) -> Node {
        // Tests run at once: each node's namespace, veth and subnet its own.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let pid = std::process::id();
        let ns = format!("swb-{pid}-{n}-{name}");
        let (outside, inside) = (format!("sw{pid}h{n}"), format!("sw{pid}n{n}"));
        let subnet = format!("10.{}.{n}", 100 + pid % 100);
        let (host, address) = (format!("{subnet}.1"), format!("{subnet}.2"));
        ip(&["netns", "add", &ns]);
        ip(&["link", "add", &outside, "type", "veth", "peer", "name", &inside, "netns", &ns]);
        ip(&["addr", "add", &format!("{host}/30"), "dev", &outside]);
        ip(&["link", "set", &outside, "up"]);
        ip(&["-n", &ns, "addr", "add", &format!("{address}/30"), "dev", &inside]);
        ip(&["-n", &ns, "link", "set", &inside, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        let relay = Relay::to(&host, database);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("messages");
        std::fs::write(&log, "").unwrap();
        let config = dir.path().join("sipwarden.toml");
        std::fs::write(
            &config,
            format!(
                "[firewall]\nbackend = \"nft\"\nreconcile_interval = \"30s\"\n\n\
                 [store]\nurl = \"{}\"\nnode = \"{name}\"\n",
                match road {
                    Road::Relay => relay.url(database),
                    Road::Direct => Relay::host_url(database, &host, None),
                }
            ),
        )
        .unwrap();
        let mut node = Node { ns, address, relay, dir, log, serve: None };
        node.serve = Some(node.serve_command().start());
        node
    }

    fn serve_command(&self) -> Serve {
        Serve::in_namespace(&self.ns, &self.address, &self.dir.path().join("data"))
            .arg("--config")
            .arg(self.dir.path().join("sipwarden.toml"))
            .log(format!("messages:{}", self.log.display()))
    }

    /// Where this PBX keeps log records while the store is away.
    fn spool(&self) -> PathBuf {
        self.dir.path().join("data/spool.jsonl")
    }

    /// Whether this PBX's kernel drops `ip` (it is in one of the ban sets).
    fn kernel_bans(&self, ip: &str) -> bool {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "nft", "list", "table", "inet", "sipwarden"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains(ip)
    }

    /// A wrong password for `user` from `ip`, logged now.
    fn failure(&self, ip: &str, user: &str) {
        let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string();
        append(&self.log, &crate::common::sip_failure_dated(ip, user, &now));
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_sipwarden"))
            .arg("--config")
            .arg(self.dir.path().join("sipwarden.toml"))
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.serve.take());
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

/// A database of the test's own on the server.
fn database(server: &str, name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("sw-shared-{name}"));
    tokio::runtime::Runtime::new().unwrap().block_on(crate::backends::fresh_database(server, &dir))
}

/// Waits until every node's kernel holds `ip` (or none does, `banned` false); how long.
fn on_every_kernel(nodes: &[&Node], ip: &str, banned: bool, within: Duration) -> Duration {
    let began = Instant::now();
    eventually(&format!("{ip} banned={banned} on every PBX"), within, || {
        nodes.iter().all(|n| n.kernel_bans(ip) == banned)
    });
    began.elapsed()
}

#[test]
fn a_ban_on_one_pbx_drops_the_address_on_all_three_and_a_release_frees_it_on_all() {
    let Some(server) = can_run() else { return };
    let url = database(&server, "three");
    let nodes = [Node::start("pbx-a", &url), Node::start("pbx-b", &url), Node::start("pbx-c", &url)];
    let attacker = "198.51.100.77";
    nodes[0].failure(attacker, "1001");
    nodes[0].failure(attacker, "1002");
    eventually("banned on the PBX that saw it", Duration::from_secs(10), || nodes[0].kernel_bans(attacker));
    let spread = on_every_kernel(&nodes.iter().collect::<Vec<_>>(), attacker, true, Duration::from_secs(3));
    eprintln!("ban on pbx-a reached pbx-b and pbx-c {spread:?} after pbx-a's own kernel");
    assert!(spread <= Duration::from_secs(1), "a ban takes {spread:?} to reach the other PBXes");

    // Each row says which PBX decided it.
    let listed = nodes[1].cli(&["bans", "--format", "json"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains(attacker) && text.contains("pbx-a"), "{text}");

    let out = nodes[2].cli(&["unban", attacker]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let freed = on_every_kernel(&nodes.iter().collect::<Vec<_>>(), attacker, false, Duration::from_secs(3));
    eprintln!("release on pbx-c freed it everywhere within {freed:?}");
}

#[test]
fn failures_on_two_pbxes_count_together_and_a_late_node_enforces_the_shared_bans() {
    let Some(server) = can_run() else { return };
    let url = database(&server, "two");
    let a = Node::start("pbx-a", &url);
    let b = Node::start("pbx-b", &url);
    let scanner = "203.0.113.45";
    // Once on each PBX: two failures within the hour, the first rule.
    a.failure(scanner, "2001");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!a.kernel_bans(scanner), "one failure bans nobody");
    b.failure(scanner, "2002");
    on_every_kernel(&[&a, &b], scanner, true, Duration::from_secs(5));

    // A PBX joining later enforces what the others decided, from its first pass.
    let began = Instant::now();
    let c = Node::start("pbx-c", &url);
    eventually("the late node enforces the shared ban", Duration::from_secs(5), || c.kernel_bans(scanner));
    eprintln!("late node enforcing {:?} after its start", began.elapsed());

    // Its log cursor and health are its own: the same log path on another node is
    // read from its own beginning, and `status` names the nodes.
    let status = c.cli(&["status", "--format", "json"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(text.contains("pbx-a") && text.contains("pbx-b") && text.contains("pbx-c"), "{text}");
}

/// A TCP relay to PostgreSQL that the test can cut (every connection dropped, new
/// ones closed at once) and restore: the database going away under a running node.
struct Relay {
    host: String,
    port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    /// Listening on `host` (the host's end of a node's veth), forwarding to `server`.
    fn to(host: &str, server: &str) -> Relay {
        use std::sync::atomic::Ordering;
        let url = url::Url::parse(server).unwrap();
        let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
        let listener = std::net::TcpListener::bind((host, 0)).unwrap();
        let relay = Relay {
            host: host.to_owned(),
            port: listener.local_addr().unwrap().port(),
            down: Default::default(),
            open: Default::default(),
        };
        let (down, open) = (relay.down.clone(), relay.open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if down.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&upstream) else { continue };
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                open.lock().unwrap().extend([client, server]);
            }
        });
        relay
    }

    /// `server`'s URL for database `database`, through the relay.
    fn url(&self, database_url: &str) -> String {
        Relay::host_url(database_url, &self.host, Some(self.port))
    }

    /// `database_url` at `host` (and `port`, or its own).
    fn host_url(database_url: &str, host: &str, port: Option<u16>) -> String {
        let mut url = url::Url::parse(database_url).unwrap();
        url.set_host(Some(host)).unwrap();
        if let Some(port) = port {
            url.set_port(Some(port)).unwrap();
        }
        url.to_string()
    }

    fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// How many failures of `ip` the shared store holds.
fn stored_failures(url: &str, ip: &str) -> i64 {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = sipwarden::store::Store::connect_postgres(url).await.unwrap();
        let mut conn = store.acquire().await.unwrap();
        sipwarden::store::raw::number(&mut conn, &format!("SELECT COUNT(*) FROM failures WHERE ip = '{ip}'"))
            .await
            .unwrap()
    })
}

/// pbx-a and pbx-b on database `name`, both dropping `first`, which pbx-a banned.
fn two_pbxes_sharing_a_ban(server: &str, name: &str, first: &str) -> (String, Node, Node) {
    let url = database(server, name);
    let a = Node::start("pbx-a", &url);
    let b = Node::start("pbx-b", &url);
    a.failure(first, "1001");
    a.failure(first, "1002");
    on_every_kernel(&[&a, &b], first, true, Duration::from_secs(10));
    (url, a, b)
}

#[test]
fn with_the_database_gone_a_pbx_keeps_its_bans_bans_from_its_own_log_and_stores_it_all_once_back() {
    let Some(server) = can_run() else { return };
    let first = "198.51.100.10";
    let (url, a, b) = two_pbxes_sharing_a_ban(&server, "outage", first);

    a.relay.cut();
    let healthz = || a.serve.as_ref().unwrap().get("/healthz", None);
    eventually("/healthz says the shared store is unreachable", Duration::from_secs(30), || {
        let reply = healthz();
        reply.status == 503 && reply.body.contains("shared store unreachable since")
    });
    // The attack goes on while the database is away: pbx-a bans from its own log.
    let second = "198.51.100.11";
    let began = Instant::now();
    a.failure(second, "1001");
    a.failure(second, "1003");
    eventually("banned locally while the store is away", Duration::from_secs(5), || a.kernel_bans(second));
    eprintln!("local ban in pbx-a's kernel {:?} after the failures, the store away", began.elapsed());
    assert!(a.kernel_bans(first), "the bans the kernel holds stay enforced");
    assert!(!b.kernel_bans(second), "pbx-b has not heard of it");
    let reply = healthz();
    assert!(reply.body.contains("decided from this PBX's own logs"), "{}", reply.body);
    // The panel says the same on every page (its sessions live in the store too).
    let page = a.serve.as_ref().unwrap().get("/offenders", None);
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("shared store unreachable since"), "{}", page.body);
    let spool = a.spool();
    assert!(spool.exists(), "the records wait in {}", spool.display());
    // Meanwhile pbx-b, which still reaches the store, bans another scanner.
    let third = "198.51.100.12";
    b.failure(third, "1001");
    b.failure(third, "1004");
    eventually("pbx-b bans it", Duration::from_secs(10), || b.kernel_bans(third));
    assert!(!a.kernel_bans(third));

    a.relay.restore();
    let back = Instant::now();
    on_every_kernel(&[&a, &b], second, true, Duration::from_secs(30));
    // pbx-a learns what was banned elsewhere while it was cut off.
    on_every_kernel(&[&a, &b], third, true, Duration::from_secs(5));
    eprintln!("pbx-a caught up {:?} after the store came back", back.elapsed());
    eventually("/healthz is itself again", Duration::from_secs(10), || healthz().status == 200);
    // Nothing lost, nothing counted twice: the two failures once each.
    assert_eq!(stored_failures(&url, second), 2);
    eventually("the kept records are stored and the spool gone", Duration::from_secs(5), || !spool.exists());
}

#[test]
fn a_pbx_restarted_while_the_database_is_away_keeps_its_kernels_bans_and_takes_up_its_kept_records() {
    let Some(server) = can_run() else { return };
    let first = "198.51.100.20";
    let (url, mut a, b) = two_pbxes_sharing_a_ban(&server, "restart", first);

    a.relay.cut();
    // One failure seen while away, kept locally; then a restart, the store still away.
    let second = "198.51.100.21";
    a.failure(second, "1001");
    let spool = a.spool();
    eventually("the failure is kept locally", Duration::from_secs(10), || spool.exists());
    let (status, took) = a.serve.take().unwrap().terminate();
    eprintln!("stopped with the store away in {took:?}");
    assert!(status.success() && took < Duration::from_secs(3), "{status:?} after {took:?}");
    a.serve = Some(a.serve_command().spawn());
    std::thread::sleep(Duration::from_secs(2));
    assert!(a.kernel_bans(first), "the kernel's bans stay while sipwarden waits for the store");

    a.relay.restore();
    // The kept failure and one more, after the restart: counted together, once each.
    eventually("the kept record is stored", Duration::from_secs(30), || stored_failures(&url, second) == 1);
    a.failure(second, "1003");
    on_every_kernel(&[&a, &b], second, true, Duration::from_secs(10));
    assert_eq!(stored_failures(&url, second), 2);
    assert!(!spool.exists());
}
