//! telem-collector: placeholder until the collector lands.
fn main() {
    println!("telem-collector {}", env!("CARGO_PKG_VERSION"));
}
