//! Puts the rendered ACL configuration (and, on FreePBX, the predial hook that refuses
//! a locked extension's calls) into Asterisk's configuration directory: preview, atomic
//! writes with timestamped backups, reload, verification, and restoring the backups
//! when anything fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::asterisk::acl::{self, AclPlan, AsteriskObject, Tech};
use crate::asterisk::predial;

pub mod control;

/// Files sipwarden writes. FreePBX regenerates none of them.
pub const ACL_CONF: &str = "acl.conf";
pub const SIP_APPENDS: &str = "sip_custom_post.conf";
pub const PJSIP_APPENDS: &str = "pjsip.endpoint_custom_post.conf";

/// Where objects are discovered (whichever exist): plain Asterisk and FreePBX's files.
const SIP_SOURCES: [&str; 4] = ["sip.conf", "sip_custom.conf", "sip_additional.conf", SIP_APPENDS];
const PJSIP_SOURCES: [&str; 5] =
    ["pjsip.conf", "pjsip_custom.conf", "pjsip.endpoint.conf", "pjsip.endpoint_custom.conf", PJSIP_APPENDS];

/// Where the SIP ports are set, in include order; FreePBX's `sip_general_*` files are
/// included inside `[general]` and have no header of their own.
const SIP_GENERAL_SOURCES: [&str; 3] = ["sip.conf", "sip_general_additional.conf", "sip_general_custom.conf"];
const PJSIP_TRANSPORT_SOURCES: [&str; 3] =
    ["pjsip.conf", "pjsip.transports.conf", "pjsip.transports_custom.conf"];

/// The SIP ports the configuration in `config_dir` names (docs/ASTERISK.md §5.7);
/// files that do not exist are passed over.
pub fn sip_ports(config_dir: &Path) -> Result<crate::asterisk::ports::SipPorts, PbxError> {
    let mut sip = String::new();
    for f in SIP_GENERAL_SOURCES {
        if let Some(t) = read(&config_dir.join(f))? {
            if f.starts_with("sip_general_") {
                sip.push_str("[general]\n");
            }
            sip.push_str(&t);
            sip.push('\n');
        }
    }
    let mut pjsip = String::new();
    for f in PJSIP_TRANSPORT_SOURCES {
        if let Some(t) = read(&config_dir.join(f))? {
            pjsip.push_str(&t);
            pjsip.push('\n');
        }
    }
    Ok(crate::asterisk::ports::discover(&sip, &pjsip))
}

#[derive(Debug, Clone)]
pub struct Pbx {
    pub config_dir: PathBuf,
    /// How to run the Asterisk CLI, e.g. `["asterisk"]` (called with `-rx COMMAND`).
    pub command: Vec<String>,
    /// Asterisk's messages/full log: a refused include shows there while the CLI still
    /// says "reloaded successfully".
    pub log: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub name: String,
    pub before: Option<String>,
    pub after: String,
}

impl FileChange {
    /// A unified diff for the preview.
    pub fn diff(&self) -> String {
        similar::TextDiff::from_lines(self.before.as_deref().unwrap_or(""), &self.after)
            .unified_diff()
            .context_radius(3)
            .header(&format!("{} (now)", self.name), &format!("{} (after applying)", self.name))
            .to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PbxError {
    #[error("cannot read or write {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("`{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error(
        "Asterisk did not load the new configuration ({0}); the previous files were restored and reloaded"
    )]
    NotLoaded(String),
}

fn read(path: &Path) -> Result<Option<String>, PbxError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PbxError::File { path: path.to_owned(), message: e.to_string() }),
    }
}

impl Pbx {
    pub fn discover(&self) -> Result<Vec<AsteriskObject>, PbxError> {
        let mut out = Vec::new();
        for (files, tech) in [(&SIP_SOURCES[..], Tech::Sip), (&PJSIP_SOURCES[..], Tech::Pjsip)] {
            // Sections are read in include order, so appends meet what they append to.
            let mut text = String::new();
            for f in files {
                if let Some(t) = read(&self.config_dir.join(f))? {
                    // Leave out sipwarden's own appends: they must not count as existing ACLs.
                    text.push_str(&strip_block(&t));
                    text.push('\n');
                }
            }
            out.extend(acl::discover(&text, tech));
        }
        Ok(out)
    }

