//! What sipwarden asks of a running Asterisk when an extension is cracked: hang up its
//! calls, and mark it locked in Asterisk's database (AstDB family `sipwarden-locked`)
//! for a dialplan hook to refuse its new calls.

use std::process::Command;
use std::time::Duration;

/// The AstDB family a locked extension is written to; the dialplan hook reads it.
pub const LOCK_FAMILY: &str = "sipwarden-locked";
/// Asterisk's CLI may hang when Asterisk does: never wait longer than this.
const CLI_TIMEOUT: Duration = Duration::from_secs(3);

/// A running Asterisk, as far as stopping an extension goes. The manager interface and
/// the CLI are two ways to it; tests record what is asked.
pub trait Control: Send + Sync {
    /// Ends one call: `PJSIP/1002-00000006`.
    fn hangup(&self, channel: &str) -> Result<(), String>;
    /// Ends every call of an extension, those sipwarden has not seen too.
    fn hangup_all(&self, tech: &str, extension: &str) -> Result<(), String>;
    /// Marks `account` locked (or no longer) for the dialplan hook.
    fn set_locked(&self, account: &str, locked: bool) -> Result<(), String>;
}

/// Names Asterisk's CLI takes as one word: channel and account names sipwarden passes
/// on. Anything else (attacker text in an account name) is not passed.
pub fn is_plain_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 80
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-.@+;:".contains(&b))
}

/// `asterisk -rx COMMAND`.
pub struct Cli {
    pub command: Vec<String>,
}

impl Cli {
    fn run(&self, command: &str) -> Result<String, String> {
        let Some((program, args)) = self.command.split_first() else {
            return Err("no Asterisk command configured".into());
        };
        let mut child = Command::new(program)
            .args(args)
            .args(["-rx", command])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("`{program} -rx '{command}'`: {e}"))?;
        let started = std::time::Instant::now();
        loop {
            match child.try_wait().map_err(|e| e.to_string())? {
                Some(_) => break,
                None if started.elapsed() > CLI_TIMEOUT => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("`{program} -rx '{command}'` did not answer within {CLI_TIMEOUT:?}"));
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() || text.contains("No such command") || text.starts_with("Unable to connect")
        {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!("`{program} -rx '{command}'` failed: {text} {}", err.trim()));
        }
        Ok(text)
    }
}

impl Control for Cli {
    fn hangup(&self, channel: &str) -> Result<(), String> {
        if !is_plain_name(channel) {
            return Err(format!("{channel:?} is not a channel name"));
        }
        self.run(&format!("channel request hangup {channel}")).map(drop)
    }

    fn hangup_all(&self, _tech: &str, _extension: &str) -> Result<(), String> {
        Err("Asterisk's CLI hangs up calls one by one only".into())
    }

    fn set_locked(&self, account: &str, locked: bool) -> Result<(), String> {
        if !is_plain_name(account) {
            return Err(format!("{account:?} is not an extension name"));
        }
        let command = if locked {
            format!("database put {LOCK_FAMILY} {account} 1")
        } else {
            format!("database del {LOCK_FAMILY} {account}")
        };
        self.run(&command).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_reach_the_cli() {
        assert!(is_plain_name("PJSIP/1002-00000006"));
        assert!(is_plain_name("1002"));
        assert!(!is_plain_name("1002 ; core stop now"));
        assert!(!is_plain_name("a\"b"));
        assert!(!is_plain_name(""));
    }

    #[test]
    fn a_cli_that_hangs_is_given_up() {
        let cli = Cli { command: vec!["sh".into(), "-c".into(), "sleep 30".into(), "sh".into()] };
        let started = std::time::Instant::now();
        assert!(cli.hangup("PJSIP/1-0").unwrap_err().contains("did not answer"));
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
