//! Shared by the fuzz targets: turns fuzz input shaped like a captured request (request line,
//! `Name: value` header lines, blank line, body; the `.http` vectors are valid inputs) into
//! what the collector's handler gets from hyper, and checks what every accepted record must
//! satisfy.

use http::{HeaderMap, HeaderName, HeaderValue};
use telem_collector::record::{Record, RecordView};

pub const TID: &str = "6907c830-eed9-4ce9-81ae-76daf8d88f0f";

/// Headers and body of a request. Header lines hyper would refuse are skipped (they never
/// reach the handler); the header count is capped like hyper's (100).
pub fn split_request(data: &[u8]) -> (HeaderMap, &[u8]) {
    let (head, body) = match data.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&data[..i], &data[i + 4..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n').skip(1).take(100) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    (headers, body)
}

/// What storage relies on: no NUL anywhere (PostgreSQL text), bounded lengths, a version and
/// severity in range; and the 201 body serialises.
pub fn check_accepted(record: Record) {
    let texts = [
        &record.classification,
        &record.machine_id,
        &record.architecture,
        &record.host_type,
        &record.build,
        &record.kernel_version,
        &record.board_name,
        &record.cpu_model,
        &record.bios_version,
        &record.event_id,
        &record.payload,
    ];
    for t in texts {
        assert!(!t.contains('\0'), "NUL in an accepted record: {record:?}");
    }
    assert!(record.system_name.as_ref().is_none_or(|s| !s.contains('\0')));
    assert!((1..=4).contains(&record.record_version));
    assert!((1..=4).contains(&record.severity));
    assert!(record.machine_id.chars().count() <= 32);
    assert!(record.host_type.chars().count() < 250);
    assert!(record.build.chars().count() < 200);
    assert_eq!(record.classification.split('/').count(), 3);
    let view = RecordView::new(1, record, 1_795_758_044.5);
    serde_json::to_vec(&view).expect("the 201 body serialises");
}
