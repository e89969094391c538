//! Integration tests: real files, a real SQLite database, the real binary.

mod alerts;
mod architecture;
mod attempts;
mod browser;
mod cli;
mod common;
mod corpus;
mod disk_faults;
mod enforce;
mod fail2ban_sample;
mod firewall_render;
mod follow;
mod forged;
mod harness;
mod history_facts;
mod hostile_input;
mod incidents;
mod lifecycle;
mod manager;
mod netns;
mod packaging;
mod panel;
mod pbx;
mod policy_store;
mod retention;
mod robust;
