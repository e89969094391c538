//! Integration tests: real files, a real SQLite database, the real binary.

mod common;
mod corpus;
mod follow;
mod hostile_input;
mod policy_store;
