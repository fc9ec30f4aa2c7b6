//! Raw access to guest memory at addresses programs hand the runtime, and
//! a bounded text buffer. Programs name memory by plain `u64` addresses
//! (the interpreter's model); every caller checks an address against the
//! sandbox (`CallCx::allows`) or the image's own tables before it gets
//! here, so these functions only turn the checked address into a pointer.

/// Load a `T` from `addr`.
///
/// # Safety
/// `[addr, addr + size_of::<T>())` is mapped, readable memory (the
/// sandbox allowed it or it is the runtime's own), and any bytes are a
/// valid `T`.
pub unsafe fn rd<T: Copy>(addr: u64) -> T {
    // SAFETY: the caller's obligation; unaligned loads are fine.
    unsafe { (addr as *const T).read_unaligned() }
}

/// Store `v` at `addr`.
///
/// # Safety
/// `[addr, addr + size_of::<T>())` is mapped, writable memory the
/// sandbox let the program write (or the runtime's own).
pub unsafe fn wr<T: Copy>(addr: u64, v: T) {
    // SAFETY: the caller's obligation.
    unsafe { (addr as *mut T).write_unaligned(v) }
}

/// Copy `len` bytes (ranges may overlap).
///
/// # Safety
/// Both ranges are mapped, `src` readable and `dst` writable.
pub unsafe fn copy(dst: u64, src: u64, len: u64) {
    // SAFETY: the caller's obligation.
    unsafe { core::ptr::copy(src as *const u8, dst as *mut u8, len as usize) }
}

/// Zero `len` bytes.
///
/// # Safety
/// The range is mapped and writable.
pub unsafe fn zero(dst: u64, len: u64) {
    // SAFETY: the caller's obligation.
    unsafe { core::ptr::write_bytes(dst as *mut u8, 0, len as usize) }
}

/// Whether two byte ranges hold the same bytes.
///
/// # Safety
/// Both ranges are mapped and readable.
pub unsafe fn eq(a: u64, b: u64, len: u64) -> bool {
    // SAFETY: the caller's obligation.
    unsafe {
        core::slice::from_raw_parts(a as *const u8, len as usize)
            == core::slice::from_raw_parts(b as *const u8, len as usize)
    }
}

/// A NUL-terminated text of at most `N - 1` bytes that cuts what does not
/// fit (messages are best effort; the run is ending anyway).
#[derive(Clone, Copy)]
pub struct Text<const N: usize> {
    pub buf: [u8; N],
    pub len: usize,
}

impl<const N: usize> Text<N> {
    pub const fn new() -> Self {
        Text {
            buf: [0; N],
            len: 0,
        }
    }

    pub fn clear(&mut self) {
        self.buf = [0; N];
        self.len = 0;
    }

    pub fn push(&mut self, b: u8) {
        if self.len + 1 < N {
            self.buf[self.len] = b;
            self.len += 1;
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn as_str(&self) -> &str {
        // Cut to the longest valid UTF-8 prefix (a cut may split one).
        match core::str::from_utf8(self.bytes()) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.buf[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> core::fmt::Write for Text<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            self.push(b);
        }
        Ok(())
    }
}
