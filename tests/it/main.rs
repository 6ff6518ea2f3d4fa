//! The one integration-test binary of telem-deploy (one binary keeps builds fast).

mod adopt;
mod apply;
mod catalog;
mod cli;
mod deploy_password;
mod docs;
mod e2e;
mod e2e_promises;
mod e2e_restarts;
mod e2e_ssh;
mod e2e_support;
mod e2e_tls;
mod facts;
mod fake_commands;
mod fake_host;
mod golden;
mod hostile_input;
mod interrupt;
mod lab_support;
mod lived_in;
mod masking;
mod package;
mod recipe_compile;
#[path = "../support/sandbox.rs"]
mod sandbox;
mod shims;
mod shims_support;
mod ssh_host;
mod ssh_support;
mod targets;
mod tls;
mod uninstall;
mod uninstall_packages;
mod webapp;
mod webapp_fake;
mod webapp_links;
