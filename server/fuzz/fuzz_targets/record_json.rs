//! JSON format (client v2.4.0+): one flat object of strings; the TID is still a header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telem_collector::record;
use telem_collector_fuzz::{check_accepted, split_request, TID};

fuzz_target!(|data: &[u8]| {
    let (headers, body) = split_request(data);
    // The handler's own choice of format must not panic either.
    let _ = record::is_json(&headers, body);
    if let Ok(raw) = record::from_json(&headers, body) {
        if let Ok(valid) = record::validate(&raw, TID) {
            check_accepted(valid);
        }
    }
});
