//! The interpreter loop: one `match` on the opcode byte per instruction,
//! registers in a local array, every memory access checked first against
//! the interpreter's own stack and then against [`Memory::allows`].
//! Register numbers were checked once, by [`crate::Program::check`].
//!
//! Semantics follow the kernel's interpreter (`kernel/bpf/core.c`), which
//! is what clang's output is written against: `x / 0 == 0`, `x % 0 == x`,
//! shift counts masked to the operand width, 32-bit operations
//! zero-extending into the 64-bit register.

use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::memory::Sandbox;
use abi::bpf::{KFUNC_MISSING, KFUNCS, PSEUDO_CALL, PSEUDO_KFUNC_CALL};

use crate::{
    Call, CallCx, Env, FAULT_BAD_INSN, FAULT_BUDGET, FAULT_CALL_DEPTH, FAULT_LOAD,
    FAULT_MISSING_KFUNC, FAULT_STORE, Fault, Insn, MAX_CALL_DEPTH, Memory, Range, STACK_SIZE,
    STACK_WORDS, Vm,
};

/// Bytes of the whole interpreter stack.
pub(crate) const STACK_BYTES: u64 = (STACK_WORDS * 8) as u64;

/// `BPF_ATOMIC` operations (`imm` of the instruction).
const ATOMIC_FETCH: i32 = 0x01;
const ATOMIC_ADD: i32 = 0x00;
const ATOMIC_OR: i32 = 0x40;
const ATOMIC_AND: i32 = 0x50;
const ATOMIC_XOR: i32 = 0xa0;
const ATOMIC_XCHG: i32 = 0xe0 | ATOMIC_FETCH;
const ATOMIC_CMPXCHG: i32 = 0xf0 | ATOMIC_FETCH;

/// What a caller frame keeps across a sub-program call: where to return
/// and its callee-saved registers. Its frame pointer is implied by the
/// depth (frames are laid out top-down in the stack buffer).
#[derive(Clone, Copy, Default)]
pub(crate) struct Frame {
    ret: usize,
    saved: [u64; 4],
}

/// Integer types a program may load or store: every bit pattern is a
/// valid value, which the raw reads below rely on.
trait Word: Copy {
    const SIZE: u64;
}
impl Word for u8 {
    const SIZE: u64 = 1;
}
impl Word for u16 {
    const SIZE: u64 = 2;
}
impl Word for u32 {
    const SIZE: u64 = 4;
}
impl Word for u64 {
    const SIZE: u64 = 8;
}

/// Checked access to everything a program may touch.
struct Access<'m> {
    mem: &'m Memory,
    sandbox: &'m Sandbox,
    /// The stack buffer (derived from the `&mut` the caller lent `run`,
    /// so stack accesses keep its provenance) and its address.
    sptr: *mut u8,
    sbase: u64,
}

impl Access<'_> {
    /// A pointer to `len` bytes at `addr` if the program may access them.
    #[inline(always)]
    fn resolve(&self, addr: u64, len: u64, write: bool) -> Option<*mut u8> {
        let off = addr.wrapping_sub(self.sbase);
        if off < STACK_BYTES && len <= STACK_BYTES - off {
            // SAFETY: off + len <= STACK_BYTES, so the result stays inside
            // the stack buffer `sptr` points to.
            return Some(unsafe { self.sptr.add(off as usize) });
        }
        if self.sandbox.allows(addr, len, write) {
            return Some(ptr::with_exposed_provenance_mut(addr as usize));
        }
        None
    }

    #[inline(always)]
    fn load<T: Word>(&self, addr: u64) -> Option<T> {
        let p = self.resolve(addr, T::SIZE, false)?;
        // SAFETY: `resolve` returned a pointer to T::SIZE bytes either in
        // the stack buffer or in memory the runtime declared readable for
        // the Vm's life (the contract of `Vm::new`); `T` is an integer,
        // valid for any bits; unaligned reads are allowed.
        Some(unsafe { ptr::read_unaligned(p.cast::<T>()) })
    }

    #[inline(always)]
    fn store<T: Word>(&self, addr: u64, v: T) -> bool {
        let Some(p) = self.resolve(addr, T::SIZE, true) else {
            return false;
        };
        // SAFETY: as in `load`, with the range declared writable.
        unsafe { ptr::write_unaligned(p.cast::<T>(), v) };
        true
    }
}

