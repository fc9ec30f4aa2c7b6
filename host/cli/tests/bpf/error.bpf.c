/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Gives up with scx_bpf_error() on its fifth enqueue: the run ends with
 * the message first, and the exit callback records it (UEI). */
#include <scx/common.bpf.h>

char _license[] SEC("license") = "GPL";

UEI_DEFINE(uei);
u64 nr_enqueued;

void BPF_STRUCT_OPS(error_enqueue, struct task_struct *p, u64 enq_flags)
{
	u64 n = __sync_fetch_and_add(&nr_enqueued, 1);

	if (n == 4)
		scx_bpf_error("error.bpf.c gives up: enqueue %llu of pid %d", n, p->pid);
	scx_bpf_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
}

void BPF_STRUCT_OPS(error_exit, struct scx_exit_info *ei)
{
	UEI_RECORD(uei, ei);
}

SCX_OPS_DEFINE(error_ops, .enqueue = (void *)error_enqueue, .exit = (void *)error_exit, .name = "error");
