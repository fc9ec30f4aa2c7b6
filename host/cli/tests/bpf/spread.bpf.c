/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * schedlab's second test scheduler for its BPF runtime: it spreads tasks
 * over CPUs by queueing them straight into a chosen CPU's local DSQ
 * (SCX_DSQ_LOCAL_ON) and kicking that CPU, and exercises the idle-CPU,
 * kick, cpumask and exit kfuncs the first one (selftest.bpf.c) does not.
 * A failed check ends the run with scx_bpf_error("spread: ...").
 */
#include <scx/common.bpf.h>

char _license[] SEC("license") = "GPL";

const volatile u64 exit_after;	/* --bpf-set exit_after=N: scx_bpf_exit after N enqueues */
UEI_DEFINE(uei);

u64 nr_enqueued, nr_local_on, nr_head, nr_kicks, nr_picked_idle;
struct bpf_cpumask __kptr *seen;

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, u32); __type(value, struct bpf_timer); } tm SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_TASK_STORAGE); __uint(map_flags, BPF_F_NO_PREALLOC); __type(key, int); __type(value, u64); } marks SEC(".maps");

s32 BPF_STRUCT_OPS(spread_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	const struct cpumask *idle = scx_bpf_get_idle_cpumask();
	u32 n = bpf_cpumask_weight(idle);
	s32 cpu;

	scx_bpf_put_idle_cpumask(idle);
	if (n > scx_bpf_nr_cpu_ids()) {
		scx_bpf_error("spread: %u idle CPUs of %u", n, scx_bpf_nr_cpu_ids());
		return prev_cpu;
	}
	if (scx_bpf_test_and_clear_cpu_idle(prev_cpu))
		return prev_cpu;
	cpu = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);
	if (cpu >= 0) {
		__sync_fetch_and_add(&nr_picked_idle, 1);
		return cpu;
	}
	return scx_bpf_pick_any_cpu(p->cpus_ptr, 0);
}

void BPF_STRUCT_OPS(spread_enqueue, struct task_struct *p, u64 enq_flags)
{
	u64 n = __sync_fetch_and_add(&nr_enqueued, 1);
	s32 cpu = scx_bpf_task_cpu(p);
	u64 *mark = bpf_task_storage_get(&marks, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (mark)
		*mark = n;
	if (exit_after && n >= exit_after) {
		scx_bpf_exit(7, "spread: exit after %llu enqueues", n);
		return;
	}
	if (!bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
		cpu = scx_bpf_pick_any_cpu(p->cpus_ptr, 0);
	__sync_fetch_and_add(&nr_local_on, 1);
	/*
	 * Every 4th at the head of the queue (a global queue would starve
	 * here: a CPU takes from it only when its local queue is empty).
	 */
	if (n % 4 == 3) {
		__sync_fetch_and_add(&nr_head, 1);
		enq_flags |= SCX_ENQ_HEAD;
	}
	scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, SCX_SLICE_DFL, enq_flags);
	__sync_fetch_and_add(&nr_kicks, 1);
	scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
}

void BPF_STRUCT_OPS(spread_tick, struct task_struct *p)
{
	/* Preempt through a kick, not the slice: sched_ext's KICK_PREEMPT. */
	if (p->scx.slice < SCX_SLICE_DFL / 2)
		scx_bpf_kick_cpu(scx_bpf_task_cpu(p), SCX_KICK_PREEMPT);
}

void BPF_STRUCT_OPS(spread_running, struct task_struct *p)
{
	struct bpf_cpumask *m = bpf_kptr_xchg(&seen, NULL);

	if (m) {
		bpf_cpumask_set_cpu(scx_bpf_task_cpu(p), m);
		m = bpf_kptr_xchg(&seen, m);
		if (m)
			bpf_cpumask_release(m);
	}
	scx_bpf_cpuperf_set(scx_bpf_task_cpu(p), scx_bpf_cpuperf_cur(scx_bpf_task_cpu(p)));
}

void BPF_STRUCT_OPS(spread_exit_task, struct task_struct *p, struct scx_exit_task_args *args)
{
	bpf_task_storage_delete(&marks, p);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(spread_init)
{
	struct bpf_cpumask *m = bpf_cpumask_create(), *old;
	const struct cpumask *possible;

	if (!m)
		return -12;
	possible = scx_bpf_get_possible_cpumask();
	bpf_cpumask_copy(m, possible);
	bpf_cpumask_or(m, cast_mask(m), possible);
	scx_bpf_put_cpumask(possible);
	if (bpf_cpumask_weight(cast_mask(m)) != scx_bpf_nr_cpu_ids()) {
		scx_bpf_error("spread: possible cpumask has %u CPUs", bpf_cpumask_weight(cast_mask(m)));
		bpf_cpumask_release(m);
		return -22;
	}
	bpf_cpumask_clear(m);
	old = bpf_kptr_xchg(&seen, m);
	if (old)
		bpf_cpumask_release(old);
	return 0;
}

void BPF_STRUCT_OPS(spread_exit, struct scx_exit_info *ei)
{
	bpf_printk("spread: %llu enqueued, %llu local_on, %llu at the head, %llu idle picks",
		   nr_enqueued, nr_local_on, nr_head, nr_picked_idle);
	UEI_RECORD(uei, ei);
}

SCX_OPS_DEFINE(spread_ops,
	       .select_cpu = (void *)spread_select_cpu,
	       .enqueue = (void *)spread_enqueue,
	       .tick = (void *)spread_tick,
	       .running = (void *)spread_running,
	       .exit_task = (void *)spread_exit_task,
	       .init = (void *)spread_init,
	       .exit = (void *)spread_exit,
	       .name = "spread");
