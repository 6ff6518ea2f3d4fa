use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(telem_deploy::run(std::env::args_os()))
}
