//! Header format (client v1.9–v2.3.5): every field an HTTP header, the body is the payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telem_collector::record;
use telem_collector_fuzz::{check_accepted, split_request, TID};

fuzz_target!(|data: &[u8]| {
    let (headers, body) = split_request(data);
    let raw = record::from_headers(&headers, body);
    if let Ok(valid) = record::validate(&raw, TID) {
        check_accepted(valid);
    }
});
