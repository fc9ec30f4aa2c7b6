//! printf as BPF's `bstr` helpers format (`scx_bpf_error_bstr`,
//! `scx_bpf_exit_bstr`, `bpf_trace_printk`): a format string and an
//! array of 64-bit words, one per conversion. Strings (`%s`) are read
//! through the sandbox, as the kernel reads them with a fault-safe copy:
//! an unreadable one prints as empty.

use crate::mem::{Text, rd};
use core::fmt::Write;

/// Longest `%s` argument copied.
const STR_MAX: u64 = 256;

/// Read a NUL-terminated string of at most `max` bytes at `addr` into
/// `out`, a byte at a time while `readable` allows it.
pub fn read_str<const N: usize>(
    out: &mut Text<N>,
    addr: u64,
    max: u64,
    readable: &dyn Fn(u64, u64) -> bool,
) {
    for i in 0..max {
        let a = addr.wrapping_add(i);
        if !readable(a, 1) {
            return;
        }
        // SAFETY: the sandbox allowed this byte.
        let b: u8 = unsafe { rd(a) };
        if b == 0 {
            return;
        }
        out.push(b);
    }
}

/// Pad `s` to `width` (left-aligned with `-`, zeros with `0` for numbers).
fn pad<const N: usize>(out: &mut Text<N>, s: &[u8], width: usize, left: bool, zero: bool) {
    let fill = width.saturating_sub(s.len());
    if left {
        s.iter().for_each(|&b| out.push(b));
        (0..fill).for_each(|_| out.push(b' '));
    } else if zero {
        // Zeros go after a sign.
        let (sign, digits) = match s.first() {
            Some(b'-') => (&s[..1], &s[1..]),
            _ => (&s[..0], s),
        };
        sign.iter().for_each(|&b| out.push(b));
        (0..fill).for_each(|_| out.push(b'0'));
        digits.iter().for_each(|&b| out.push(b));
    } else {
        (0..fill).for_each(|_| out.push(b' '));
        s.iter().for_each(|&b| out.push(b));
    }
}

/// Format `fmt` with `args` into `out`: `%d %i %u %x %X %c %s %p %%`, with
/// `l`/`ll`/`h`/`hh`/`z` length modifiers, `-0+ #` flags, a width and a
/// precision (flags and precision are accepted; width pads). A conversion
/// past the last argument prints as 0; an unknown one prints verbatim.
pub fn format<const N: usize>(
    out: &mut Text<N>,
    fmt: &[u8],
    args: &[u64],
    readable: &dyn Fn(u64, u64) -> bool,
) {
    let mut next = args.iter().copied();
    let mut i = 0;
    while i < fmt.len() {
        let c = fmt[i];
        i += 1;
        if c != b'%' {
            out.push(c);
            continue;
        }
        let start = i - 1;
        let (mut left, mut zero) = (false, false);
        while i < fmt.len() && matches!(fmt[i], b'-' | b'0' | b'+' | b' ' | b'#') {
            left |= fmt[i] == b'-';
            zero |= fmt[i] == b'0';
            i += 1;
        }
        let mut width = 0usize;
        while i < fmt.len() && fmt[i].is_ascii_digit() {
            width = (width * 10 + usize::from(fmt[i] - b'0')).min(64);
            i += 1;
        }
        if i < fmt.len() && fmt[i] == b'.' {
            i += 1;
            while i < fmt.len() && fmt[i].is_ascii_digit() {
                i += 1;
            }
        }
        // Length: 0 int, 1 long and wider, -1 short, -2 char.
        let mut size = 0i32;
        while i < fmt.len() && matches!(fmt[i], b'l' | b'h' | b'z') {
            size = match fmt[i] {
                b'h' => size.min(0) - 1,
                _ => 1,
            };
            i += 1;
        }
        let Some(&conv) = fmt.get(i) else {
            fmt[start..].iter().for_each(|&b| out.push(b));
            break;
        };
        i += 1;
        let mut s: Text<72> = Text::new();
        match conv {
            b'%' => {
                out.push(b'%');
                continue;
            }
            b'd' | b'i' => {
                let v = next.next().unwrap_or(0);
                let v: i64 = match size {
                    1.. => v as i64,
                    0 => i64::from(v as i32),
                    -1 => i64::from(v as i16),
                    _ => i64::from(v as i8),
                };
                let _ = write!(s, "{v}");
            }
            b'u' | b'x' | b'X' => {
                let v = next.next().unwrap_or(0);
                let v: u64 = match size {
                    1.. => v,
                    0 => u64::from(v as u32),
                    -1 => u64::from(v as u16),
                    _ => u64::from(v as u8),
                };
                let _ = match conv {
                    b'u' => write!(s, "{v}"),
                    b'x' => write!(s, "{v:x}"),
                    _ => write!(s, "{v:X}"),
                };
            }
            b'p' => {
                let _ = write!(s, "0x{:x}", next.next().unwrap_or(0));
                // %pK, %ps and friends: the letter after p is the kernel's.
                if fmt.get(i).is_some_and(|b| b.is_ascii_alphabetic()) {
                    i += 1;
                }
            }
            b'c' => s.push(next.next().unwrap_or(0) as u8),
            b's' => {
                let mut t: Text<{ STR_MAX as usize + 1 }> = Text::new();
                read_str(&mut t, next.next().unwrap_or(0), STR_MAX, readable);
                pad(out, t.bytes(), width, left, false);
                continue;
            }
            _ => {
                fmt[start..i].iter().for_each(|&b| out.push(b));
                continue;
            }
        }
        pad(out, s.bytes(), width, left, zero && !left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(fmt: &str, args: &[u64]) -> std::string::String {
        let mut t: Text<256> = Text::new();
        let s = b"hello\0";
        let base = s.as_ptr() as u64;
        format(&mut t, fmt.as_bytes(), args, &|a, n| {
            a >= base && a + n <= base + s.len() as u64
        });
        std::string::String::from(t.as_str())
    }

    #[test]
    fn conversions_as_printf() {
        assert_eq!(
            f("%d %i %u", &[(-5i64) as u64, 7, u64::MAX]),
            "-5 7 4294967295"
        );
        assert_eq!(
            f("%lld %llu %lx", &[(-5i64) as u64, u64::MAX, 255]),
            "-5 18446744073709551615 ff"
        );
        assert_eq!(
            f("%ld %lu %x %%", &[(-1i64) as u64, 3, 0xABC]),
            "-1 3 abc %"
        );
        assert_eq!(f("%5d|%-4d|%03d", &[42, 7, 5]), "   42|7   |005");
        assert_eq!(
            f("%c%c %p", &[b'o' as u64, b'k' as u64, 0x1000]),
            "ok 0x1000"
        );
        assert_eq!(f("%d %q", &[1]), "1 %q");
        assert_eq!(f("%d %d", &[1]), "1 0");
        assert_eq!(f("%05d", &[(-42i64) as u64]), "-0042");
    }

    #[test]
    fn strings_come_through_the_sandbox() {
        let s = b"hello\0";
        let base = s.as_ptr() as u64;
        let mut t: Text<64> = Text::new();
        format(&mut t, b"[%s][%s]", &[base, 8], &|a, n| {
            a >= base && a + n <= base + 6
        });
        assert_eq!(t.as_str(), "[hello][]");
    }
}
