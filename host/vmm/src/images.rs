//! Guest images: the core (ELF) and one operation (flat .bin plus its ELF
//! for symbols and the ABI stamp). They are embedded at build time by
//! build.rs, or read from `SCHEDLAB_GUEST_DIR` for tests. Everything that
//! can be wrong with them is found here, before any VM exists, and each
//! message names the file and the fix.

use crate::exit::{ErrorKind, Failure, Result};
use crate::files::{InputFile, read_bounded};
use crate::policy_image::PolicyImage;
use crate::symbols::SymbolTable;
use abi::calltable::{ABI_STAMP_SECTION, AbiStamp, IMAGE_CORE, IMAGE_OPERATION};
use abi::memmap::{KERNEL_LOAD_ADDR, KERNEL_MAX_SIZE, OPERATION_LOAD_ADDR, OPERATION_MAX_SIZE};
use object::elf::PT_LOAD;
use object::read::elf::{ElfFile64, ProgramHeader};
use object::{Endianness, Object, ObjectSection};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// One operation as build.rs found it (images absent if not yet built).
pub struct EmbeddedOp {
    pub name: &'static str,
    pub bin: Option<&'static [u8]>,
    pub elf: Option<&'static [u8]>,
}

/// A built-in policy image, embedded at build time.
#[derive(Debug)]
pub struct EmbeddedPolicy {
    /// Its folder under `guest/policies/`.
    pub name: &'static str,
    pub elf: Option<&'static [u8]>,
}

mod embedded {
    use super::{EmbeddedOp, EmbeddedPolicy};
    include!(concat!(env!("OUT_DIR"), "/embedded_images.rs"));
}

/// Env var that makes schedlab read images from a directory instead.
pub const GUEST_DIR_ENV: &str = "SCHEDLAB_GUEST_DIR";

const NOT_BUILT: &str =
    "guest images were not built into this schedlab binary: run `make` (or ./build.sh)";

/// Every operation under `guest/operations/` at build time.
pub fn operation_names() -> impl Iterator<Item = &'static str> {
    embedded::OPERATIONS.iter().map(|o| o.name)
}

/// Every built-in policy: the folders under `guest/policies/` at build
/// time (test-only ones included; their image says so).
pub fn policy_names() -> impl Iterator<Item = &'static str> {
    embedded::POLICIES.iter().map(|p| p.name)
}

/// The built-in policy `name`, checked: from `SCHEDLAB_GUEST_DIR/policies/`
/// when that variable is set and the file is there, else the embedded
/// image. None: no built-in has that name.
pub fn builtin_policy(name: &str) -> Option<Result<PolicyImage>> {
    let entry = embedded::POLICIES.iter().find(|p| p.name == name)?;
    if let Some(dir) = std::env::var_os(GUEST_DIR_ENV) {
        let path = Path::new(&dir).join("policies").join(format!("{name}.elf"));
        if path.is_file() {
            return Some(PolicyImage::read(&path));
        }
    }
    Some(match entry.elf {
        Some(elf) => PolicyImage::parse(&format!("policies/{name}.elf (embedded)"), elf),
        None => Err(Failure::image(format!(
            "{NOT_BUILT} (looked for policies/{name}.elf in {} at build time)",
            embedded::GUEST_DIR_AT_BUILD
        ))),
    })
}

#[cfg(test)]
pub fn embedded_core() -> Option<&'static [u8]> {
    embedded::CORE_ELF
}

/// A checked, loadable core.
#[derive(Debug)]
pub struct CoreImage {
    /// The file name or path, for messages.
    pub label: String,
    pub elf: Cow<'static, [u8]>,
    pub entry: u64,
    /// End of the highest segment in memory, `.bss` included.
    pub end: u64,
    pub stamp: AbiStamp,
    pub symbols: SymbolTable,
}

/// A checked operation.
#[derive(Debug)]
pub struct OpImage {
    pub name: String,
    pub bin: Cow<'static, [u8]>,
    pub stamp: AbiStamp,
    pub symbols: SymbolTable,
}

