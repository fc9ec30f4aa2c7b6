/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Reads task_struct fields schedlab's task does not have, as schedulers
 * written for a full kernel do. Guarded by bpf_core_field_exists, the
 * object loads and runs (the guarded code never does); with
 * `--bpf-set reach=1` it reads one unguarded, and the poisoned
 * instruction stops it, naming the field.
 */
#include <scx/common.bpf.h>

char _license[] SEC("license") = "GPL";

const volatile u32 reach;
u64 nr_guarded, nr_enqueued;

void BPF_STRUCT_OPS(missing_enqueue, struct task_struct *p, u64 enq_flags)
{
	__sync_fetch_and_add(&nr_enqueued, 1);
	if (bpf_core_field_exists(p->se.sum_exec_runtime))
		nr_guarded += BPF_CORE_READ(p, se.sum_exec_runtime);
	if (reach && nr_enqueued > 2)
		nr_guarded += p->static_prio; /* UNGUARDED */
	scx_bpf_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
}

SCX_OPS_DEFINE(missing_ops, .enqueue = (void *)missing_enqueue, .name = "missing_field");
