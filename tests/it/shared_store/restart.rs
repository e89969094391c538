//! The database server itself stopped and started again in the middle of an attack: a
//! PostgreSQL cluster of the test's own (Debian's binaries, `initdb` and `pg_ctl` as the
//! `postgres` user), which the nodes reach straight over their veths, so that while it
//! is down they meet refused connections, as they would on a real site.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Node, Road, on_every_kernel, stored_failures};
use crate::common::{runnable, works};
use crate::harness::eventually;

/// Debian's newest PostgreSQL binaries (`/usr/lib/postgresql/<version>/bin`).
fn binaries() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").is_file() && bin.join("initdb").is_file())
        .collect();
    found.sort_by_key(|bin| {
        bin.parent().and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok()).unwrap_or(0)
    });
    found.pop()
}

/// A PostgreSQL cluster in a directory of its own, listening on every address of the
/// host at a free port, with one password-protected superuser.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    password: String,
}

impl Cluster {
    fn as_postgres(&self, program: &str, args: &[&str]) {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn create(bin: PathBuf) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let password = format!("pw{}", std::process::id());
        let cluster = Cluster { bin, dir, port, password };
        let data = cluster.data();
        let pwfile = cluster.dir.path().join("password");
        std::fs::write(&pwfile, &cluster.password).unwrap();
        Command::new("chown").args(["-R", "postgres"]).arg(cluster.dir.path()).status().unwrap();
        let (data_arg, pw_arg) = (data.display().to_string(), format!("--pwfile={}", pwfile.display()));
        cluster.as_postgres(
            "initdb",
            &["-D", &data_arg, "-U", "sipwarden", &pw_arg, "--auth=scram-sha-256", "--no-sync"],
        );
        // The nodes come from their namespaces' veths (10.x.y.2).
        let hba = data.join("pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).unwrap();
        rules.push_str("host all all 10.0.0.0/8 scram-sha-256\n");
        std::fs::write(&hba, rules).unwrap();
        cluster.start();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=* -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let (data, log) = (self.data().display().to_string(), self.dir.path().join("server.log"));
        let log = log.display().to_string();
        self.as_postgres("pg_ctl", &["-D", &data, "-l", &log, "-w", "-o", &options, "start"]);
    }

    fn stop(&self) {
        self.as_postgres("pg_ctl", &["-D", &self.data().display().to_string(), "-m", "fast", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://sipwarden:{}@127.0.0.1:{}/postgres", self.password, self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

#[test]
fn the_database_server_restarted_in_the_middle_of_an_attack_loses_nothing_and_counts_nothing_twice() {
    let bin = binaries();
    let needs = [
        ("root", nix::unistd::geteuid().is_root()),
        ("nft", works("nft", &["--version"])),
        ("ip (iproute2)", works("ip", &["-V"])),
        ("Debian's postgresql (/usr/lib/postgresql/*/bin)", bin.is_some()),
        ("runuser", works("runuser", &["--version"])),
    ];
    if !runnable("the database restart test", &needs) {
        return;
    }
    let cluster = Cluster::create(bin.unwrap());
    let url = super::database(&cluster.url(), "restart-server");
    let a = Node::start_reaching("pbx-a", &url, Road::Direct);
    let b = Node::start_reaching("pbx-b", &url, Road::Direct);
    let first = "198.51.100.30";
    a.failure(first, "1001");
    a.failure(first, "1002");
    on_every_kernel(&[&a, &b], first, true, Duration::from_secs(10));

    let stopped = Instant::now();
    cluster.stop();
    eprintln!("PostgreSQL stopped in {:?}", stopped.elapsed());
    let healthz = || a.serve.as_ref().unwrap().get("/healthz", None);
    // The attack goes on against both PBXes while the server is down.
    let (second, third) = ("198.51.100.31", "198.51.100.32");
    a.failure(second, "1001");
    a.failure(second, "1003");
    b.failure(third, "1001");
    b.failure(third, "1004");
    eventually("pbx-a bans from its own log", Duration::from_secs(10), || a.kernel_bans(second));
    eventually("pbx-b bans from its own log", Duration::from_secs(10), || b.kernel_bans(third));
    let reply = healthz();
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.body.contains("shared store unreachable since"), "{}", reply.body);
    assert!(a.kernel_bans(first) && b.kernel_bans(first), "the kernels keep what they held");

    let restarted = Instant::now();
    cluster.start();
    eprintln!("PostgreSQL up again in {:?}", restarted.elapsed());
    // Each PBX's local decisions are stored and reach the other.
    on_every_kernel(&[&a, &b], second, true, Duration::from_secs(30));
    on_every_kernel(&[&a, &b], third, true, Duration::from_secs(30));
    eprintln!("both PBXes caught up {:?} after the restart", restarted.elapsed());
    eventually("/healthz is itself again", Duration::from_secs(15), || healthz().status == 200);
    for ip in [first, second, third] {
        assert_eq!(stored_failures(&url, ip), 2, "{ip}: every failure once");
    }
    assert!(!a.spool().exists() && !b.spool().exists(), "nothing left waiting");

    // pbx-a reboots while the server is down: its kernel comes back empty, and the
    // bans it last enforced go back in before the store answers.
    let snapshot = a.dir.path().join("data/bans-snapshot.json");
    eventually("pbx-a's snapshot holds the three bans", Duration::from_secs(15), || {
        let text = std::fs::read_to_string(&snapshot).unwrap_or_default();
        [first, second, third].iter().all(|ip| text.contains(ip))
    });
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&snapshot).unwrap().permissions().mode() & 0o777, 0o600);
    cluster.stop();
    let mut a = a;
    drop(a.serve.take());
    super::ip(&["netns", "exec", &a.ns, "nft", "flush", "ruleset"]);
    assert!(!a.kernel_bans(first), "the reboot emptied the kernel");
    let rebooted = Instant::now();
    // Its panel comes up only once the store answers: started on a thread of its own.
    let serve = a.serve_command();
    let starting = std::thread::spawn(move || serve.start());
    for ip in [first, second, third] {
        eventually(&format!("{ip} back in pbx-a's kernel"), Duration::from_secs(10), || a.kernel_bans(ip));
    }
    eprintln!("pbx-a's kernel held its bans {:?} after it started without its store", rebooted.elapsed());
    cluster.start();
    a.serve = Some(starting.join().unwrap());
    eventually("pbx-a is itself again", Duration::from_secs(30), || {
        a.serve.as_ref().unwrap().get("/healthz", None).status == 200
    });
    assert!(a.kernel_bans(first) && a.kernel_bans(third), "the store's bans, enforced");
}
