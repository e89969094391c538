//! Integration tests: real files, a real SQLite database, the real binary.

mod cli;
mod common;
mod corpus;
mod enforce;
mod firewall_render;
mod follow;
mod hostile_input;
mod netns;
mod policy_store;
