//! The upstream collector's validation rules (PROTOCOL.md, "Fields and validation"), plus the
//! checks that keep a record from failing a batch in PostgreSQL (NUL characters, integers out of
//! column range). Pure functions: a [`RawRecord`] in, a [`Record`] or a [`Rejection`] out.

use super::{Field, RawRecord, Record, Rejection};

const ARCHITECTURES: &[&str] = &[
    "armv7l", "armv6l", "aarch64", "amd64", "sparc64", "ppc64", "i686", "i386", "x86_64", "ppc",
];
const NOT_AVAILABLE: &str = "N/A";

/// Longest classification accepted, in bytes. The client builds it from three parts of at most
/// 40 bytes (122 bytes with the slashes). PostgreSQL refuses an index entry above 2704 bytes
/// (a third of a page): the classification is a key of `records_classification_id_idx` and,
/// together with a host type (under 250 characters, at most 996 bytes) or a build, of
/// `record_counts`' primary key; 512 keeps every such entry well inside that limit.
pub const MAX_CLASSIFICATION_BYTES: usize = 512;
const _: () = assert!(
    MAX_CLASSIFICATION_BYTES >= 122,
    "the real client sends 122 bytes"
);
/// Longest kernel_version and system_name accepted, in bytes (the client sends `uname -r`,
/// at most 64 bytes, and os-release's `ID`). Neither is indexed; the limit keeps absurd values
/// out of every page that shows them.
pub const MAX_KERNEL_VERSION_BYTES: usize = 256;
pub const MAX_SYSTEM_NAME_BYTES: usize = 256;

fn check_bytes(field: &'static str, v: &str, max: usize) -> Result<(), Rejection> {
    if v.len() <= max {
        Ok(())
    } else {
        Err(Rejection::invalid(
            field,
            &format!("longer than {max} bytes"),
        ))
    }
}
const TID_FIELD: &str = "X-Telemetry-TID";

/// Python's `string.printable`: ASCII letters, digits, punctuation and ` \t\n\r\x0b\x0c`.
pub fn is_printable(s: &str) -> bool {
    s.chars()
        .all(|c| matches!(c, ' '..='~' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'))
}

/// Python's `int()` on a string, as far as clients can send it: surrounding whitespace, an
/// optional sign, ASCII digits with single `_` between them. `None` when not an integer or
/// beyond i64 (which no column of ours can hold anyway).
pub fn python_int(s: &str) -> Option<i64> {
    let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    let value: i64 = digits.replace('_', "").parse().ok()?;
    Some(if negative { -value } else { value })
}

fn strip_quotes(s: &str) -> &str {
    s.trim_matches('"')
}

fn required(raw: &RawRecord, field: Field) -> Result<&str, Rejection> {
    raw.get(field)
        .ok_or_else(|| Rejection::missing(field.name()))
}

fn check_severity(v: &str) -> Result<i32, Rejection> {
    match python_int(v) {
        Some(n @ 1..=4) => Ok(n as i32),
        _ => Err(Rejection::invalid(
            "severity",
            "must be an integer from 1 to 4",
        )),
    }
}

fn check_classification(v: &str) -> Result<(), Rejection> {
    check_bytes("classification", v, MAX_CLASSIFICATION_BYTES)?;
    if v.split('/').count() == 3 {
        Ok(())
    } else {
        Err(Rejection::invalid(
            "classification",
            "must have exactly three parts separated by /",
        ))
    }
}

fn check_machine_id(v: &str) -> Result<(), Rejection> {
    if v.chars().count() <= 32 {
        Ok(())
    } else {
        Err(Rejection::invalid(
            "machine_id",
            "longer than 32 characters",
        ))
    }
}

fn check_timestamp(v: &str) -> Result<i64, Rejection> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::invalid(
            "creation_timestamp",
            "must be decimal digits (unix seconds)",
        ));
    }
    v.parse()
        .map_err(|_| Rejection::invalid("creation_timestamp", "out of range"))
}

