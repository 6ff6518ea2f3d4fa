//! Table-driven accept and reject cases for every rule in PROTOCOL.md.

use super::*;
use crate::record::RejectKind;

const TID: &str = "6907c830-eed9-4ce9-81ae-76daf8d88f0f";

/// A valid format-4 record as the v2.3.5 client sends it.
fn base(version: &str) -> RawRecord {
    let mut raw = RawRecord {
        telemetry_id: Some(TID.to_string()),
        payload: "hello\n".to_string(),
        ..RawRecord::default()
    };
    for (field, value) in [
        (Field::RecordFormatVersion, version),
        (Field::Classification, "org.clearlinux/hello/world"),
        (Field::Severity, "2"),
        (Field::MachineId, "05510b6cfbd41f2f7220d73f24a0a1ea"),
        (Field::CreationTimestamp, "1795758044"),
        (Field::Arch, "x86_64"),
        (Field::HostType, "Intel Corporation|NUC7i5BNH|J31144-313"),
        (Field::Build, "31870"),
        (Field::KernelVersion, "6.18.44-fc-v657"),
        (Field::PayloadFormatVersion, "1"),
        (Field::SystemName, "clear-linux-os"),
        (Field::BoardName, "NUC7i5BNB|Intel Corporation"),
        (Field::CpuModel, "Intel(R) Core(TM) i5-7260U CPU @ 2.20GHz"),
        (Field::BiosVersion, "BNKBL357.86A.0062.2018.0222.1644"),
        (Field::EventId, "0123456789abcdef0123456789abcdef"),
    ] {
        raw.set(field, value.to_string());
    }
    raw
}

