//! A local socket in the data directory through which the CLI asks a running
//! `serve` to converge the kernel at once, after it changed the database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::enforcer::Enforcer;

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// Answers `reconcile` with `ok <n> bans enforced` or `error <message>`.
pub async fn serve(path: PathBuf, enforcer: Arc<Enforcer>, stop: CancellationToken) {
    let _ = std::fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "control socket unavailable; CLI changes wait for the next reconcile");
            return;
        }
    };
    // Only the owner (root, or the service user) may drive the enforcer.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    let enforcer = enforcer.clone();
                    tokio::spawn(async move { answer(stream, &enforcer).await });
                }
            }
            _ = stop.cancelled() => break,
        }
    }
    let _ = std::fs::remove_file(&path);
}

async fn answer(stream: UnixStream, enforcer: &Enforcer) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    if BufReader::new(read).read_line(&mut line).await.is_err() || line.trim() != "reconcile" {
        let _ = write.write_all(b"error unknown request\n").await;
        return;
    }
    let reply = match enforcer.reconcile_once().await {
        Ok(r) => format!("ok {} bans enforced\n", r.enforced),
        Err(e) => format!("error {e}\n"),
    };
    let _ = write.write_all(reply.as_bytes()).await;
}

/// Asks a running `serve` to reconcile. `None` when none is listening.
pub async fn request_reconcile(path: &Path) -> Option<Result<String, String>> {
    let mut stream = UnixStream::connect(path).await.ok()?;
    stream.write_all(b"reconcile\n").await.ok()?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).await.ok()?;
    let reply = reply.trim().to_string();
    Some(match reply.strip_prefix("ok ") {
        Some(r) => Ok(r.to_string()),
        None => Err(reply.strip_prefix("error ").unwrap_or(&reply).to_string()),
    })
}
