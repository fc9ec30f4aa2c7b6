//! The ELF side of an object: sections, symbols and relocations, read
//! with the `object` crate (which bounds every offset) into plain owned
//! values, so the rest of the loader never touches ELF structures.

use crate::error::{Res, bail};
use object::{
    Architecture, BinaryFormat, Object, ObjectSection, ObjectSymbol, RelocationFlags,
    RelocationTarget, SectionIndex, SymbolKind, SymbolSection,
};

/// `R_BPF_64_64`: the 64-bit immediate of an `ld_imm64`.
pub const R_BPF_64_64: u32 = 1;
/// `R_BPF_64_ABS64`: a 64-bit datum (a `struct_ops` member's function).
pub const R_BPF_64_ABS64: u32 = 2;
/// `R_BPF_64_32`: the 32-bit immediate of a call.
pub const R_BPF_64_32: u32 = 10;

#[derive(Clone, Debug)]
pub struct Section {
    pub index: usize,
    pub name: String,
    /// Bytes (zeros for NOBITS, so every section is `size` long).
    pub data: Vec<u8>,
    pub relocs: Vec<Reloc>,
}

#[derive(Clone, Copy, Debug)]
pub struct Reloc {
    pub offset: u64,
    pub r_type: u32,
    /// Index in [`Elf::symbols`].
    pub symbol: usize,
}

#[derive(Clone, Debug)]
pub struct Symbol {
    pub name: String,
    /// ELF section index, None when undefined (an extern: kfunc, ksym).
    pub section: Option<usize>,
    pub value: u64,
    pub size: u64,
    pub is_func: bool,
    pub is_section: bool,
    pub weak: bool,
}

#[derive(Clone, Debug)]
pub struct Elf {
    pub sections: Vec<Section>,
    /// Indexed by ELF symbol index (gaps are empty names).
    pub symbols: Vec<Symbol>,
    /// The STT_FILE symbol (the source file's name), for messages.
    pub file: Option<String>,
}

/// Sections whose bytes the loader reads (others, e.g. DWARF, are never
/// copied: they are most of an object's size).
fn wanted(name: &str) -> bool {
    name == ".text"
        || name.starts_with("struct_ops")
        || name.starts_with(".struct_ops")
        || name.starts_with(".rodata")
        || name.starts_with(".data")
        || name.starts_with(".bss")
        || name == ".maps"
        || name == ".BTF"
        || name == ".BTF.ext"
}

/// Sizes past which an object is not a scheduler but an attack on the
/// loader's memory (the image itself is far smaller).
const MAX_SECTION: u64 = 64 << 20;

pub fn parse(data: &[u8]) -> Res<Elf> {
    let file = match object::File::parse(data) {
        Ok(f) => f,
        Err(e) => bail!("not a BPF object: {e}"),
    };
    if file.format() != BinaryFormat::Elf {
        bail!("not a BPF object: not ELF");
    }
    if file.architecture() != Architecture::Bpf {
        bail!(
            "not a BPF object: ELF for {:?}, not BPF",
            file.architecture()
        );
    }
    if !file.is_little_endian() || !file.is_64() {
        bail!("not a BPF object: only 64-bit little-endian BPF is supported");
    }
    let mut symbols = Vec::new();
    let mut source = None;
    for sym in file.symbols() {
        if sym.kind() == SymbolKind::File && source.is_none() {
            source = sym.name().ok().map(str::to_string);
        }
        let i = sym.index().0;
        if i >= 1 << 20 {
            bail!("too many symbols");
        }
        while symbols.len() <= i {
            symbols.push(Symbol {
                name: String::new(),
                section: None,
                value: 0,
                size: 0,
                is_func: false,
                is_section: false,
                weak: false,
            });
        }
        let section = match sym.section() {
            SymbolSection::Section(SectionIndex(s)) => Some(s),
            _ => None,
        };
        let name = sym.name().unwrap_or("").to_string();
        symbols[i] = Symbol {
            name,
            section,
            value: sym.address(),
            size: sym.size(),
            is_func: sym.kind() == SymbolKind::Text,
            is_section: sym.kind() == SymbolKind::Section,
            weak: sym.is_weak(),
        };
    }
    let mut sections = Vec::new();
    for sec in file.sections() {
        let name = match sec.name() {
            Ok(n) => n.to_string(),
            Err(e) => bail!("bad section name: {e}"),
        };
        if !wanted(&name) {
            continue;
        }
        let size = sec.size();
        if size > MAX_SECTION {
            bail!("section {name} is {size} bytes, more than schedlab loads");
        }
        let bytes = sec.data().map_err(|e| format!("section {name}: {e}"))?;
        let data = if bytes.is_empty() {
            vec![0; size as usize]
        } else {
            bytes.to_vec()
        };
        let mut relocs = Vec::new();
        for (offset, r) in sec.relocations() {
            let RelocationFlags::Elf { r_type } = r.flags() else {
                bail!("section {name}: relocation of unknown encoding");
            };
            let RelocationTarget::Symbol(s) = r.target() else {
                bail!("section {name}: relocation at {offset:#x} has no symbol");
            };
            if s.0 >= symbols.len() {
                bail!(
                    "section {name}: relocation at {offset:#x} names symbol {} which does not exist",
                    s.0
                );
            }
            relocs.push(Reloc {
                offset,
                r_type: r_type.0,
                symbol: s.0,
            });
        }
        relocs.sort_by_key(|r| r.offset);
        sections.push(Section {
            index: sec.index().0,
            name,
            data,
            relocs,
        });
    }
    Ok(Elf {
        sections,
        symbols,
        file: source,
    })
}

impl Elf {
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    pub fn section_by_index(&self, index: usize) -> Option<&Section> {
        self.sections.iter().find(|s| s.index == index)
    }

    /// Name of the section an ELF index refers to ("?" if not loaded).
    pub fn section_name(&self, index: usize) -> &str {
        self.section_by_index(index).map_or("?", |s| &s.name)
    }

    /// Named, defined, non-section symbols of section `index`.
    pub fn symbols_in(&self, index: usize) -> impl Iterator<Item = &Symbol> {
        self.symbols
            .iter()
            .filter(move |s| s.section == Some(index) && !s.is_section && !s.name.is_empty())
    }
}