#[derive(Debug)]
pub struct Images {
    pub core: CoreImage,
    pub op: OpImage,
}

/// Load and check the core and operation `op`, which must read configs
/// with magic `config_magic`.
pub fn load(op: &str, config_magic: u32) -> Result<Images> {
    let (core, bin, elf) = match std::env::var_os(GUEST_DIR_ENV) {
        Some(dir) => read_dir_images(Path::new(&dir), op)?,
        None => embedded_images(op)?,
    };
    let core = check_core(core.0, core.1)?;
    let op = check_op(op, bin, elf, config_magic)?;
    check_abi(&core, &op)?;
    Ok(Images { core, op })
}

type Named = (String, Cow<'static, [u8]>);

fn embedded_images(op: &str) -> Result<(Named, Named, Named)> {
    let entry = embedded::OPERATIONS.iter().find(|o| o.name == op);
    let (
        Some(core),
        Some(EmbeddedOp {
            bin: Some(bin),
            elf: Some(elf),
            ..
        }),
    ) = (embedded::CORE_ELF, entry)
    else {
        return Err(Failure::image(format!(
            "{NOT_BUILT} (looked for kernel.elf, {op}.bin and {op}.elf in {} at build time)",
            embedded::GUEST_DIR_AT_BUILD
        )));
    };
    let named = |f: String, b: &'static [u8]| (f, Cow::Borrowed(b));
    Ok((
        named("kernel.elf (embedded)".into(), core),
        named(format!("{op}.bin (embedded)"), bin),
        named(format!("{op}.elf (embedded)"), elf),
    ))
}

/// Largest guest ELF file read from `SCHEDLAB_GUEST_DIR`. An ELF holds
/// its loadable bytes (at most KERNEL_MAX_SIZE / OPERATION_MAX_SIZE) plus
/// symbols and debug sections; ours are 40-140 KiB. 16 MiB leaves room for
/// a debug build and still refuses a runaway file before reading it.
pub const GUEST_ELF_MAX_FILE: u64 = 16 << 20;

/// The fix every image-file message ends with.
const GUEST_DIR_FIX: &str = "run `make` (or ./build.sh) and point SCHEDLAB_GUEST_DIR at \
                             target/guest, or unset it";

/// How `SCHEDLAB_GUEST_DIR`'s files are read: a flat operation image is
/// at most what its region holds; an ELF at most [`GUEST_ELF_MAX_FILE`].
const ELF_FILE: InputFile = InputFile {
    what: "guest image",
    cap: GUEST_ELF_MAX_FILE,
    cap_name: "GUEST_ELF_MAX_FILE",
    kind: ErrorKind::Image,
    fix: GUEST_DIR_FIX,
};
const BIN_FILE: InputFile = InputFile {
    what: "guest image",
    cap: OPERATION_MAX_SIZE,
    cap_name: "OPERATION_MAX_SIZE",
    kind: ErrorKind::Image,
    fix: GUEST_DIR_FIX,
};

fn read_dir_images(dir: &Path, op: &str) -> Result<(Named, Named, Named)> {
    let read = |name: String, spec: &InputFile| -> Result<Named> {
        let path: PathBuf = dir.join(&name);
        let bytes = read_bounded(&path, spec).map_err(|f| {
            Failure::new(
                f.kind,
                format!(
                    "{} ({GUEST_DIR_ENV} is set to {})",
                    f.message,
                    dir.display()
                ),
            )
        })?;
        Ok((path.display().to_string(), Cow::Owned(bytes)))
    };
    Ok((
        read("kernel.elf".into(), &ELF_FILE)?,
        read(format!("{op}.bin"), &BIN_FILE)?,
        read(format!("{op}.elf"), &ELF_FILE)?,
    ))
}

/// What every ELF we accept has: parseable, x86-64, an entry, its
/// loadable segments inside `[lo, lo + cap)` and inside the file, and an
/// ABI stamp of the expected kind.
struct CheckedElf {
    entry: u64,
    end: u64,
    stamp: AbiStamp,
    symbols: SymbolTable,
    /// (load address, file bytes) of every loadable segment with file
    /// bytes, in program-header order.
    segments: Vec<(u64, Vec<u8>)>,
}

/// One PT_LOAD segment: its address, its file bytes and its size in
/// memory (`.bss` included, so `mem_size >= file.len()`).
pub(crate) struct LoadSegment<'a> {
    pub addr: u64,
    pub file: &'a [u8],
    pub mem_size: u64,
}

