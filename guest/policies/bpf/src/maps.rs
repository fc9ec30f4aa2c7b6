//! BPF maps over the image's values and metadata, laid out as
//! `abi::bpf::map_layout` says: arrays (per-CPU ones index-major, then the
//! CPU), hash tables by open addressing (linear probing from an FNV-1a
//! hash; the metadata slot is a state word then the key), LRU hashes that
//! evict the least recently used entry when full (the state word's upper
//! bits hold a use stamp), queues and stacks as rings, task storage per
//! task-table slot, and maps of maps whose lookups return the inner map's
//! handle. Every pointer a program passes is checked against the sandbox
//! for its length and direction.

use crate::image::{layout, read_only};
use crate::kfuncs::{E2BIG, EINVAL, neg};
use crate::mem::{copy, eq, rd, wr, zero};
use crate::rt::{Fail, R, Rt};
use abi::bpf::{
    BPF_EXIST, BPF_NOEXIST, BpfMap, MAP_ARRAY, MAP_ARRAY_OF_MAPS, MAP_HANDLE_TAG, MAP_HASH,
    MAP_HASH_OF_MAPS, MAP_LRU_HASH, MAP_PERCPU_ARRAY, MAP_PERCPU_HASH, MAP_QUEUE, MAP_STACK,
    MAP_TASK_STORAGE, MapLayout, TASK_STORAGE_GET_F_CREATE, hash_meta_stride,
};
use bpf_vm::CallCx;

pub const ENOENT: i64 = 2;
pub const EPERM: i64 = 1;
pub const EEXIST: i64 = 17;

/// Hash slot states (the low byte of the state word).
const FREE: u64 = 0;
const USED: u64 = 1;
const DELETED: u64 = 2;

/// One map as the runtime works on it.
#[derive(Clone, Copy)]
pub struct M {
    pub index: u32,
    pub map: BpfMap,
    pub l: MapLayout,
    pub values: u64,
    pub meta: u64,
    /// Copies per value: `nr_cpus` for per-CPU maps, else 1.
    pub copies: u64,
}

impl M {
    /// Address of value slot `i`'s copy for `cpu`.
    pub fn value(&self, i: u64, cpu: u64) -> u64 {
        self.values + (i * self.copies + cpu) * self.l.stride
    }

    fn meta_stride(&self) -> u64 {
        match self.map.kind {
            MAP_HASH_OF_MAPS => hash_meta_stride(self.map.key_size) + 8,
            _ => hash_meta_stride(self.map.key_size),
        }
    }

    /// Metadata slot `i` of a hash table: state word, key.
    pub fn slot(&self, i: u64) -> u64 {
        self.meta + i * self.meta_stride()
    }

    fn is_hash(&self) -> bool {
        matches!(
            self.map.kind,
            MAP_HASH | MAP_LRU_HASH | MAP_PERCPU_HASH | MAP_HASH_OF_MAPS
        )
    }
}

