//! Turns the two wire formats into a [`RawRecord`]: header format (every field its own HTTP
//! header, the body is the payload) and JSON format (one flat object of strings). No rule is
//! applied here beyond what the format itself demands.

use axum::http::HeaderMap;
use serde_json::Value;

use super::{fold_name, normalize_name, Field, RawRecord, Rejection};

const TID_HEADER: &str = "x_telemetry_tid";
const EXTERNAL_HEADER: &str = "x_clr_external";

/// Decodes bytes as UTF-8, falling back to Latin-1 (every byte is a code point) as upstream did.
pub fn decode_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Reads the transport headers both formats carry, plus the record headers when present.
fn scan_headers(headers: &HeaderMap, record_fields: bool) -> RawRecord {
    let mut raw = RawRecord::default();
    for (name, value) in headers {
        let mut buf = [0u8; 32];
        match fold_name(name.as_str(), &mut buf) {
            Some(TID_HEADER) => raw.telemetry_id = Some(decode_text(value.as_bytes())),
            Some(EXTERNAL_HEADER) => raw.external = Some(decode_text(value.as_bytes())),
            Some(folded) if record_fields => {
                if let Some(field) = Field::lookup(folded) {
                    raw.set(field, decode_text(value.as_bytes()));
                }
            }
            _ => {}
        }
    }
    raw
}

/// Header format: fields from headers, the whole body is the payload.
pub fn from_headers(headers: &HeaderMap, body: &[u8]) -> RawRecord {
    let mut raw = scan_headers(headers, true);
    raw.payload = decode_text(body);
    raw
}

/// JSON format: one flat object; strings (and, leniently, numbers) are field values.
pub fn from_json(headers: &HeaderMap, body: &[u8]) -> Result<RawRecord, Rejection> {
    let mut raw = scan_headers(headers, false);
    let object = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(Rejection::malformed("expected a JSON object")),
        Err(_) => return Err(Rejection::malformed("not valid JSON")),
    };
    let mut payload = None;
    for (key, value) in object {
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Null => continue,
            Value::Bool(_) | Value::Array(_) | Value::Object(_) => {
                let field = Field::lookup(&key).map_or("body", Field::name);
                let field = if normalize_name(&key) == "payload" {
                    "payload"
                } else {
                    field
                };
                return Err(Rejection::invalid(field, "expected a string"));
            }
        };
        if normalize_name(&key) == "payload" {
            payload = Some(text);
        } else if let Some(field) = Field::lookup(&key) {
            raw.set(field, text);
        }
    }
    raw.payload = payload.ok_or_else(|| Rejection::missing("payload"))?;
    Ok(raw)
}

/// True when the request carries a JSON record: `Content-Type: application/json`, or no
/// content type that says otherwise, no record headers and a body that starts like an object.
pub fn is_json(headers: &HeaderMap, body: &[u8]) -> bool {
    // Compared without allocating: this runs for every record.
    let starts = |ct: &[u8], prefix: &str| {
        ct.len() >= prefix.len() && ct[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    };
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::as_bytes);
    match content_type {
        Some(ct) if starts(ct, "application/json") => true,
        Some(ct) if starts(ct, "application/text") || starts(ct, "text/") => false,
        _ => {
            let has_record_headers = headers
                .keys()
                .any(|k| Field::lookup(k.as_str()) == Some(Field::RecordFormatVersion));
            !has_record_headers && body.trim_ascii_start().first() == Some(&b'{')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn header_names_are_case_dash_and_underscore_insensitive() {
        for name in ["machine_id", "Machine-Id", "MACHINE_ID", "machine-id"] {
            let raw = from_headers(&headers(&[(name, "abc")]), b"");
            assert_eq!(raw.get(Field::MachineId), Some("abc"), "{name}");
        }
        for name in ["X-Telemetry-TID", "x_telemetry_tid", "X-TELEMETRY-TID"] {
            let raw = from_headers(&headers(&[(name, "t")]), b"");
            assert_eq!(raw.telemetry_id.as_deref(), Some("t"), "{name}");
        }
    }

    #[test]
    fn payload_falls_back_to_latin1() {
        assert_eq!(decode_text("é".as_bytes()), "é");
        assert_eq!(decode_text(&[0x63, 0xe9]), "cé");
    }

    #[test]
    fn json_keys_and_values() {
        let raw = from_json(
            &headers(&[("x-telemetry-tid", "t")]),
            br#"{"Severity":"2","machine-id":"m","payload_format_version":7,"payload":"p","extra":"x","event_id":null}"#,
        )
        .unwrap();
        assert_eq!(raw.get(Field::Severity), Some("2"));
        assert_eq!(raw.get(Field::MachineId), Some("m"));
        assert_eq!(raw.get(Field::PayloadFormatVersion), Some("7"));
        assert_eq!(raw.get(Field::EventId), None);
        assert_eq!(raw.payload, "p");
        assert_eq!(raw.telemetry_id.as_deref(), Some("t"));
    }

    #[test]
    fn json_rejects() {
        let h = HeaderMap::new();
        for (body, field) in [
            (&b"[1]"[..], "body"),
            (b"{", "body"),
            (b"{\"severity\":true,\"payload\":\"\"}", "severity"),
            (b"{\"payload\":[]}", "payload"),
            (b"{\"severity\":\"1\"}", "payload"),
        ] {
            let err = from_json(&h, body).unwrap_err();
            assert_eq!(err.field, field, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn json_detection() {
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert!(is_json(&json, b""));
        let text = headers(&[("content-type", "application/text")]);
        assert!(!is_json(&text, b"{\"a\":1}"));
        assert!(is_json(&HeaderMap::new(), b" {\"a\":1}"));
        let rfv = headers(&[("record_format_version", "4")]);
        assert!(!is_json(&rfv, b"{"));
    }
}
