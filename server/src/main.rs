//! telem-collector binary: all work happens in the library; main maps the result to an exit code.

// glibc malloc showed up as ~25% of the collector's CPU under load (perf); mimalloc halves that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    telem_collector::run(std::env::args_os())
}
