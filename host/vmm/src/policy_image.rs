//! Policy images: a scheduling policy built as its own `no_std` ELF,
//! linked at `POLICY_LOAD_ADDR` with its [`PolicyOps`] table first (the
//! policy ABI, `abi::policy`). Read and checked here, before any VM
//! exists; the VMM then writes its segments into guest memory and boots
//! the core with `BootInfo::policy = POLICY_IMAGE_ID`.

use crate::exit::{ErrorKind, Failure, Result};
use crate::files::{InputFile, read_bounded};
use crate::images::elf_loads;
use crate::symbols::SymbolTable;
use abi::memmap::{POLICY_LOAD_ADDR, POLICY_MAX_SIZE};
use abi::policy::{
    POLICY_DESC_LEN, POLICY_FLAG_TEST_ONLY, POLICY_FLAGS_KNOWN, POLICY_NAME_LEN, PolicyAbiError,
    PolicyOps, SHARES_EQUAL, SHARES_NONE, SHARES_WEIGHTED,
};
use core::mem::{offset_of, size_of};
use std::ops::Range;
use std::path::Path;

/// Largest policy ELF file read. Its loadable bytes are at most
/// `POLICY_MAX_SIZE` (1 MiB); the rest is symbols and debug sections.
pub const POLICY_FILE_MAX: u64 = 4 << 20;

/// The fix a message about a policy image ends with.
const POLICY_FIX: &str = "build the policy with the schedlab policy SDK (`cargo build --release` \
                          in its crate) and give the ELF it makes, or the crate's directory";

const POLICY_FILE: InputFile = InputFile {
    what: "policy image",
    cap: POLICY_FILE_MAX,
    cap_name: "POLICY_FILE_MAX",
    kind: ErrorKind::Image,
    fix: POLICY_FIX,
};

/// The callbacks of [`PolicyOps`], in table order (the ABI's one list).
pub use abi::policy::POLICY_CALLBACKS as CALLBACKS;
const CALLBACKS_AT: usize = offset_of!(PolicyOps, select_cpu);
const _: () = assert!(CALLBACKS_AT + CALLBACKS.len() * 8 == size_of::<PolicyOps>());
const _: () = assert!(offset_of!(PolicyOps, exit) == CALLBACKS_AT + 19 * 8);

/// A checked policy image, ready to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyImage {
    /// The path it was read from, for messages.
    pub label: String,
    /// (guest address, bytes) of every loadable segment, `.bss` included
    /// as zeros; all inside `[POLICY_LOAD_ADDR, POLICY_LOAD_ADDR +
    /// POLICY_MAX_SIZE)`, the lowest at `POLICY_LOAD_ADDR`.
    pub segments: Vec<(u64, Vec<u8>)>,
    /// End of the highest segment in memory.
    pub end: u64,
    pub header: OpsHeader,
    pub symbols: SymbolTable,
}

/// What the host reads of a [`PolicyOps`] table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsHeader {
    pub version: u32,
    pub name: String,
    pub description: String,
    /// One of `SHARES_*`.
    pub shares: u32,
    pub bounded_wait: bool,
    pub deadlines: bool,
    /// `POLICY_FLAG_TEST_ONLY`: made for schedlab's own tests.
    pub test_only: bool,
    /// `POLICY_FLAG_BPF_RUNTIME`: runs a sched_ext object, never alone.
    pub bpf_runtime: bool,
    /// The non-null callbacks: (name, address).
    pub callbacks: Vec<(&'static str, u64)>,
}

impl PolicyImage {
    pub fn name(&self) -> &str {
        &self.header.name
    }
    pub fn description(&self) -> &str {
        &self.header.description
    }

    /// Read and check the policy image at `path`.
    pub fn read(path: &Path) -> Result<PolicyImage> {
        let bytes = read_bounded(path, &POLICY_FILE)?;
        Self::parse(&path.display().to_string(), &bytes)
    }

