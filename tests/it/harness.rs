//! What the process tests share: `sipwarden serve` as a child that is killed however
//! the test ends, one HTTP client for a real panel port, and one way to wait for a
//! condition instead of sleeping a fixed time.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// `sipwarden serve` (or `demo`) to start: the panel on a free loopback port, the
/// firewall a dry run unless [`Serve::arg`] says otherwise.
pub struct Serve {
    cmd: Command,
    quiet_stderr: bool,
}

impl Serve {
    /// `serve --data-dir DATA --listen 127.0.0.1:0`.
    pub fn new(data: &Path) -> Serve {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sipwarden"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data);
        Serve { cmd, quiet_stderr: true }
    }

    /// `serve --firewall dry-run`, the usual start for tests that do not need nft.
    pub fn dry_run(data: &Path) -> Serve {
        Serve::new(data).args(["--firewall", "dry-run"])
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Serve {
        self.cmd.arg(arg);
        self
    }

    pub fn args<S: AsRef<std::ffi::OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Serve {
        self.cmd.args(args);
        self
    }

    /// `--log SPEC` (a path, or `security:PATH`).
    pub fn log(self, spec: impl AsRef<std::ffi::OsStr>) -> Serve {
        self.arg("--log").arg(spec)
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Serve {
        self.cmd.env(key, value);
        self
    }

    /// Keeps what serve writes to stderr in `path` (by default it is dropped).
    pub fn stderr_to(mut self, path: &Path) -> Serve {
        self.cmd.stderr(std::fs::File::create(path).unwrap());
        self.quiet_stderr = false;
        self
    }

    /// Runs it to its end (a start that is refused), with what it printed.
    pub fn output(mut self) -> std::process::Output {
        self.cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output().unwrap()
    }

    /// `ip netns exec NS sipwarden serve --listen ADDRESS:0 --data-dir DATA`: a PBX of
    /// its own network namespace, its panel on `address` there.
    pub fn in_namespace(ns: &str, address: &str, data: &Path) -> Serve {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_sipwarden"), "serve", "--listen"])
            .arg(format!("{address}:0"))
            .arg("--data-dir")
            .arg(data);
        Serve { cmd, quiet_stderr: true }
    }

    /// Starts it and returns at once (no panel port: for tests that stop it early).
    pub fn spawn(mut self) -> Running {
        self.cmd.stdout(Stdio::null());
        if self.quiet_stderr {
            self.cmd.stderr(Stdio::null());
        }
        Running { child: self.cmd.spawn().unwrap(), host: LOOPBACK, port: 0, setup_url: String::new() }
    }

    /// Starts it and waits for the panel: its port is read from the setup address it prints.
    pub fn start(mut self) -> Running {
        self.cmd.stdout(Stdio::piped());
        if self.quiet_stderr {
            self.cmd.stderr(Stdio::null());
        }
        let mut running =
            Running { child: self.cmd.spawn().unwrap(), host: LOOPBACK, port: 0, setup_url: String::new() };
        let stdout = running.child.stdout.take().unwrap();
        (running.port, running.setup_url) = printed_address(stdout);
        running.host = url_host(&running.setup_url);
        running
    }
}

/// A started `serve`: killed when dropped.
pub struct Running {
    pub child: Child,
    /// Where the panel listens: loopback unless started [`Serve::in_namespace`].
    pub host: std::net::IpAddr,
    pub port: u16,
    /// The one-time setup address it printed.
    pub setup_url: String,
}

impl Running {
    pub fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        request_to(self.host, self.port, "GET", path, cookie, "")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGTERM, then its exit status and how long it took to exit.
    pub fn terminate(mut self) -> (ExitStatus, Duration) {
        let began = Instant::now();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::SIGTERM)
            .unwrap();
        let status = self.child.wait().unwrap();
        (status, began.elapsed())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(port, whole address)` of the `http://127.0.0.1:PORT…` line a program prints; the
/// rest of its output is drained in the background so it never blocks on a full pipe.
fn printed_address(out: impl Read + Send + 'static) -> (u16, String) {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(out).lines().map_while(Result::ok);
    let found = lines
        .find_map(|l| {
            let at = l.find("http://")?;
            let url = l[at..].split_whitespace().next()?.to_string();
            let (_, port) = url["http://".len()..].split('/').next()?.rsplit_once(':')?;
            Some((port.parse().ok()?, url))
        })
        .expect("the program prints its panel address");
    std::thread::spawn(move || lines.for_each(drop));
    found
}

const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// The IPv4 address of `http://ADDRESS:PORT/…`.
fn url_host(url: &str) -> std::net::IpAddr {
    let authority = url.trim_start_matches("http://").split('/').next().unwrap_or_default();
    authority.rsplit_once(':').and_then(|(h, _)| h.parse().ok()).unwrap_or(LOOPBACK)
}

/// The panel's port printed by a program, read from `out` (see [`printed_address`]).
pub fn printed_port(out: impl Read + Send + 'static) -> u16 {
    printed_address(out).0
}

/// One HTTP reply: status, raw head and body.
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// `name=value` of the cookie the reply sets.
    pub fn cookie(&self) -> Option<String> {
        Some(self.header("set-cookie")?.split(';').next()?.to_string())
    }
}

/// One HTTP/1.1 request to the panel on loopback `port` (a form body when not empty),
/// as a same-origin browser would send it.
pub fn request(port: u16, method: &str, path: &str, cookie: Option<&str>, form: &str) -> Reply {
    request_to(LOOPBACK, port, method, path, cookie, form)
}

/// [`request`] to the panel at `host`.
pub fn request_to(
    host: std::net::IpAddr,
    port: u16,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: &str,
) -> Reply {
    let mut s = std::net::TcpStream::connect((host, port)).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\nSec-Fetch-Site: same-origin\r\nContent-Length: {}\r\n",
        form.len()
    );
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    if !form.is_empty() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    req.push_str("\r\n");
    req.push_str(form);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Reply { status, head: head.to_string(), body: body.to_string() }
}

/// Waits until `done` holds, checking every 50 ms; fails naming `what` after `within`.
pub fn eventually(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`eventually`] for a condition that must be awaited.
pub async fn eventually_async(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Holds that `never` stays false for the whole of `during`, checking every 50 ms: an
/// absence is only shown by watching for it, never by one look after a sleep.
pub async fn never_async(what: &str, during: Duration, mut never: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + during;
    while Instant::now() < end {
        assert!(!never().await, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