fn check_arch(v: &str) -> Result<(), Rejection> {
    if ARCHITECTURES.contains(&v) {
        Ok(())
    } else {
        Err(Rejection::invalid("arch", "unknown architecture"))
    }
}

fn check_host_type(v: &str) -> Result<(), Rejection> {
    if v.chars().count() < 250 {
        Ok(())
    } else {
        Err(Rejection::invalid("host_type", "250 characters or longer"))
    }
}

fn check_kernel_version(v: &str) -> Result<(), Rejection> {
    check_bytes("kernel_version", v, MAX_KERNEL_VERSION_BYTES)?;
    let mut parts = v.splitn(3, '.');
    let decimal =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if decimal(parts.next()) && decimal(parts.next()) && parts.next().is_some() {
        Ok(())
    } else {
        Err(Rejection::invalid(
            "kernel_version",
            "expected A.B.rest with A and B decimal",
        ))
    }
}

fn check_build(build: &str, system_name: Option<&str>) -> Result<String, Rejection> {
    let build = strip_quotes(build);
    let valid = if system_name == Some("clear-linux-os") {
        !build.is_empty() && build.bytes().all(|b| b.is_ascii_digit())
    } else {
        !build.is_empty()
            && build
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if !valid {
        let why = if system_name == Some("clear-linux-os") {
            "must be digits on clear-linux-os"
        } else {
            "must match [-_a-zA-Z0-9.]+"
        };
        return Err(Rejection::invalid("build", why));
    }
    if build.chars().count() >= 200 {
        return Err(Rejection::invalid("build", "200 characters or longer"));
    }
    Ok(build.to_string())
}

fn check_payload_version(v: &str) -> Result<i32, Rejection> {
    match python_int(v) {
        Some(n) if n < i64::from(i32::MAX) && n >= i64::from(i32::MIN) => Ok(n as i32),
        Some(_) => Err(Rejection::invalid("payload_format_version", "out of range")),
        None => Err(Rejection::invalid(
            "payload_format_version",
            "must be an integer",
        )),
    }
}

fn check_printable(field: Field, v: &str) -> Result<(), Rejection> {
    if !is_printable(v) {
        Err(Rejection::invalid(
            field.name(),
            "contains non-printable characters",
        ))
    } else if v.chars().count() >= 200 {
        Err(Rejection::invalid(field.name(), "200 characters or longer"))
    } else {
        Ok(())
    }
}

fn check_event_id(v: &str) -> Result<(), Rejection> {
    if v.len() == 32 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(Rejection::invalid(
            "event_id",
            "must be 32 lowercase hex characters",
        ))
    }
}

/// Applies every rule, in upstream order (telemetry ID first).
pub fn validate(raw: &RawRecord, telemetry_id: &str) -> Result<Record, Rejection> {
    checked(raw, telemetry_id, true)
}

