//! The live link to Asterisk's manager interface: log in, read security and call
//! events as they happen, keep the link alive (`Ping`), come back after a drop (backoff
//! with jitter), and send the actions that stop a cracked extension. Optional: without
//! `[ami]`, everything runs from the logs and actions go through Asterisk's CLI.

mod control;
mod health;
pub mod scripted;

pub use control::{AmiControl, Fallback};
pub use health::{AmiHealth, AmiState};

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::asterisk::ami::{self, Received};
use crate::clock::Clock;
use crate::domain::{DatedCall, LogEvent};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(20);
/// How often the registrations are listed at most (for their User-Agents).
const LIST_EVERY: Duration = Duration::from_secs(5);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Events waiting for the pipeline. Asterisk drops a manager session that does not
/// read within its `writetimeout`: the link is read at once and a slow pipeline
/// makes the queue grow, not the socket.
pub const QUEUE: usize = 65_536;

/// Where and as whom to log in.
#[derive(Clone)]
pub struct AmiSettings {
    /// `127.0.0.1:5038`.
    pub address: String,
    pub username: String,
    pub secret: String,
}

impl std::fmt::Debug for AmiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmiSettings")
            .field("address", &self.address)
            .field("username", &self.username)
            .finish()
    }
}

/// What the link delivers to the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// An authentication outcome and the block it came in, as evidence.
    Auth(LogEvent, String),
    Call(DatedCall),
    Contact(crate::domain::DatedContact),
}

/// An action to send; the answer goes back on `reply`.
pub struct Request {
    /// The action's text for an ActionID.
    pub text: Box<dyn FnOnce(&str) -> String + Send>,
    pub reply: std::sync::mpsc::Sender<Result<(), String>>,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("cannot connect to the manager interface at {0}: {1}")]
    Connect(String, String),
    #[error("{0} is not Asterisk's manager interface (it said {1:?})")]
    NotAsterisk(String, String),
    #[error(
        "Asterisk refused the login of {0:?} ({1}): check [ami] username and secret, and the user in manager.conf (FreePBX: manager_custom.conf)"
    )]
    Refused(String, String),
    #[error("the manager interface did not answer within {0:?}")]
    Silent(Duration),
    #[error("Asterisk closed the manager connection")]
    Closed,
    #[error("manager connection failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the link until `stop`: every event read goes to `out`, every request is sent.
pub async fn run(
    settings: AmiSettings,
    health: AmiHealth,
    clock: std::sync::Arc<dyn Clock>,
    out: mpsc::Sender<Delivered>,
    mut requests: mpsc::Receiver<Request>,
    stop: CancellationToken,
) {
    let mut backoff = BACKOFF_FIRST;
    while !stop.is_cancelled() {
        let mut link =
            Link { settings: &settings, health: &health, clock: clock.as_ref(), out: &out, logged_in: false };
        let result = link.session(&mut requests, &stop).await;
        if link.logged_in {
            backoff = BACKOFF_FIRST;
        }
        match result {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "manager interface");
                health.down(clock.now(), e.to_string());
            }
        }
        // Answer what waits with an error: the CLI takes over for those.
        while let Ok(r) = requests.try_recv() {
            let _ = r.reply.send(Err("the manager interface is not connected".into()));
        }
        let jitter = Duration::from_millis(rand::random_range(0..=backoff.as_millis() as u64 / 4 + 1));
        tokio::select! {
            _ = tokio::time::sleep(backoff + jitter) => {}
            _ = stop.cancelled() => break,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    health.stopped();
}

struct Link<'a> {
    settings: &'a AmiSettings,
    health: &'a AmiHealth,
    clock: &'a dyn Clock,
    out: &'a mpsc::Sender<Delivered>,
    logged_in: bool,
}

