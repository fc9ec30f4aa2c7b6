/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * One tiny sched_ext scheduler, compiled once per case (-DCASE) by the
 * loader's tests: each case adds one thing schedlab refuses or notes.
 */
#include <scx/common.bpf.h>

char _license[] SEC("license") = "GPL";

const volatile u32 knob_u32;
const volatile s8 knob_s8;

#ifdef RINGBUF
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");
#endif

#ifdef UNKNOWN_KFUNC
void scx_bpf_frobnicate(u64 x) __ksym;
#endif
#ifdef WEAK_KFUNC
void scx_bpf_frobnicate(u64 x) __ksym __weak;
#endif
#ifdef UNKNOWN_ENUM
const volatile u64 __SCX_FROB_LEVEL __weak;
#endif

void BPF_STRUCT_OPS(t_enqueue, struct task_struct *p, u64 enq_flags)
{
#ifdef UNKNOWN_KFUNC
	scx_bpf_frobnicate(enq_flags);
#endif
#ifdef WEAK_KFUNC
	if (bpf_ksym_exists(scx_bpf_frobnicate))
		scx_bpf_frobnicate(enq_flags);
#endif
#ifdef HELPER
	enq_flags ^= bpf_get_current_pid_tgid();
#endif
#ifdef UNKNOWN_ENUM
	enq_flags |= __SCX_FROB_LEVEL;
#endif
	scx_bpf_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags + knob_u32 + knob_s8);
}

#ifdef UNKNOWN_CALLBACK
void BPF_STRUCT_OPS(t_cpu_acquire, s32 cpu, struct scx_cpu_acquire_args *args)
{
}
#endif

#ifdef DUMP
void BPF_STRUCT_OPS(t_dump, struct scx_dump_ctx *dctx)
{
}
#endif

#ifndef NO_OPS
SCX_OPS_DEFINE(t_ops,
	       .enqueue		= (void *)t_enqueue,
#ifdef UNKNOWN_CALLBACK
	       .cpu_acquire	= (void *)t_cpu_acquire,
#endif
#ifdef DUMP
	       .dump		= (void *)t_dump,
#endif
	       .name		= "cases");
#endif
