//! The BPF interpreter and its sandbox: runs the instructions of a
//! program image (`abi::bpf`) the host's loader prepared, checking every
//! load and store against the memory the program may touch ([`Memory`]),
//! counting instructions against a budget, and handing helper and kfunc
//! calls to the caller's [`Env`]. `no_std`, so the BPF runtime policy
//! image links it; its tests run on the host, where the "guest memory" is
//! ordinary buffers (addresses are plain `u64`s either way).
#![no_std]
#[cfg(test)]
extern crate std;

mod interp;
mod memory;
#[cfg(test)]
mod tests;

pub use memory::{TASK_FIELDS, TASK_VIEW_SIZE};

/// `FAULT_DIV_ZERO` is never raised: BPF defines `x / 0 == 0` and
/// `x % 0 == x` (the kernel's runtime semantics, which clang's output
/// relies on); it stays exported only because the ABI names it.
pub use abi::bpf::{
    FAULT_BAD_ARG, FAULT_BAD_INSN, FAULT_BUDGET, FAULT_CALL_DEPTH, FAULT_DIV_ZERO, FAULT_LOAD,
    FAULT_MISSING_KFUNC, FAULT_STORE, MAX_CALL_DEPTH, STACK_SIZE,
};

/// One instruction, as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub const fn dst(&self) -> usize {
        (self.regs & 0xf) as usize
    }
    pub const fn src(&self) -> usize {
        (self.regs >> 4) as usize
    }
}

/// `[start, end)` in the address space the interpreter runs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub const EMPTY: Range = Range { start: 0, end: 0 };
    /// Whether `[addr, addr + len)` lies wholly inside (len > 0).
    #[inline]
    pub fn holds(&self, addr: u64, len: u64) -> bool {
        addr >= self.start && len <= self.end.saturating_sub(addr) && len > 0
    }
}

/// The task views (`abi::bpf::ScxTask`, one per task-table slot): a
/// program may read a view only inside the fields of the `task_struct`
/// target (nested structs included) and write only the writable ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskArea {
    pub base: u64,
    pub stride: u64,
    pub count: u64,
}

/// Most extra ranges of each kind a runtime can declare.
pub const MAX_RANGES: usize = 4;

/// Everything a program may touch besides its own stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// Loads only (`.rodata`, the exit info and its texts, scratch the
    /// runtime passes callbacks).
    pub ro: [Range; MAX_RANGES],
    /// Loads and stores (globals and map values, cpumasks).
    pub rw: [Range; MAX_RANGES],
    pub tasks: TaskArea,
}

/// Where a program stopped, for `abi::bpf::BpfStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// `FAULT_*`.
    pub kind: u32,
    /// Instruction index (in the one array) it stopped at (for a pc that
    /// ran off the array: that pc).
    pub insn: u32,
    /// The bad address and access size; what a `CallFault` said; for
    /// `FAULT_BAD_INSN` of a jump or call: its bad target; else 0.
    pub addr: u64,
    pub size: u64,
}

/// A helper or kfunc refused its arguments: the interpreter turns this
/// into a [`Fault`] at the call instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallFault {
    pub kind: u32,
    pub addr: u64,
    pub size: u64,
}

/// What a call instruction asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// A BPF helper by number (`abi::bpf::HELPERS`).
    Helper(u32),
    /// A kfunc by index in `abi::bpf::KFUNCS`.
    Kfunc(u32),
}

/// What the interpreter lends a helper or kfunc: checked access to the
/// program's memory (its stack included).
pub struct CallCx<'m> {
    pub mem: &'m Memory,
    /// The whole interpreter stack (every frame).
    pub stack: Range,
}

impl CallCx<'_> {
    /// Whether the program could itself load (or store) `len` bytes at
    /// `addr`: a helper given a pointer checks it with this first.
    pub fn allows(&self, addr: u64, len: u64, write: bool) -> bool {
        self.stack.holds(addr, len) || self.mem.allows(addr, len, write)
    }
}