    /// What applying `plan` would change, file by file (unchanged files left out).
    pub fn preview(&self, plan: &AclPlan) -> Result<Vec<FileChange>, PbxError> {
        let existing = self.discover()?;
        let mut changes = Vec::new();
        let mut consider = |name: &str, after: String| -> Result<(), PbxError> {
            let path = self.config_dir.join(name);
            // sipwarden writes as root where the asterisk user may plant a link: a file
            // it writes is never read or restored through one.
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                let message = "is a symbolic link; sipwarden only writes regular files there (replace the link by the file it points to)";
                return Err(PbxError::File { path, message: message.into() });
            }
            let before = read(&path)?;
            if before.as_deref() != Some(after.as_str()) {
                changes.push(FileChange { name: name.to_string(), before, after });
            }
            Ok(())
        };
        consider(acl::ACL_INCLUDE, acl::render_acl_include(plan))?;
        let acl_conf = read(&self.config_dir.join(ACL_CONF))?.unwrap_or_default();
        consider(ACL_CONF, acl::with_include(&acl_conf))?;
        for (name, tech) in [(SIP_APPENDS, Tech::Sip), (PJSIP_APPENDS, Tech::Pjsip)] {
            let current = read(&self.config_dir.join(name))?.unwrap_or_default();
            consider(name, acl::with_managed_block(&current, &acl::render_appends(plan, tech, &existing)))?;
        }
        // A locked extension's calls refused by the dialplan too: where FreePBX's file for
        // the installation's own dialplan exists and holds no predial hook of the admin's.
        if let Some(current) = read(&self.config_dir.join(predial::FILE))? {
            if !predial::defined_by_admin(&strip_block(&current)) {
                let hook = predial::render(control::LOCK_FAMILY);
                consider(predial::FILE, acl::with_managed_block(&current, &hook))?;
            }
        }
        Ok(changes)
    }

    fn cli(&self, command: &str) -> Result<String, PbxError> {
        let out = Command::new(&self.command[0])
            .args(&self.command[1..])
            .args(["-rx", command])
            .output()
            .map_err(|e| PbxError::Command { command: command.into(), message: e.to_string() })?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || text.contains("No such command") {
            return Err(PbxError::Command {
                command: command.into(),
                message: format!("{} {}", text.trim(), String::from_utf8_lossy(&out.stderr).trim()),
            });
        }
        Ok(text)
    }

    fn reload(&self, changes: &[FileChange]) -> Result<(), PbxError> {
        self.cli("module reload acl")?;
        // chan_sip is gone from Asterisk 21: its reload may fail without harm.
        let _ = self.cli("sip reload");
        self.cli("module reload res_pjsip.so")?;
        if touches_dialplan(changes) {
            self.cli("dialplan reload")?;
        }
        Ok(())
    }

    /// The predial hook, when written, is in the dialplan Asterisk runs.
    fn verify_hook(&self, changes: &[FileChange]) -> Result<(), PbxError> {
        if !touches_dialplan(changes) {
            return Ok(());
        }
        let shown = self.cli(&format!("dialplan show {}", predial::CONTEXT))?;
        match predial::is_loaded(&shown, control::LOCK_FAMILY) {
            true => Ok(()),
            false => Err(PbxError::NotLoaded(format!(
                "`dialplan show {}` does not show the lock check",
                predial::CONTEXT
            ))),
        }
    }

    /// `acl show NAME` lists every permit of every ACL sipwarden wrote.
    fn verify(&self, plan: &AclPlan) -> Result<(), PbxError> {
        let expected = acl::acls(plan);
        for name in expected.keys() {
            let shown = self.cli(&format!("acl show {name}"))?;
            let nets = if name == acl::EXTENSIONS_ACL {
                plan.extension_networks.clone()
            } else {
                plan.trunk_networks
                    .iter()
                    .find(|(t, _)| acl::trunk_acl_name(t) == *name)
                    .map(|(_, n)| n.clone())
                    .unwrap_or_default()
            };
            for net in nets {
                if !acl::shows_permit(&shown, &net) {
                    return Err(PbxError::NotLoaded(format!("`acl show {name}` does not list {net}")));
                }
            }
        }
        Ok(())
    }

    /// Writes `changes` (backups first), reloads, verifies; on any failure puts the
    /// previous files back and reloads again. Returns the backup paths.
    pub fn apply(
        &self,
        plan: &AclPlan,
        changes: &[FileChange],
        stamp: &str,
    ) -> Result<Vec<PathBuf>, PbxError> {
        let mut backups = Vec::new();
        for c in changes {
            let path = self.config_dir.join(&c.name);
            if c.before.is_some() {
                let backup = self.config_dir.join(format!("{}.sipwarden-{stamp}.bak", c.name));
                // What is there now, as it is about to be replaced.
                std::fs::read(&path)
                    .and_then(|current| write_new(&backup, &current))
                    .map_err(|e| PbxError::File { path: backup.clone(), message: e.to_string() })?;
                backups.push(backup);
            }
        }
        let log_start = self.log.as_ref().and_then(|l| std::fs::metadata(l).ok()).map(|m| m.len());
        let result = self
            .write_all(changes)
            .and_then(|_| self.reload(changes))
            .and_then(|_| self.check_log(log_start))
            .and_then(|_| self.verify(plan))
            .and_then(|_| self.verify_hook(changes));
        if let Err(e) = result {
            self.restore(changes);
            let _ = self.reload(changes);
            return Err(match e {
                PbxError::NotLoaded(m) => PbxError::NotLoaded(m),
                other => PbxError::NotLoaded(other.to_string()),
            });
        }
        Ok(backups)
    }

    /// Looks at what Asterisk logged during the reload for a refused configuration.
    fn check_log(&self, start: Option<u64>) -> Result<(), PbxError> {
        let (Some(log), Some(start)) = (&self.log, start) else { return Ok(()) };
        let Ok(text) = std::fs::read(log) else { return Ok(()) };
        let new = String::from_utf8_lossy(text.get(start as usize..).unwrap_or_default());
        match acl::refused_config_line(&new) {
            Some(line) => Err(PbxError::NotLoaded(format!("Asterisk logged: {}", line.trim()))),
            None => Ok(()),
        }
    }

    fn write_all(&self, changes: &[FileChange]) -> Result<(), PbxError> {
        for c in changes {
            let path = self.config_dir.join(&c.name);
            replace_file(&path, &c.after)
                .map_err(|e| PbxError::File { path: path.clone(), message: e.to_string() })?;
        }
        Ok(())
    }

    fn restore(&self, changes: &[FileChange]) {
        for c in changes {
            let path = self.config_dir.join(&c.name);
            let _ = match &c.before {
                Some(before) => replace_file(&path, before),
                None => std::fs::remove_file(&path),
            };
        }
    }
}

/// Replaces `path` with `contents` in one rename. The directory is writable by the
/// asterisk user while sipwarden writes as root, so the temporary file gets a random
/// name and is created exclusively (a planted link cannot redirect the write), and it
/// takes the replaced file's mode and owner so that Asterisk can still read it.
fn replace_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut tmp =
        tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".sipwarden-tmp").tempfile_in(dir)?;
    let (mode, owner) = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => (m.mode() & 0o7777, Some((m.uid(), m.gid()))),
        _ => (0o644, None),
    };
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    if let Some((uid, gid)) = owner {
        // Only root may give a file away; anyone else writes files of their own anyway.
        let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(uid), Some(gid));
    }
    tmp.write_all(contents.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes a file that must not exist yet (a backup): a link or file already at its
/// name is refused, never followed.
fn write_new(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o640).open(path)?;
    f.write_all(contents)?;
    f.sync_all()
}

fn touches_dialplan(changes: &[FileChange]) -> bool {
    changes.iter().any(|c| c.name == predial::FILE)
}

fn strip_block(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim_end() == acl::BEGIN {
            inside = true;
        } else if inside && line.trim_end() == acl::END {
            inside = false;
        } else if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}
