//! Where rulesets go: the real `nft` (optionally behind a command prefix such as
//! `ip netns exec NS`), or an in-memory recorder for tests and dry runs.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use nftables::schema::{NfCmd, NfListObject, NfObject, Nftables};

use super::countries;
use super::render::{SetName, TABLE};
use super::state::{self, KernelState};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FirewallError {
    #[error("cannot run {program}: {message}")]
    Spawn { program: String, message: String },
    #[error("nft failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
    #[error("nft output not understood: {0}")]
    Output(String),
}

pub trait Firewall: Send + Sync + 'static {
    /// Shown in health and status, e.g. `nft` or `dry-run`.
    fn name(&self) -> String;
    /// Applies the commands in one transaction: all or nothing.
    fn apply(&self, ruleset: &Nftables<'_>) -> Result<(), FirewallError>;
    /// The sipwarden table as the kernel holds it (empty when it does not exist).
    fn list(&self) -> Result<KernelState, FirewallError>;
    /// The country table's fingerprint (`firewall::countries`); `None` when there is no
    /// such table.
    fn countries_fingerprint(&self) -> Result<Option<String>, FirewallError>;
    /// Whether what is applied reaches the kernel (a dry run only records it).
    fn enforces(&self) -> bool {
        true
    }
}

/// Runs `[prefix...] nft ...`.
#[derive(Debug, Clone)]
pub struct NftBackend {
    command: Vec<String>,
}

