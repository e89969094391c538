//! Starting the manager interface link for `serve`, when `[ami]` is configured.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ami::{self, AmiControl, AmiHealth, AmiSettings, Fallback};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::ingest::pipeline::Pipeline;
use crate::pbx::control::{Cli, Control};

/// The link's parts before its tasks run; `None` inside without `[ami]`.
pub struct Manager(Option<Parts>);

struct Parts {
    settings: AmiSettings,
    health: AmiHealth,
    requests: (mpsc::Sender<ami::Request>, mpsc::Receiver<ami::Request>),
}

impl Manager {
    pub fn new(config: &Config) -> Manager {
        Manager(config.ami.clone().map(|settings| Parts {
            settings,
            health: AmiHealth::default(),
            requests: mpsc::channel(64),
        }))
    }

    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }

    pub fn health(&self) -> Option<AmiHealth> {
        self.0.as_ref().map(|p| p.health.clone())
    }

    /// How sipwarden stops an extension: over the link while it is up, by the CLI otherwise.
    pub fn control(&self, config: &Config) -> Arc<dyn Control> {
        let cli = Cli { command: config.asterisk_command.clone() };
        match &self.0 {
            Some(p) => Arc::new(Fallback {
                ami: AmiControl { requests: p.requests.0.clone(), health: p.health.clone() },
                cli,
            }),
            None => Arc::new(cli),
        }
    }

    /// Runs the link and stores what it delivers, until `stop`.
    pub fn spawn(self, tasks: &TaskTracker, pipeline: Pipeline, stop: CancellationToken) {
        let Some(Parts { settings, health, requests: (_, requests) }) = self.0 else { return };
        let (out, delivered) = mpsc::channel(ami::QUEUE);
        let source = format!("manager {}", settings.address);
        tracing::info!(address = %settings.address, user = %settings.username, "manager interface");
        tasks.spawn(ami::run(settings, health.clone(), Arc::new(SystemClock), out, requests, stop.clone()));
        tasks.spawn(async move {
            crate::ingest::manager::feed(delivered, &pipeline, source, health, stop).await;
        });
    }
}
