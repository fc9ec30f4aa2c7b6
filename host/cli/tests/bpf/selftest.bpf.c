/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/*
 * schedlab's own sched_ext scheduler for its BPF runtime's tests: it
 * schedules (a vtime-ordered user DSQ, direct dispatch to idle CPUs) and,
 * on the way, checks every kfunc and helper the runtime provides. A check
 * that fails calls scx_bpf_error("selftest: ...") naming it, which ends
 * the run with that message first, so the e2e test that runs this object
 * fails with the name of what broke.
 */
#include <scx/common.bpf.h>

char _license[] SEC("license") = "GPL";

#define MY_DSQ 7
#define CHECK(cond, what)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			scx_bpf_error("selftest: %s failed", what);            \
			return 0;                                              \
		}                                                              \
	} while (0)

const volatile u32 knob = 3;	/* --bpf-set knob=N */
UEI_DEFINE(uei);

u64 nr_enqueued, nr_dispatched, nr_direct, nr_timer_fired, nr_ticks, nr_checked;
u64 vtime_now;

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4); __type(key, u32); __type(value, u64); } arr SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1); __type(key, u32); __type(value, u64); } pcpu SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, u64); __type(value, u64); } hash SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 4); __type(key, u32); __type(value, u32); } lru SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_QUEUE); __uint(max_entries, 8); __type(value, u32); } fifo SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_STACK); __uint(max_entries, 8); __type(value, u32); } lifo SEC(".maps");
struct task_ctx { u64 enqueues; u64 last_vtime; };
struct { __uint(type, BPF_MAP_TYPE_TASK_STORAGE); __uint(map_flags, BPF_F_NO_PREALLOC); __type(key, int); __type(value, struct task_ctx); } tctx SEC(".maps");
struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, u32); __type(value, u64); } inner0 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 2); __type(key, u32); __array(values, struct inner); } outer SEC(".maps") = { .values = { &inner0 } };
struct tmr { struct bpf_timer t; };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2); __type(key, u32); __type(value, struct tmr); } timers SEC(".maps");
u64 nr_cancelled_fired;

static int never_cb(void *map, u32 *key, struct bpf_timer *t)
{
	__sync_fetch_and_add(&nr_cancelled_fired, 1);
	return 0;
}

static int timer_cb(void *map, u32 *key, struct bpf_timer *t)
{
	__sync_fetch_and_add(&nr_timer_fired, 1);
	if (nr_timer_fired < 5)
		bpf_timer_start(t, 2 * 1000 * 1000, 0);
	return 0;
}

static int check_maps(void)
{
	u32 k = 1, v32 = 0, i;
	u64 key = 42, val = 7, *p;

	p = bpf_map_lookup_elem(&arr, &k);
	CHECK(p && *p == 0, "array lookup");
	*p = 11;
	p = bpf_map_lookup_elem(&arr, &k);
	CHECK(p && *p == 11, "array store");
	k = 4;
	CHECK(!bpf_map_lookup_elem(&arr, &k), "array bound");
	k = 0;
	p = bpf_map_lookup_elem(&pcpu, &k);
	CHECK(p, "percpu array lookup");
	*p += 1;

	CHECK(bpf_map_update_elem(&hash, &key, &val, BPF_NOEXIST) == 0, "hash insert");
	CHECK(bpf_map_update_elem(&hash, &key, &val, BPF_NOEXIST) != 0, "hash noexist");
	p = bpf_map_lookup_elem(&hash, &key);
	CHECK(p && *p == 7, "hash lookup");
	CHECK(bpf_map_delete_elem(&hash, &key) == 0, "hash delete");
	CHECK(!bpf_map_lookup_elem(&hash, &key), "hash gone");
	CHECK(bpf_map_update_elem(&hash, &key, &val, BPF_EXIST) != 0, "hash exist");

	for (i = 0; i < 6; i++)
		CHECK(bpf_map_update_elem(&lru, &i, &i, BPF_ANY) == 0, "lru insert evicts");

	for (i = 10; i < 13; i++)
		CHECK(bpf_map_push_elem(&fifo, &i, 0) == 0, "queue push");
	CHECK(bpf_map_peek_elem(&fifo, &v32) == 0 && v32 == 10, "queue peek");
	CHECK(bpf_map_pop_elem(&fifo, &v32) == 0 && v32 == 10, "queue order");
	for (i = 20; i < 23; i++)
		CHECK(bpf_map_push_elem(&lifo, &i, 0) == 0, "stack push");
	CHECK(bpf_map_pop_elem(&lifo, &v32) == 0 && v32 == 22, "stack order");

	k = 0;
	CHECK(bpf_map_lookup_elem(&outer, &k) != NULL, "array of maps");
	k = 1;
	CHECK(bpf_map_lookup_elem(&outer, &k) == NULL, "array of maps empty slot");
	return 1;
}

