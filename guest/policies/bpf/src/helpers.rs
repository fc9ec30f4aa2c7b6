//! The BPF helpers (`abi::bpf::HELPERS`, by number): maps, time, the CPU,
//! random numbers, `trace_printk`, fault-safe reads, task storage and
//! timers.

use crate::format::format;
use crate::mem::{Text, copy, rd, wr, zero};
use crate::rt::{Fail, R, Rt};
use bpf_vm::CallCx;

const EFAULT: i64 = 14;
/// Longest `bpf_trace_printk` format.
const PRINTK_MAX: u64 = 256;
/// Most arguments `bpf_trace_vprintk` takes (the kernel's
/// MAX_BPRINTF_VARARGS).
const VPRINTK_ARGS: usize = 12;

/// `bpf_kptr_xchg(dst, ptr)`: swap the pointer stored at `dst` (a
/// `__kptr` field in a global or a map value) for `ptr`, return the old
/// one. The kernel's verifier types the pointers; here they are words,
/// and every kfunc that takes one checks it (a cpumask must be one of the
/// pool's).
fn kptr_xchg(cx: &CallCx<'_>, dst: u64, ptr: u64) -> R {
    if !dst.is_multiple_of(8) || !cx.allows(dst, 8, true) {
        return Err(Fail::Bad(1));
    }
    // SAFETY: checked writable, 8 bytes, aligned; callbacks run one at a
    // time under the core's lock.
    let old = unsafe { rd::<u64>(dst) };
    // SAFETY: as above.
    unsafe { wr::<u64>(dst, ptr) };
    Ok(old)
}

impl Rt {
    /// Helper `id` (one of `HELPERS`, checked by the caller).
    pub fn helper(&mut self, cx: &CallCx<'_>, id: u32, a: [u64; 5]) -> R {
        match id {
            1 => self.map_lookup(cx, a[0], a[1]),
            2 => self.map_update(cx, a[0], a[1], a[2], a[3]),
            3 => self.map_delete(cx, a[0], a[1]),
            // SAFETY: a service of the live table.
            5 | 125 => Ok(unsafe { (self.svc().now_ns)() }),
            6 => self.trace_printk(cx, a),
            7 => Ok(u64::from(self.prandom())),
            // SAFETY: a service of the live table.
            8 => Ok(u64::from(unsafe { (self.svc().cpu_id)() })),
            87 => self.push(cx, a[0], a[1], a[2]),
            88 => self.pop(cx, a[0], a[1], true),
            89 => self.pop(cx, a[0], a[1], false),
            113 => self.probe_read(cx, a[0], a[1], a[2], false),
            115 => self.probe_read(cx, a[0], a[1], a[2], true),
            156 => self.storage_get(cx, a[0], a[1], a[2], a[3]),
            157 => self.storage_delete(a[0], a[1]),
            169 => self.timer_init(cx, a[0], a[1]),
            170 => self.timer_set_callback(cx, a[0], a[1]),
            171 => self.timer_start(cx, a[0], a[1], a[2]),
            172 => self.timer_cancel(cx, a[0]),
            177 => self.trace_vprintk(cx, a),
            194 => kptr_xchg(cx, a[0], a[1]),
            _ => Err(Fail::Bad(0)),
        }
    }

    /// xorshift64*, seeded from the clock on first use.
    fn prandom(&mut self) -> u32 {
        if self.rng == 0 {
            // SAFETY: a service of the live table.
            self.rng = unsafe { (self.svc().now_ns)() } | 1;
        }
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    /// `bpf_trace_printk(fmt, fmt_size, a1, a2, a3)`: an info line in the
    /// run's log; its length.
    /// `bpf_trace_vprintk(fmt, fmt_size, data, data_len)`: `bpf_printk`
    /// with more than three arguments, which arrive as a `u64` array.
    fn trace_vprintk(&mut self, cx: &CallCx<'_>, a: [u64; 5]) -> R {
        let n = (a[3] / 8).min(VPRINTK_ARGS as u64);
        if !a[3].is_multiple_of(8) || (n > 0 && !cx.allows(a[2], n * 8, false)) {
            return Err(Fail::Bad(3));
        }
        let mut args = [0u64; VPRINTK_ARGS];
        for (i, v) in args.iter_mut().enumerate().take(n as usize) {
            // SAFETY: the sandbox allowed `n` words at `a[2]`.
            *v = unsafe { rd::<u64>(a[2] + 8 * i as u64) };
        }
        self.printk(cx, a[0], a[1], &args[..n as usize])
    }

    fn trace_printk(&mut self, cx: &CallCx<'_>, a: [u64; 5]) -> R {
        self.printk(cx, a[0], a[1], &a[2..5])
    }

    /// Format `fmt` (`fmt_size` bytes) with `args` into a log line.
    fn printk(&mut self, cx: &CallCx<'_>, fmt: u64, fmt_size: u64, args: &[u64]) -> R {
        let a = [fmt, fmt_size];
        let size = a[1].min(PRINTK_MAX);
        if size == 0 || !cx.allows(a[0], size, false) {
            return Err(Fail::Bad(1));
        }
        let mut f = [0u8; PRINTK_MAX as usize];
        // SAFETY: the sandbox allowed `size` bytes.
        unsafe { copy(f.as_mut_ptr() as u64, a[0], size) };
        let end = f[..size as usize]
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(size as usize);
        let mut t: Text<512> = Text::new();
        format(&mut t, &f[..end], args, &|p, n| cx.allows(p, n, false));
        let line = t.bytes();
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        self.log(line);
        Ok(t.len as u64)
    }

    /// `bpf_probe_read_kernel{,_str}(dst, size, src)`: `src` must be
    /// memory the program could read (the runtime's exit texts are); an
    /// unreadable one zeroes `dst` and returns -EFAULT, as the kernel.
    fn probe_read(&mut self, cx: &CallCx<'_>, dst: u64, size: u64, src: u64, str: bool) -> R {
        let size = size & 0xffff_ffff;
        if size == 0 {
            return Ok(0);
        }
        if !cx.allows(dst, size, true) {
            return Err(Fail::Bad(1));
        }
        if !str {
            if !cx.allows(src, size, false) {
                // SAFETY: `dst` checked writable.
                unsafe { zero(dst, size) };
                return Ok(crate::kfuncs::neg(EFAULT));
            }
            // SAFETY: both checked.
            unsafe { copy(dst, src, size) };
            return Ok(0);
        }
        for i in 0..size {
            let b = if i + 1 == size {
                0
            } else if cx.allows(src.wrapping_add(i), 1, false) {
                // SAFETY: the sandbox allowed the byte.
                unsafe { rd::<u8>(src.wrapping_add(i)) }
            } else {
                // SAFETY: `dst` checked writable.
                unsafe { zero(dst, size) };
                return Ok(crate::kfuncs::neg(EFAULT));
            };
            // SAFETY: `dst` checked writable for `size` bytes.
            unsafe { wr::<u8>(dst + i, b) };
            if b == 0 {
                return Ok(i + 1);
            }
        }
        Ok(size)
    }
}
