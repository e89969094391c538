//! What an admin notices of a running `serve`: the CPU it uses while nothing happens,
//! and how quickly SIGTERM stops it, at any moment, with nothing lost or counted twice.

use std::time::{Duration, Instant};

use crate::common::append;
use crate::harness::{Running, Serve, eventually, eventually_async, request};
use crate::robust::{caught_up, counts, following, read_offset, serve, write_log};

/// CPU time (user + system) of a process so far, in clock ticks, and ticks a second.
fn cpu_ticks(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let (utime, stime): (u64, u64) = (fields[11].parse().unwrap(), fields[12].parse().unwrap());
    let out = std::process::Command::new("getconf").arg("CLK_TCK").output().unwrap();
    let hz = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(100);
    (utime + stime, hz)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_serve_uses_under_one_percent_of_a_core() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    write_log(&log, 2_000, 20);
    let data = dir.path().join("data");
    let mut child = serve(&data, &log);
    let store = following(&data, &log).await;
    let size = std::fs::metadata(&log).unwrap().len() as i64;
    caught_up(&store, &log, size, Duration::from_secs(30)).await;
    drop(store);
    // Another program reading the log's directory is no reason to wake either.
    let neighbour = dir.path().join("queue_log");
    append(&neighbour, "x\n");
    let (before, hz) = cpu_ticks(child.pid());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let _ = std::fs::read(&log).unwrap();
        let _ = std::fs::read(&neighbour).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (after, _) = cpu_ticks(child.pid());
    let used = (after - before) as f64 / hz as f64;
    let share = used / started.elapsed().as_secs_f64();
    child.kill();
    assert!(share < 0.01, "idle serve used {:.1} % of a core ({used:.2} s CPU in 20 s)", share * 100.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_backlog_import_stops_within_two_seconds_and_loses_nothing() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("full");
    // Several batches, so that a stop can fall between any two of them.
    let lines = 5 * sipwarden::ingest::follower::MAX_BATCH_BYTES / 115;
    let truth = write_log(&log, lines, 2_000);
    let size = std::fs::metadata(&log).unwrap().len() as i64;
    let data = dir.path().join("data");
    let mut stopped_mid_import = 0;
    for round in 0..5u64 {
        let mut child = serve(&data, &log);
        let store = following(&data, &log).await;
        tokio::time::sleep(Duration::from_millis(100 + round * 70)).await;
        let importing = read_offset(&store, &log).await < size;
        drop(store);
        let sent = Instant::now();
        kill(Pid::from_raw(child.pid() as i32), Signal::SIGTERM).unwrap();
        let status = loop {
            if let Some(status) = child.try_wait() {
                break status;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(2),
                "still running 2 s after SIGTERM (round {round})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
        stopped_mid_import += u32::from(importing);
    }
    assert!(stopped_mid_import >= 3, "only {stopped_mid_import} of 5 stops fell inside the import");
    let mut child = serve(&data, &log);
    let store = following(&data, &log).await;
    caught_up(&store, &log, size, Duration::from_secs(120)).await;
    child.kill();
    assert_eq!(counts(&store).await, truth);
}

/// `serve` on `log` with the firewall in a dry run chosen on purpose.
fn serve_dry_run(data: &std::path::Path, log: &str) -> Running {
    Serve::dry_run(data).log(log).start()
}

#[tokio::test(flavor = "multi_thread")]
async fn health_says_not_protecting_with_the_fix_until_the_security_log_exists() {
    let dir = tempfile::tempdir().unwrap();
    let security = dir.path().join("security");
    let data = dir.path().join("data");
    let serve = serve_dry_run(&data, &format!("security:{}", security.display()));
    eventually("/healthz names the missing log", Duration::from_secs(15), || {
        let r = serve.get("/healthz", None);
        r.status == 503
            && r.body.contains("\"status\":\"not_protecting\"")
            && r.body.contains("does not exist")
            && r.body.contains("logger_logfiles_custom.conf")
    });
    // `status`, another process, says so too.
    let status = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipwarden"))
            .arg("status")
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    eventually("status says not protecting", Duration::from_secs(15), || {
        status().contains("ON, but NOT PROTECTING")
    });
    append(&security, "");
    // Back to what was chosen: watching without blocking, answered 200.
    eventually("/healthz is monitor only", Duration::from_secs(15), || {
        let r = serve.get("/healthz", None);
        r.status == 200 && r.body.contains("\"status\":\"monitor_only\"")
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn the_data_directory_and_every_file_in_it_are_its_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    write_log(&log, 50, 5);
    let data = dir.path().join("data");
    let mut child = serve_dry_run(&data, &log.display().to_string());
    drop(following(&data, &log).await);
    let mode = |name: &str| std::fs::metadata(data.join(name)).map(|m| m.permissions().mode() & 0o777).ok();
    eventually("the failed-auth log is written", Duration::from_secs(10), || {
        mode("failed-auth.log").is_some()
    });
    child.kill();
    assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
    for file in ["sipwarden.db", "failed-auth.log", "setup-url"] {
        assert_eq!(mode(file), Some(0o600), "{file}");
    }
    for file in ["sipwarden.db-wal", "sipwarden.db-shm"] {
        assert!(mode(file).is_none_or(|m| m == 0o600), "{file}: {:o}", mode(file).unwrap_or(0));
    }
}

#[test]
fn a_taken_panel_port_names_the_program_holding_it() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .args(["serve", "--firewall", "dry-run", "--log", "/dev/null"])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("SIPWARDEN_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let holder = format!("(pid {}) listens on port {port}", std::process::id());
    assert!(err.contains(&holder), "expected {holder:?} in: {err}");
}

/// Open TCP connections to `port` from the loopback address `source`, left idle.
async fn idle_connections(source: [u8; 4], port: u16, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((std::net::Ipv4Addr::from(source), 0).into()).unwrap();
        held.push(socket.connect(([127, 0, 0, 1], port).into()).await.unwrap());
    }
    held
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_panel_connections_neither_starve_log_reading_nor_lock_the_admin_out() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    crate::common::append(&log, "");
    let serve = serve_dry_run(&dir.path().join("data"), log.to_str().unwrap());
    let port = serve.port;
    // Sockets only: the database pool opening more files meanwhile is not the point.
    let fds = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count()
    };
    let before = fds(serve.pid());

    // One client holding 300 connections gets a few; the admin, elsewhere, gets in.
    let one = idle_connections([127, 0, 0, 2], port, 300).await;
    let admin = tokio::task::spawn_blocking(move || request(port, "GET", "/healthz", None, "").status);
    let admin = admin.await.unwrap();
    assert!(admin == 200 || admin == 503, "the panel answers: {admin}");
    drop(one);

    // Many clients: the panel holds a bounded number of connections, and the log is
    // still read and acted on meanwhile.
    let mut many = Vec::new();
    // 200: more than the panel takes, fewer than the kernel queues behind it.
    for host in 3..23u8 {
        many.extend(idle_connections([127, 0, 0, host], port, 10).await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let during = fds(serve.pid());
    assert!(during < before + 128 + 16, "{during} sockets open while 200 connections wait (was {before})");
    let line =
        |user: &str| crate::common::sip_failure_dated("198.51.100.9", user, &crate::common::now_date());
    crate::common::append(&log, &(line("101") + &line("102")));
    let db = dir.path().join("data");
    eventually("the attacker is banned while the panel is full", Duration::from_secs(10), || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipwarden"))
            .args(["bans", "--format", "json", "--data-dir"])
            .arg(&db)
            .env_remove("SIPWARDEN_CONFIG")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("198.51.100.9")
    });
    drop(many);
}

/// `serve` counts a refused panel login with the failures of the logs (from loopback it
/// is recorded, never banned).
#[tokio::test(flavor = "multi_thread")]
async fn serve_counts_a_refused_panel_login_like_a_logs_failure() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    append(&log, "");
    let data = dir.path().join("data");
    let serve = serve_dry_run(&data, log.to_str().unwrap());
    let store = following(&data, &log).await;
    // The first admin, so that /login answers.
    let token = serve.setup_url.split("token=").nth(1).unwrap().to_string();
    let form = format!("token={token}&username=admin&password=a+long+passphrase&confirm=a+long+passphrase");
    let r = request(serve.port, "POST", "/setup", None, &form);
    assert_eq!(r.status, 303, "{}", r.body);
    let r = request(serve.port, "POST", "/login", None, "username=root&password=guess");
    assert_eq!(r.status, 401);
    eventually_async("the refused login is stored", Duration::from_secs(10), async || {
        let mut conn = store.acquire().await.unwrap();
        let recent = sipwarden::store::failures::recent(&mut conn, 10).await.unwrap();
        recent.iter().any(|f| f.service == "PANEL" && f.account.as_deref() == Some("root"))
    })
    .await;
}
