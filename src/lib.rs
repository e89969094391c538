//! sipwarden: watches Asterisk logs, attributes every failed authentication to the
//! address that really sent it, and bans attackers.
//!
//! Module map (the path of one failed login, top to bottom):
//!
//! - [`ingest`]: log followers (inotify + polling, rotation-aware, resumable cursors)
//!   read complete new lines;
//! - [`asterisk`]: the only code that knows Asterisk text, turns lines into records
//!   and records into [`domain::LogEvent`]s;
//! - [`policy`]: pure [`policy::decide`] over an address's history; `Pipeline` stores
//!   events and decisions in one transaction with the cursor;
//! - [`store`]: the only code with SQL;
//! - [`enforcer`]: converges the kernel to the database through [`firewall`], the
//!   only code that knows nftables;
//! - [`web`]: the admin panel; [`actions`]: admin actions shared with the [`cli`];
//!   [`pbx`]: applies the ACLs rendered by [`asterisk::acl`] to Asterisk;
//! - [`checklog`]: the same parsing and policy, offline over files; [`demo`];
//! - [`config`], [`clock`], [`control`], [`app`]: wiring.

pub mod actions;
pub mod alerts;
pub mod ami;
pub mod app;
pub mod asterisk;
pub mod checklog;
pub mod cli;
pub mod clock;
pub mod config;
pub(crate) mod control;
pub mod demo;
pub mod domain;
pub mod enforcer;
pub mod firewall;
pub mod geo;
pub mod ingest;
pub mod lockout;
pub mod pbx;
pub mod policy;
pub(crate) mod port_holder;
pub(crate) mod resolver;
pub mod retention;
pub mod shared;
pub mod store;
pub mod watch;
pub mod web;
