//! The sandbox's region check ([`Memory::allows`]) and the task-view
//! field table it uses.
//!
//! A task view may be touched only inside one leaf field of the
//! `task_struct` target (nested structs expanded), so the check needs to
//! know, per byte of a view, which field holds it and whether that field
//! is writable. That table is computed once, at compile time, from
//! `abi::bpf::TARGET_TYPES`: the ABI's layout stays the single source and
//! the hot path is two table loads and a compare.

use abi::bpf::{TARGET_TYPES, TargetKind, TargetStruct};

use crate::{Memory, Range};

/// `a == b` for `&str` in a `const fn` (the standard one is not const).
const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The target struct `name`; a compile error if the ABI lacks it.
const fn target(name: &str) -> &'static TargetStruct {
    let mut i = 0;
    while i < TARGET_TYPES.len() {
        if str_eq(TARGET_TYPES[i].name, name) {
            return &TARGET_TYPES[i];
        }
        i += 1;
    }
    panic!("abi::bpf::TARGET_TYPES lacks a struct the task view needs")
}

/// Bytes of one task view (`abi::bpf::ScxTask`).
pub const TASK_VIEW_SIZE: usize = target("task_struct").size;

/// Per byte of a task view: 0 outside every field, else
/// `field_id << 1 | writable` with a distinct `field_id` (≥ 1) per leaf
/// field. Two bytes with the same non-zero entry lie in the same field,
/// and fields are contiguous, so checking an access's first and last byte
/// is enough.
pub const TASK_FIELDS: [u8; TASK_VIEW_SIZE] = {
    let mut map = [0u8; TASK_VIEW_SIZE];
    let mut next_id = 1u8;
    flatten(&mut map, 0, target("task_struct"), &mut next_id);
    map
};

// The field ids fit in 7 bits and the table in two cache lines.
const _: () = assert!(TASK_VIEW_SIZE <= 128);

/// Marks the leaf fields of `t`, placed at `base` in the view. A nested
/// `Struct` field contributes its own fields, each with its own
/// writability: `scx` itself is not writable, `scx.slice` is (the parent's
/// flag only says the struct as a whole cannot be assigned).
const fn flatten(map: &mut [u8; TASK_VIEW_SIZE], base: usize, t: &TargetStruct, next_id: &mut u8) {
    let mut i = 0;
    while i < t.fields.len() {
        let f = &t.fields[i];
        match f.kind {
            TargetKind::Struct(name) => {
                let inner = target(name);
                assert!(inner.size <= f.size, "nested target larger than its field");
                flatten(map, base + f.offset, inner, next_id);
            }
            _ => {
                assert!(*next_id < 128, "too many task fields for the table");
                let entry = (*next_id << 1) | f.writable as u8;
                *next_id += 1;
                let mut b = base + f.offset;
                while b < base + f.offset + f.size {
                    assert!(map[b] == 0, "overlapping task fields");
                    map[b] = entry;
                    b += 1;
                }
            }
        }
        i += 1;
    }
}

impl Memory {
    /// Whether a program may load (`write` false) or store `len` bytes at
    /// `addr`. The stack is checked by the interpreter itself.
    ///
    /// The access must lie wholly inside one range (a store: one `rw`
    /// range) or inside one field of one task view; an access straddling
    /// two adjacent ranges is refused, as the kernel refuses one crossing
    /// two objects. Empty accesses and empty ranges never match; no
    /// arithmetic here can overflow.
    #[inline]
    pub fn allows(&self, addr: u64, len: u64, write: bool) -> bool {
        // Map values and globals first: the most common target after the
        // stack.
        if self.rw.iter().any(|r| r.holds(addr, len)) {
            return true;
        }
        if !write && self.ro.iter().any(|r| r.holds(addr, len)) {
            return true;
        }
        self.task_allows(addr, len, write)
    }

    #[inline]
    pub(crate) fn task_allows(&self, addr: u64, len: u64, write: bool) -> bool {
        let t = self.tasks;
        // Views narrower than the struct would overlap: refuse them all.
        if addr < t.base || t.stride < TASK_VIEW_SIZE as u64 {
            return false;
        }
        let off = addr - t.base;
        // The runtime's stride is normally a power of two: no division.
        let (k, within) = if t.stride.is_power_of_two() {
            (off >> t.stride.trailing_zeros(), off & (t.stride - 1))
        } else {
            (off / t.stride, off % t.stride)
        };
        if k >= t.count || within >= TASK_VIEW_SIZE as u64 {
            return false;
        }
        // within < TASK_VIEW_SIZE, so neither side can overflow.
        if len == 0 || len > TASK_VIEW_SIZE as u64 - within {
            return false;
        }
        let first = TASK_FIELDS[within as usize];
        let last = TASK_FIELDS[(within + len - 1) as usize];
        first != 0 && first == last && (!write || first & 1 != 0)
    }
}

/// [`Memory`] arranged for the interpreter's check, computed once per
/// [`crate::Vm`]: only the non-empty ranges, and the task views' whole
/// span, so a typical access is one or two compares past the stack.
/// Allows exactly what [`Memory::allows`] allows.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sandbox {
    mem: Memory,
    n_rw: usize,
    n_ro: usize,
    /// Bytes from `tasks.base` that may hold a view (0: none can).
    task_span: u64,
}

impl Sandbox {
    pub(crate) fn new(mem: &Memory) -> Sandbox {
        let mut sb = Sandbox {
            mem: *mem,
            ..Sandbox::default()
        };
        sb.mem.rw = [Range::EMPTY; crate::MAX_RANGES];
        sb.mem.ro = [Range::EMPTY; crate::MAX_RANGES];
        for r in mem.rw.iter().filter(|r| r.start < r.end) {
            sb.mem.rw[sb.n_rw] = *r;
            sb.n_rw += 1;
        }
        for r in mem.ro.iter().filter(|r| r.start < r.end) {
            sb.mem.ro[sb.n_ro] = *r;
            sb.n_ro += 1;
        }
        let t = mem.tasks;
        if t.stride >= TASK_VIEW_SIZE as u64 {
            sb.task_span = t.stride.saturating_mul(t.count);
        }
        sb
    }

    #[inline(always)]
    pub(crate) fn allows(&self, addr: u64, len: u64, write: bool) -> bool {
        // Task views first: a program's most common target past its stack
        // and its context, and the one that is costliest to reach last.
        if addr.wrapping_sub(self.mem.tasks.base) < self.task_span
            && self.mem.task_allows(addr, len, write)
        {
            return true;
        }
        if self.mem.rw[..self.n_rw].iter().any(|r| r.holds(addr, len)) {
            return true;
        }
        !write && self.mem.ro[..self.n_ro].iter().any(|r| r.holds(addr, len))
    }
}

impl Range {
    /// The range of `len` bytes at `start` (saturating: a range never
    /// wraps past the end of the address space).
    pub const fn new(start: u64, len: u64) -> Range {
        Range {
            start,
            end: start.saturating_add(len),
        }
    }
}
