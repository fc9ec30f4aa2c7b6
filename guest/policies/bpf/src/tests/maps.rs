//! Map helpers called directly (a program's stack stands in as a buffer).

use super::builder::Image;
use super::{harness, with_cx};
use crate::ops::rt;
use crate::rt::Fail;
use abi::bpf::{
    BPF_EXIST, BPF_NOEXIST, MAP_HASH, MAP_LRU_HASH, MAP_QUEUE, MAP_STACK, MAP_TASK_STORAGE,
    TASK_STORAGE_GET_F_CREATE,
};
use policy_sdk::sim::CpuSet;

const fn neg(e: i64) -> u64 {
    (-e) as u64
}

#[test]
fn queues_and_stacks_push_pop_and_peek() {
    let mut img = Image::new(1);
    let (q, _) = img.map(MAP_QUEUE, 0, 8, 2);
    let (s, _) = img.map(MAP_STACK, 0, 8, 2);
    let _h = harness(&mut img, 1);
    let mut stack = [0u64; 4];
    let v = stack.as_ptr() as u64;
    let set = |x: u64| {
        // SAFETY: the test's own stack buffer.
        unsafe { *(v as *mut u64) = x }
    };
    // SAFETY: as above.
    let get = || unsafe { *(v as *const u64) };
    with_cx(&mut stack, |cx| {
        let r = &mut rt().rt;
        for m in [q, s] {
            for x in [1, 2] {
                set(x);
                assert_eq!(r.push(cx, m, v, 0), Ok(0));
            }
            set(3);
            assert_eq!(r.push(cx, m, v, 0), Ok(neg(7)), "full: -E2BIG");
            assert_eq!(r.push(cx, m, v, BPF_EXIST), Ok(0), "overwrites the oldest");
            assert_eq!(r.pop(cx, m, v, false), Ok(0));
            let first = get();
            assert_eq!(r.pop(cx, m, v, true), Ok(0));
            assert_eq!(get(), first, "peek saw what pop takes");
            let second = get();
            assert_eq!(r.pop(cx, m, v, true), Ok(0));
            let third = get();
            assert_eq!(r.pop(cx, m, v, true), Ok(neg(2)), "empty: -ENOENT");
            if m == q {
                assert_eq!((second, third), (2, 3));
            } else {
                assert_eq!((second, third), (3, 2));
            }
        }
        assert_eq!(
            r.push(cx, q, 8, 0),
            Err(Fail::Bad(2)),
            "a bad value pointer"
        );
        assert_eq!(r.push(cx, 12, v, 0), Err(Fail::Bad(1)), "not a map handle");
    });
}

#[test]
fn hash_tables_insert_find_delete_and_lru_evicts() {
    let mut img = Image::new(1);
    let (h, _) = img.map(MAP_HASH, 4, 8, 2);
    let (lru, _) = img.map(MAP_LRU_HASH, 4, 8, 2);
    let _hs = harness(&mut img, 1);
    let mut stack = [0u64; 4];
    let key = stack.as_ptr() as u64;
    let val = key + 8;
    let kv = |k: u32, x: u64| {
        // SAFETY: the test's own stack buffer.
        unsafe {
            *(key as *mut u32) = k;
            *(val as *mut u64) = x;
        }
    };
    with_cx(&mut stack, |cx| {
        let r = &mut rt().rt;
        for (k, x) in [(1, 10), (2, 20)] {
            kv(k, x);
            assert_eq!(r.map_update(cx, h, key, val, BPF_NOEXIST), Ok(0));
            assert_eq!(r.map_update(cx, lru, key, val, 0), Ok(0));
        }
        kv(1, 11);
        assert_eq!(r.map_update(cx, h, key, val, BPF_NOEXIST), Ok(neg(17)));
        assert_eq!(r.map_update(cx, h, key, val, BPF_EXIST), Ok(0));
        let p = r.map_lookup(cx, h, key).unwrap();
        // SAFETY: a value pointer the map returned.
        assert_eq!(unsafe { *(p as *const u64) }, 11);
        // Touch 1 in the LRU table so 2 is the oldest.
        assert_ne!(r.map_lookup(cx, lru, key), Ok(0));
        kv(3, 30);
        assert_eq!(r.map_update(cx, h, key, val, 0), Ok(neg(7)), "full");
        assert_eq!(r.map_update(cx, lru, key, val, 0), Ok(0), "evicts");
        kv(2, 0);
        assert_eq!(r.map_lookup(cx, lru, key), Ok(0), "2 was evicted");
        kv(1, 0);
        assert_ne!(r.map_lookup(cx, lru, key), Ok(0));
        assert_eq!(r.map_delete(cx, h, key), Ok(0));
        assert_eq!(r.map_delete(cx, h, key), Ok(neg(2)));
        assert_eq!(r.map_lookup(cx, h, key), Ok(0));
        kv(3, 30);
        assert_eq!(r.map_update(cx, h, key, val, 0), Ok(0), "room again");
        assert_eq!(
            r.map_lookup(cx, h, 0),
            Err(Fail::Bad(2)),
            "a bad key pointer"
        );
    });
}

#[test]
fn task_storage_is_per_task_and_created_on_demand() {
    let mut img = Image::new(1);
    let (ts, _) = img.map(MAP_TASK_STORAGE, 4, 16, 0);
    let mut h = harness(&mut img, 1);
    let a = h.add(1, CpuSet::all(1), 0);
    let b = h.add(1, CpuSet::all(1), 0);
    let r = &mut rt().rt;
    r.synced = [0; 4];
    let va = r.sync_in(r.task_of_slot(a as usize));
    let vb = r.sync_in(r.task_of_slot(b as usize));
    let mut stack = [7u64, 8];
    let init = stack.as_ptr() as u64;
    with_cx(&mut stack, |cx| {
        let r = &mut rt().rt;
        assert_eq!(r.storage_get(cx, ts, va, 0, 0), Ok(0), "none yet");
        let pa = r
            .storage_get(cx, ts, va, init, TASK_STORAGE_GET_F_CREATE)
            .unwrap();
        let pb = r
            .storage_get(cx, ts, vb, 0, TASK_STORAGE_GET_F_CREATE)
            .unwrap();
        assert!(pa != 0 && pb != 0 && pa != pb);
        // SAFETY: value pointers the map returned (16 bytes each).
        unsafe {
            assert_eq!(*(pa as *const [u64; 2]), [7, 8]);
            assert_eq!(*(pb as *const [u64; 2]), [0, 0]);
        }
        assert_eq!(r.storage_get(cx, ts, va, 0, 0), Ok(pa));
        assert_eq!(r.storage_delete(ts, va), Ok(0));
        assert_eq!(r.storage_delete(ts, va), Ok(neg(2)));
        assert_eq!(r.storage_get(cx, ts, va, 0, 0), Ok(0));
        assert_eq!(
            r.storage_get(cx, ts, va + 8, 0, 0),
            Err(Fail::Bad(2)),
            "not a view"
        );
    });
}