static int check_cpumasks(void)
{
	struct bpf_cpumask *m = bpf_cpumask_create();
	const struct cpumask *online;
	u32 n = scx_bpf_nr_cpu_ids();

	CHECK(m, "cpumask create");
	bpf_cpumask_set_cpu(0, m);
	CHECK(bpf_cpumask_test_cpu(0, cast_mask(m)), "cpumask set/test");
	CHECK(bpf_cpumask_weight(cast_mask(m)) == 1, "cpumask weight");
	CHECK(bpf_cpumask_first(cast_mask(m)) == 0, "cpumask first");
	CHECK(bpf_cpumask_test_and_clear_cpu(0, m), "cpumask test_and_clear");
	CHECK(bpf_cpumask_empty(cast_mask(m)), "cpumask empty");
	bpf_cpumask_setall(m);
	online = scx_bpf_get_online_cpumask();
	CHECK(bpf_cpumask_weight(online) == n, "online cpumask");
	bpf_cpumask_and(m, cast_mask(m), online);
	CHECK(bpf_cpumask_weight(cast_mask(m)) == n, "cpumask and");
	scx_bpf_put_cpumask(online);
	bpf_cpumask_clear(m);
	CHECK(!bpf_cpumask_test_and_set_cpu(1, m) && bpf_cpumask_test_cpu(1, cast_mask(m)), "cpumask test_and_set");
	/* A second reference: the mask lives until both are released. */
	CHECK(bpf_cpumask_acquire(m) == m, "cpumask acquire");
	bpf_cpumask_release(m);
	CHECK(bpf_cpumask_test_cpu(1, cast_mask(m)), "cpumask alive after one release");
	bpf_cpumask_release(m);
	online = scx_bpf_get_idle_smtmask();
	CHECK(bpf_cpumask_weight(online) <= n, "idle smt mask");
	scx_bpf_put_idle_cpumask(online);
	return 1;
}

static int check_misc(void)
{
	u64 a = scx_bpf_now(), b = bpf_ktime_get_ns(), sum = 0;
	char buf[8];
	static const char word[] = "schedlab";
	int i, cpu = bpf_get_smp_processor_id();

	CHECK(a > 0 && b > 0 && bpf_ktime_get_boot_ns() >= b, "clocks");
	CHECK(cpu >= 0 && cpu < scx_bpf_nr_cpu_ids(), "smp processor id");
	bpf_for(i, 0, 10) sum += i;
	CHECK(sum == 45, "bpf_for sum");
	CHECK(bpf_probe_read_kernel_str(buf, sizeof(buf), word) == 8 && buf[0] == 's' && buf[7] == 0, "probe_read_kernel_str");
	CHECK(scx_bpf_cpuperf_cap(0) > 0, "cpuperf cap");
	CHECK(knob == 3 || knob == 9, "rodata knob");
	bpf_get_prandom_u32();
	/* A queue made and destroyed (the runtime leaves it, unused). */
	CHECK(scx_bpf_create_dsq(MY_DSQ + 1, -1) == 0, "create a second dsq");
	scx_bpf_destroy_dsq(MY_DSQ + 1);
	scx_bpf_dump("selftest: a dump line goes nowhere outside a dump");
	return 1;
}

s32 BPF_STRUCT_OPS(selftest_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);

	if (is_idle) {
		__sync_fetch_and_add(&nr_direct, 1);
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, SCX_SLICE_DFL, 0);
	}
	return cpu;
}

