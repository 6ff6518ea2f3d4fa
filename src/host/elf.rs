//! The machine an ELF binary is built for, read from its header, in the words of `uname -m`,
//! so an upload can refuse an x86_64 collector for an aarch64 target before sending it.

/// What an ELF header says (`None` from [`arch`] for a file that is not ELF, e.g. a script).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfArch {
    pub machine: u16,
    pub is_64: bool,
    pub little_endian: bool,
}

const EM_386: u16 = 3;
const EM_PPC: u16 = 20;
const EM_PPC64: u16 = 21;
const EM_S390: u16 = 22;
const EM_ARM: u16 = 40;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;
const EM_LOONGARCH: u16 = 258;

/// The architecture of an ELF file; `Ok(None)` when `bytes` is not ELF at all.
pub fn arch(bytes: &[u8]) -> Result<Option<ElfArch>, String> {
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    if bytes.len() < 20 {
        return Err("a truncated ELF header".to_owned());
    }
    let is_64 = match bytes[4] {
        1 => false,
        2 => true,
        c => return Err(format!("an ELF header with an unknown class {c}")),
    };
    let little_endian = match bytes[5] {
        1 => true,
        2 => false,
        d => return Err(format!("an ELF header with an unknown byte order {d}")),
    };
    let raw = [bytes[18], bytes[19]];
    let machine = if little_endian {
        u16::from_le_bytes(raw)
    } else {
        u16::from_be_bytes(raw)
    };
    Ok(Some(ElfArch {
        machine,
        is_64,
        little_endian,
    }))
}

impl ElfArch {
    /// The usual `uname -m` of machines that run this binary.
    pub fn name(&self) -> String {
        match (self.machine, self.is_64, self.little_endian) {
            (EM_X86_64, true, _) => "x86_64".into(),
            (EM_386, false, _) => "i686".into(),
            (EM_AARCH64, true, true) => "aarch64".into(),
            (EM_AARCH64, true, false) => "aarch64_be".into(),
            (EM_ARM, false, _) => "armv7l".into(),
            (EM_RISCV, true, _) => "riscv64".into(),
            (EM_PPC64, true, true) => "ppc64le".into(),
            (EM_PPC64, true, false) => "ppc64".into(),
            (EM_PPC, false, _) => "ppc".into(),
            (EM_S390, true, _) => "s390x".into(),
            (EM_LOONGARCH, true, _) => "loongarch64".into(),
            (m, is_64, le) => format!(
                "ELF machine {m} ({}-bit, {} endian)",
                if is_64 { 64 } else { 32 },
                if le { "little" } else { "big" }
            ),
        }
    }

    /// Whether a machine whose `uname -m` says `uname` runs this binary natively.
    pub fn runs_on(&self, uname: &str) -> bool {
        let uname = uname.trim();
        match (self.machine, self.is_64, self.little_endian) {
            (EM_X86_64, true, _) => uname == "x86_64",
            (EM_386, false, _) => matches!(uname, "i386" | "i486" | "i586" | "i686" | "x86_64"),
            (EM_AARCH64, true, true) => matches!(uname, "aarch64" | "arm64"),
            (EM_AARCH64, true, false) => uname == "aarch64_be",
            (EM_ARM, false, _) => uname.starts_with("arm") || uname == "aarch64",
            (EM_RISCV, true, _) => uname == "riscv64",
            (EM_PPC64, true, true) => uname == "ppc64le",
            (EM_PPC64, true, false) => uname == "ppc64",
            (EM_PPC, false, _) => uname == "ppc",
            (EM_S390, true, _) => uname == "s390x",
            (EM_LOONGARCH, true, _) => uname == "loongarch64",
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first 20 bytes of an ELF header: magic, class, data, version, padding, type,
    /// machine.
    fn header(class: u8, data: u8, machine: u16) -> Vec<u8> {
        let mut h = b"\x7fELF".to_vec();
        h.extend([class, data, 1]);
        h.resize(16, 0);
        let (ty, m) = if data == 1 {
            (2u16.to_le_bytes(), machine.to_le_bytes())
        } else {
            (2u16.to_be_bytes(), machine.to_be_bytes())
        };
        h.extend(ty);
        h.extend(m);
        h
    }

    #[test]
    fn headers_name_their_machine() {
        for (class, data, machine, name, runs_on, not_on) in [
            (2, 1, EM_X86_64, "x86_64", "x86_64", "aarch64"),
            (2, 1, EM_AARCH64, "aarch64", "aarch64", "x86_64"),
            (2, 1, EM_AARCH64, "aarch64", "arm64", "armv7l"),
            (1, 1, EM_ARM, "armv7l", "armv7l", "x86_64"),
            (1, 1, EM_386, "i686", "x86_64", "aarch64"),
            (2, 1, EM_RISCV, "riscv64", "riscv64", "x86_64"),
            (2, 1, EM_PPC64, "ppc64le", "ppc64le", "ppc64"),
            (2, 2, EM_PPC64, "ppc64", "ppc64", "ppc64le"),
            (2, 2, EM_S390, "s390x", "s390x", "x86_64"),
        ] {
            let a = arch(&header(class, data, machine)).unwrap().unwrap();
            assert_eq!(a.name(), name);
            assert!(a.runs_on(runs_on), "{name} on {runs_on}");
            assert!(a.runs_on(&format!("{runs_on}\n")), "uname's newline");
            assert!(!a.runs_on(not_on), "{name} not on {not_on}");
        }
    }

    #[test]
    fn this_test_binary_is_for_this_machine() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let a = arch(&me).unwrap().expect("an ELF binary");
        assert_eq!(a.name(), std::env::consts::ARCH);
    }

    #[test]
    fn scripts_are_not_elf_and_broken_headers_are_errors() {
        assert_eq!(arch(b"#!/bin/sh\necho hi\n").unwrap(), None);
        assert_eq!(arch(b"").unwrap(), None);
        assert!(arch(b"\x7fELF\x02\x01").unwrap_err().contains("truncated"));
        let mut bad = header(2, 1, EM_X86_64);
        bad[4] = 9;
        assert!(arch(&bad).unwrap_err().contains("class 9"));
        let odd = arch(&header(2, 1, 9999)).unwrap().unwrap();
        assert_eq!(odd.name(), "ELF machine 9999 (64-bit, little endian)");
        assert!(!odd.runs_on("x86_64"));
    }
}