/// `atomic64` and `atomic32`: `op` of a `BPF_ATOMIC` on one word, the old
/// value, or None for an unknown operation. Aligned words use real
/// atomics; a misaligned one (the kernel's verifier would refuse it) falls
/// back to a plain read-modify-write, which is enough since the runtime
/// runs programs under one scheduler lock.
macro_rules! atomic_op {
    ($name:ident, $t:ty, $atomic:ty, $bytes:literal) => {
        #[doc = concat!("`atomic_op!` on a ", stringify!($t), ".")]
        ///
        /// # Safety
        #[doc = concat!("`p` must point to ", $bytes, " bytes the program may read and write.")]
        #[inline]
        unsafe fn $name(p: *mut u8, op: i32, val: $t, expect: $t) -> Option<$t> {
            let p = p.cast::<$t>();
            if p.is_aligned() {
                // SAFETY: the caller vouches for the bytes; they are
                // aligned, and all accesses to them during the run are
                // through this VM.
                let a = unsafe { <$atomic>::from_ptr(p) };
                let o = Ordering::SeqCst;
                return Some(match op & !ATOMIC_FETCH {
                    _ if op == ATOMIC_XCHG => a.swap(val, o),
                    _ if op == ATOMIC_CMPXCHG => match a.compare_exchange(expect, val, o, o) {
                        Ok(v) | Err(v) => v,
                    },
                    ATOMIC_ADD => a.fetch_add(val, o),
                    ATOMIC_OR => a.fetch_or(val, o),
                    ATOMIC_AND => a.fetch_and(val, o),
                    ATOMIC_XOR => a.fetch_xor(val, o),
                    _ => return None,
                });
            }
            // SAFETY: the caller vouches for the bytes; unaligned access.
            let old = unsafe { ptr::read_unaligned(p) };
            let new = match op & !ATOMIC_FETCH {
                _ if op == ATOMIC_XCHG => val,
                _ if op == ATOMIC_CMPXCHG => {
                    if old == expect {
                        val
                    } else {
                        old
                    }
                }
                ATOMIC_ADD => old.wrapping_add(val),
                ATOMIC_OR => old | val,
                ATOMIC_AND => old & val,
                ATOMIC_XOR => old ^ val,
                _ => return None,
            };
            // SAFETY: as above.
            unsafe { ptr::write_unaligned(p, new) };
            Some(old)
        }
    };
}

atomic_op!(atomic64, u64, AtomicU64, "8");
atomic_op!(atomic32, u32, AtomicU32, "4");

#[inline(always)]
fn div64(a: u64, b: u64, signed: bool) -> u64 {
    match (b, signed) {
        (0, _) => 0,
        (_, false) => a / b,
        // i64::MIN / -1 wraps to i64::MIN, as in the kernel.
        (_, true) => (a as i64).wrapping_div(b as i64) as u64,
    }
}

#[inline(always)]
fn mod64(a: u64, b: u64, signed: bool) -> u64 {
    match (b, signed) {
        (0, _) => a,
        (_, false) => a % b,
        (_, true) => (a as i64).wrapping_rem(b as i64) as u64,
    }
}

#[inline(always)]
fn div32(a: u32, b: u32, signed: bool) -> u64 {
    (match (b, signed) {
        (0, _) => 0,
        (_, false) => a / b,
        (_, true) => (a as i32).wrapping_div(b as i32) as u32,
    }) as u64
}