    /// Check `data` (the file's bytes; `label` names it in messages).
    pub fn parse(label: &str, data: &[u8]) -> Result<PolicyImage> {
        let bad = |why: String| {
            Failure::image(format!(
                "policy image {label} is unusable: {why}: {POLICY_FIX}"
            ))
        };
        let end_of_region = POLICY_LOAD_ADDR + POLICY_MAX_SIZE;
        let bad_elf = |why: String| {
            bad(format!(
                "{why} (a policy is linked at {POLICY_LOAD_ADDR:#x} with the SDK's policy.ld, at \
                 most POLICY_MAX_SIZE = {} KiB in memory, .bss included)",
                POLICY_MAX_SIZE >> 10
            ))
        };
        let loads = elf_loads(data, POLICY_LOAD_ADDR, POLICY_MAX_SIZE, "policy", &bad_elf)?;
        debug_assert!(loads.end <= end_of_region);
        let lowest = loads
            .segments
            .iter()
            .min_by_key(|s| s.addr)
            .expect("elf_loads refuses an ELF without loadable segments");
        if lowest.addr != POLICY_LOAD_ADDR {
            return Err(bad(format!(
                "its lowest segment starts at {:#x}, not at POLICY_LOAD_ADDR {POLICY_LOAD_ADDR:#x} \
                 where the PolicyOps table must be",
                lowest.addr
            )));
        }
        let mut segments = Vec::with_capacity(loads.segments.len());
        for s in &loads.segments {
            let mut bytes = vec![0u8; s.mem_size as usize];
            bytes[..s.file.len()].copy_from_slice(s.file);
            segments.push((s.addr, bytes));
        }
        let first = &segments
            .iter()
            .find(|(a, _)| *a == POLICY_LOAD_ADDR)
            .expect("the lowest segment is at POLICY_LOAD_ADDR")
            .1;
        let ranges: Vec<Range<u64>> = segments
            .iter()
            .map(|(a, b)| *a..*a + b.len() as u64)
            .collect();
        let header = parse_ops(first, &ranges).map_err(|e| e.failure(label))?;
        let symbols = SymbolTable::from_object(&loads.elf);
        Ok(PolicyImage {
            label: label.to_string(),
            segments,
            end: loads.end,
            header,
            symbols,
        })
    }
}

/// Why an ops table is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpsError {
    /// Fewer bytes than the header needs.
    Short(usize),
    Abi(PolicyAbiError),
    /// A callback that points outside the loaded image.
    Callback {
        name: &'static str,
        addr: u64,
    },
    BadName,
    BadDescription,
    BadShares(u32),
    BadFlag {
        field: &'static str,
        value: u32,
    },
}