/// An ELF's loadable segments, checked.
pub(crate) struct ElfLoads<'a> {
    pub elf: ElfFile64<'a, Endianness>,
    /// End of the highest segment in memory, `.bss` included.
    pub end: u64,
    /// Every PT_LOAD segment with a size in memory, in program-header
    /// order.
    pub segments: Vec<LoadSegment<'a>>,
}

/// What every ELF we load has: parseable, x86-64, at least one loadable
/// segment, every one inside `[lo, lo + cap)` and inside the file. `bad`
/// makes the error from the reason (it names the file and the fix).
pub(crate) fn elf_loads<'a>(
    data: &'a [u8],
    lo: u64,
    cap: u64,
    region: &str,
    bad: &dyn Fn(String) -> Failure,
) -> Result<ElfLoads<'a>> {
    if data.len() < 4 || &data[..4] != b"\x7fELF" {
        return Err(bad("bad ELF magic (not an ELF file)".into()));
    }
    let elf = ElfFile64::<Endianness>::parse(data)
        .map_err(|e| bad(format!("not a valid 64-bit ELF ({e})")))?;
    if elf.architecture() != object::Architecture::X86_64 {
        return Err(bad(format!(
            "built for {:?}, not x86-64",
            elf.architecture()
        )));
    }
    let end_of_region = lo + cap;
    let in_region = |a: u64| (lo..end_of_region).contains(&a);
    let endian = elf.endian();
    let mut end = 0u64;
    let mut segments = Vec::new();
    for ph in elf.elf_program_headers() {
        if ph.p_type(endian) != PT_LOAD || ph.p_memsz(endian) == 0 {
            continue;
        }
        let (paddr, memsz, filesz) = (ph.p_paddr(endian), ph.p_memsz(endian), ph.p_filesz(endian));
        let seg_end = paddr
            .checked_add(memsz)
            .ok_or_else(|| bad("a segment's size overflows".into()))?;
        if !in_region(paddr) || seg_end > end_of_region {
            return Err(bad(format!(
                "segment [{paddr:#x}, {seg_end:#x}) is outside the {region} region [{lo:#x}, {end_of_region:#x})"
            )));
        }
        if filesz > memsz {
            return Err(bad(format!(
                "segment at {paddr:#x} has more file bytes than memory bytes"
            )));
        }
        let bytes = ph
            .data(endian, data)
            .map_err(|_| bad("it is truncated (a segment lies past the end of the file)".into()))?;
        segments.push(LoadSegment {
            addr: paddr,
            file: bytes,
            mem_size: memsz,
        });
        end = end.max(seg_end);
    }
    if segments.is_empty() {
        return Err(bad("it has no loadable segments".into()));
    }
    Ok(ElfLoads { elf, end, segments })
}

