//! Names the guest function an address falls in, so a fault or a stuck
//! vCPU is reported as `op_spin::trigger_fault+0x12` rather than a bare
//! number. Breakpoints and single-step do not work for CPL3 code on this
//! machine, so this is the main debugging aid.

use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sym {
    start: u64,
    size: u64,
    /// As the ELF has it: demangled only when a message needs it (every
    /// run loads three tables and almost never names a function;
    /// demangling them all up front was most of `timing.images_us`).
    name: String,
}

/// Function symbols of one image, sorted by address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolTable {
    syms: Vec<Sym>,
}

/// How far past a size-less symbol (an assembly label) an address may lie
/// and still be attributed to it.
const UNSIZED_REACH: u64 = 0x1000;

impl SymbolTable {
    pub fn from_object<'d>(file: &impl Object<'d>) -> Self {
        // Functions, plus assembly labels (NOTYPE) in code sections: the
        // core's entry and exception stubs are labels. Names starting with
        // "__" are linker-script markers (__image_start), not code.
        let in_code = |i: Option<object::SectionIndex>| {
            i.is_some_and(|i| {
                file.section_by_index(i)
                    .is_ok_and(|sec| sec.kind() == SectionKind::Text)
            })
        };
        let mut syms: Vec<Sym> = file
            .symbols()
            .filter(|s| s.address() != 0)
            .filter(|s| match s.kind() {
                SymbolKind::Text => true,
                SymbolKind::Unknown => {
                    in_code(s.section_index()) && !s.name().unwrap_or("__").starts_with("__")
                }
                _ => false,
            })
            .filter_map(|s| {
                let name = s.name().ok()?;
                (!name.is_empty()).then(|| Sym {
                    start: s.address(),
                    size: s.size(),
                    name: name.to_string(),
                })
            })
            .collect();
        syms.sort_by(|a, b| a.start.cmp(&b.start).then(b.size.cmp(&a.size)));
        syms.dedup_by(|b, a| a.start == b.start && a.name == b.name);
        SymbolTable { syms }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// The function containing `addr` (demangled) and the offset into it.
    /// A sized symbol that covers `addr` wins; otherwise the nearest label
    /// below.
    pub fn lookup(&self, addr: u64) -> Option<(String, u64)> {
        let (name, off) = self.lookup_raw(addr)?;
        Some((format!("{:#}", rustc_demangle::demangle(name)), off))
    }

    fn lookup_raw(&self, addr: u64) -> Option<(&str, u64)> {
        let idx = self.syms.partition_point(|s| s.start <= addr);
        let below = &self.syms[..idx];
        if let Some(s) = below
            .iter()
            .rev()
            .find(|s| s.size > 0 && addr < s.start + s.size)
        {
            return Some((&s.name, addr - s.start));
        }
        let s = below.last()?;
        (s.size == 0 && addr - s.start < UNSIZED_REACH).then(|| (s.name.as_str(), addr - s.start))
    }
}

/// All loaded images' tables, each with the label used in messages.
#[derive(Debug, Clone, Default)]
pub struct Symbolizer {
    tables: Vec<(String, SymbolTable)>,
}

impl Symbolizer {
    pub fn add(&mut self, label: impl Into<String>, table: SymbolTable) {
        self.tables.push((label.into(), table));
    }

    /// Just the function containing `addr`, e.g. "spin::stall+0x12".
    pub fn function(&self, addr: u64) -> Option<String> {
        self.tables.iter().find_map(|(_, t)| {
            t.lookup(addr).map(|(name, off)| {
                if off == 0 {
                    name.to_string()
                } else {
                    format!("{name}+{off:#x}")
                }
            })
        })
    }

    /// Where `addr` is, for messages: "in op_spin::trigger_fault+0x12
    /// (operation spin)", or "outside any known function".
    pub fn locate(&self, addr: u64) -> String {
        for (label, t) in &self.tables {
            if let Some((name, off)) = t.lookup(addr) {
                return if off == 0 {
                    format!("in {name} ({label})")
                } else {
                    format!("in {name}+{off:#x} ({label})")
                };
            }
        }
        "outside any known function".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(u64, u64, &str)]) -> SymbolTable {
        let mut t = SymbolTable {
            syms: entries
                .iter()
                .map(|&(start, size, name)| Sym {
                    start,
                    size,
                    name: name.to_string(),
                })
                .collect(),
        };
        t.syms.sort_by_key(|s| s.start);
        t
    }

    #[test]
    fn lookup_prefers_covering_sized_symbols() {
        let t = table(&[
            (0x1000, 0x20, "a"),
            (0x1020, 0, "label"),
            (0x1040, 0x10, "b"),
        ]);
        assert_eq!(t.lookup_raw(0x1000), Some(("a", 0)));
        assert_eq!(t.lookup_raw(0x101f), Some(("a", 0x1f)));
        assert_eq!(t.lookup_raw(0x1030), Some(("label", 0x10)));
        assert_eq!(t.lookup_raw(0x1045), Some(("b", 5)));
        assert_eq!(t.lookup_raw(0x0fff), None);
        assert_eq!(t.lookup_raw(0x1050), None, "past the end of a sized symbol");
        let mut s = Symbolizer::default();
        s.add("core", t);
        assert_eq!(s.locate(0x1045), "in b+0x5 (core)");
        assert_eq!(s.locate(0x1000), "in a (core)");
        assert_eq!(s.locate(0x9999_0000), "outside any known function");
        assert_eq!(s.function(0x1045).as_deref(), Some("b+0x5"));
        assert_eq!(s.function(0x1000).as_deref(), Some("a"));
        assert_eq!(s.function(0x9999_0000), None);
    }

    #[test]
    fn names_are_demangled_when_looked_up() {
        let t = table(&[(0x2000, 0x10, "_ZN4core3fmt5write17h0123456789abcdefE")]);
        assert_eq!(t.lookup(0x2004), Some(("core::fmt::write".to_string(), 4)));
    }

    #[test]
    #[cfg_attr(not(guest_images), ignore = "needs the guest images: run make first")]
    fn embedded_core_has_symbols_for_its_entry() {
        let Some(core) = crate::images::embedded_core() else {
            panic!(
                "the core image was not embedded in this test build: run make (or ./build.sh) \
                 before cargo test"
            );
        };
        let file = object::File::parse(core).expect("embedded kernel.elf parses");
        let t = SymbolTable::from_object(&file);
        assert!(!t.is_empty(), "embedded kernel.elf has no function symbols");
        let entry = file.entry();
        let (name, _) = t
            .lookup(entry)
            .expect("the core entry point is inside a known function");
        assert!(!name.is_empty());
    }
}
