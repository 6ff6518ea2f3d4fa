//! Integration tests of telem-collector against a real PostgreSQL started by the harness
//! (see `pg.rs`). One test binary, one shared cluster, one database per test.

mod cli;
mod db_tls;
mod faults;
mod handover;
mod hardening;
mod harness;
mod load;
mod migrate_online;
mod pg;
mod pg_version;
mod poison;
mod probe;
mod replay;
mod rollup;
mod roundtrip;
mod router;
mod stalled;
mod store;
mod ui;
mod ui_browser;
mod webdriver;