void BPF_STRUCT_OPS(selftest_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tc = bpf_task_storage_get(&tctx, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	struct task_struct *q;
	u64 vtime = p->scx.dsq_vtime;

	if (!tc) {
		scx_bpf_error("selftest: task storage failed");
		return;
	}
	tc->enqueues++;
	q = bpf_task_from_pid(p->pid);
	if (!q || q->pid != p->pid) {
		scx_bpf_error("selftest: bpf_task_from_pid(%d) failed", p->pid);
		if (q)
			bpf_task_release(q);
		return;
	}
	bpf_task_release(q);
	q = bpf_task_acquire(p);
	if (q != p) {
		scx_bpf_error("selftest: bpf_task_acquire");
		if (q)
			bpf_task_release(q);
		return;
	}
	bpf_task_release(q);
	if (scx_bpf_task_cpu(p) < 0 || scx_bpf_task_cpu(p) >= scx_bpf_nr_cpu_ids()) {
		scx_bpf_error("selftest: task_cpu %d", scx_bpf_task_cpu(p));
		return;
	}
	__sync_fetch_and_add(&nr_enqueued, 1);
	if (time_before(vtime, vtime_now - SCX_SLICE_DFL))
		vtime = vtime_now - SCX_SLICE_DFL;
	scx_bpf_dsq_insert_vtime(p, MY_DSQ, SCX_SLICE_DFL, vtime, enq_flags);
}

void BPF_STRUCT_OPS(selftest_dispatch, s32 cpu, struct task_struct *prev)
{
	s32 nr = scx_bpf_dsq_nr_queued(MY_DSQ);

	if (nr < 0) {
		scx_bpf_error("selftest: dsq_nr_queued %d", nr);
		return;
	}
	if (scx_bpf_dispatch_nr_slots() == 0) {
		scx_bpf_error("selftest: no dispatch slots at dispatch start");
		return;
	}
	if (scx_bpf_dsq_move_to_local(MY_DSQ))
		__sync_fetch_and_add(&nr_dispatched, 1);
}

void BPF_STRUCT_OPS(selftest_running, struct task_struct *p)
{
	if (time_before(vtime_now, p->scx.dsq_vtime))
		vtime_now = p->scx.dsq_vtime;
	if (!scx_bpf_task_running(p))
		scx_bpf_error("selftest: task_running false in running");
}

void BPF_STRUCT_OPS(selftest_tick, struct task_struct *p)
{
	__sync_fetch_and_add(&nr_ticks, 1);
}

void BPF_STRUCT_OPS(selftest_stopping, struct task_struct *p, bool runnable)
{
	p->scx.dsq_vtime += (SCX_SLICE_DFL - p->scx.slice) * 100 / p->scx.weight;
}

void BPF_STRUCT_OPS(selftest_enable, struct task_struct *p)
{
	p->scx.dsq_vtime = vtime_now;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(selftest_init)
{
	u32 key = 0;
	struct tmr *t;
	s32 ret = scx_bpf_create_dsq(MY_DSQ, -1);

	if (ret)
		return ret;
	if (!check_maps() || !check_cpumasks() || !check_misc())
		return -22;
	t = bpf_map_lookup_elem(&timers, &key);
	if (!t)
		return -2;
	bpf_timer_init(&t->t, &timers, CLOCK_MONOTONIC);
	bpf_timer_set_callback(&t->t, timer_cb);
	ret = bpf_timer_start(&t->t, 2 * 1000 * 1000, 0);
	key = 1;
	t = bpf_map_lookup_elem(&timers, &key);
	if (!t)
		return -2;
	bpf_timer_init(&t->t, &timers, CLOCK_MONOTONIC);
	bpf_timer_set_callback(&t->t, never_cb);
	bpf_timer_start(&t->t, 1000 * 1000, 0);
	if (bpf_timer_cancel(&t->t) != 1) {
		scx_bpf_error("selftest: bpf_timer_cancel of an armed timer");
		return -22;
	}
	nr_checked = 1;
	bpf_printk("selftest: init checks passed on %d CPUs, knob %u", scx_bpf_nr_cpu_ids(), knob);
	return ret;
}

void BPF_STRUCT_OPS(selftest_exit, struct scx_exit_info *ei)
{
	bpf_printk("selftest: exit: %llu enqueued, %llu dispatched, %llu direct, cancelled fired %llu, timer fired %llu",
		   nr_enqueued, nr_dispatched, nr_direct, nr_cancelled_fired, nr_timer_fired);
	UEI_RECORD(uei, ei);
}

SCX_OPS_DEFINE(selftest_ops,
	       .select_cpu = (void *)selftest_select_cpu,
	       .enqueue = (void *)selftest_enqueue,
	       .dispatch = (void *)selftest_dispatch,
	       .running = (void *)selftest_running,
	       .tick = (void *)selftest_tick,
	       .stopping = (void *)selftest_stopping,
	       .enable = (void *)selftest_enable,
	       .init = (void *)selftest_init,
	       .exit = (void *)selftest_exit,
	       .name = "selftest");
