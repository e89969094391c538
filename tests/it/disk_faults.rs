//! The data directory failing: a full disk under a running `serve` (reported by
//! /healthz and the panel), then a read-only file system at start (refused with the
//! reason). Nothing written to the log meanwhile is lost once the condition clears,
//! and the database stays whole. Needs root for a small tmpfs of its own.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{append, runnable, works};
use crate::harness::{Serve, eventually, eventually_async};
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

/// Fills the file system holding `dir` until it refuses another byte.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 * 1024];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

fn sipwarden_serve(log: &Path, data: &Path) -> Serve {
    Serve::dry_run(data).args(["--trusted", "198.18.0.0/15"]).log(log)
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
    let serve = sipwarden_serve(&log, &data.0).start();
    let store = following(&data.0, &log).await;
    assert_eq!(serve.get("/healthz", None).status, 200);

    // Disk full: nothing can be stored, and /healthz says so.
    let filler = fill(&data.0);
    let mut truth = write_log(&log, 20_000, 60);
    eventually("/healthz reports the full disk", Duration::from_secs(30), || {
        let r = serve.get("/healthz", None);
        r.status == 503
            && r.body.contains("\"ingest_ok\":false")
            && r.body.contains("not_protecting")
            && r.body.contains("Log records cannot be stored")
    });
    std::fs::remove_file(filler).unwrap();
    eventually_async("caught up after space was freed", Duration::from_secs(60), || async {
        counts(&store).await == truth
    })
    .await;
    eventually("/healthz is ok again", Duration::from_secs(10), || serve.get("/healthz", None).status == 200);

    // A data directory that is read-only when serve starts (a file system remounted
    // read-only after errors, say): serve refuses to run and says why; once it is
    // writable again, everything written meanwhile is read.
    serve.terminate();
    store.close().await;
    data.remount("ro");
    add(&mut truth, write_log(&log, 20_000, 60));
    let refused = sipwarden_serve(&log, &data.0).output();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(said.contains("is not writable") && said.contains("Read-only file system"), "{said}");
    data.remount("rw");
    let serve = sipwarden_serve(&log, &data.0).start();
    let store = following(&data.0, &log).await;
    eventually_async(
        "caught up after the data directory was writable again",
        Duration::from_secs(60),
        || async { counts(&store).await == truth },
    )
    .await;
    let mut conn = store.acquire().await.unwrap();
    let check = sipwarden::store::raw::texts(&mut conn, "PRAGMA integrity_check").await.unwrap();
    assert_eq!(check, ["ok"]);
    drop(conn);
    drop(serve);
    store.close().await;
}
