//! Tests that load the whole machine for a minute or more, in a test binary of their own:
//! cargo runs test binaries one after another, so nothing else of the suite runs meanwhile
//! and their timing and the other tests' timing cannot disturb each other. They share the
//! `it` binary's PostgreSQL and request helpers (their own cluster, as every binary has).

#[allow(dead_code)]
#[path = "../it/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "../it/pg.rs"]
mod pg;
mod readers;