#[inline(always)]
fn mod32(a: u32, b: u32, signed: bool) -> u64 {
    (match (b, signed) {
        (0, _) => a,
        (_, false) => a % b,
        (_, true) => (a as i32).wrapping_rem(b as i32) as u32,
    }) as u64
}

/// Whether `i` names registers the interpreter has (r0..r10) and, if it
/// writes its dst register, not r10. Writers are the ALU classes, loads
/// and `ld_imm64`; jumps, stores and calls only read their registers
/// (an atomic fetch writes src: rare, checked where it runs).
pub(crate) fn valid_regs(i: &Insn) -> bool {
    let (d, s) = (i.dst(), i.src());
    let writes = matches!(i.code & 7, 0x01 | 0x04 | 0x07) || i.code == 0x18;
    d <= 10 && s <= 10 && !(writes && d == 10)
}

/// The body of [`Vm::run`].
pub(crate) fn run<E: Env>(
    vm: &mut Vm<'_>,
    env: &mut E,
    stack: &mut [u64; STACK_WORDS],
    entry: u32,
    args: &[u64],
    budget: u64,
) -> Result<u64, Fault> {
    let insns = vm.prog.insns;
    let funcs = vm.prog.funcs;
    let sptr = stack.as_mut_ptr().cast::<u8>();
    let sbase = sptr.expose_provenance() as u64;
    let acc = Access {
        mem: &vm.mem,
        sandbox: &vm.sandbox,
        sptr,
        sbase,
    };
    // Frame d's frame pointer (r10) is `top - d * STACK_SIZE`.
    let top = sbase + STACK_BYTES;
    let stack_range = Range {
        start: sbase,
        end: top,
    };

    // 16 registers so that a 4-bit register number never needs a bounds
    // check; r11..r15 are refused when decoded.
    let mut regs = [0u64; 16];
    for (r, a) in regs[1..6].iter_mut().zip(args) {
        *r = *a;
    }
    regs[10] = top;
    let frames = &mut vm.frames;
    let mut depth = 0usize;
    let mut pc = entry as usize;
    let mut left = budget;

    let result = 'run: loop {
        let Some(&insn) = insns.get(pc) else {
            break 'run Err(Fault {
                kind: FAULT_BAD_INSN,
                insn: pc as u32,
                addr: 0,
                size: 0,
            });
        };
        let cur = pc;
        macro_rules! fault {
            ($kind:expr, $addr:expr, $size:expr) => {
                break 'run Err(Fault {
                    kind: $kind,
                    insn: cur as u32,
                    addr: $addr,
                    size: $size,
                })
            };
        }
        macro_rules! bad {
            () => {
                fault!(FAULT_BAD_INSN, 0, 0)
            };
        }
        if left == 0 {
            fault!(FAULT_BUDGET, 0, 0);
        }
        left -= 1;
        pc += 1;
        let d = insn.dst();
        let s = insn.src();

        // A register write; r10 is read-only.
        macro_rules! set {
            ($v:expr) => {{
                let v = $v;
                regs[d] = v;
            }};
        }
        macro_rules! jump {
            ($cond:expr) => {
                if $cond {
                    let t = pc.wrapping_add_signed(insn.off as isize);
                    if t >= insns.len() {
                        fault!(FAULT_BAD_INSN, t as u64, 0);
                    }
                    pc = t;
                }
            };
        }
        macro_rules! load {
            ($t:ty, $conv:expr) => {{
                let addr = regs[s].wrapping_add(insn.off as i64 as u64);
                match acc.load::<$t>(addr) {
                    Some(v) => set!($conv(v)),
                    None => fault!(FAULT_LOAD, addr, <$t as Word>::SIZE),
                }
            }};
        }
        macro_rules! store {
            ($t:ty, $v:expr) => {{
                let addr = regs[d].wrapping_add(insn.off as i64 as u64);
                if !acc.store::<$t>(addr, $v as $t) {
                    fault!(FAULT_STORE, addr, <$t as Word>::SIZE);
                }
            }};
        }
        macro_rules! signed {
            () => {
                match insn.off {
                    0 => false,
                    1 => true,
                    _ => bad!(),
                }
            };
        }
        let k64 = insn.imm as i64 as u64;
        let k32 = insn.imm as u32;
        let dst = regs[d];
        let src = regs[s];
        let d32 = dst as u32;
        let s32 = src as u32;
        match insn.code {
            // ALU64, K then X source.
            0x07 => set!(dst.wrapping_add(k64)),
            0x0f => set!(dst.wrapping_add(src)),
            0x17 => set!(dst.wrapping_sub(k64)),
            0x1f => set!(dst.wrapping_sub(src)),
            0x27 => set!(dst.wrapping_mul(k64)),
            0x2f => set!(dst.wrapping_mul(src)),
            0x37 => set!(div64(dst, k64, signed!())),
            0x3f => set!(div64(dst, src, signed!())),
            0x47 => set!(dst | k64),
            0x4f => set!(dst | src),
            0x57 => set!(dst & k64),
            0x5f => set!(dst & src),
            0x67 => set!(dst.wrapping_shl(k32)),
            0x6f => set!(dst.wrapping_shl(s32)),
            0x77 => set!(dst.wrapping_shr(k32)),
            0x7f => set!(dst.wrapping_shr(s32)),
            0x87 => set!(dst.wrapping_neg()),
            0x97 => set!(mod64(dst, k64, signed!())),
            0x9f => set!(mod64(dst, src, signed!())),
            0xa7 => set!(dst ^ k64),
            0xaf => set!(dst ^ src),
            0xb7 => set!(k64),
            0xbf => set!(match insn.off {
                0 => src,
                // v4 `movsx`.
                8 => src as i8 as i64 as u64,
                16 => src as i16 as i64 as u64,
                32 => src as i32 as i64 as u64,
                _ => bad!(),
            }),
            0xc7 => set!((dst as i64).wrapping_shr(k32) as u64),
            0xcf => set!((dst as i64).wrapping_shr(s32) as u64),
            // v4 unconditional byte swap.
            0xd7 => set!(match insn.imm {
                16 => (dst as u16).swap_bytes() as u64,
                32 => d32.swap_bytes() as u64,
                64 => dst.swap_bytes(),
                _ => bad!(),
            }),

            // ALU (32-bit, zero-extending), K then X source.
            0x04 => set!(d32.wrapping_add(k32) as u64),
            0x0c => set!(d32.wrapping_add(s32) as u64),
            0x14 => set!(d32.wrapping_sub(k32) as u64),
            0x1c => set!(d32.wrapping_sub(s32) as u64),
            0x24 => set!(d32.wrapping_mul(k32) as u64),
            0x2c => set!(d32.wrapping_mul(s32) as u64),
            0x34 => set!(div32(d32, k32, signed!())),
            0x3c => set!(div32(d32, s32, signed!())),
            0x44 => set!((d32 | k32) as u64),
            0x4c => set!((d32 | s32) as u64),
            0x54 => set!((d32 & k32) as u64),
            0x5c => set!((d32 & s32) as u64),
            0x64 => set!(d32.wrapping_shl(k32) as u64),
            0x6c => set!(d32.wrapping_shl(s32) as u64),
            0x74 => set!(d32.wrapping_shr(k32) as u64),
            0x7c => set!(d32.wrapping_shr(s32) as u64),
            0x84 => set!(d32.wrapping_neg() as u64),
            0x94 => set!(mod32(d32, k32, signed!())),
            0x9c => set!(mod32(d32, s32, signed!())),
            0xa4 => set!((d32 ^ k32) as u64),
            0xac => set!((d32 ^ s32) as u64),
            0xb4 => set!(k32 as u64),
            0xbc => set!(match insn.off {
                0 => s32 as u64,
                8 => src as i8 as i32 as u32 as u64,
                16 => src as i16 as i32 as u32 as u64,
                _ => bad!(),
            }),
            0xc4 => set!((d32 as i32).wrapping_shr(k32) as u32 as u64),
            0xcc => set!((d32 as i32).wrapping_shr(s32) as u32 as u64),
            // BPF_END to little-endian (a truncation on this host) and to
            // big-endian.
            0xd4 => set!(match insn.imm {
                16 => (dst as u16).to_le() as u64,
                32 => d32.to_le() as u64,
                64 => dst.to_le(),
                _ => bad!(),
            }),
            0xdc => set!(match insn.imm {
                16 => (dst as u16).to_be() as u64,
                32 => d32.to_be() as u64,
                64 => dst.to_be(),
                _ => bad!(),
            }),

            // JMP: 64-bit compares against the sign-extended immediate.
            0x05 => jump!(true),
            0x15 => jump!(dst == k64),
            0x1d => jump!(dst == src),
            0x25 => jump!(dst > k64),
            0x2d => jump!(dst > src),
            0x35 => jump!(dst >= k64),
            0x3d => jump!(dst >= src),
            0x45 => jump!(dst & k64 != 0),
            0x4d => jump!(dst & src != 0),
            0x55 => jump!(dst != k64),
            0x5d => jump!(dst != src),
            0x65 => jump!((dst as i64) > (k64 as i64)),
            0x6d => jump!((dst as i64) > (src as i64)),
            0x75 => jump!((dst as i64) >= (k64 as i64)),
            0x7d => jump!((dst as i64) >= (src as i64)),
            0xa5 => jump!(dst < k64),
            0xad => jump!(dst < src),
            0xb5 => jump!(dst <= k64),
            0xbd => jump!(dst <= src),
            0xc5 => jump!((dst as i64) < (k64 as i64)),
            0xcd => jump!((dst as i64) < (src as i64)),
            0xd5 => jump!((dst as i64) <= (k64 as i64)),
            0xdd => jump!((dst as i64) <= (src as i64)),

            // JMP32: compares of the low halves.
            0x06 => {
                // v4 `gotol`: the offset is in imm.
                let t = pc.wrapping_add_signed(insn.imm as isize);
                if t >= insns.len() {
                    fault!(FAULT_BAD_INSN, t as u64, 0);
                }
                pc = t;
            }
            0x16 => jump!(d32 == k32),
            0x1e => jump!(d32 == s32),
            0x26 => jump!(d32 > k32),
            0x2e => jump!(d32 > s32),
            0x36 => jump!(d32 >= k32),
            0x3e => jump!(d32 >= s32),
            0x46 => jump!(d32 & k32 != 0),
            0x4e => jump!(d32 & s32 != 0),
            0x56 => jump!(d32 != k32),
            0x5e => jump!(d32 != s32),
            0x66 => jump!((d32 as i32) > (k32 as i32)),
            0x6e => jump!((d32 as i32) > (s32 as i32)),
            0x76 => jump!((d32 as i32) >= (k32 as i32)),
            0x7e => jump!((d32 as i32) >= (s32 as i32)),
            0xa6 => jump!(d32 < k32),
            0xae => jump!(d32 < s32),
            0xb6 => jump!(d32 <= k32),
            0xbe => jump!(d32 <= s32),
            0xc6 => jump!((d32 as i32) < (k32 as i32)),
            0xce => jump!((d32 as i32) < (s32 as i32)),
            0xd6 => jump!((d32 as i32) <= (k32 as i32)),
            0xde => jump!((d32 as i32) <= (s32 as i32)),

            // LDX, then v4 sign-extending LDX (MEMSX).
            0x61 => load!(u32, u64::from),
            0x69 => load!(u16, u64::from),
            0x71 => load!(u8, u64::from),
            0x79 => load!(u64, core::convert::identity),
            0x81 => load!(u32, |v: u32| v as i32 as i64 as u64),
            0x89 => load!(u16, |v: u16| v as i16 as i64 as u64),
            0x91 => load!(u8, |v: u8| v as i8 as i64 as u64),
            // STX, then ST (immediate).
            0x63 => store!(u32, src),
            0x6b => store!(u16, src),
            0x73 => store!(u8, src),
            0x7b => store!(u64, src),
            0x62 => store!(u32, k32),
            0x6a => store!(u16, k32),
            0x72 => store!(u8, k32),
            0x7a => store!(u64, k64),

            // BPF_ATOMIC, 32 and 64 bits.
            0xc3 | 0xdb => {
                let wide = insn.code == 0xdb;
                let size = if wide { 8 } else { 4 };
                let addr = dst.wrapping_add(insn.off as i64 as u64);
                let op = insn.imm;
                let Some(p) = acc.resolve(addr, size, true) else {
                    fault!(FAULT_STORE, addr, size);
                };
                let old = if wide {
                    // SAFETY: `resolve` vouched for 8 writable bytes.
                    unsafe { atomic64(p, op, src, regs[0]) }
                } else {
                    // SAFETY: `resolve` vouched for 4 writable bytes.
                    unsafe { atomic32(p, op, s32, regs[0] as u32) }.map(u64::from)
                };
                let Some(old) = old else { bad!() };
                if op == ATOMIC_CMPXCHG {
                    regs[0] = old;
                } else if op & ATOMIC_FETCH != 0 {
                    if s == 10 {
                        bad!();
                    }
                    regs[s] = old;
                }
            }

            // ld_imm64: always a plain constant after the loader.
            0x18 => {
                let Some(next) = insns.get(pc) else { bad!() };
                if s != 0 {
                    bad!();
                }
                set!(k32 as u64 | (next.imm as u32 as u64) << 32);
                pc += 1;
            }

            // CALL: helper, sub-program or kfunc.
            0x85 => match insn.src() as u8 {
                PSEUDO_CALL => {
                    let t = pc.wrapping_add_signed(insn.imm as isize);
                    if t >= insns.len() || funcs.binary_search(&(t as u32)).is_err() {
                        fault!(FAULT_BAD_INSN, t as u64, 0);
                    }
                    if depth + 1 >= MAX_CALL_DEPTH {
                        fault!(FAULT_CALL_DEPTH, t as u64, 0);
                    }
                    frames[depth] = Frame {
                        ret: pc,
                        saved: [regs[6], regs[7], regs[8], regs[9]],
                    };
                    depth += 1;
                    regs[10] = top - (depth * STACK_SIZE) as u64;
                    pc = t;
                }
                0 | PSEUDO_KFUNC_CALL => {
                    let call = if s == 0 {
                        Call::Helper(k32)
                    } else if insn.imm == KFUNC_MISSING {
                        fault!(FAULT_MISSING_KFUNC, 0, 0);
                    } else if insn.imm < 0 || insn.imm as usize >= KFUNCS.len() {
                        bad!();
                    } else {
                        Call::Kfunc(k32)
                    };
                    let cx = CallCx {
                        mem: acc.mem,
                        stack: stack_range,
                    };
                    let args = [regs[1], regs[2], regs[3], regs[4], regs[5]];
                    match env.call(&cx, call, args) {
                        Ok(v) => regs[0] = v,
                        Err(e) => fault!(e.kind, e.addr, e.size),
                    }
                }
                _ => bad!(),
            },
            0x95 => {
                if depth == 0 {
                    break 'run Ok(regs[0]);
                }
                depth -= 1;
                let f = frames[depth];
                regs[6..10].copy_from_slice(&f.saved);
                regs[10] = top - (depth * STACK_SIZE) as u64;
                pc = f.ret;
            }
            _ => bad!(),
        }
    };
    vm.executed += budget - left;
    result
}
