/*
 * spin-pingpong: the host's floor for `schedlab ipc --idle poll`'s
 * cross-CPU round trip. Two threads pinned to CPUs 0 and 1 bounce a
 * counter through one shared cache line, each busy-polling for the
 * other's move (no system call, no scheduler): what remains is the
 * cache-line transfer between the two CPUs and whatever the host and its
 * hypervisor take from two threads that never sleep. Each round trip is
 * timed with CLOCK_MONOTONIC; prints "P50 P99" in nanoseconds.
 *
 *   spin-pingpong [ROUNDS]      (default 20000 round trips)
 *
 * Built by scripts/bench.sh: cc -O2 -pthread -o spin-pingpong spin-pingpong.c
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Alignas(64) _Atomic long turn;
static long rounds = 20000;

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
        perror("pthread_setaffinity_np");
        exit(1);
    }
}

/* Answers every odd value with the next even one. */
static void *echo(void *arg) {
    (void)arg;
    pin(1);
    for (long i = 0; i < rounds; i++) {
        long want = 2 * i + 1;
        while (atomic_load_explicit(&turn, memory_order_acquire) != want)
            __builtin_ia32_pause();
        atomic_store_explicit(&turn, want + 1, memory_order_release);
    }
    return NULL;
}

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc > 1)
        rounds = atol(argv[1]);
    if (rounds < 100) {
        fprintf(stderr, "usage: %s [ROUNDS >= 100]\n", argv[0]);
        return 64;
    }
    long long *rtt = malloc(sizeof *rtt * (size_t)rounds);
    if (!rtt) {
        perror("malloc");
        return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, echo, NULL) != 0) {
        perror("pthread_create");
        return 1;
    }
    pin(0);
    for (long i = 0; i < rounds; i++) {
        long long t0 = now_ns();
        atomic_store_explicit(&turn, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 2)
            __builtin_ia32_pause();
        rtt[i] = now_ns() - t0;
    }
    pthread_join(t, NULL);
    qsort(rtt, (size_t)rounds, sizeof *rtt, by_value);
    printf("%lld %lld\n", rtt[rounds / 2], rtt[rounds * 99 / 100]);
    return 0;
}