impl OpsError {
    /// The message for the image `label`.
    pub fn failure(&self, label: &str) -> Failure {
        let at = POLICY_LOAD_ADDR;
        let unusable = |why: String| {
            Failure::image(format!(
                "policy image {label} is unusable: {why}: {POLICY_FIX}"
            ))
        };
        match *self {
            OpsError::Abi(PolicyAbiError::BadMagic(m)) => Failure::image(format!(
                "{label} is not a schedlab policy image (no PolicyOps at {at:#x}: was it linked \
                 with the SDK's policy.ld?) (its first word is {m:#010x}, a PolicyOps table \
                 starts with {:#010x}, \"POPS\")",
                abi::policy::POLICY_OPS_MAGIC
            )),
            OpsError::Abi(PolicyAbiError::TooNew { have, know }) => Failure::new(
                ErrorKind::Abi,
                if have == 0 {
                    format!(
                        "policy image {label} says policy ABI version 0, which does not exist \
                         (this schedlab runs versions 1 to {know}): rebuild it with the SDK"
                    )
                } else {
                    format!(
                        "policy image {label} was built for policy ABI {have}, this schedlab runs \
                         up to {know}: update schedlab"
                    )
                },
            ),
            OpsError::Abi(PolicyAbiError::BadSize { size, need }) => unusable(format!(
                "its PolicyOps table says it is {size} bytes, but its version's table is {need}"
            )),
            OpsError::Short(n) => unusable(format!(
                "its first segment holds {n} bytes, too few for a PolicyOps table ({} bytes)",
                size_of::<PolicyOps>()
            )),
            OpsError::Callback { name, addr } => unusable(format!(
                "its PolicyOps callback `{name}` points at {addr:#x}, outside the loaded image"
            )),
            OpsError::BadName => unusable(format!(
                "its PolicyOps name is empty or not UTF-8 (a NUL-padded name of at most {} \
                 bytes, e.g. `name: padded(\"mypolicy\")`)",
                POLICY_NAME_LEN - 1
            )),
            OpsError::BadDescription => unusable(format!(
                "its PolicyOps description is not UTF-8 (NUL-padded, at most {POLICY_DESC_LEN} \
                 bytes)"
            )),
            OpsError::BadShares(v) => unusable(format!(
                "its PolicyOps shares is {v}, not SHARES_NONE ({SHARES_NONE}), SHARES_EQUAL \
                 ({SHARES_EQUAL}) or SHARES_WEIGHTED ({SHARES_WEIGHTED})"
            )),
            OpsError::BadFlag { field, value } => {
                unusable(format!("its PolicyOps {field} is {value}, not 0 or 1"))
            }
        }
    }
}

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn quad(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Bytes up to the first NUL as UTF-8; None if they are not.
fn nul_text(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    std::str::from_utf8(&b[..end]).ok().map(str::to_string)
}

/// Read and check the [`PolicyOps`] table at the start of `bytes` (the
/// image's first segment, loaded at `POLICY_LOAD_ADDR`); every non-null
/// callback must lie inside one of `image` (the loaded segments).
pub fn parse_ops(bytes: &[u8], image: &[Range<u64>]) -> std::result::Result<OpsHeader, OpsError> {
    // Magic, version and size first: a table from a newer ABI is refused
    // for its version, not for whatever its later fields hold.
    let fixed = offset_of!(PolicyOps, reserved);
    if bytes.len() < fixed {
        return Err(OpsError::Short(bytes.len()));
    }
    let magic = word(bytes, offset_of!(PolicyOps, magic));
    let version = word(bytes, offset_of!(PolicyOps, version));
    let size = word(bytes, offset_of!(PolicyOps, size));
    PolicyOps::check_header(magic, version, size).map_err(OpsError::Abi)?;
    if bytes.len() < size as usize {
        return Err(OpsError::Short(bytes.len()));
    }
    let field = |at: usize, len: usize| &bytes[at..at + len];
    let name = nul_text(field(offset_of!(PolicyOps, name), POLICY_NAME_LEN))
        .filter(|n| !n.trim().is_empty())
        .ok_or(OpsError::BadName)?;
    let description = nul_text(field(offset_of!(PolicyOps, description), POLICY_DESC_LEN))
        .ok_or(OpsError::BadDescription)?;
    let shares = word(bytes, offset_of!(PolicyOps, shares));
    if ![SHARES_NONE, SHARES_EQUAL, SHARES_WEIGHTED].contains(&shares) {
        return Err(OpsError::BadShares(shares));
    }
    let flag = |field: &'static str, at: usize| match word(bytes, at) {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(OpsError::BadFlag { field, value }),
    };
    let bounded_wait = flag("bounded_wait", offset_of!(PolicyOps, bounded_wait))?;
    let deadlines = flag("deadlines", offset_of!(PolicyOps, deadlines))?;
    let flags = word(bytes, offset_of!(PolicyOps, flags));
    if flags & !POLICY_FLAGS_KNOWN != 0 {
        return Err(OpsError::BadFlag {
            field: "flags",
            value: flags,
        });
    }
    let mut callbacks = Vec::new();
    for (i, name) in CALLBACKS.iter().enumerate() {
        // An older table ends before the callbacks added since.
        if CALLBACKS_AT + i * 8 + 8 > size as usize {
            break;
        }
        let addr = quad(bytes, CALLBACKS_AT + i * 8);
        if addr == 0 {
            continue;
        }
        if !image.iter().any(|r| r.contains(&addr)) {
            return Err(OpsError::Callback { name, addr });
        }
        callbacks.push((*name, addr));
    }
    Ok(OpsHeader {
        version,
        name,
        description,
        shares,
        bounded_wait,
        deadlines,
        test_only: flags & POLICY_FLAG_TEST_ONLY != 0,
        bpf_runtime: flags & abi::policy::POLICY_FLAG_BPF_RUNTIME != 0,
        callbacks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::policy::{POLICY_ABI_VERSION, POLICY_OPS_MAGIC, padded};

    const IMAGE: u64 = POLICY_LOAD_ADDR;

    /// A good table: name "stride", weighted shares, bounded wait, two
    /// callbacks inside a 4 KiB image.
    fn table() -> Vec<u8> {
        let mut b = vec![0u8; size_of::<PolicyOps>()];
        let put = |b: &mut Vec<u8>, at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
        put(
            &mut b,
            offset_of!(PolicyOps, magic),
            &POLICY_OPS_MAGIC.to_le_bytes(),
        );
        put(
            &mut b,
            offset_of!(PolicyOps, version),
            &POLICY_ABI_VERSION.to_le_bytes(),
        );
        put(
            &mut b,
            offset_of!(PolicyOps, size),
            &(size_of::<PolicyOps>() as u32).to_le_bytes(),
        );
        put(&mut b, offset_of!(PolicyOps, name), &padded::<32>("stride"));
        put(
            &mut b,
            offset_of!(PolicyOps, description),
            &padded::<160>("stride scheduling"),
        );
        put(
            &mut b,
            offset_of!(PolicyOps, shares),
            &SHARES_WEIGHTED.to_le_bytes(),
        );
        put(
            &mut b,
            offset_of!(PolicyOps, bounded_wait),
            &1u32.to_le_bytes(),
        );
        put(
            &mut b,
            offset_of!(PolicyOps, enqueue),
            &(IMAGE + 0x200).to_le_bytes(),
        );
        put(
            &mut b,
            offset_of!(PolicyOps, init),
            &(IMAGE + 0x300).to_le_bytes(),
        );
        b
    }

    fn set(b: &mut [u8], at: usize, v: &[u8]) {
        b[at..at + v.len()].copy_from_slice(v);
    }

    fn parse(b: &[u8]) -> std::result::Result<OpsHeader, OpsError> {
        let image = IMAGE..IMAGE + 0x1000;
        parse_ops(b, std::slice::from_ref(&image))
    }

    #[test]
    fn a_good_table_gives_its_name_promises_and_callbacks() {
        let h = parse(&table()).unwrap();
        assert_eq!(
            (h.name.as_str(), h.description.as_str()),
            ("stride", "stride scheduling")
        );
        assert_eq!(
            (h.shares, h.bounded_wait, h.deadlines),
            (SHARES_WEIGHTED, true, false)
        );
        assert_eq!(
            h.callbacks,
            vec![("enqueue", IMAGE + 0x200), ("init", IMAGE + 0x300)]
        );
    }

    #[test]
    fn bad_magic_says_it_is_not_a_policy_image() {
        let mut b = table();
        set(&mut b, 0, b"\x7fELF");
        let e = parse(&b).unwrap_err();
        assert!(
            matches!(e, OpsError::Abi(PolicyAbiError::BadMagic(_))),
            "{e:?}"
        );
        let f = e.failure("p.elf");
        assert_eq!(f.kind, ErrorKind::Image);
        assert!(
            f.message.starts_with(
                "p.elf is not a schedlab policy image (no PolicyOps at 0x480000: was it linked \
                 with the SDK's policy.ld?)"
            ),
            "{f}"
        );
    }

    #[test]
    fn a_newer_version_is_refused_saying_which_versions() {
        let mut b = table();
        let newer = POLICY_ABI_VERSION + 1;
        set(&mut b, offset_of!(PolicyOps, version), &newer.to_le_bytes());
        // A newer table is longer: only its version is read.
        let longer = b.len() as u32 + 8;
        set(&mut b, offset_of!(PolicyOps, size), &longer.to_le_bytes());
        let f = parse(&b).unwrap_err().failure("p.elf");
        assert_eq!(f.kind, ErrorKind::Abi);
        assert_eq!(f.exit_code(), 69);
        assert_eq!(
            f.message,
            format!(
                "policy image p.elf was built for policy ABI {newer}, this schedlab runs up to \
                 {POLICY_ABI_VERSION}: update schedlab"
            )
        );
    }

    #[test]
    fn a_callback_outside_the_image_is_named() {
        let mut b = table();
        let wild = IMAGE + 0x1000;
        set(&mut b, offset_of!(PolicyOps, dispatch), &wild.to_le_bytes());
        let e = parse(&b).unwrap_err();
        assert_eq!(
            e,
            OpsError::Callback {
                name: "dispatch",
                addr: wild
            }
        );
        let m = e.failure("p.elf").message;
        assert!(
            m.contains("callback `dispatch` points at 0x481000, outside"),
            "{m}"
        );
        // The last callback is read from its own offset too.
        let mut b = table();
        set(
            &mut b,
            offset_of!(PolicyOps, exit),
            &0x1000u64.to_le_bytes(),
        );
        assert_eq!(
            parse(&b).unwrap_err(),
            OpsError::Callback {
                name: "exit",
                addr: 0x1000
            }
        );
    }

    #[test]
    fn an_empty_or_broken_name_and_unknown_promises_are_refused() {
        let mut b = table();
        set(&mut b, offset_of!(PolicyOps, name), &[0u8; POLICY_NAME_LEN]);
        assert_eq!(parse(&b).unwrap_err(), OpsError::BadName);
        assert!(
            OpsError::BadName
                .failure("p")
                .message
                .contains("name is empty")
        );
        let mut b = table();
        set(&mut b, offset_of!(PolicyOps, name), &[0xff, 0xfe, 0]);
        assert_eq!(parse(&b).unwrap_err(), OpsError::BadName);
        let mut b = table();
        set(&mut b, offset_of!(PolicyOps, shares), &7u32.to_le_bytes());
        assert_eq!(parse(&b).unwrap_err(), OpsError::BadShares(7));
        let mut b = table();
        set(
            &mut b,
            offset_of!(PolicyOps, deadlines),
            &2u32.to_le_bytes(),
        );
        assert!(matches!(
            parse(&b).unwrap_err(),
            OpsError::BadFlag {
                field: "deadlines",
                ..
            }
        ));
    }

    #[test]
    fn short_or_wrongly_sized_tables_are_refused() {
        let b = table();
        assert_eq!(parse(&b[..8]).unwrap_err(), OpsError::Short(8));
        assert_eq!(parse(&b[..100]).unwrap_err(), OpsError::Short(100));
        let mut b = table();
        set(&mut b, offset_of!(PolicyOps, size), &100u32.to_le_bytes());
        assert!(matches!(
            parse(&b).unwrap_err(),
            OpsError::Abi(PolicyAbiError::BadSize { .. })
        ));
    }

    #[test]
    #[cfg_attr(not(guest_images), ignore = "needs the guest images: run make first")]
    fn an_operation_elf_is_refused_for_its_address() {
        let spin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guest/spin.elf");
        let f = PolicyImage::read(&spin).unwrap_err();
        assert_eq!(f.kind, ErrorKind::Image);
        assert!(
            f.message.starts_with(&format!(
                "policy image {} is unusable: segment [0x400000",
                spin.display()
            )),
            "{f}"
        );
        assert!(
            f.message
                .contains("outside the policy region [0x480000, 0x580000)"),
            "{f}"
        );
        assert!(
            f.message
                .contains("linked at 0x480000 with the SDK's policy.ld"),
            "{f}"
        );
    }

    #[test]
    fn files_that_are_not_elves_or_not_files_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let f = PolicyImage::read(dir.path()).unwrap_err();
        assert!(
            f.message
                .contains("cannot read the policy image: it is a directory"),
            "{f}"
        );
        let text = dir.path().join("p.elf");
        std::fs::write(&text, "hello").unwrap();
        let f = PolicyImage::read(&text).unwrap_err();
        assert!(f.message.contains("bad ELF magic"), "{f}");
        assert_eq!(f.exit_code(), 69);
    }

    /// A minimal policy ELF: one PT_LOAD segment at POLICY_LOAD_ADDR
    /// holding `table` padded to 0x400 file bytes, 0x2000 in memory.
    fn elf_with(table: &[u8], at: u64) -> Vec<u8> {
        let (filesz, memsz) = (0x400u64, 0x2000u64);
        let mut f = Vec::new();
        f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
        f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        f.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        f.extend_from_slice(&1u32.to_le_bytes());
        f.extend_from_slice(&(at + 0x200).to_le_bytes()); // entry
        f.extend_from_slice(&64u64.to_le_bytes()); // phoff
        f.extend_from_slice(&0u64.to_le_bytes()); // shoff
        f.extend_from_slice(&0u32.to_le_bytes());
        for h in [64u16, 56, 1, 64, 0, 0] {
            f.extend_from_slice(&h.to_le_bytes());
        }
        f.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        f.extend_from_slice(&5u32.to_le_bytes()); // R X
        for v in [0x1000u64, at, at, filesz, memsz, 0x1000] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.resize(0x1000, 0);
        f.extend_from_slice(table);
        f.resize(0x1000 + filesz as usize, 0xcc);
        f
    }

    #[test]
    fn a_policy_elf_is_read_with_its_bss_and_its_table() {
        let img = PolicyImage::parse("p.elf", &elf_with(&table(), IMAGE)).unwrap();
        assert_eq!(img.name(), "stride");
        assert_eq!(img.end, IMAGE + 0x2000);
        assert_eq!(img.segments.len(), 1);
        let (addr, bytes) = &img.segments[0];
        assert_eq!((*addr, bytes.len()), (IMAGE, 0x2000));
        assert_eq!(&bytes[..table().len()], &table()[..]);
        assert_eq!(bytes[0x3ff], 0xcc);
        assert!(bytes[0x400..].iter().all(|&b| b == 0), ".bss is zeros");
        // A callback into .bss is inside the loaded image.
        let mut t = table();
        set(
            &mut t,
            offset_of!(PolicyOps, tick),
            &(IMAGE + 0x1fff).to_le_bytes(),
        );
        assert!(PolicyImage::parse("p.elf", &elf_with(&t, IMAGE)).is_ok());
        set(
            &mut t,
            offset_of!(PolicyOps, tick),
            &(IMAGE + 0x2000).to_le_bytes(),
        );
        assert!(PolicyImage::parse("p.elf", &elf_with(&t, IMAGE)).is_err());
    }

    #[test]
    fn a_policy_not_at_the_load_address_is_refused() {
        let f = PolicyImage::parse("p.elf", &elf_with(&table(), IMAGE + 0x1000)).unwrap_err();
        assert!(
            f.message
                .contains("lowest segment starts at 0x481000, not at POLICY_LOAD_ADDR"),
            "{f}"
        );
        let f = PolicyImage::parse(
            "p.elf",
            &elf_with(&table(), IMAGE + POLICY_MAX_SIZE - 0x1000),
        )
        .unwrap_err();
        assert!(f.message.contains("outside the policy region"), "{f}");
    }
}
