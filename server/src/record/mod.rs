//! Telemetry records: the fields a client sends, the checked [`Record`] that may be stored, the
//! [`Rejection`] that explains a 400, and the [`RecordView`] JSON shape upstream answered with.
//! Everything here is pure (no I/O), so every rule can be tested in a table.

mod extract;
mod validate;
mod view;

pub use extract::{decode_text, from_headers, from_json, is_json};
pub use validate::{validate, validate_owned};
pub use view::{format_ts, RecordView};

/// The 15 record fields, in the order the client sends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    RecordFormatVersion,
    Classification,
    Severity,
    MachineId,
    CreationTimestamp,
    Arch,
    HostType,
    Build,
    KernelVersion,
    PayloadFormatVersion,
    SystemName,
    BoardName,
    CpuModel,
    BiosVersion,
    EventId,
}

impl Field {
    pub const ALL: [Field; 15] = [
        Field::RecordFormatVersion,
        Field::Classification,
        Field::Severity,
        Field::MachineId,
        Field::CreationTimestamp,
        Field::Arch,
        Field::HostType,
        Field::Build,
        Field::KernelVersion,
        Field::PayloadFormatVersion,
        Field::SystemName,
        Field::BoardName,
        Field::CpuModel,
        Field::BiosVersion,
        Field::EventId,
    ];

    /// The name as the client sends it (lower case, underscores).
    pub fn name(self) -> &'static str {
        match self {
            Field::RecordFormatVersion => "record_format_version",
            Field::Classification => "classification",
            Field::Severity => "severity",
            Field::MachineId => "machine_id",
            Field::CreationTimestamp => "creation_timestamp",
            Field::Arch => "arch",
            Field::HostType => "host_type",
            Field::Build => "build",
            Field::KernelVersion => "kernel_version",
            Field::PayloadFormatVersion => "payload_format_version",
            Field::SystemName => "system_name",
            Field::BoardName => "board_name",
            Field::CpuModel => "cpu_model",
            Field::BiosVersion => "bios_version",
            Field::EventId => "event_id",
        }
    }

    /// Finds a field by a header or JSON key: `_`, `-` and case are equivalent.
    pub fn lookup(name: &str) -> Option<Field> {
        // Called for every header of every request: fold into a stack buffer, no allocation.
        let mut buf = [0u8; 32];
        let folded = fold_name(name, &mut buf)?;
        Field::ALL.into_iter().find(|f| f.name() == folded)
    }
}

/// [`normalize_name`] into `buf`; `None` when the name is longer than any we look for.
pub fn fold_name<'a>(name: &str, buf: &'a mut [u8; 32]) -> Option<&'a str> {
    let bytes = name.as_bytes();
    if bytes.len() > buf.len() || !name.is_ascii() {
        return None;
    }
    for (out, &b) in buf.iter_mut().zip(bytes) {
        *out = if b == b'-' {
            b'_'
        } else {
            b.to_ascii_lowercase()
        };
    }
    std::str::from_utf8(&buf[..bytes.len()]).ok()
}

/// Lower-cases a header name and turns `-` into `_` (`Machine-Id` == `machine_id`).
pub fn normalize_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// What arrived, before any rule is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawRecord {
    /// `X-Telemetry-TID`, from the HTTP headers for both body formats.
    pub telemetry_id: Option<String>,
    /// `X-CLR-External`.
    pub external: Option<String>,
    /// Indexed like [`Field::ALL`].
    pub fields: [Option<String>; 15],
    pub payload: String,
}

impl RawRecord {
    pub fn get(&self, field: Field) -> Option<&str> {
        self.fields[field as usize].as_deref()
    }
    pub fn set(&mut self, field: Field, value: String) {
        self.fields[field as usize] = Some(value);
    }
}

/// A record that passed every rule; every value fits its PostgreSQL column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub record_version: i32,
    pub severity: i32,
    pub classification: String,
    pub machine_id: String,
    pub timestamp_client: i64,
    pub architecture: String,
    pub host_type: String,
    pub build: String,
    pub kernel_version: String,
    pub payload_version: Option<i32>,
    pub system_name: Option<String>,
    pub board_name: String,
    pub cpu_model: String,
    pub bios_version: String,
    pub event_id: String,
    pub external: bool,
    pub payload: String,
}

/// Why a record is refused: the 400 message, and a short reason for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// The field at fault (`X-Telemetry-TID`, a record field, `body`).
    pub field: &'static str,
    pub kind: RejectKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    Missing,
    Invalid,
    Nul,
    Malformed,
}

impl RejectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::Missing => "missing",
            RejectKind::Invalid => "invalid",
            RejectKind::Nul => "nul",
            RejectKind::Malformed => "malformed",
        }
    }
}

impl Rejection {
    pub fn missing(field: &'static str) -> Self {
        Self {
            field,
            kind: RejectKind::Missing,
            message: format!("missing {field}"),
        }
    }
    pub fn invalid(field: &'static str, why: &str) -> Self {
        Self {
            field,
            kind: RejectKind::Invalid,
            message: format!("invalid {field}: {why}"),
        }
    }
    pub fn nul(field: &'static str) -> Self {
        Self {
            field,
            kind: RejectKind::Nul,
            message: format!("invalid {field}: contains a NUL character"),
        }
    }
    pub fn malformed(why: &str) -> Self {
        Self {
            field: "body",
            kind: RejectKind::Malformed,
            message: format!("malformed body: {why}"),
        }
    }
}