/// Every rule of [`validate`]. With `copy` false the values a record takes from `raw` as they
/// are ([`MOVED`]) are left empty, for [`validate_owned`] to move them in.
fn checked(raw: &RawRecord, telemetry_id: &str, copy: bool) -> Result<Record, Rejection> {
    let own = |v: &str| if copy { v.to_string() } else { String::new() };
    match raw.telemetry_id.as_deref() {
        None => return Err(Rejection::missing(TID_FIELD)),
        Some(tid) if tid != telemetry_id => {
            return Err(Rejection::invalid(
                TID_FIELD,
                "does not match this collector",
            ))
        }
        Some(_) => {}
    }
    // PostgreSQL text cannot hold NUL: refuse it here so it never reaches a batch.
    for field in Field::ALL {
        if raw.get(field).is_some_and(|v| v.contains('\0')) {
            return Err(Rejection::nul(field.name()));
        }
    }
    if raw.payload.contains('\0') {
        return Err(Rejection::nul("payload"));
    }

    let record_version = match python_int(required(raw, Field::RecordFormatVersion)?) {
        Some(n @ 1..=4) => n as i32,
        _ => {
            return Err(Rejection::invalid(
                "record_format_version",
                "must be 1, 2, 3 or 4",
            ))
        }
    };
    let classification = required(raw, Field::Classification)?;
    check_classification(classification)?;
    let severity = check_severity(required(raw, Field::Severity)?)?;
    let machine_id = required(raw, Field::MachineId)?;
    check_machine_id(machine_id)?;
    let timestamp_client = check_timestamp(required(raw, Field::CreationTimestamp)?)?;
    let arch = required(raw, Field::Arch)?;
    check_arch(arch)?;
    let host_type = required(raw, Field::HostType)?;
    check_host_type(host_type)?;
    let build = required(raw, Field::Build)?;
    let kernel_version = required(raw, Field::KernelVersion)?;
    check_kernel_version(kernel_version)?;

    let (payload_version, system_name) = if record_version >= 2 {
        let pv = check_payload_version(required(raw, Field::PayloadFormatVersion)?)?;
        let sn = strip_quotes(required(raw, Field::SystemName)?);
        check_bytes("system_name", sn, MAX_SYSTEM_NAME_BYTES)?;
        let sn = sn.to_string();
        (Some(pv), Some(sn))
    } else {
        (None, None)
    };
    let build = check_build(build, system_name.as_deref())?;

    let optional_info = |field: Field| -> Result<String, Rejection> {
        if record_version >= 3 {
            let v = required(raw, field)?;
            check_printable(field, v)?;
            Ok(own(v))
        } else {
            // Upstream stored N/A here; keep what v1.14.0 clients sent when it is valid.
            Ok(raw
                .get(field)
                .filter(|v| check_printable(field, v).is_ok())
                .unwrap_or(NOT_AVAILABLE)
                .to_string())
        }
    };
    let board_name = optional_info(Field::BoardName)?;
    let cpu_model = optional_info(Field::CpuModel)?;
    let bios_version = optional_info(Field::BiosVersion)?;

    let event_id = if record_version >= 4 {
        let v = required(raw, Field::EventId)?;
        check_event_id(v)?;
        own(v)
    } else {
        NOT_AVAILABLE.to_string()
    };

    Ok(Record {
        record_version,
        severity,
        classification: own(classification),
        machine_id: own(machine_id),
        timestamp_client,
        architecture: own(arch),
        host_type: own(host_type),
        build,
        kernel_version: own(kernel_version),
        payload_version,
        system_name,
        board_name,
        cpu_model,
        bios_version,
        event_id,
        external: raw
            .external
            .as_deref()
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
        payload: if copy {
            raw.payload.clone()
        } else {
            String::new()
        },
    })
}

/// [`validate`] for the request path: the values a record takes as they arrived (the payload,
/// the largest, and most fields) move into it instead of being copied. Same checks, same
/// order, same outcome; on a rejection the raw record comes back whole (its fields name the
/// client in the log).
pub fn validate_owned(
    mut raw: RawRecord,
    telemetry_id: &str,
) -> Result<Record, Box<(Rejection, RawRecord)>> {
    let mut record = match checked(&raw, telemetry_id, false) {
        Ok(record) => record,
        Err(rejection) => return Err(Box::new((rejection, raw))),
    };
    let mut take = |field: Field| raw.fields[field as usize].take().unwrap_or_default();
    record.classification = take(Field::Classification);
    record.machine_id = take(Field::MachineId);
    record.architecture = take(Field::Arch);
    record.host_type = take(Field::HostType);
    record.kernel_version = take(Field::KernelVersion);
    if record.record_version >= 3 {
        record.board_name = take(Field::BoardName);
        record.cpu_model = take(Field::CpuModel);
        record.bios_version = take(Field::BiosVersion);
    }
    if record.record_version >= 4 {
        record.event_id = take(Field::EventId);
    }
    record.payload = raw.payload;
    Ok(record)
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
