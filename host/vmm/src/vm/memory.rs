//! Guest RAM: 2 MiB-aligned anonymous memory with MADV_HUGEPAGE. On this
//! machine a lazily-faulted 4 KiB page costs the guest about 15.5 µs on
//! first touch; with huge pages a first touch faults in a whole 2 MiB at
//! once, so the per-4-KiB cost disappears without prefaulting.
//!
//! The RAM is deliberately NOT prefaulted. Measured here (spin, 4 tasks,
//! 15 runs each): prefaulting all 64 MiB put VM creation -> first guest
//! message at a median of 7.9 ms (worst 93 ms, when the kernel had to
//! compact memory for huge pages), against 2.5 ms (worst 3.0 ms) when only
//! the huge pages actually touched get faulted in -- the few the VMM
//! writes while loading, and the few the guest touches -- with the same
//! guest throughput.

use crate::exit::{Failure, Result};
use vm_memory::{GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

const HUGE_PAGE: usize = 2 << 20;

/// The VM's RAM: one region at guest physical address 0.
pub struct GuestRam {
    /// Declared first so it is dropped before the mapping it points into.
    mem: GuestMemoryMmap,
    /// The whole mmap (alignment slack included), unmapped on drop.
    map_addr: usize,
    map_len: usize,
    /// Start of the 2 MiB-aligned part the guest sees.
    host_base: usize,
    size: u64,
}

impl GuestRam {
    pub fn new(size: u64) -> Result<Self> {
        let size_us =
            usize::try_from(size).map_err(|_| Failure::host("guest RAM size too large"))?;
        if size_us == 0 || size_us % HUGE_PAGE != 0 {
            return Err(Failure::host(format!(
                "guest RAM size {size} is not a multiple of 2 MiB"
            )));
        }
        let map_len = size_us + HUGE_PAGE;
        // SAFETY: an anonymous private mapping at an address of the
        // kernel's choosing cannot alias any existing Rust object.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Failure::host(format!(
                "cannot map {} MiB of guest RAM: {}",
                size >> 20,
                std::io::Error::last_os_error()
            )));
        }
        let map_addr = p as usize;
        let host_base = (map_addr + HUGE_PAGE - 1) & !(HUGE_PAGE - 1);
        // From here on, Drop unmaps on every error path.
        let mut ram = GuestRam {
            mem: GuestMemoryMmap::default(),
            map_addr,
            map_len,
            host_base,
            size,
        };
        // SAFETY: [host_base, host_base + size) lies inside the mapping we
        // just created (we over-allocated by 2 MiB for the alignment).
        // Failure only means no huge pages, which is slower but correct.
        unsafe { libc::madvise(host_base as *mut libc::c_void, size_us, libc::MADV_HUGEPAGE) };
        // SAFETY: the pointer and length describe memory we own for the
        // life of `ram`; `mem` is dropped before the munmap in Drop.
        let region = unsafe {
            MmapRegion::<()>::build_raw(
                host_base as *mut u8,
                size_us,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            )
        }
        .map_err(|e| Failure::host(format!("cannot wrap guest RAM: {e}")))?;
        let region = GuestRegionMmap::new(region, GuestAddress(0))
            .ok_or_else(|| Failure::host("guest RAM region overflows"))?;
        ram.mem = GuestMemoryMmap::from_regions(vec![region])
            .map_err(|e| Failure::host(format!("cannot build guest memory: {e}")))?;
        Ok(ram)
    }

    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Host address of guest physical 0, for KVM_SET_USER_MEMORY_REGION.
    pub fn host_base(&self) -> u64 {
        self.host_base as u64
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        // Drop the vm-memory view first; it does not own the mapping.
        self.mem = GuestMemoryMmap::default();
        // SAFETY: exactly the mapping created in new(); no references into
        // it survive (the only view was just dropped, and the VM that used
        // it is dropped before this, see vm::machine::Machine).
        unsafe { libc::munmap(self.map_addr as *mut libc::c_void, self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn ram_is_aligned_zeroed_and_addressable() {
        let ram = GuestRam::new(8 << 20).unwrap();
        assert_eq!(ram.host_base() % HUGE_PAGE as u64, 0);
        let m = ram.memory();
        assert_eq!(m.read_obj::<u64>(GuestAddress(0x7f_fff8)).unwrap(), 0);
        m.write_obj(0xdead_beefu32, GuestAddress(0x1234)).unwrap();
        assert_eq!(
            m.read_obj::<u32>(GuestAddress(0x1234)).unwrap(),
            0xdead_beef
        );
        assert!(m.read_obj::<u64>(GuestAddress(8 << 20)).is_err());
        assert!(GuestRam::new(3 << 20).is_err());
    }
}
