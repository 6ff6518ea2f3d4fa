//! The one integration-test binary of telem-deploy (one binary keeps builds fast).

mod cli;
mod fake_host;
mod golden;
