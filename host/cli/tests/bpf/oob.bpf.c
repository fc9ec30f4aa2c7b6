/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Writes past the end of a map value from enqueue: the kernel's verifier
 * would refuse it; schedlab's sandbox stops it when it runs, naming the
 * program and this file's line.
 */
#include <scx/common.bpf.h>

char _license[] SEC("license") = "GPL";

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, u32); __type(value, u64); } slot SEC(".maps");
const volatile u32 oob_index = 100000;	/* a value the verifier could not bound */
u64 nr_enqueued;

void BPF_STRUCT_OPS(oob_enqueue, struct task_struct *p, u64 enq_flags)
{
	u32 key = 0;
	u64 *v = bpf_map_lookup_elem(&slot, &key);

	if (v && __sync_fetch_and_add(&nr_enqueued, 1) == 2)
		v[oob_index] = 1; /* OOB-WRITE */
	scx_bpf_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
}

SCX_OPS_DEFINE(oob_ops, .enqueue = (void *)oob_enqueue, .name = "oob");
