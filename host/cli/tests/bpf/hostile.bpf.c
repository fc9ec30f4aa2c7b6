/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * Misbehaves on purpose, in the way `--bpf-set mode=N` picks, from its
 * third enqueue on: what the kernel's verifier would have refused, which
 * schedlab's sandbox must stop at run time without harming the guest
 * kernel or the host.
 *   1 loops forever          2 writes p->pid (read-only)
 *   3 passes a forged task   4 reads guest kernel memory
 *   5 recurses without end   6 probe-reads kernel memory (must get -EFAULT)
 */
#include <scx/common.bpf.h>

char _license[] SEC("license") = "GPL";

const volatile u32 mode;
volatile u64 spins, nr_enqueued;

static __noinline u64 deeper(u64 n)
{
	if (n > spins + 1000000)
		return n;
	return deeper(n + 1) * 3 + spins;
}

void BPF_STRUCT_OPS(hostile_enqueue, struct task_struct *p, u64 enq_flags)
{
	if (__sync_fetch_and_add(&nr_enqueued, 1) >= 2) {
		if (mode == 1) {
			while (spins != (u64)-1)
				spins++;
		} else if (mode == 2) {
			p->pid = 0;
		} else if (mode == 3) {
			scx_bpf_dsq_insert((struct task_struct *)0x200000, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, 0);
		} else if (mode == 4) {
			spins = *(volatile u64 *)0x200000;
		} else if (mode == 5) {
			spins = deeper(0);
		} else if (mode == 6) {
			u64 v = 0;
			long r = bpf_probe_read_kernel(&v, sizeof(v), (void *)0x200000);

			scx_bpf_error("hostile: probe_read_kernel of kernel memory returned %ld, read %llu", r, v);
		}
	}
	scx_bpf_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
}

SCX_OPS_DEFINE(hostile_ops, .enqueue = (void *)hostile_enqueue, .name = "hostile");
