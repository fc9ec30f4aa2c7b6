/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Calls a kfunc no kernel (and not schedlab) provides: refused at load. */
#include <scx/common.bpf.h>

char _license[] SEC("license") = "GPL";

void scx_bpf_frobnicate(struct task_struct *p) __ksym;

void BPF_STRUCT_OPS(badk_enqueue, struct task_struct *p, u64 enq_flags)
{
	scx_bpf_frobnicate(p);
	scx_bpf_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
}

SCX_OPS_DEFINE(badk_ops, .enqueue = (void *)badk_enqueue, .name = "bad_kfunc");
