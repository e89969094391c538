//! Stopping an extension through the manager interface, and through the CLI when the
//! manager link is down.

use std::time::Duration;

use tokio::sync::mpsc;

use super::{AmiHealth, Request};
use crate::asterisk::ami;
use crate::pbx::control::{Cli, Control, LOCK_FAMILY, is_plain_name};

/// How long an action may wait for Asterisk's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// Actions sent over the running manager link.
#[derive(Clone)]
pub struct AmiControl {
    pub requests: mpsc::Sender<Request>,
    pub health: AmiHealth,
}

impl AmiControl {
    fn send(&self, text: impl FnOnce(&str) -> String + Send + 'static) -> Result<(), String> {
        if !self.health.is_connected() {
            return Err("the manager interface is not connected".into());
        }
        let (reply, answer) = std::sync::mpsc::channel();
        self.requests
            .blocking_send(Request { text: Box::new(text), reply })
            .map_err(|_| "the manager link has stopped".to_string())?;
        answer.recv_timeout(ANSWER_WITHIN).map_err(|_| "no answer from the manager interface".to_string())?
    }
}

impl Control for AmiControl {
    fn hangup(&self, channel: &str) -> Result<(), String> {
        let channel = channel.to_owned();
        self.send(move |id| ami::hangup(id, &channel))
    }

    fn hangup_all(&self, tech: &str, extension: &str) -> Result<(), String> {
        let pattern = ami::channels_of(tech, extension);
        self.send(move |id| ami::hangup(id, &pattern))
    }

    fn set_locked(&self, account: &str, locked: bool) -> Result<(), String> {
        if !is_plain_name(account) {
            return Err(format!("{account:?} is not an extension name"));
        }
        let account = account.to_owned();
        if locked {
            self.send(move |id| ami::db_put(id, LOCK_FAMILY, &account, "1"))
        } else {
            self.send(move |id| ami::db_del(id, LOCK_FAMILY, &account))
        }
    }
}

/// The manager interface when it is connected, Asterisk's CLI otherwise.
pub struct Fallback {
    pub ami: AmiControl,
    pub cli: Cli,
}

impl Fallback {
    fn either(
        &self,
        by_ami: impl Fn(&AmiControl) -> Result<(), String>,
        by_cli: impl Fn(&Cli) -> Result<(), String>,
    ) -> Result<(), String> {
        match by_ami(&self.ami) {
            Ok(()) => Ok(()),
            Err(ami_error) => by_cli(&self.cli).map_err(|cli_error| format!("{ami_error}; {cli_error}")),
        }
    }
}

impl Control for Fallback {
    fn hangup(&self, channel: &str) -> Result<(), String> {
        self.either(|a| a.hangup(channel), |c| c.hangup(channel))
    }

    fn hangup_all(&self, tech: &str, extension: &str) -> Result<(), String> {
        self.either(|a| a.hangup_all(tech, extension), |c| c.hangup_all(tech, extension))
    }

    fn set_locked(&self, account: &str, locked: bool) -> Result<(), String> {
        self.either(|a| a.set_locked(account, locked), |c| c.set_locked(account, locked))
    }
}