impl NftBackend {
    /// `prefix` comes before `nft`: empty for the host, `["ip","netns","exec","NS"]` for a namespace.
    pub fn new(prefix: Vec<String>) -> Self {
        let mut command = prefix;
        command.push("nft".into());
        NftBackend { command }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String, FirewallError> {
        let program = &self.command[0];
        let mut child = Command::new(program)
            .args(&self.command[1..])
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| FirewallError::Spawn { program: self.command.join(" "), message: e.to_string() })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .map_err(|e| FirewallError::Spawn { program: program.clone(), message: e.to_string() })?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| FirewallError::Spawn { program: program.clone(), message: e.to_string() })?;
        if !out.status.success() {
            return Err(FirewallError::Failed {
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().chars().take(2000).collect(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Firewall for NftBackend {
    fn name(&self) -> String {
        self.command.join(" ")
    }

    fn apply(&self, ruleset: &Nftables<'_>) -> Result<(), FirewallError> {
        let json = serde_json::to_string(ruleset).map_err(|e| FirewallError::Output(e.to_string()))?;
        // The model writes every unset element property as null; nft ignores them but
        // parses them, which is a third of the work for 100k elements.
        let json = json.replace(r#","expires":null,"comment":null,"counter":null"#, "");
        self.run(&["-j", "-f", "-"], Some(&json)).map(|_| ())
    }

    fn list(&self) -> Result<KernelState, FirewallError> {
        match self.run(&["-j", "list", "table", "inet", TABLE], None) {
            Ok(json) => {
                let parsed: Nftables<'static> =
                    serde_json::from_str(&json).map_err(|e| FirewallError::Output(e.to_string()))?;
                Ok(state::parse_listing(&parsed))
            }
            Err(FirewallError::Failed { stderr, .. }) if stderr.contains("No such file or directory") => {
                Ok(KernelState::default())
            }
            Err(e) => Err(e),
        }
    }

    fn countries_fingerprint(&self) -> Result<Option<String>, FirewallError> {
        // One small set: listing the table would read every country range.
        match self.run(&["-j", "list", "set", "inet", countries::TABLE, countries::FINGERPRINT_SET], None) {
            Ok(json) => {
                let parsed: Nftables<'static> =
                    serde_json::from_str(&json).map_err(|e| FirewallError::Output(e.to_string()))?;
                Ok(countries::fingerprint_of(&parsed))
            }
            Err(FirewallError::Failed { stderr, .. }) if stderr.contains("No such file or directory") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Keeps the table in memory with nft's semantics for what sipwarden sends
/// (including "deleting an absent element is an error"), and records every call.
#[derive(Default)]
pub struct RecordingBackend {
    label: String,
    state: Mutex<KernelState>,
    countries: Mutex<Option<String>>,
    applied: Mutex<Vec<String>>,
    failing: Mutex<Option<FirewallError>>,
}

impl RecordingBackend {
    pub fn new(label: &str) -> Self {
        RecordingBackend { label: label.into(), ..RecordingBackend::default() }
    }

    /// JSON of every applied ruleset, oldest first.
    pub fn applied(&self) -> Vec<String> {
        self.applied.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn state(&self) -> KernelState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes every call fail until cleared, as a missing or broken `nft` would.
    pub fn set_failing(&self, error: Option<FirewallError>) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    /// Simulates an admin's `nft flush ruleset`.
    pub fn flush(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = KernelState::default();
    }

    fn check(&self) -> Result<(), FirewallError> {
        match &*self.failing.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

impl Firewall for RecordingBackend {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn enforces(&self) -> bool {
        false
    }

    fn apply(&self, ruleset: &Nftables<'_>) -> Result<(), FirewallError> {
        self.check()?;
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = guard.clone();
        let mut fingerprint = self.countries.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for obj in ruleset.objects.iter() {
            let NfObject::CmdObject(cmd) = obj else {
                continue;
            };
            if let NfCmd::Add(o) | NfCmd::Delete(o) = cmd {
                if table_of(o) == Some(countries::TABLE) {
                    match cmd {
                        NfCmd::Delete(NfListObject::Table(_)) => fingerprint = None,
                        NfCmd::Add(NfListObject::Element(e)) if e.name == countries::FINGERPRINT_SET => {
                            fingerprint = countries::stamp_of(&e.elem);
                        }
                        _ => {}
                    }
                    continue;
                }
            }
            match cmd {
                NfCmd::Add(NfListObject::Table(_)) => next.table = true,
                NfCmd::Delete(NfListObject::Table(_)) => next = KernelState::default(),
                NfCmd::Add(NfListObject::Set(s)) => {
                    if let Some(name) = SetName::parse(&s.name) {
                        next.sets.insert(name.as_str());
                    }
                }
                NfCmd::Add(NfListObject::Chain(_)) => next.chain = true,
                NfCmd::Add(NfListObject::Rule(r)) => {
                    next.rules += 1;
                    if let Some(o) =
                        r.comment.as_deref().and_then(|c| c.strip_prefix(super::render::OWNER_PREFIX))
                    {
                        next.owner = Some(o.to_string());
                    }
                }
                NfCmd::Add(NfListObject::Element(e)) => {
                    let listing = Nftables {
                        objects: vec![NfObject::ListObject(NfListObject::Set(Box::new(
                            nftables::schema::Set {
                                table: e.table.clone(),
                                name: e.name.clone(),
                                elem: Some(e.elem.clone()),
                                ..nftables::schema::Set::default()
                            },
                        )))]
                        .into(),
                    };
                    let added = state::parse_listing(&listing);
                    for (key, timeout) in added.bans {
                        next.bans.entry(key).or_insert(timeout);
                    }
                    next.trusted.extend(added.trusted);
                    next.allowed.extend(added.allowed);
                    next.deny.extend(added.deny);
                    next.closed_tcp.extend(added.closed_tcp);
                    next.closed_udp.extend(added.closed_udp);
                }
                NfCmd::Delete(NfListObject::Element(e)) => {
                    let set = SetName::parse(&e.name);
                    for v in e.elem.iter() {
                        if state::net_of(v).zip(set).and_then(|key| next.bans.remove(&key)).is_none() {
                            return Err(FirewallError::Failed {
                                status: "exit status: 1".into(),
                                stderr: "Error: Could not process rule: No such file or directory".into(),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        *guard = next;
        *self.countries.lock().unwrap_or_else(|p| p.into_inner()) = fingerprint;
        self.applied.lock().unwrap_or_else(|p| p.into_inner()).push(super::render::to_json(ruleset));
        Ok(())
    }

    fn list(&self) -> Result<KernelState, FirewallError> {
        self.check()?;
        Ok(self.state())
    }

    fn countries_fingerprint(&self) -> Result<Option<String>, FirewallError> {
        self.check()?;
        Ok(self.countries.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

fn table_of<'a>(o: &'a NfListObject<'_>) -> Option<&'a str> {
    match o {
        NfListObject::Table(t) => Some(&t.name),
        NfListObject::Set(s) => Some(&s.table),
        NfListObject::Chain(c) => Some(&c.table),
        NfListObject::Rule(r) => Some(&r.table),
        NfListObject::Element(e) => Some(&e.table),
        _ => None,
    }
}