fn check_elf(
    label: &str,
    data: &[u8],
    lo: u64,
    cap: u64,
    region: &str,
    kind: u32,
) -> Result<CheckedElf> {
    let bad = |why: String| {
        Failure::image(format!(
            "guest image {label} is corrupt: {why}: run `make` to rebuild it"
        ))
    };
    let loads = elf_loads(data, lo, cap, region, &bad)?;
    let elf = loads.elf;
    let entry = elf.entry();
    if entry == 0 {
        return Err(bad("it has no entry point".into()));
    }
    let end_of_region = lo + cap;
    if !(lo..end_of_region).contains(&entry) {
        return Err(bad(format!(
            "entry {entry:#x} is outside the {region} region [{lo:#x}, {end_of_region:#x})"
        )));
    }
    let end = loads.end;
    let segments: Vec<(u64, Vec<u8>)> = loads
        .segments
        .into_iter()
        .filter(|s| !s.file.is_empty())
        .map(|s| (s.addr, s.file.to_vec()))
        .collect();
    let stamp = elf
        .section_by_name(ABI_STAMP_SECTION)
        .and_then(|s| s.data().ok())
        .and_then(AbiStamp::from_bytes)
        .ok_or_else(|| {
            Failure::new(
                ErrorKind::Image,
                format!(
                    "not a schedlab guest image: {label} has no valid {ABI_STAMP_SECTION} section \
                     (ABI stamp): run `make` to rebuild the guest images"
                ),
            )
        })?;
    if stamp.kind != kind {
        let want = if kind == IMAGE_CORE {
            "core"
        } else {
            "operation"
        };
        return Err(Failure::image(format!(
            "guest image {label} is not a schedlab {want} image (its ABI stamp says kind {:?}): \
             run `make` to rebuild the guest images",
            String::from_utf8_lossy(&abi::tag_text(stamp.kind))
        )));
    }
    let symbols = SymbolTable::from_object(&elf);
    Ok(CheckedElf {
        entry,
        end,
        stamp,
        symbols,
        segments,
    })
}

fn check_core(label: String, elf: Cow<'static, [u8]>) -> Result<CoreImage> {
    let c = check_elf(
        &label,
        &elf,
        KERNEL_LOAD_ADDR,
        KERNEL_MAX_SIZE,
        "core",
        IMAGE_CORE,
    )?;
    Ok(CoreImage {
        label,
        elf,
        entry: c.entry,
        end: c.end,
        stamp: c.stamp,
        symbols: c.symbols,
    })
}

fn check_op(name: &str, bin: Named, elf: Named, config_magic: u32) -> Result<OpImage> {
    let (bin_label, bin) = bin;
    let (elf_label, elf) = elf;
    let c = check_elf(
        &elf_label,
        &elf,
        OPERATION_LOAD_ADDR,
        OPERATION_MAX_SIZE,
        "operation",
        IMAGE_OPERATION,
    )?;
    let bad = |why: String| {
        Failure::image(format!(
            "guest image {bin_label} is unusable: {why}: run `make` to rebuild it"
        ))
    };
    if bin.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if bin.len() as u64 > OPERATION_MAX_SIZE {
        return Err(bad(format!(
            "it is {} bytes, over the {OPERATION_MAX_SIZE}-byte OPERATION_MAX_SIZE",
            bin.len()
        )));
    }
    if c.entry != OPERATION_LOAD_ADDR {
        return Err(Failure::image(format!(
            "guest image {elf_label} has entry {:#x}, but an operation must start at its first byte \
             ({OPERATION_LOAD_ADDR:#x}): link it with linker/operation.ld and run `make`",
            c.entry
        )));
    }
    // The .bin is what runs and the .elf is what we name symbols from and
    // check the ABI of: refuse a pair that was not built together, and a
    // .bin that was truncated or altered. The .bin must be exactly what
    // `objcopy -O binary` makes of the ELF: every loadable segment's file
    // bytes at its offset from the load address, zeros between. (Comparing
    // only the common prefix of the first segment let a truncated .bin
    // through, and with it a guest that faulted in its missing code.)
    let want = flat_image(&c.segments).ok_or_else(|| {
        bad(format!(
            "{elf_label} has no loadable bytes at {OPERATION_LOAD_ADDR:#x}"
        ))
    })?;
    if bin.len() != want.len() {
        return Err(bad(format!(
            "it does not match {elf_label}: it is {} bytes, but the ELF's loadable segments make \
             {} (truncated, padded, or one was rebuilt without the other)",
            bin.len(),
            want.len()
        )));
    }
    if let Some(at) = bin.iter().zip(want.iter()).position(|(a, b)| a != b) {
        return Err(bad(format!(
            "it does not match {elf_label}: the bytes differ from offset {at:#x} on (CRC32 \
             {:08x}, the ELF's loadable bytes give {:08x}; altered, or one was rebuilt without \
             the other)",
            crc32fast::hash(&bin),
            crc32fast::hash(&want)
        )));
    }
    if c.stamp.config_magic != config_magic {
        return Err(Failure::new(
            ErrorKind::Abi,
            format!(
                "operation image `{name}` reads config {:?}, but schedlab writes {:?} for it: run make",
                String::from_utf8_lossy(&abi::tag_text(c.stamp.config_magic)),
                String::from_utf8_lossy(&abi::tag_text(config_magic))
            ),
        ));
    }
    Ok(OpImage {
        name: name.to_string(),
        bin,
        stamp: c.stamp,
        symbols: c.symbols,
    })
}