/// The runtime's side of calls.
pub trait Env {
    /// Run helper or kfunc `call` with r1..r5; its result goes to r0.
    fn call(&mut self, cx: &CallCx<'_>, call: Call, args: [u64; 5]) -> Result<u64, CallFault>;
}

/// Words of interpreter stack: every frame of the deepest call chain.
pub const STACK_WORDS: usize = MAX_CALL_DEPTH * STACK_SIZE / 8;

/// An instruction array checked once, before any run: every instruction
/// names registers r0..r10 only and none writes r10 (the frame pointer).
/// The interpreter then skips those checks on each instruction it runs,
/// which is most of what it did besides the operation itself.
///
/// [`Program::check`] turns an instruction failing them into one with
/// opcode [`TRAP`] (its other fields kept), which the interpreter refuses
/// as a bad instruction when, and only when, the program reaches it, as
/// it did before the check existed. A checked array is its own check
/// (the check is idempotent), so a runtime may check the same image twice.
#[derive(Clone, Copy, Debug)]
pub struct Program<'a> {
    insns: &'a [Insn],
    funcs: &'a [u32],
}

/// The opcode [`Program::check`] gives an instruction the interpreter
/// must refuse (no BPF instruction uses it).
pub const TRAP: u8 = 0xff;

impl<'a> Program<'a> {
    /// Check `insns` in place (see [`Program`]). `funcs`: sorted
    /// instruction indices where functions start (the valid targets of
    /// sub-program calls and callback pointers).
    pub fn check(insns: &'a mut [Insn], funcs: &'a [u32]) -> Program<'a> {
        for i in insns.iter_mut() {
            if !interp::valid_regs(i) {
                i.code = TRAP;
            }
        }
        Program { insns, funcs }
    }

    pub fn insns(&self) -> &'a [Insn] {
        self.insns
    }

    pub fn funcs(&self) -> &'a [u32] {
        self.funcs
    }
}

/// The interpreter over one checked instruction array. A runtime keeps
/// one for all its runs: building it is not free (the memory description
/// and the call frames are copied or cleared).
pub struct Vm<'a> {
    prog: Program<'a>,
    /// Private: the interpreter dereferences whatever it says, so only
    /// `unsafe` code may set it ([`Vm::new`], [`Vm::set_mem`]).
    mem: Memory,
    /// `mem` arranged for the interpreter's check.
    sandbox: memory::Sandbox,
    /// Instructions executed over the Vm's life.
    pub executed: u64,
    /// Caller frames of sub-program calls: kept here, not cleared per
    /// run (a frame is read only after a call wrote it).
    frames: [interp::Frame; MAX_CALL_DEPTH],
}

impl<'a> Vm<'a> {
    /// # Safety
    /// Every range of `mem` must be memory this process may read (`ro`)
    /// or read and write (`rw`, and the task views' fields) for as long
    /// as the Vm runs programs, and nothing may hold a Rust reference to
    /// it while [`Vm::run`] (or an `Env` call it makes) runs: the
    /// interpreter reads and writes it through raw pointers.
    pub unsafe fn new(prog: Program<'a>, mem: Memory) -> Vm<'a> {
        Vm {
            prog,
            mem,
            sandbox: memory::Sandbox::new(&mem),
            executed: 0,
            frames: [interp::Frame::default(); MAX_CALL_DEPTH],
        }
    }

    pub fn program(&self) -> Program<'a> {
        self.prog
    }

    /// The memory programs may touch besides their stack.
    pub fn mem(&self) -> &Memory {
        &self.mem
    }

    /// Replace the memory programs may touch (a runtime lending one
    /// callback extra scratch, say).
    ///
    /// # Safety
    /// As for [`Vm::new`].
    pub unsafe fn set_mem(&mut self, mem: Memory) {
        self.mem = mem;
        self.sandbox = memory::Sandbox::new(&mem);
    }

    /// Run the function starting at instruction `entry` with `args` in
    /// r1..r5 (beyond five are ignored, missing ones are 0) on `stack`,
    /// executing at most `budget` instructions; r0 on `exit` from the
    /// entry frame.
    ///
    /// The entry frame is the top [`STACK_SIZE`] bytes of `stack` (r10 is
    /// its end), each sub-program call the next one down; a program may
    /// load and store anywhere in `stack` (a pointer to a caller's frame
    /// is legal BPF). r6..r9 are restored on return from a sub-program;
    /// r1..r5 are left as the callee or helper left them.
    pub fn run<E: Env>(
        &mut self,
        env: &mut E,
        stack: &mut [u64; STACK_WORDS],
        entry: u32,
        args: &[u64],
        budget: u64,
    ) -> Result<u64, Fault> {
        interp::run(self, env, stack, entry, args, budget)
    }
}