enum Edit {
    Set(Field, &'static str),
    Remove(Field),
    Tid(Option<&'static str>),
    Payload(&'static str),
}
use Edit::*;

fn apply(mut raw: RawRecord, edits: &[Edit]) -> RawRecord {
    for edit in edits {
        match edit {
            Set(f, v) => raw.set(*f, v.to_string()),
            Remove(f) => raw.fields[*f as usize] = None,
            Tid(t) => raw.telemetry_id = t.map(str::to_string),
            Payload(p) => raw.payload = p.to_string(),
        }
    }
    raw
}

/// (case name, record format, edits, None = accepted or Some(field named in the 400)).
type Case = (&'static str, &'static str, Vec<Edit>, Option<&'static str>);

fn cases() -> Vec<Case> {
    use Field::*;
    let long = |n: usize| -> &'static str { Box::leak("x".repeat(n).into_boxed_str()) };
    vec![
        // X-Telemetry-TID
        ("tid ok", "4", vec![], None),
        ("tid missing", "4", vec![Tid(None)], Some("X-Telemetry-TID")),
        (
            "tid wrong",
            "4",
            vec![Tid(Some("nope"))],
            Some("X-Telemetry-TID"),
        ),
        (
            "tid checked first",
            "4",
            vec![Tid(None), Remove(Severity)],
            Some("X-Telemetry-TID"),
        ),
        // record_format_version
        ("rfv 1", "1", vec![], None),
        ("rfv 2", "2", vec![], None),
        ("rfv 3", "3", vec![], None),
        ("rfv 0", "0", vec![], Some("record_format_version")),
        ("rfv 5", "5", vec![], Some("record_format_version")),
        ("rfv text", "x", vec![], Some("record_format_version")),
        (
            "rfv missing",
            "4",
            vec![Remove(RecordFormatVersion)],
            Some("record_format_version"),
        ),
        // severity
        ("severity 1", "4", vec![Set(Severity, "1")], None),
        ("severity 4", "4", vec![Set(Severity, "4")], None),
        (
            "severity python int",
            "4",
            vec![Set(Severity, " +3 ")],
            None,
        ),
        (
            "severity 0",
            "4",
            vec![Set(Severity, "0")],
            Some("severity"),
        ),
        (
            "severity 5",
            "4",
            vec![Set(Severity, "5")],
            Some("severity"),
        ),
        (
            "severity text",
            "4",
            vec![Set(Severity, "high")],
            Some("severity"),
        ),
        (
            "severity huge",
            "4",
            vec![Set(Severity, "99999999999999999999999")],
            Some("severity"),
        ),
        (
            "severity missing",
            "4",
            vec![Remove(Severity)],
            Some("severity"),
        ),
        // classification
        (
            "classification 3 parts",
            "4",
            vec![Set(Classification, "a/b/c")],
            None,
        ),
        (
            "classification 2 parts",
            "4",
            vec![Set(Classification, "a/b")],
            Some("classification"),
        ),
        (
            "classification 4 parts",
            "4",
            vec![Set(Classification, "a/b/c/d")],
            Some("classification"),
        ),
        (
            "classification missing",
            "4",
            vec![Remove(Classification)],
            Some("classification"),
        ),
        // machine_id
        ("machine_id 32", "4", vec![Set(MachineId, long(32))], None),
        (
            "machine_id 33",
            "4",
            vec![Set(MachineId, long(33))],
            Some("machine_id"),
        ),
        (
            "machine_id missing",
            "4",
            vec![Remove(MachineId)],
            Some("machine_id"),
        ),
        // creation_timestamp
        (
            "timestamp digits",
            "4",
            vec![Set(CreationTimestamp, "0")],
            None,
        ),
        (
            "timestamp negative",
            "4",
            vec![Set(CreationTimestamp, "-1")],
            Some("creation_timestamp"),
        ),
        (
            "timestamp float",
            "4",
            vec![Set(CreationTimestamp, "1.5")],
            Some("creation_timestamp"),
        ),
        (
            "timestamp empty",
            "4",
            vec![Set(CreationTimestamp, "")],
            Some("creation_timestamp"),
        ),
        (
            "timestamp out of range",
            "4",
            vec![Set(CreationTimestamp, "99999999999999999999")],
            Some("creation_timestamp"),
        ),
        (
            "timestamp missing",
            "4",
            vec![Remove(CreationTimestamp)],
            Some("creation_timestamp"),
        ),
        // arch
        ("arch aarch64", "4", vec![Set(Arch, "aarch64")], None),
        ("arch ppc", "4", vec![Set(Arch, "ppc")], None),
        ("arch i686", "4", vec![Set(Arch, "i686")], None),
        (
            "arch riscv64",
            "4",
            vec![Set(Arch, "riscv64")],
            Some("arch"),
        ),
        ("arch case", "4", vec![Set(Arch, "X86_64")], Some("arch")),
        ("arch missing", "4", vec![Remove(Arch)], Some("arch")),
        // host_type
        ("host_type 249", "4", vec![Set(HostType, long(249))], None),
        (
            "host_type 250",
            "4",
            vec![Set(HostType, long(250))],
            Some("host_type"),
        ),
        (
            "host_type missing",
            "4",
            vec![Remove(HostType)],
            Some("host_type"),
        ),
        // kernel_version
        (
            "kernel A.B.rest",
            "4",
            vec![Set(KernelVersion, "4.14.0")],
            None,
        ),
        ("kernel A.B.", "4", vec![Set(KernelVersion, "4.14.")], None),
        (
            "kernel A.B",
            "4",
            vec![Set(KernelVersion, "4.14")],
            Some("kernel_version"),
        ),
        (
            "kernel letters",
            "4",
            vec![Set(KernelVersion, "v4.14.0")],
            Some("kernel_version"),
        ),
        (
            "kernel missing",
            "4",
            vec![Remove(KernelVersion)],
            Some("kernel_version"),
        ),
        // build
        ("build clear digits", "4", vec![Set(Build, "31870")], None),
        (
            "build clear quoted",
            "4",
            vec![Set(Build, "\"31870\"")],
            None,
        ),
        (
            "build clear letters",
            "4",
            vec![Set(Build, "31870a")],
            Some("build"),
        ),
        (
            "build other charset",
            "4",
            vec![Set(SystemName, "debian"), Set(Build, "12.1-rc_2")],
            None,
        ),
        (
            "build other quoted",
            "4",
            vec![Set(SystemName, "\"debian\""), Set(Build, "\"12\"")],
            None,
        ),
        (
            "build other space",
            "4",
            vec![Set(SystemName, "debian"), Set(Build, "12 1")],
            Some("build"),
        ),
        (
            "build quoted clear name",
            "4",
            vec![Set(SystemName, "\"clear-linux-os\""), Set(Build, "abc")],
            Some("build"),
        ),
        (
            "build 199",
            "4",
            vec![Set(SystemName, "debian"), Set(Build, long(199))],
            None,
        ),
        (
            "build 200",
            "4",
            vec![Set(SystemName, "debian"), Set(Build, long(200))],
            Some("build"),
        ),
        ("build empty", "4", vec![Set(Build, "\"\"")], Some("build")),
        ("build missing", "4", vec![Remove(Build)], Some("build")),
        (
            "build format 1 no system_name",
            "1",
            vec![Remove(SystemName), Set(Build, "abc")],
            None,
        ),
        // payload_format_version
        ("pfv 7", "4", vec![Set(PayloadFormatVersion, "7")], None),
        (
            "pfv max-1",
            "4",
            vec![Set(PayloadFormatVersion, "2147483646")],
            None,
        ),
        (
            "pfv max",
            "4",
            vec![Set(PayloadFormatVersion, "2147483647")],
            Some("payload_format_version"),
        ),
        (
            "pfv text",
            "4",
            vec![Set(PayloadFormatVersion, "one")],
            Some("payload_format_version"),
        ),
        (
            "pfv missing",
            "4",
            vec![Remove(PayloadFormatVersion)],
            Some("payload_format_version"),
        ),
        (
            "pfv not needed in format 1",
            "1",
            vec![Remove(PayloadFormatVersion)],
            None,
        ),
        // system_name
        (
            "system_name missing",
            "2",
            vec![Remove(SystemName)],
            Some("system_name"),
        ),
        (
            "system_name not needed in format 1",
            "1",
            vec![Remove(SystemName)],
            None,
        ),
        // board_name, cpu_model, bios_version
        (
            "cpu_model spaces",
            "3",
            vec![Set(CpuModel, "AMD EPYC 7B13 64-Core")],
            None,
        ),
        ("cpu_model 199", "3", vec![Set(CpuModel, long(199))], None),
        (
            "cpu_model 200",
            "3",
            vec![Set(CpuModel, long(200))],
            Some("cpu_model"),
        ),
        (
            "board_name non-printable",
            "3",
            vec![Set(BoardName, "caf\u{e9}")],
            Some("board_name"),
        ),
        (
            "bios_version missing",
            "3",
            vec![Remove(BiosVersion)],
            Some("bios_version"),
        ),
        (
            "board_name missing",
            "4",
            vec![Remove(BoardName)],
            Some("board_name"),
        ),
        (
            "cpu_model not needed in format 2",
            "2",
            vec![Remove(CpuModel)],
            None,
        ),
        (
            "bad cpu_model ignored in format 2",
            "2",
            vec![Set(CpuModel, long(300))],
            None,
        ),
        // event_id
        (
            "event_id missing",
            "4",
            vec![Remove(EventId)],
            Some("event_id"),
        ),
        (
            "event_id upper",
            "4",
            vec![Set(EventId, "0123456789ABCDEF0123456789ABCDEF")],
            Some("event_id"),
        ),
        (
            "event_id short",
            "4",
            vec![Set(EventId, "0123")],
            Some("event_id"),
        ),
        (
            "event_id not needed in format 3",
            "3",
            vec![Remove(EventId)],
            None,
        ),
        // NUL anywhere
        (
            "nul in payload",
            "4",
            vec![Payload("a\0b")],
            Some("payload"),
        ),
        (
            "nul in field",
            "4",
            vec![Set(SystemName, "deb\0ian")],
            Some("system_name"),
        ),
        (
            "special payload",
            "4",
            vec![Payload("tab\there\rcr\x0cff\x0bvt \"q\" \\ caf\u{e9}")],
            None,
        ),
    ]
}

#[test]
fn every_rule_accepts_and_rejects() {
    let mut failures = Vec::new();
    for (name, version, edits, expected) in cases() {
        let raw = apply(base(version), &edits);
        let got = validate(&raw, TID);
        let ok = match (&got, expected) {
            (Ok(_), None) => true,
            (Err(rej), Some(field)) => rej.field == field && rej.message.contains(field),
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The request path's `validate_owned` (values moved, not copied) decides exactly as
/// `validate` and stores the same values, for every case of the table, payloads with NUL and
/// records of every version included.
#[test]
fn validate_owned_agrees_with_validate() {
    let mut raws: Vec<RawRecord> = cases()
        .into_iter()
        .map(|(_, version, edits, _)| apply(base(version), &edits))
        .collect();
    for version in ["1", "2", "3", "4"] {
        let mut raw = base(version);
        raw.payload = "with\0nul".into();
        raws.push(raw);
    }
    for raw in raws {
        let by_ref = validate(&raw, TID);
        match (validate_owned(raw.clone(), TID), by_ref) {
            (Ok(owned), Ok(copied)) => assert_eq!(owned, copied),
            (Err(rejected), Err(expected)) => {
                let (rejection, back) = *rejected;
                assert_eq!(
                    (rejection.kind, rejection.field, rejection.message),
                    (expected.kind, expected.field, expected.message)
                );
                assert_eq!(back, raw, "a rejected record comes back whole");
            }
            (owned, copied) => panic!("{raw:?}: owned {owned:?}, by reference {copied:?}"),
        }
    }
}

#[test]
fn stored_values() {
    let r = validate(&base("4"), TID).unwrap();
    assert_eq!(r.record_version, 4);
    assert_eq!(r.severity, 2);
    assert_eq!(r.timestamp_client, 1795758044);
    assert_eq!(r.payload_version, Some(1));
    assert!(!r.external);

    let quoted = apply(
        base("4"),
        &[
            Set(Field::SystemName, "\"debian\""),
            Set(Field::Build, "\"12\""),
        ],
    );
    let r = validate(&quoted, TID).unwrap();
    assert_eq!(
        (r.build.as_str(), r.system_name.as_deref()),
        ("12", Some("debian"))
    );

    let v2 = apply(base("2"), &[Remove(Field::BoardName)]);
    let r = validate(&v2, TID).unwrap();
    assert_eq!(r.board_name, "N/A");
    assert_eq!(
        r.cpu_model, "Intel(R) Core(TM) i5-7260U CPU @ 2.20GHz",
        "v1.14.0 values kept"
    );
    assert_eq!(r.event_id, "N/A");

    let v1 = apply(base("1"), &[]);
    let r = validate(&v1, TID).unwrap();
    assert_eq!((r.payload_version, r.system_name.as_deref()), (None, None));

    let mut ext = base("4");
    ext.external = Some("true".into());
    assert!(validate(&ext, TID).unwrap().external);
}

#[test]
fn nul_is_its_own_reason() {
    let raw = apply(base("4"), &[Payload("\0")]);
    assert_eq!(validate(&raw, TID).unwrap_err().kind, RejectKind::Nul);
}

#[test]
fn python_int_matches_python() {
    for (s, want) in [
        ("1", Some(1)),
        (" 2\n", Some(2)),
        ("+3", Some(3)),
        ("-4", Some(-4)),
        ("1_0", Some(10)),
        ("_1", None),
        ("1__0", None),
        ("", None),
        ("-", None),
        ("1.0", None),
        ("0x1", None),
    ] {
        assert_eq!(python_int(s), want, "{s:?}");
    }
}

#[test]
fn printable_is_python_string_printable() {
    assert!(is_printable("abc XYZ 09 !~\t\n\r\x0b\x0c"));
    assert!(!is_printable("\x07"));
    assert!(!is_printable("\u{e9}"));
    assert!(!is_printable("\x7f"));
}

/// Every field with a length limit: the longest value accepted, one byte more refused (a 400
/// naming the field). Limits are in bytes (UTF-8), since PostgreSQL's index limit is.
#[test]
fn length_limits_in_bytes() {
    use super::{MAX_CLASSIFICATION_BYTES, MAX_KERNEL_VERSION_BYTES, MAX_SYSTEM_NAME_BYTES};
    let classification = |n: usize| format!("org/x/{}", "é".repeat(n / 2 - 3) + &"a".repeat(n % 2));
    let kernel = |n: usize| format!("6.1.{}", "é".repeat((n - 4) / 2) + &"a".repeat(n % 2));
    let system = |n: usize| "ü".repeat(n / 2) + &"a".repeat(n % 2);
    type Value<'a> = &'a dyn Fn(usize) -> String;
    let limits: [(Field, usize, Value); 3] = [
        (
            Field::Classification,
            MAX_CLASSIFICATION_BYTES,
            &classification,
        ),
        (Field::KernelVersion, MAX_KERNEL_VERSION_BYTES, &kernel),
        (Field::SystemName, MAX_SYSTEM_NAME_BYTES, &system),
    ];
    for (field, max, value) in limits {
        let mut raw = base("4");
        // Not clear-linux-os, so the build rule does not depend on the system name.
        raw.set(Field::SystemName, "debian".into());
        raw.set(field, value(max));
        assert_eq!(raw.get(field).unwrap().len(), max);
        validate(&raw, TID)
            .unwrap_or_else(|e| panic!("{}: {max} bytes refused: {e}", field.name()));
        raw.set(field, value(max + 1));
        assert_eq!(raw.get(field).unwrap().len(), max + 1);
        let e = validate(&raw, TID).unwrap_err();
        assert_eq!(e.field, field.name(), "{e}");
        assert!(
            e.message.contains(&format!("longer than {max} bytes")),
            "{e}"
        );
    }
}
