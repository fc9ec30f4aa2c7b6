//! Unit tests: hand-assembled programs ([`asm`]) run against buffers
//! standing in for guest memory, and a mock [`Env`].

mod alu;
pub mod asm;
mod bench;
mod calls;
mod jumps;
mod mem;

use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use crate::{Call, CallCx, CallFault, Env, Fault, Insn, Memory, Program, Range, STACK_WORDS, Vm};

/// Records every call; answers with `answer`. With `check_ptr`, first
/// checks that r1 points at 8 bytes the program could write (as a
/// helper given a pointer would).
pub struct MockEnv {
    pub calls: Vec<(Call, [u64; 5])>,
    pub answer: Result<u64, CallFault>,
    pub check_ptr: bool,
}

impl MockEnv {
    pub fn new(answer: u64) -> MockEnv {
        MockEnv {
            calls: Vec::new(),
            answer: Ok(answer),
            check_ptr: false,
        }
    }
}

impl Env for MockEnv {
    fn call(&mut self, cx: &CallCx<'_>, call: Call, args: [u64; 5]) -> Result<u64, CallFault> {
        self.calls.push((call, args));
        if self.check_ptr && !cx.allows(args[0], 8, true) {
            return Err(CallFault {
                kind: crate::FAULT_BAD_ARG,
                addr: args[0],
                size: 8,
            });
        }
        self.answer
    }
}

/// A zeroed, 8-aligned buffer standing in for a guest region.
pub struct Buf(pub Vec<u64>);

impl Buf {
    pub fn new(bytes: usize) -> Buf {
        Buf(vec![0; bytes.div_ceil(8)])
    }
    pub fn addr(&self) -> u64 {
        self.0.as_ptr() as u64
    }
    pub fn range(&self) -> Range {
        Range::new(self.addr(), self.0.len() as u64 * 8)
    }
    pub fn bytes(&self) -> &[u8] {
        // Reading the words as bytes: u8 has no alignment or validity
        // requirement.
        let len = self.0.len() * 8;
        // SAFETY: the Vec owns `len` initialized bytes at this pointer.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), len) }
    }
}

/// One run: the program, its function table, memory, r1..r5, a budget.
pub struct Run<'a> {
    pub insns: &'a [Insn],
    pub funcs: &'a [u32],
    pub mem: Memory,
    pub args: &'a [u64],
    pub budget: u64,
}

impl<'a> Run<'a> {
    pub fn new(insns: &'a [Insn]) -> Run<'a> {
        Run {
            insns,
            funcs: &[],
            mem: Memory::default(),
            args: &[],
            budget: 1 << 20,
        }
    }

    /// Runs from instruction 0; the result and the instructions executed.
    pub fn go(&self, env: &mut MockEnv) -> (Result<u64, Fault>, u64) {
        let mut stack = Box::new([0u64; STACK_WORDS]);
        let mut insns = self.insns.to_vec();
        let prog = Program::check(&mut insns, self.funcs);
        // SAFETY: the tests' memory ranges are live `Buf`s the test keeps
        // and does not borrow during the run.
        let mut vm = unsafe { Vm::new(prog, self.mem) };
        let r = vm.run(env, &mut stack, 0, self.args, self.budget);
        (r, vm.executed)
    }

    pub fn result(&self) -> Result<u64, Fault> {
        self.go(&mut MockEnv::new(0)).0
    }
}

/// r0 of a program that uses no memory besides its stack.
pub fn eval(insns: &[Insn]) -> u64 {
    Run::new(insns).result().expect("program faulted")
}

/// The fault a program that should fault stops with.
pub fn fault_of(run: &Run<'_>) -> Fault {
    run.result().expect_err("program should have faulted")
}
