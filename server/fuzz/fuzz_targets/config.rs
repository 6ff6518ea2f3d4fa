//! The config loader: a TOML file, then `KEY=value` overrides (environment and flags) after a
//! line holding only `--`, then the checks of `Config::resolve`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telem_collector::config::{Config, RawConfig};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (file, overrides) = text.split_once("\n--\n").unwrap_or((&text, ""));
    let Ok(mut raw) = RawConfig::from_toml(file) else {
        return;
    };
    for line in overrides.lines() {
        if let Some((key, value)) = line.split_once('=') {
            if raw.set(key, value).is_err() {
                return;
            }
        }
    }
    // Reading an arbitrary path (a FIFO, /dev/zero) is the operator's choice, not input.
    raw.database_password_file = None;
    if let Ok(config) = Config::resolve(raw) {
        // Debug output masks the password; it must never panic.
        let _ = format!("{config:?}");
        let _ = config.pg_config();
    }
});
