//! EEVDF's per-CPU run-queue arithmetic (see the crate docs): the sums
//! behind `V`, lag, eligibility, placement and charging the running task.
//! Everything is indexed by task-table slot and CPU number.

use policy_sdk::{MAX_CPUS, MAX_TASKS, vtime_delta};

/// Both indices fit this policy's arrays.
pub fn in_range(slot: usize, cpu: u32) -> bool {
    slot < MAX_TASKS && (cpu as usize) < MAX_CPUS
}

/// One slice of run time of a task of weight `w`, in virtual time.
pub fn vslice(w: u32) -> u64 {
    vtime_delta(policy_sdk::slice_dfl_ns(), w)
}

/// Per slot, a remembered CPU (`cpu + 1`, 0 = none): the one `select_cpu`
/// chose, consumed by the next `enqueue` or `running`.
pub struct Remembered([u8; MAX_TASKS]);

const _: () = assert!(MAX_CPUS < u8::MAX as usize);

impl Remembered {
    pub fn set(&mut self, slot: usize, cpu: u32) {
        if let Some(e) = self.0.get_mut(slot) {
            *e = if (cpu as usize) < MAX_CPUS {
                cpu as u8 + 1
            } else {
                0
            };
        }
    }

    pub fn take(&mut self, slot: usize) -> Option<u32> {
        let e = self.0.get_mut(slot)?;
        let v = core::mem::take(e);
        (v != 0).then(|| u32::from(v) - 1)
    }
}

/// Per CPU: the running task (`slot + 1`, 0 = none), when it started and
/// how much of its run has been charged so far, so that virtual time can
/// be brought up to date at any callback, not only at `tick`/`stopping`.
pub struct Curr {
    slot: [u16; MAX_CPUS],
    start_ns: [u64; MAX_CPUS],
    charged_ns: [u64; MAX_CPUS],
}

impl Curr {
    pub fn get(&self, cpu: u32) -> Option<usize> {
        match self.slot.get(cpu as usize) {
            Some(&s) if s != 0 => Some(usize::from(s) - 1),
            _ => None,
        }
    }

    pub fn set(&mut self, cpu: u32, slot: usize, now_ns: u64) {
        let c = cpu as usize;
        if c < MAX_CPUS {
            self.slot[c] = slot as u16 + 1;
            self.start_ns[c] = now_ns;
            self.charged_ns[c] = 0;
        }
    }

    pub fn clear(&mut self, cpu: u32) {
        if let Some(s) = self.slot.get_mut(cpu as usize) {
            *s = 0;
        }
    }

    /// The CPU `slot` is running on, if any.
    pub fn cpu_of(&self, slot: usize) -> Option<u32> {
        self.slot
            .iter()
            .position(|&s| usize::from(s) == slot + 1)
            .map(|c| c as u32)
    }

    /// Time run since `running` per `now_ns`, for callbacks that get no
    /// run time.
    fn ran_at(&self, cpu: u32, now_ns: u64) -> u64 {
        self.start_ns
            .get(cpu as usize)
            .map_or(0, |&s| now_ns.saturating_sub(s))
    }

    /// Charge the run up to `ran_ns`; returns the time not charged before.
    fn charge(&mut self, cpu: u32, ran_ns: u64) -> u64 {
        let Some(c) = self.charged_ns.get_mut(cpu as usize) else {
            return 0;
        };
        let d = ran_ns.saturating_sub(*c);
        *c = (*c).max(ran_ns);
        d
    }
}

pub struct Eevdf {
    pub target: Remembered,
    pub curr: Curr,
    pub vruntime: [u64; MAX_TASKS],
    pub deadline: [u64; MAX_TASKS],
    /// Lag kept while the task is off every run queue.
    pub lag: [i64; MAX_TASKS],
    /// The weight the task is counted with in its CPU's sums.
    pub weight: [u32; MAX_TASKS],
    /// `cpu + 1` whose run queue (sums) counts the task; 0 = none.
    on_rq: [u8; MAX_TASKS],
    sum_w: [u64; MAX_CPUS],
    sum_wv: [u128; MAX_CPUS],
    /// Last `V` of each CPU, the reference while its run queue is empty.
    vclock: [u64; MAX_CPUS],
    /// Per CPU bit: the running task used up a request since the last tick.
    pub resched: u64,
}

impl Eevdf {
    /// All zero, so the image's static lands in `.bss`.
    pub const fn new() -> Self {
        Eevdf {
            target: Remembered([0; MAX_TASKS]),
            curr: Curr {
                slot: [0; MAX_CPUS],
                start_ns: [0; MAX_CPUS],
                charged_ns: [0; MAX_CPUS],
            },
            vruntime: [0; MAX_TASKS],
            deadline: [0; MAX_TASKS],
            lag: [0; MAX_TASKS],
            weight: [0; MAX_TASKS],
            on_rq: [0; MAX_TASKS],
            sum_w: [0; MAX_CPUS],
            sum_wv: [0; MAX_CPUS],
            vclock: [0; MAX_CPUS],
            resched: 0,
        }
    }

    /// `V` of `cpu`: the weighted average vruntime of its runnable tasks
    /// (as of the last callback), or its last value while it has none.
    pub fn avg_vruntime(&self, cpu: u32) -> u64 {
        let c = cpu as usize;
        if c >= MAX_CPUS {
            return 0;
        }
        if self.sum_w[c] == 0 {
            self.vclock[c]
        } else {
            (self.sum_wv[c] / u128::from(self.sum_w[c])) as u64
        }
    }

