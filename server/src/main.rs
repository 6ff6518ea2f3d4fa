//! telem-collector binary: all work happens in the library; main maps the result to an exit code.

fn main() -> std::process::ExitCode {
    telem_collector::run(std::env::args_os())
}
