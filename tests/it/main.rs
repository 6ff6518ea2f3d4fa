//! The one integration-test binary of telem-deploy (one binary keeps builds fast).

mod adopt;
mod apply;
mod cli;
mod e2e;
mod e2e_support;
mod fake_commands;
mod fake_host;
mod golden;
mod interrupt;
mod lived_in;
#[path = "../support/sandbox.rs"]
mod sandbox;
mod shims;
mod shims_support;
mod uninstall;
mod webapp;
mod webapp_fake;
