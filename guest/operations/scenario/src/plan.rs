//! The scenario config, checked once more in the guest. The host compiled
//! and validated it, but the guest never trusts bytes it did not write: a
//! config that would index out of bounds fails the run with a reason
//! instead.

use abi::config::{
    OperationConfig, PHASE_BARRIER, PHASE_BROADCAST, PHASE_FORK, PHASE_LOCK, PHASE_PUBLISH,
    PHASE_RECV, PHASE_RUN, PHASE_SEM_POST, PHASE_SEM_WAIT, PHASE_SEND, PHASE_SIGNAL, PHASE_SLEEP,
    PHASE_TIMER, PHASE_UNLOCK, PHASE_WAIT, PHASE_YIELD, SCENARIO_MAX_INSTANCES, SCENARIO_MAX_KINDS,
    SCENARIO_MAX_PHASES, SCENARIO_MAX_SYNCS, SCENARIO_MAX_TIMERS, SCENARIO_MAX_TOPICS,
    SCENARIO_TOPIC_NAME, ScenarioConfig, ScenarioTask, TIMER_ABSOLUTE,
};

/// A checked config plus where each kind's instances start in the global
/// instance numbering (kind 0's instances first, then kind 1's, ...).
pub struct Plan {
    pub cfg: ScenarioConfig,
    base: [u32; SCENARIO_MAX_KINDS],
    pub total: u32,
}

impl Plan {
    pub fn from_config(bytes: &[u8]) -> Result<Plan, &'static str> {
        let cfg = ScenarioConfig::from_bytes(bytes)
            .ok_or("the config is not a ScenarioConfig (magic SCEN, version 3): run make")?;
        let kinds = cfg.kinds as usize;
        let topics = cfg.topics as usize;
        if kinds == 0 || kinds > SCENARIO_MAX_KINDS {
            return Err("the config has no task kinds or more than 8");
        }
        if topics > SCENARIO_MAX_TOPICS {
            return Err("the config has more than 8 topics");
        }
        let syncs = cfg.syncs as usize;
        if syncs > SCENARIO_MAX_SYNCS {
            return Err("the config has more than 16 sync objects");
        }
        if cfg.sync_parties[..syncs]
            .iter()
            .any(|&n| n as usize > SCENARIO_MAX_INSTANCES)
        {
            return Err("a barrier has more parties than a scenario has instances");
        }
        if cfg.duration_ns == 0 {
            return Err("the config has a zero duration");
        }
        for name in &cfg.topic_name[..topics] {
            topic_str(name).ok_or("a topic name is empty or not UTF-8")?;
        }
        let mut base = [0u32; SCENARIO_MAX_KINDS];
        let mut total = 0u32;
        let mut counts = [0u32; SCENARIO_MAX_KINDS];
        for (c, t) in counts.iter_mut().zip(&cfg.task[..kinds]) {
            *c = t.count;
        }
        for (k, t) in cfg.task[..kinds].iter().enumerate() {
            check_task(t, &counts[..kinds], topics, syncs)?;
            base[k] = total;
            total += t.count;
            if total as usize > SCENARIO_MAX_INSTANCES {
                return Err("the config asks for more than 64 task instances");
            }
        }
        if total == 0 {
            return Err("the config starts no instance (every kind has a count of 0)");
        }
        Ok(Plan { cfg, base, total })
    }

    pub fn task(&self, kind: usize) -> &ScenarioTask {
        &self.cfg.task[kind]
    }

    /// Kind and instance number of global instance `g` (< total).
    pub fn locate(&self, g: usize) -> (usize, u32) {
        let kinds = self.cfg.kinds as usize;
        let kind = (0..kinds)
            .rev()
            .find(|&k| self.base[k] as usize <= g)
            .unwrap_or(0);
        (kind, g as u32 - self.base[kind])
    }

    /// Global instance a `send` from instance `idx` to `kind` reaches: the
    /// same instance number, modulo that kind's count.
    pub fn peer(&self, kind: usize, idx: u32) -> usize {
        (self.base[kind] + idx % self.cfg.task[kind].count) as usize
    }

    pub fn topic(&self, i: usize) -> &str {
        // Checked in from_config for every i < topics.
        topic_str(&self.cfg.topic_name[i]).unwrap_or("")
    }
}

fn check_task(
    t: &ScenarioTask,
    counts: &[u32],
    topics: usize,
    syncs: usize,
) -> Result<(), &'static str> {
    let kinds = counts.len();
    // A count of 0: started only by forks.
    if t.count as usize > SCENARIO_MAX_INSTANCES {
        return Err("a task kind has a count of more than 64");
    }
    if t.weight == 0 {
        return Err("a task kind has weight 0");
    }
    if t.phases == 0 || t.phases as usize > SCENARIO_MAX_PHASES {
        return Err("a task kind has no phases or more than 24");
    }
    if topics < 32 && t.subscribe >> topics != 0 {
        return Err("a task kind subscribes to a topic that does not exist");
    }
    for p in &t.phase[..t.phases as usize] {
        let ok = match p.op {
            PHASE_RUN | PHASE_SLEEP => p.value > 0,
            PHASE_TIMER => {
                p.value > 0
                    && p.arg & !(TIMER_ABSOLUTE | 0xff) == 0
                    && (p.arg & 0xff) as usize <= SCENARIO_MAX_TIMERS
            }
            // A send goes to an instance of the kind's first ones: it
            // must have some (peer divides by the count).
            PHASE_SEND => counts.get(p.arg as usize).is_some_and(|&c| c > 0),
            PHASE_FORK => (p.arg as usize) < kinds,
            PHASE_PUBLISH => (p.arg as usize) < topics,
            PHASE_RECV | PHASE_YIELD => true,
            PHASE_LOCK | PHASE_UNLOCK | PHASE_SIGNAL | PHASE_BROADCAST | PHASE_BARRIER
            | PHASE_SEM_POST | PHASE_SEM_WAIT => (p.arg as usize) < syncs,
            PHASE_WAIT => (p.arg as usize) < syncs && (p.value as usize) < syncs,
            _ => false,
        };
        if !ok {
            return Err("a phase has an unknown opcode, a zero duration or a bad target");
        }
    }
    Ok(())
}

/// The name up to its first NUL, if it is non-empty UTF-8.
fn topic_str(name: &[u8; SCENARIO_TOPIC_NAME]) -> Option<&str> {
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    core::str::from_utf8(&name[..len])
        .ok()
        .filter(|s| !s.is_empty())
}