/// What `objcopy -O binary` makes of an operation ELF: the segments'
/// file bytes placed at their offsets from OPERATION_LOAD_ADDR, zeros in
/// the gaps, up to the end of the last file byte (`.bss` has none). None
/// unless the lowest segment starts at OPERATION_LOAD_ADDR. The segments
/// are already checked to lie inside the operation region, so the result
/// is at most OPERATION_MAX_SIZE bytes.
fn flat_image(segments: &[(u64, Vec<u8>)]) -> Option<Vec<u8>> {
    let lowest = segments.iter().map(|(a, _)| *a).min()?;
    if lowest != OPERATION_LOAD_ADDR {
        return None;
    }
    let end = segments
        .iter()
        .map(|(a, b)| a - OPERATION_LOAD_ADDR + b.len() as u64)
        .max()?;
    let mut image = vec![0u8; end as usize];
    for (addr, bytes) in segments {
        let at = (addr - OPERATION_LOAD_ADDR) as usize;
        image[at..at + bytes.len()].copy_from_slice(bytes);
    }
    Some(image)
}

fn check_abi(core: &CoreImage, op: &OpImage) -> Result<()> {
    let (need, have) = (op.stamp.call_table_version, core.stamp.call_table_version);
    if need > have {
        return Err(Failure::new(
            ErrorKind::Abi,
            format!(
                "operation image `{}` was built against call table v{need}, core provides v{have}: run make",
                op.name
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded() -> (Named, Named, Named) {
        embedded_images("spin")
            .unwrap_or_else(|e| panic!("{e} (the unit tests need the guest images)"))
    }

    #[test]
    #[cfg_attr(not(guest_images), ignore = "needs the guest images: run make first")]
    fn embedded_images_pass_every_check() {
        let (core, bin, elf) = embedded();
        let core = check_core(core.0, core.1).unwrap();
        let op = check_op("spin", bin, elf, abi::config::SPIN_MAGIC).unwrap();
        check_abi(&core, &op).unwrap();
        assert!(core.end > core.entry);
        assert!(!op.symbols.is_empty());
    }

    #[test]
    #[cfg_attr(not(guest_images), ignore = "needs the guest images: run make first")]
    fn corrupt_elves_are_refused_with_the_file_named() {
        let (core, _, _) = embedded();
        let err =
            check_core("x/kernel.elf".into(), Cow::Owned(b"\x7fELX....".to_vec())).unwrap_err();
        assert!(
            err.message.contains("x/kernel.elf") && err.message.contains("bad ELF magic"),
            "{err}"
        );
        let truncated = core.1[..core.1.len() / 3].to_vec();
        let err = check_core("x/kernel.elf".into(), Cow::Owned(truncated)).unwrap_err();
        assert!(err.message.contains("x/kernel.elf is corrupt"), "{err}");
        assert_eq!(err.kind, ErrorKind::Image);
    }

    #[test]
    #[cfg_attr(not(guest_images), ignore = "needs the guest images: run make first")]
    fn wrong_kind_newer_operation_and_wrong_config_are_refused() {
        let (core, bin, elf) = embedded();
        // The core's ELF offered as an operation: wrong region first.
        assert!(check_op("spin", bin.clone(), core.clone(), abi::config::SPIN_MAGIC).is_err());
        let err = check_op("spin", bin.clone(), elf.clone(), abi::tag(b"NOPE")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Abi);
        let core = check_core(core.0, core.1).unwrap();
        let mut op = check_op("spin", bin, elf, abi::config::SPIN_MAGIC).unwrap();
        op.stamp.call_table_version = core.stamp.call_table_version + 1;
        let err = check_abi(&core, &op).unwrap_err();
        assert_eq!(
            err.message,
            format!(
                "operation image `spin` was built against call table v{}, core provides v{}: run make",
                core.stamp.call_table_version + 1,
                core.stamp.call_table_version
            )
        );
    }

    #[test]
    #[cfg_attr(not(guest_images), ignore = "needs the guest images: run make first")]
    fn oversized_or_mismatched_bin_is_refused() {
        let (_, bin, elf) = embedded();
        let big = vec![0u8; OPERATION_MAX_SIZE as usize + 1];
        let err = check_op(
            "spin",
            ("spin.bin".into(), Cow::Owned(big)),
            elf.clone(),
            abi::config::SPIN_MAGIC,
        )
        .unwrap_err();
        assert!(err.message.contains("OPERATION_MAX_SIZE"), "{err}");
        let mut other = bin.1.to_vec();
        other[0] ^= 0xff;
        let err = check_op(
            "spin",
            ("spin.bin".into(), Cow::Owned(other)),
            elf,
            abi::config::SPIN_MAGIC,
        )
        .unwrap_err();
        assert!(err.message.contains("does not match"), "{err}");
    }

    #[test]
    #[cfg_attr(not(guest_images), ignore = "needs the guest images: run make first")]
    fn every_embedded_bin_is_exactly_its_elfs_loadable_bytes() {
        for op in operation_names() {
            let (_, bin, elf) = embedded_images(op).unwrap();
            let c = check_elf(
                &elf.0,
                &elf.1,
                OPERATION_LOAD_ADDR,
                OPERATION_MAX_SIZE,
                "operation",
                IMAGE_OPERATION,
            )
            .unwrap();
            assert_eq!(flat_image(&c.segments).as_deref(), Some(&bin.1[..]), "{op}");
        }
    }

    /// A .bin cut short, grown, or altered past its first segment (the
    /// old check compared only the common prefix of the first segment).
    #[test]
    #[cfg_attr(not(guest_images), ignore = "needs the guest images: run make first")]
    fn truncated_padded_or_altered_bins_are_refused() {
        let (_, bin, elf) = embedded();
        let check = |b: Vec<u8>| {
            check_op(
                "spin",
                ("x/spin.bin".into(), Cow::Owned(b)),
                elf.clone(),
                abi::config::SPIN_MAGIC,
            )
        };
        let full = bin.1.to_vec();
        for cut in [full.len() - 1, full.len() / 2, 16] {
            let err = check(full[..cut].to_vec()).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Image);
            assert!(
                err.message
                    .starts_with("guest image x/spin.bin is unusable: it does not match")
                    && err.message.contains(&format!("it is {cut} bytes, but")),
                "{err}"
            );
        }
        let mut longer = full.clone();
        longer.push(0);
        assert!(
            check(longer)
                .unwrap_err()
                .message
                .contains("does not match")
        );
        // The last byte: in the data segment, far past the first one.
        let mut last = full.clone();
        *last.last_mut().unwrap() ^= 1;
        let err = check(last).unwrap_err();
        assert!(
            err.message.contains(&format!(
                "differ from offset {:#x} on (CRC32",
                full.len() - 1
            )),
            "{err}"
        );
        check(full).unwrap();
    }
}
