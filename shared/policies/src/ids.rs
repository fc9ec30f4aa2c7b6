//! The policy ABI's dispatch-queue ids (`abi::policy::DSQ_*`, sched_ext's
//! numbering) mapped onto [`Dsqs`](crate::Dsqs)'s queues: the built-in
//! global and per-CPU local queues, and up to [`MAX_CUSTOM_DSQS`] queues a
//! policy creates under ids of its choosing. Shared by whatever hands a
//! policy image its queue services (the kernel, `policy_sdk::sim`), so
//! both accept and refuse exactly the same ids.

use crate::{Cpu, DsqId, MAX_CUSTOM_DSQS};
use abi::policy::{
    DSQ_FLAG_BUILTIN, DSQ_FLAG_LOCAL_ON, DSQ_GLOBAL, DSQ_INVALID, DSQ_LOCAL, DSQ_LOCAL_CPU_MASK,
    DSQ_LOCAL_ON,
};

/// The ids of the queues a policy created, by `DsqId::Custom` index.
#[derive(Clone, Debug, Default)]
pub struct DsqIds {
    /// `id + 1`, 0 = free (so the table starts all-zero).
    user: [u64; MAX_CUSTOM_DSQS],
}

impl DsqIds {
    pub const fn new() -> Self {
        DsqIds {
            user: [0; MAX_CUSTOM_DSQS],
        }
    }

    /// `dsq_create(id)`: 0; -1 for an id a policy may not use (the builtin
    /// or local-on flag set), -2 if it exists, -3 if every queue is taken.
    pub fn create(&mut self, id: u64) -> i32 {
        if id & (DSQ_FLAG_BUILTIN | DSQ_FLAG_LOCAL_ON) != 0 || id == u64::MAX {
            return -1;
        }
        if self.user.contains(&(id + 1)) {
            return -2;
        }
        match self.user.iter_mut().find(|u| **u == 0) {
            Some(u) => {
                *u = id + 1;
                0
            }
            None => -3,
        }
    }

    /// The queue a policy means by `id`; `local` is the CPU `DSQ_LOCAL`
    /// stands for (the dispatching CPU in `dispatch`, else the task's).
    /// The error says what was wrong, for "policy NAME: ...".
    pub fn resolve(&self, id: u64, nr_cpus: u32, local: Cpu) -> Result<DsqId, &'static str> {
        if id == DSQ_GLOBAL {
            return Ok(DsqId::Global);
        }
        if id == DSQ_LOCAL {
            return Ok(DsqId::Local(local));
        }
        if id & DSQ_LOCAL_ON == DSQ_LOCAL_ON && id & !(DSQ_LOCAL_ON | DSQ_LOCAL_CPU_MASK) == 0 {
            let cpu = (id & DSQ_LOCAL_CPU_MASK) as u32;
            if cpu >= nr_cpus {
                return Err("named the local queue of a CPU the run does not have");
            }
            return Ok(DsqId::Local(cpu));
        }
        if id & DSQ_FLAG_BUILTIN == 0
            && let Some(i) = self.user.iter().position(|&u| u == id.wrapping_add(1))
        {
            return Ok(DsqId::Custom(i as u16));
        }
        Err("named a dispatch queue that does not exist (create it with dsq_create)")
    }

    /// The id a policy knows queue `d` by (`DSQ_INVALID` for a custom queue
    /// it never created).
    pub fn id_of(&self, d: DsqId) -> u64 {
        match d {
            DsqId::Global => DSQ_GLOBAL,
            DsqId::Local(c) => DSQ_LOCAL_ON | u64::from(c),
            DsqId::Custom(i) => match self.user.get(i as usize) {
                Some(&u) if u != 0 => u - 1,
                _ => DSQ_INVALID,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resolve_like_sched_ext() {
        let mut ids = DsqIds::new();
        assert_eq!(ids.create(7), 0);
        assert_eq!(ids.create(7), -2);
        assert_eq!(ids.create(DSQ_GLOBAL), -1);
        assert_eq!(ids.create(DSQ_LOCAL_ON | 1), -1);
        assert_eq!(ids.resolve(7, 2, 0), Ok(DsqId::Custom(0)));
        assert_eq!(ids.id_of(DsqId::Custom(0)), 7);
        assert_eq!(ids.id_of(DsqId::Custom(1)), DSQ_INVALID);
        assert_eq!(ids.resolve(DSQ_GLOBAL, 2, 0), Ok(DsqId::Global));
        assert_eq!(ids.resolve(DSQ_LOCAL, 2, 1), Ok(DsqId::Local(1)));
        assert_eq!(ids.resolve(DSQ_LOCAL_ON | 1, 2, 0), Ok(DsqId::Local(1)));
        assert!(ids.resolve(DSQ_LOCAL_ON | 2, 2, 0).is_err());
        assert!(ids.resolve(8, 2, 0).is_err());
        assert!(ids.resolve(DSQ_FLAG_BUILTIN | 9, 2, 0).is_err());
        for id in 100..100 + MAX_CUSTOM_DSQS as u64 - 1 {
            assert_eq!(ids.create(id), 0);
        }
        assert_eq!(ids.create(1000), -3);
    }
}