    /// The CPU whose run queue counts `s`.
    pub fn rq_cpu(&self, s: usize) -> Option<u32> {
        match self.on_rq.get(s) {
            Some(&c) if c != 0 => Some(u32::from(c) - 1),
            _ => None,
        }
    }

    /// Whether `s` is on a run queue and eligible there (`v <= V`).
    pub fn eligible(&self, s: usize) -> bool {
        let Some(cpu) = self.rq_cpu(s) else {
            return false;
        };
        let c = cpu as usize;
        u128::from(self.vruntime[s]) * u128::from(self.sum_w[c]) <= self.sum_wv[c]
    }

    /// The lag of `s`: `V - v` on its run queue, the kept lag off it.
    #[cfg(test)]
    pub fn lag_of(&self, s: usize) -> i64 {
        match self.rq_cpu(s) {
            Some(c) => {
                let l = i128::from(self.avg_vruntime(c)) - i128::from(self.vruntime[s]);
                l.clamp(i64::MIN.into(), i64::MAX.into()) as i64
            }
            None => self.lag.get(s).copied().unwrap_or(0),
        }
    }

    /// Off every run queue, and everything about `s` zeroed (a new task,
    /// or one that is gone).
    pub fn forget(&mut self, s: usize) {
        if s >= MAX_TASKS {
            return;
        }
        self.remove_from_rq(s);
        self.target.take(s);
        self.vruntime[s] = 0;
        self.deadline[s] = 0;
        self.lag[s] = 0;
        self.weight[s] = 0;
    }

    /// Count `s` in `cpu`'s sums.
    fn add(&mut self, cpu: u32, s: usize, w: u32) {
        let c = cpu as usize;
        self.weight[s] = w;
        self.on_rq[s] = cpu as u8 + 1;
        self.sum_w[c] += u64::from(w);
        self.sum_wv[c] += u128::from(w) * u128::from(self.vruntime[s]);
    }

    /// Take `s` out of its CPU's sums, keeping its lag (clamped to two
    /// slices of its own run time, as Linux's `update_entity_lag`).
    pub fn remove_from_rq(&mut self, s: usize) {
        let Some(cpu) = self.rq_cpu(s) else {
            return;
        };
        let c = cpu as usize;
        let w = self.weight[s];
        let v_avg = self.avg_vruntime(cpu);
        let limit = i128::from(vtime_delta(policy_sdk::slice_dfl_ns().saturating_mul(2), w));
        let lag = (i128::from(v_avg) - i128::from(self.vruntime[s])).clamp(-limit, limit);
        self.lag[s] = lag as i64;
        self.vclock[c] = v_avg;
        self.sum_w[c] -= u64::from(w);
        self.sum_wv[c] -= u128::from(w) * u128::from(self.vruntime[s]);
        self.on_rq[s] = 0;
    }

    /// Put `s` on `cpu`'s run queue at `V - lag` (see the crate docs) with
    /// a fresh request.
    pub fn place(&mut self, cpu: u32, s: usize, w: u32, lag: i64) {
        let c = cpu as usize;
        let big_w = i128::from(self.sum_w[c]);
        let (base, lag) = if big_w == 0 {
            // Nothing to be fair to: any base works, so pick one that keeps
            // v_i = base - lag non-negative.
            let lag = i128::from(lag);
            (i128::from(self.vclock[c]).max(lag), lag)
        } else {
            let scaled = i128::from(lag) * (big_w + i128::from(w)) / big_w;
            (i128::from(self.avg_vruntime(cpu)), scaled)
        };
        self.vruntime[s] = (base - lag).clamp(0, u64::MAX.into()) as u64;
        self.deadline[s] = self.vruntime[s].saturating_add(vslice(w));
        self.add(cpu, s, w);
    }

    /// Charge `cpu`'s running task up to `ran_ns` (or up to now) and start
    /// a new request if it reached its deadline.
    pub fn update_curr(&mut self, cpu: u32, ran_ns: Option<u64>) {
        let Some(s) = self.curr.get(cpu) else {
            return;
        };
        let ran = ran_ns.unwrap_or_else(|| self.curr.ran_at(cpu, policy_sdk::now_ns()));
        let d = self.curr.charge(cpu, ran);
        let w = self.weight[s].max(1);
        let dv = vtime_delta(d, w);
        self.vruntime[s] = self.vruntime[s].saturating_add(dv);
        if self.rq_cpu(s) == Some(cpu) {
            self.sum_wv[cpu as usize] += u128::from(w) * u128::from(dv);
        }
        if self.vruntime[s] >= self.deadline[s] {
            self.deadline[s] = self.vruntime[s].saturating_add(vslice(w));
            self.resched |= 1 << cpu;
        }
        if self.sum_w[cpu as usize] != 0 {
            self.vclock[cpu as usize] = self.avg_vruntime(cpu);
        }
    }

    /// The per-CPU sums are exactly what the tasks on each run queue add
    /// up to (the tests check this after every simulated step).
    #[cfg(test)]
    pub fn check_sums(&self, nr_cpus: u32) {
        for c in 0..nr_cpus as usize {
            let (mut w, mut wv) = (0u64, 0u128);
            for s in 0..MAX_TASKS {
                if self.on_rq[s] as usize == c + 1 {
                    w += u64::from(self.weight[s]);
                    wv += u128::from(self.weight[s]) * u128::from(self.vruntime[s]);
                }
            }
            assert_eq!(
                (self.sum_w[c], self.sum_wv[c]),
                (w, wv),
                "eevdf sums of CPU {c}"
            );
        }
    }
}
