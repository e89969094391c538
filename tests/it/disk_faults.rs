//! The data directory failing: a full disk under a running `serve` (reported by
//! /healthz and the panel), then a read-only file system at start (refused with the
//! reason). Nothing written to the log meanwhile is lost once the condition clears,
//! and the database stays whole. Needs root for a small tmpfs of its own.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{append, printed_port, runnable, works};
use crate::robust::{counts, following, write_log};

/// A tmpfs mounted for the test, unmounted however the test ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &dir.display().to_string()]);
        Tmpfs(dir.to_owned())
    }

    /// Read-only needs no file open for writing on it.
    fn remount(&self, mode: &str) {
        mount(&["-o", &format!("remount,{mode}"), &self.0.display().to_string()]);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount(args: &[&str]) {
    let out = Command::new("mount").args(args).output().unwrap();
    assert!(out.status.success(), "mount {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `(status line, body)` of GET /healthz.
pub(crate) fn healthz(port: u16) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply.lines().next().unwrap_or("").to_string();
    (status, reply.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

pub(crate) fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Fills the file system holding `dir` until it refuses another byte.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

fn sipwarden_serve(log: &Path, data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sipwarden"));
    cmd.args(["serve", "--firewall", "dry-run", "--listen", "127.0.0.1:0", "--trusted", "198.18.0.0/15"])
        .arg("--log")
        .arg(log)
        .arg("--data-dir")
        .arg(data);
    cmd
}

/// A child killed however the test ends (a failed assertion must not leave a
/// `serve` holding the tmpfs).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops serve as systemd would, and waits for it.
fn terminate(serve: &mut std::process::Child) {
    let pid = nix::unistd::Pid::from_raw(serve.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    serve.wait().unwrap();
}

fn add(into: &mut BTreeMap<String, i64>, more: BTreeMap<String, i64>) {
    for (ip, n) in more {
        *into.entry(ip).or_insert(0) += n;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_and_a_read_only_data_dir_are_reported_and_lose_nothing() {
    let is_root = nix::unistd::geteuid().is_root();
    if !runnable("disk fault test", &[("root", is_root), ("mount", works("mount", &["--version"]))]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("full");
    append(&log, "");
    let data = Tmpfs::mount(&dir.path().join("data"), "24m");
    let mut serve =
        Running(sipwarden_serve(&log, &data.0).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap());
    let port = printed_port(serve.0.stdout.take().unwrap());
    let store = following(&data.0, &log).await;
    assert!(healthz(port).0.contains("200"));

    // Disk full: nothing can be stored, and /healthz says so.
    let filler = fill(&data.0);
    let mut truth = write_log(&log, 20_000, 60);
    wait_for("/healthz reports the full disk", 30, || {
        let (status, body) = healthz(port);
        status.contains("503")
            && body.contains("\"ingest_ok\":false")
            && body.contains("not_protecting")
            && body.contains("Log records cannot be stored")
    });
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts(&store).await != truth {
        assert!(Instant::now() < deadline, "not caught up after space was freed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for("/healthz is ok again", 10, || healthz(port).0.contains("200"));

    // A data directory that is read-only when serve starts (a file system remounted
    // read-only after errors, say): serve refuses to run and says why; once it is
    // writable again, everything written meanwhile is read.
    terminate(&mut serve.0);
    store.close().await;
    data.remount("ro");
    add(&mut truth, write_log(&log, 20_000, 60));
    let refused =
        sipwarden_serve(&log, &data.0).stdout(Stdio::null()).stderr(Stdio::piped()).output().unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(said.contains("is not writable") && said.contains("Read-only file system"), "{said}");
    data.remount("rw");
    let serve =
        Running(sipwarden_serve(&log, &data.0).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let store = following(&data.0, &log).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts(&store).await != truth {
        assert!(Instant::now() < deadline, "not caught up after the data directory was writable again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let check: (String,) = sqlx::query_as("PRAGMA integrity_check").fetch_one(store.pool()).await.unwrap();
    assert_eq!(check.0, "ok");
    drop(serve);
    store.close().await;
}