impl Link<'_> {
    async fn session(
        &mut self,
        requests: &mut mpsc::Receiver<Request>,
        stop: &CancellationToken,
    ) -> Result<(), SessionError> {
        let address = &self.settings.address;
        let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(SessionError::Connect(address.clone(), e.to_string())),
            Err(_) => return Err(SessionError::Connect(address.clone(), "no answer".into())),
        };
        // Actions are small and urgent: no waiting to coalesce them (Nagle).
        stream.set_nodelay(true)?;
        let (read_half, mut write) = stream.into_split();
        let mut read = BufReader::new(read_half);
        let mut banner = String::new();
        tokio::time::timeout(ANSWER_TIMEOUT, read.read_line(&mut banner))
            .await
            .map_err(|_| SessionError::Silent(ANSWER_TIMEOUT))??;
        if !banner.starts_with("Asterisk Call Manager/") {
            return Err(SessionError::NotAsterisk(address.clone(), banner.trim().chars().take(80).collect()));
        }
        let mut ids = 0u64;
        let mut next_id = || {
            ids += 1;
            format!("sipwarden-{ids}")
        };
        let login_id = next_id();
        write
            .write_all(ami::login(&login_id, &self.settings.username, &self.settings.secret).as_bytes())
            .await?;
        let mut reader = ami::Reader::default();
        let mut buffer = Vec::with_capacity(64 * 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut pending: HashMap<String, std::sync::mpsc::Sender<Result<(), String>>> = HashMap::new();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.reset();
        let mut ping_due: Option<(String, tokio::time::Instant)> = None;
        let login_deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
        // The registrations' User-Agents: asked for after login and as phones register.
        let (mut listing, mut list_wanted, mut list_refused) = (None::<String>, false, false);
        let mut last_list = None;
        loop {
            let deadline = match (&ping_due, self.logged_in) {
                (_, false) => login_deadline,
                (Some((_, due)), true) => *due,
                (None, true) => tokio::time::Instant::now() + PING_EVERY * 10,
            };
            tokio::select! {
                n = read.read(&mut chunk) => {
                    let n = n?;
                    if n == 0 {
                        return Err(SessionError::Closed);
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    for block in ami::take_blocks(&mut buffer) {
                        match reader.read(&block) {
                            Received::Response { action_id: Some(id), success, message } => {
                                if id == login_id {
                                    if !success {
                                        return Err(SessionError::Refused(self.settings.username.clone(), message));
                                    }
                                    self.logged_in = true;
                                    list_wanted = true;
                                    self.health.up(self.clock.now());
                                    tracing::info!(address = %self.settings.address, "manager interface connected");
                                } else if ping_due.as_ref().is_some_and(|(p, _)| *p == id) {
                                    ping_due = None;
                                } else if let Some(reply) = pending.remove(&id) {
                                    let _ = reply.send(if success { Ok(()) } else { Err(message) });
                                } else if !success && listing.as_ref() == Some(&id) {
                                    // An Asterisk without the action, or a user without the right.
                                    listing = None;
                                    list_refused = true;
                                }
                            }
                            Received::Auth(event) => self.deliver(Delivered::Auth(event, block)),
                            Received::Call { event, at } => {
                                let at = at.or_else(|| Some(self.clock.now()));
                                self.deliver(Delivered::Call(DatedCall { at, event }));
                            }
                            Received::Contact { change, at } => {
                                // A new registration: ask for its User-Agent (pjsip logs none).
                                list_wanted |= change.present;
                                let at = at.or_else(|| Some(self.clock.now()));
                                self.deliver(Delivered::Contact(crate::domain::DatedContact { at, change }));
                            }
                            Received::Listed { action_id, change } if listing.as_ref() == Some(&action_id) => {
                                match change {
                                    Some(change) => {
                                        let at = Some(self.clock.now());
                                        self.deliver(Delivered::Contact(crate::domain::DatedContact { at, change }));
                                    }
                                    None => listing = None,
                                }
                            }
                            // A list nobody asked for (or forged text) is no registration.
                            Received::Listed { .. } => {}
                            Received::Suspect(why) => {
                                self.health.malformed();
                                tracing::warn!(?why, "manager block not believed");
                            }
                            Received::Response { .. } | Received::Other => {}
                        }
                    }
                    // At most one listing at a time, and not more often than every few
                    // seconds however many phones register.
                    let due = last_list.is_none_or(|t: tokio::time::Instant| t.elapsed() >= LIST_EVERY);
                    // A list never completed is given up after a while.
                    if last_list.is_some_and(|t| t.elapsed() >= ANSWER_TIMEOUT * 3) {
                        listing = None;
                    }
                    if list_wanted && self.logged_in && listing.is_none() && !list_refused && due {
                        let id = next_id();
                        write.write_all(ami::show_contacts(&id).as_bytes()).await?;
                        (listing, list_wanted, last_list) = (Some(id), false, Some(tokio::time::Instant::now()));
                    }
                }
                _ = ping.tick(), if self.logged_in && ping_due.is_none() => {
                    let id = next_id();
                    write.write_all(ami::ping(&id).as_bytes()).await?;
                    ping_due = Some((id, tokio::time::Instant::now() + ANSWER_TIMEOUT));
                }
                _ = tokio::time::sleep_until(deadline) => return Err(SessionError::Silent(ANSWER_TIMEOUT)),
                request = requests.recv(), if self.logged_in => {
                    let Some(request) = request else { return Ok(()) };
                    let id = next_id();
                    write.write_all((request.text)(&id).as_bytes()).await?;
                    pending.insert(id, request.reply);
                }
                _ = stop.cancelled() => {
                    let _ = write.write_all(ami::logoff(&next_id()).as_bytes()).await;
                    return Ok(());
                }
            }
        }
    }

    /// Hands an event on without waiting: the socket is never left unread.
    fn deliver(&self, item: Delivered) {
        self.health.event();
        if self.out.try_send(item).is_err() {
            self.health.dropped();
        }
    }
}