/// FNV-1a over the key's bytes.
fn hash(key: u64, len: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..len {
        // SAFETY: the caller checked the key readable.
        h ^= u64::from(unsafe { rd::<u8>(key + i) });
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

impl Rt {
    /// The map a handle names, or a bad argument `arg`.
    pub fn map_arg(&self, handle: u64, arg: u8) -> Result<M, Fail> {
        let img = self.img();
        let i = handle & !MAP_HANDLE_TAG;
        if handle & MAP_HANDLE_TAG != MAP_HANDLE_TAG || i >= img.maps.len() as u64 {
            return Err(Fail::Bad(arg));
        }
        let map = img.maps[i as usize];
        let base = img.hdr as u64;
        let per_cpu = matches!(map.kind, MAP_PERCPU_ARRAY | MAP_PERCPU_HASH);
        Ok(M {
            index: i as u32,
            map,
            l: layout(img, &map),
            values: base + u64::from(map.values_off),
            meta: base + u64::from(map.meta_off),
            copies: if per_cpu { u64::from(img.nr_cpus) } else { 1 },
        })
    }

    /// This CPU, for per-CPU values.
    fn this_cpu(&self, m: &M) -> u64 {
        if m.copies == 1 {
            return 0;
        }
        // SAFETY: a service of the live table.
        u64::from(unsafe { (self.svc().cpu_id)() }) % m.copies
    }

    fn key_in(cx: &CallCx<'_>, m: &M, key: u64, arg: u8) -> Result<(), Fail> {
        if cx.allows(key, u64::from(m.map.key_size), false) {
            Ok(())
        } else {
            Err(Fail::Bad(arg))
        }
    }

    fn value_in(cx: &CallCx<'_>, m: &M, v: u64, arg: u8, write: bool) -> Result<(), Fail> {
        if cx.allows(v, u64::from(m.map.value_size), write) {
            Ok(())
        } else {
            Err(Fail::Bad(arg))
        }
    }

    /// Count the used slots of every hash table (the loader may have
    /// filled a map of maps).
    pub fn count_entries(&mut self) {
        for i in 0..self.img().maps.len() {
            let Ok(m) = self.map_arg(MAP_HANDLE_TAG | i as u64, 1) else {
                continue;
            };
            if m.is_hash() {
                let n = (0..m.l.slots)
                    .filter(|&s| self.state(&m, s) == USED)
                    .count();
                self.counts[i] = n as u32;
            }
        }
    }

    fn state(&self, m: &M, s: u64) -> u64 {
        // SAFETY: slot `s < slots` lies in the map's checked metadata.
        unsafe { rd::<u64>(m.slot(s)) & 0xff }
    }

    /// The slot holding `key` (readable, checked), if any.
    fn find(&self, m: &M, key: u64) -> Option<u64> {
        let ks = u64::from(m.map.key_size);
        if m.map.kind == MAP_HASH_OF_MAPS {
            // The loader placed these: scan rather than rely on a hash.
            return (0..m.l.slots).find(|&s| {
                // SAFETY: the key lies in the slot's metadata.
                self.state(m, s) == USED && unsafe { eq(m.slot(s) + 8, key, ks) }
            });
        }
        let mask = m.l.slots - 1;
        let h = hash(key, ks);
        for n in 0..m.l.slots {
            let s = (h + n) & mask;
            match self.state(m, s) {
                FREE => return None,
                // SAFETY: the key lies in the slot's metadata.
                USED if unsafe { eq(m.slot(s) + 8, key, ks) } => return Some(s),
                _ => {}
            }
        }
        None
    }

    /// Mark slot `s` used now (an LRU hash stamps it).
    fn touch(&mut self, m: &M, s: u64) {
        let stamp = if m.map.kind == MAP_LRU_HASH {
            self.lru_clock += 1;
            self.lru_clock << 8
        } else {
            0
        };
        // SAFETY: slot `s` lies in the map's checked metadata.
        unsafe { wr::<u64>(m.slot(s), USED | stamp) }
    }

    /// A free slot for `key` (not present), evicting for an LRU hash.
    fn claim(&mut self, m: &M, key: u64) -> Result<u64, i64> {
        if self.counts[m.index as usize] >= m.map.max_entries {
            if m.map.kind != MAP_LRU_HASH {
                return Err(E2BIG);
            }
            let oldest = (0..m.l.slots)
                .filter(|&s| self.state(m, s) == USED)
                // SAFETY: every slot lies in the map's checked metadata.
                .min_by_key(|&s| unsafe { rd::<u64>(m.slot(s)) } >> 8);
            match oldest {
                Some(s) => self.remove_slot(m, s),
                None => return Err(E2BIG),
            }
        }
        let ks = u64::from(m.map.key_size);
        let mask = m.l.slots - 1;
        let h = hash(key, ks);
        for n in 0..m.l.slots {
            let s = (h + n) & mask;
            if self.state(m, s) != USED {
                // SAFETY: the key lies in the slot's metadata; the
                // program's key was checked readable.
                unsafe { copy(m.slot(s) + 8, key, ks) };
                self.touch(m, s);
                self.counts[m.index as usize] += 1;
                return Ok(s);
            }
        }
        Err(E2BIG)
    }

    fn remove_slot(&mut self, m: &M, s: u64) {
        for c in 0..m.copies {
            let v = m.value(s, c);
            self.release_timers(v, m.l.stride);
        }
        // SAFETY: slot `s` lies in the map's checked metadata.
        unsafe { wr::<u64>(m.slot(s), DELETED) };
        self.counts[m.index as usize] -= 1;
    }

    /// Copy a program's value into a map value, keeping any live
    /// `bpf_timer` in it (as the kernel's `copy_map_value` skips them).
    fn store_value(&mut self, dst: u64, src: u64, len: u64) {
        let mut keep = [(0u64, [0u64; 2]); abi::bpf::MAX_TIMERS];
        let mut n = 0;
        for t in self.timers.iter().filter(|t| t.used) {
            if t.addr >= dst && t.addr + 16 <= dst + len {
                // SAFETY: the timer lies inside the destination value.
                keep[n] = (t.addr, unsafe { rd::<[u64; 2]>(t.addr) });
                n += 1;
            }
        }
        // SAFETY: `dst` is a map value of at least `len` bytes, `src`
        // checked readable for `len`.
        unsafe { copy(dst, src, len) };
        for (a, w) in &keep[..n] {
            // SAFETY: as above.
            unsafe { wr(*a, *w) };
        }
    }

    /// `bpf_map_lookup_elem(map, key)`: a value pointer (this CPU's for a
    /// per-CPU map), an inner map's handle for a map of maps, else NULL.
    pub fn map_lookup(&mut self, cx: &CallCx<'_>, h: u64, key: u64) -> R {
        let m = self.map_arg(h, 1)?;
        match m.map.kind {
            MAP_QUEUE | MAP_STACK | MAP_TASK_STORAGE => return Ok(0),
            _ => Self::key_in(cx, &m, key, 2)?,
        }
        match m.map.kind {
            MAP_ARRAY | MAP_PERCPU_ARRAY | MAP_ARRAY_OF_MAPS => {
                // SAFETY: the key (4 bytes, checked at validate) is readable.
                let i = u64::from(unsafe { rd::<u32>(key) });
                if i >= u64::from(m.map.max_entries) {
                    return Ok(0);
                }
                if m.map.kind == MAP_ARRAY_OF_MAPS {
                    // SAFETY: slot `i` lies in the map's metadata.
                    return Ok(unsafe { rd::<u64>(m.meta + 8 * i) });
                }
                Ok(m.value(i, self.this_cpu(&m)))
            }
            _ => match self.find(&m, key) {
                None => Ok(0),
                Some(s) if m.map.kind == MAP_HASH_OF_MAPS => {
                    // SAFETY: the handle word ends the slot's metadata.
                    Ok(unsafe { rd::<u64>(m.slot(s) + hash_meta_stride(m.map.key_size)) })
                }
                Some(s) => {
                    if m.map.kind == MAP_LRU_HASH {
                        self.touch(&m, s);
                    }
                    Ok(m.value(s, self.this_cpu(&m)))
                }
            },
        }
    }

    /// `bpf_map_update_elem(map, key, value, flags)`.
    pub fn map_update(&mut self, cx: &CallCx<'_>, h: u64, key: u64, v: u64, flags: u64) -> R {
        let m = self.map_arg(h, 1)?;
        match m.map.kind {
            MAP_QUEUE | MAP_STACK => return self.push(cx, h, v, flags),
            MAP_TASK_STORAGE | MAP_ARRAY_OF_MAPS | MAP_HASH_OF_MAPS => {
                return Ok(neg(EPERM));
            }
            _ => {}
        }
        Self::key_in(cx, &m, key, 2)?;
        Self::value_in(cx, &m, v, 3, false)?;
        if flags > BPF_EXIST {
            return Ok(neg(EINVAL));
        }
        if read_only(self.img(), &m.map) {
            return Ok(neg(EPERM));
        }
        let vs = u64::from(m.map.value_size);
        let cpu = self.this_cpu(&m);
        match m.map.kind {
            MAP_ARRAY | MAP_PERCPU_ARRAY => {
                // SAFETY: the key is readable (checked).
                let i = u64::from(unsafe { rd::<u32>(key) });
                if i >= u64::from(m.map.max_entries) {
                    return Ok(neg(E2BIG));
                }
                if flags == BPF_NOEXIST {
                    return Ok(neg(EEXIST));
                }
                self.store_value(m.value(i, cpu), v, vs);
                Ok(0)
            }
            _ => {
                let s = match self.find(&m, key) {
                    Some(_) if flags == BPF_NOEXIST => return Ok(neg(EEXIST)),
                    Some(s) => {
                        self.touch(&m, s);
                        s
                    }
                    None if flags == BPF_EXIST => return Ok(neg(ENOENT)),
                    None => match self.claim(&m, key) {
                        Ok(s) => {
                            for c in 0..m.copies {
                                // SAFETY: a value slot of the map.
                                unsafe { zero(m.value(s, c), m.l.stride) };
                            }
                            s
                        }
                        Err(e) => return Ok(neg(e)),
                    },
                };
                self.store_value(m.value(s, cpu), v, vs);
                Ok(0)
            }
        }
    }

    /// `bpf_map_delete_elem(map, key)`.
    pub fn map_delete(&mut self, cx: &CallCx<'_>, h: u64, key: u64) -> R {
        let m = self.map_arg(h, 1)?;
        if !m.is_hash() || m.map.kind == MAP_HASH_OF_MAPS {
            return Ok(neg(EINVAL));
        }
        Self::key_in(cx, &m, key, 2)?;
        match self.find(&m, key) {
            Some(s) => {
                self.remove_slot(&m, s);
                Ok(0)
            }
            None => Ok(neg(ENOENT)),
        }
    }

    /// Queue/stack state: (head, count).
    fn ring(m: &M) -> (u64, u64) {
        // SAFETY: 16 bytes of the map's checked metadata.
        unsafe { (rd::<u64>(m.meta), rd::<u64>(m.meta + 8)) }
    }

    fn set_ring(m: &M, head: u64, count: u64) {
        // SAFETY: as in `ring`.
        unsafe {
            wr::<u64>(m.meta, head);
            wr::<u64>(m.meta + 8, count);
        }
    }

    fn ring_map(&self, h: u64) -> Result<M, Fail> {
        let m = self.map_arg(h, 1)?;
        if !matches!(m.map.kind, MAP_QUEUE | MAP_STACK) || m.map.max_entries == 0 {
            return Err(Fail::Bad(1));
        }
        Ok(m)
    }

    /// `bpf_map_push_elem(map, value, flags)`: `BPF_EXIST` overwrites the
    /// oldest value when full.
    pub fn push(&mut self, cx: &CallCx<'_>, h: u64, v: u64, flags: u64) -> R {
        let m = self.ring_map(h)?;
        Self::value_in(cx, &m, v, 2, false)?;
        if flags & !BPF_EXIST != 0 {
            return Ok(neg(EINVAL));
        }
        let n = u64::from(m.map.max_entries);
        let (mut head, mut count) = Self::ring(&m);
        (head, count) = (head % n, count.min(n));
        if count == n {
            if flags != BPF_EXIST {
                return Ok(neg(E2BIG));
            }
            head = (head + 1) % n;
            count -= 1;
        }
        let at = m.value((head + count) % n, 0);
        // SAFETY: a value slot of the ring; `v` checked readable.
        unsafe { copy(at, v, u64::from(m.map.value_size)) };
        Self::set_ring(&m, head, count + 1);
        Ok(0)
    }

    /// `bpf_map_pop_elem` (`take`) and `bpf_map_peek_elem`.
    pub fn pop(&mut self, cx: &CallCx<'_>, h: u64, v: u64, take: bool) -> R {
        let m = self.ring_map(h)?;
        Self::value_in(cx, &m, v, 2, true)?;
        let n = u64::from(m.map.max_entries);
        let (head, count) = Self::ring(&m);
        let (head, count) = (head % n, count.min(n));
        if count == 0 {
            return Ok(neg(ENOENT));
        }
        let i = if m.map.kind == MAP_QUEUE {
            head
        } else {
            (head + count - 1) % n
        };
        // SAFETY: `v` checked writable, the slot is the ring's.
        unsafe { copy(v, m.value(i, 0), u64::from(m.map.value_size)) };
        if take {
            let head = if m.map.kind == MAP_QUEUE {
                (head + 1) % n
            } else {
                head
            };
            Self::set_ring(&m, head, count - 1);
        }
        Ok(0)
    }

    fn storage_map(&self, h: u64) -> Result<M, Fail> {
        let m = self.map_arg(h, 1)?;
        if m.map.kind != MAP_TASK_STORAGE {
            return Err(Fail::Bad(1));
        }
        Ok(m)
    }

    /// `bpf_task_storage_get(map, task, init, flags)`: the task's value,
    /// created (from `init`, or zeroed) with `F_CREATE`; else NULL.
    pub fn storage_get(&mut self, cx: &CallCx<'_>, h: u64, p: u64, init: u64, flags: u64) -> R {
        let m = self.storage_map(h)?;
        let (slot, t) = self.task_arg(p, 2)?;
        // SAFETY: a live core task.
        let pid = u64::from(unsafe { (*t).pid });
        let owner = m.meta + 8 * slot as u64;
        let v = m.value(slot as u64, 0);
        // SAFETY: the slot's owner word lies in the map's metadata.
        if unsafe { rd::<u64>(owner) } == pid {
            return Ok(v);
        }
        if flags & TASK_STORAGE_GET_F_CREATE == 0 {
            return Ok(0);
        }
        if init != 0 {
            Self::value_in(cx, &m, init, 3, false)?;
        }
        self.release_timers(v, m.l.stride);
        // SAFETY: the value slot is the map's; `init` checked readable.
        unsafe {
            zero(v, m.l.stride);
            if init != 0 {
                copy(v, init, u64::from(m.map.value_size));
            }
            wr::<u64>(owner, pid);
        }
        Ok(v)
    }

    /// `bpf_task_storage_delete(map, task)`.
    pub fn storage_delete(&mut self, h: u64, p: u64) -> R {
        let m = self.storage_map(h)?;
        let (slot, t) = self.task_arg(p, 2)?;
        // SAFETY: a live core task.
        let pid = u64::from(unsafe { (*t).pid });
        let owner = m.meta + 8 * slot as u64;
        // SAFETY: the owner word lies in the map's metadata.
        if unsafe { rd::<u64>(owner) } != pid {
            return Ok(neg(ENOENT));
        }
        // SAFETY: as above.
        unsafe { wr::<u64>(owner, 0) };
        self.release_timers(m.value(slot as u64, 0), m.l.stride);
        Ok(0)
    }
}
