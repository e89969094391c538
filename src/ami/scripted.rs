//! A manager interface on loopback that plays scripted events: for the tests and the
//! benchmark, where no Asterisk can run. It speaks the real protocol: banner, CRLF
//! blocks, `Response: Success|Error` with the action's ActionID, `Ping` answered.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The secret the scripted server accepts.
pub const SECRET: &str = "pass w0rd";

/// Action blocks the server received, with when.
#[derive(Default)]
pub struct Received(Mutex<Vec<(Instant, String)>>);

impl Received {
    /// Every action received, in order.
    pub fn all(&self) -> Vec<(Instant, String)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn actions(&self, name: &str) -> Vec<(Instant, String)> {
        let head = format!("Action: {name}\r\n");
        self.all().into_iter().filter(|(_, a)| a.starts_with(&head)).collect()
    }
}

/// One scripted connection: what to send after a login, and whether to hang up after it.
#[derive(Clone, Default)]
pub struct Script {
    /// Blocks, each sent after its pause.
    pub events: Vec<(Duration, String)>,
    /// Close the connection once the events are sent.
    pub drop_after: bool,
    /// A slow, congested link: each block goes out in pieces of this many bytes, a pause
    /// between them, so blocks (and their CRLFs) arrive split across reads.
    pub trickle: Option<(usize, Duration)>,
    /// The registrations `PJSIPShowContacts` lists: each a `ContactList` event's headers
    /// after its ActionID (`ObjectName: …\r\nUri: …\r\n…`).
    pub listing: Vec<String>,
}

/// A manager interface on loopback playing `scripts`, one per connection (the last one
/// again for any further connection).
pub struct ScriptedAmi {
    pub address: String,
    pub received: Arc<Received>,
    /// When each event block went out: (instant, block).
    pub sent: Arc<Mutex<Vec<(Instant, String)>>>,
    pub connections: Arc<Mutex<u32>>,
}

impl ScriptedAmi {
    pub async fn start(scripts: Vec<Script>) -> std::io::Result<ScriptedAmi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let received = Arc::new(Received::default());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0u32));
        let (r, s, c) = (received.clone(), sent.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                let n = {
                    let mut c = c.lock().unwrap_or_else(|p| p.into_inner());
                    *c += 1;
                    *c as usize
                };
                let script = scripts[(n - 1).min(scripts.len() - 1)].clone();
                tokio::spawn(serve_one(socket, script, r.clone(), s.clone()));
            }
        });
        Ok(ScriptedAmi { address, received, sent, connections })
    }
}

async fn serve_one(
    socket: TcpStream,
    script: Script,
    received: Arc<Received>,
    sent: Arc<Mutex<Vec<(Instant, String)>>>,
) {
    // Events leave as Asterisk sends them, one write each, at once.
    let _ = socket.set_nodelay(true);
    let (mut read, write) = socket.into_split();
    let write = Arc::new(tokio::sync::Mutex::new(write));
    if write.lock().await.write_all(b"Asterisk Call Manager/9.0.0\r\n").await.is_err() {
        return;
    }
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut playing = false;
    loop {
        let n = match read.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buffer.extend_from_slice(&chunk[..n]);
        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let block = String::from_utf8_lossy(&buffer[..end + 4]).into_owned();
            buffer.drain(..end + 4);
            received.0.lock().unwrap_or_else(|p| p.into_inner()).push((Instant::now(), block.clone()));
            let id = block.lines().find_map(|l| l.strip_prefix("ActionID: ")).unwrap_or("").to_owned();
            let answer = if block.starts_with("Action: Login\r\n") {
                if block.contains(&format!("Secret: {SECRET}\r\n")) {
                    format!("Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n")
                } else {
                    format!("Response: Error\r\nActionID: {id}\r\nMessage: Authentication failed\r\n\r\n")
                }
            } else if block.starts_with("Action: PJSIPShowContacts\r\n") {
                let mut list = format!(
                    "Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: A listing of Contacts follows, presented as ContactList events\r\n\r\n"
                );
                for contact in &script.listing {
                    list.push_str(&format!("Event: ContactList\r\nActionID: {id}\r\n{contact}\r\n"));
                }
                list.push_str(&format!(
                    "Event: ContactListComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: {}\r\n\r\n",
                    script.listing.len()
                ));
                list
            } else if block.starts_with("Action: Ping\r\n") {
                format!(
                    "Response: Success\r\nActionID: {id}\r\nPing: Pong\r\nTimestamp: 1796161340.000000\r\n\r\n"
                )
            } else {
                format!("Response: Success\r\nActionID: {id}\r\nMessage: done\r\n\r\n")
            };
            if write.lock().await.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            if answer.contains("Authentication accepted") && !playing {
                playing = true;
                let (write, script, sent) = (write.clone(), script.clone(), sent.clone());
                tokio::spawn(async move {
                    for (pause, block) in &script.events {
                        if !pause.is_zero() {
                            tokio::time::sleep(*pause).await;
                        }
                        // The block is one message: an answer never lands inside it.
                        let mut w = write.lock().await;
                        let (size, gap) = script.trickle.unwrap_or((block.len().max(1), Duration::ZERO));
                        for (i, piece) in block.as_bytes().chunks(size).enumerate() {
                            if i > 0 && !gap.is_zero() {
                                tokio::time::sleep(gap).await;
                            }
                            if w.write_all(piece).await.is_err() {
                                return;
                            }
                        }
                        drop(w);
                        sent.lock().unwrap_or_else(|p| p.into_inner()).push((Instant::now(), block.clone()));
                    }
                    if script.drop_after {
                        let _ = write.lock().await.shutdown().await;
                    }
                });
            }
        }
    }
}
