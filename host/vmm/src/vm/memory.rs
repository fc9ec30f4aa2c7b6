//! Guest RAM: 2 MiB-aligned anonymous memory in 4 KiB pages, of which
//! the pages a run touches first are faulted in on the host by a helper
//! thread while KVM creates the VM.
//!
//! Why 4 KiB pages and not transparent huge pages (THP, used until this
//! was measured): the kernel zeroes a whole huge page at its first touch,
//! about 230 µs per 2 MiB here, and a boot touches 7 of them (3 the VMM
//! writes, 4 the guest does: TLV ring, task stacks, mailboxes, kernel
//! state), which was 61 % of a 1 ms run's host CPU in `perf` and 1.6 ms
//! of its 3.9 ms boot. With `defrag` at `madvise`, a huge-page fault may
//! also compact memory first: 5-7 ms stalls were seen in `load` and in
//! the guest's boot. A 4 KiB page costs the guest a fault the first time
//! it touches it (about 20 µs on this PVM host, 10 µs when the host page
//! already exists, and then KVM maps up to 8 present neighbours with it),
//! so the pages every run touches are populated up front
//! (`MADV_POPULATE_WRITE`, about 1.2 µs a page) on a helper thread that
//! overlaps KVM's own setup (`vm::hot` lists them); the rest fault in as
//! the guest reaches them. Measured with `spin --tasks 1 --duration 1ms`:
//! the VMM's `load` went from 0.9-1.0 ms to 0.02 ms and the guest reached
//! its first message sooner (see CHANGELOG.md for the figures).

use crate::exit::{Failure, Result};
use std::ops::Range;
use std::sync::Mutex;
use std::thread::JoinHandle;
use vm_memory::{GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

const HUGE_PAGE: usize = 2 << 20;
const PAGE: u64 = 4096;
/// `MADV_POPULATE_WRITE` (Linux 5.14); the libc crate may not name it.
const MADV_POPULATE_WRITE: libc::c_int = 23;

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
    /// The helper thread of [`GuestRam::populate`], joined before the
    /// mapping goes away.
    populating: Mutex<Option<JoinHandle<()>>>,
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
            populating: Mutex::new(None),
        };
        // SAFETY: [host_base, host_base + size) lies inside the mapping we
        // just created (we over-allocated by 2 MiB for the alignment).
        // 4 KiB pages even where THP is "always" (see the module doc);
        // failure only means huge pages, which is slower but correct.
        unsafe {
            libc::madvise(
                host_base as *mut libc::c_void,
                size_us,
                libc::MADV_NOHUGEPAGE,
            )
        };
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

    /// Fault in, on the host and on a helper thread, the pages of these
    /// guest-physical ranges (clipped to RAM, widened to whole pages), in
    /// the order given: the caller goes on creating the VM meanwhile and
    /// calls [`GuestRam::wait_populated`] before the guest runs. Contents
    /// are untouched (fresh RAM stays zero; the VMM may write concurrently).
    /// A kernel without `MADV_POPULATE_WRITE` leaves the pages to fault in
    /// on first touch, as without this.
    pub fn populate(&self, ranges: Vec<Range<u64>>) {
        let (base, size) = (self.host_base, self.size);
        let spans: Vec<(usize, usize)> = ranges
            .into_iter()
            .filter_map(|r| {
                let start = r.start / PAGE * PAGE;
                let end = r.end.min(size).div_ceil(PAGE) * PAGE;
                (start < end).then(|| (base + start as usize, (end - start) as usize))
            })
            .collect();
        let h = std::thread::Builder::new()
            .name("populate".into())
            .spawn(move || {
                for (addr, len) in spans {
                    // SAFETY: [addr, addr + len) lies inside this RAM's
                    // mapping (clipped to `size` above), which Drop keeps
                    // mapped until this thread is joined; populating only
                    // faults pages in and writes nothing.
                    unsafe { libc::madvise(addr as *mut libc::c_void, len, MADV_POPULATE_WRITE) };
                }
            });
        // Without a thread the pages fault in on first touch instead.
        if let (Ok(h), Ok(mut slot)) = (h, self.populating.lock()) {
            *slot = Some(h);
        }
    }

    /// Wait for [`GuestRam::populate`]'s thread, if one runs.
    pub fn wait_populated(&self) {
        let h = self.populating.lock().ok().and_then(|mut s| s.take());
        if let Some(h) = h {
            let _ = h.join();
        }
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
        self.wait_populated();
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

    /// Resident 4 KiB pages of guest-physical `[start, end)`, by mincore.
    fn resident(ram: &GuestRam, start: u64, end: u64) -> usize {
        let n = ((end - start) / PAGE) as usize;
        let mut v = vec![0u8; n];
        // SAFETY: the range is inside the RAM's mapping; mincore writes
        // one byte per page into a buffer of exactly that many bytes.
        let rc = unsafe {
            libc::mincore(
                (ram.host_base() + start) as *mut libc::c_void,
                (end - start) as usize,
                v.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0);
        v.iter().filter(|b| *b & 1 != 0).count()
    }

    #[test]
    fn populate_faults_in_exactly_the_ranges_and_keeps_ram_zero() {
        let ram = GuestRam::new(8 << 20).unwrap();
        assert_eq!(resident(&ram, 0, 8 << 20), 0, "fresh RAM is not faulted in");
        // Unaligned edges widen to whole pages; a range past RAM is clipped.
        ram.populate(vec![
            0x1800..0x3001,
            (4 << 20)..(4 << 20) + 0x2000,
            (8 << 20) - 0x1000..(9 << 20),
        ]);
        ram.wait_populated();
        assert_eq!(resident(&ram, 0x1000, 0x4000), 3);
        assert_eq!(
            resident(&ram, 0, 0x1000) + resident(&ram, 0x4000, 4 << 20),
            0
        );
        assert_eq!(resident(&ram, 4 << 20, (4 << 20) + 0x3000), 2);
        assert_eq!(resident(&ram, (8 << 20) - 0x1000, 8 << 20), 1);
        let m = ram.memory();
        assert_eq!(m.read_obj::<u64>(GuestAddress(0x2000)).unwrap(), 0);
    }
}
