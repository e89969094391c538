//! Where rulesets go: the real `nft` (optionally behind a command prefix such as
//! `ip netns exec NS`), or an in-memory recorder for tests and dry runs.

use std::borrow::Cow;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use nftables::schema::{FlushObject, NfCmd, NfListObject, NfObject, Nftables};

use super::countries;
use super::render::{self, SetName, TABLE};
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
    /// The country table's stamp (`firewall::countries::Stamp`); `None` when there is
    /// no such table.
    fn countries_fingerprint(&self) -> Result<Option<String>, FirewallError>;
    /// What the country rules dropped since the last call, per counter; the counters
    /// start again from zero. None while there is no country table.
    fn take_country_drops(&self) -> Result<Vec<countries::Dropped>, FirewallError> {
        Ok(Vec::new())
    }
    /// Applies each ruleset in a transaction of its own; their order does not matter,
    /// so a backend may apply several at once.
    fn apply_each(&self, rulesets: &[Nftables<'_>]) -> Result<(), FirewallError> {
        rulesets.iter().try_for_each(|r| self.apply(r))
    }
    /// Puts a new country table in: until its last, small transaction the rules in
    /// the kernel keep enforcing with the sets they have.
    fn load_countries(&self, load: &countries::Load) -> Result<(), FirewallError> {
        if let Err(e) = self.apply(&load.prepare) {
            // A table sipwarden did not leave this way (changed by hand?): start it over.
            tracing::warn!(error = %e, "country table not as expected; making it anew");
            self.apply(&countries::removal())?;
            self.apply(&load.prepare)?;
        }
        self.apply_each(&load.fills)?;
        self.apply(&load.commit)
    }
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

    /// Several `nft` at once, as many as there are cores (up to 4): most of a big
    /// set's load is `nft` itself parsing and sorting, which runs in parallel; the
    /// kernel takes the transactions one after the other.
    fn apply_each(&self, rulesets: &[Nftables<'_>]) -> Result<(), FirewallError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = cores.min(4).min(rulesets.len());
        if workers <= 1 {
            return rulesets.iter().try_for_each(|r| self.apply(r));
        }
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let work = || loop {
                let Some(ruleset) = rulesets.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return Ok(());
                };
                self.apply(ruleset)?;
            };
            let workers: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
            workers.into_iter().try_for_each(|w| {
                w.join().unwrap_or_else(|_| Err(FirewallError::Output("an nft worker panicked".into())))
            })
        })
    }

    fn take_country_drops(&self) -> Result<Vec<countries::Dropped>, FirewallError> {
        // `reset` answers with the counters alone; `list counters` would read every
        // country range first (2.5 s beside the EU allow-list, 12 ms this way).
        match self.run(&["-j", "reset", "counters", "table", "inet", countries::TABLE], None) {
            Ok(json) => countries::dropped_of(&json).map_err(FirewallError::Output),
            Err(FirewallError::Failed { stderr, .. }) if stderr.contains("No such file or directory") => {
                Ok(Vec::new())
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
    dropped: Mutex<Vec<countries::Dropped>>,
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

    /// Packets the country rules would have dropped, until the next take.
    pub fn count_drops(&self, dropped: countries::Dropped) {
        self.dropped.lock().unwrap_or_else(|p| p.into_inner()).push(dropped);
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
                        NfCmd::Add(NfListObject::Set(s)) if s.name == countries::FINGERPRINT_SET => {
                            if let Some(stamp) = s.elem.as_deref().and_then(countries::stamp_of) {
                                fingerprint = Some(stamp);
                            }
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
                NfCmd::Flush(FlushObject::Set(s)) if s.table == TABLE => {
                    if let Some(name) = SetName::parse(&s.name) {
                        next.bans.retain(|(_, set), _| *set != name);
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
            if let Some((name, elem)) = render::elements_added(obj) {
                let listing = Nftables {
                    objects: vec![NfObject::ListObject(NfListObject::Set(Box::new(nftables::schema::Set {
                        table: Cow::Borrowed(TABLE),
                        name: Cow::Owned(name.to_string()),
                        elem: Some(Cow::Owned(elem.to_vec())),
                        ..nftables::schema::Set::default()
                    })))]
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

    fn take_country_drops(&self) -> Result<Vec<countries::Dropped>, FirewallError> {
        self.check()?;
        Ok(std::mem::take(&mut *self.dropped.lock().unwrap_or_else(|p| p.into_inner())))
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
