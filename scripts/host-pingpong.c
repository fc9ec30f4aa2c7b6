/*
 * host-pingpong: the host's baselines for schedlab's ping-pongs, two
 * threads bouncing N round trips, each timed with CLOCK_MONOTONIC.
 *
 *   host-pingpong pipe [ROUNDS [CPU]]   both threads pinned to CPU (default
 *       0), a byte over two pipes (the loop of `perf bench sched pipe`):
 *       host Linux's same-CPU wake-up, against `schedlab pingpong
 *       --same-cpu`. Prints the median, ns.
 *   host-pingpong spin [ROUNDS]         threads pinned to CPUs 0 and 1
 *       bouncing a counter through one cache line, each busy-polling for
 *       the other's move (no system call, no scheduler): the floor under
 *       `schedlab ipc --idle poll`'s cross-CPU round trip, the cache-line
 *       transfer plus whatever the host takes from two threads that never
 *       sleep. Prints "P50 P99", ns.
 *
 * ROUNDS defaults to 10000. Built by scripts/bench.sh:
 *   cc -O2 -pthread -o host-pingpong host-pingpong.c
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int ping[2], pong[2];
static _Alignas(64) _Atomic long turn;
static long rounds = 10000;
static int cpu;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void pin(int on) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(on, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
        die("pthread_setaffinity_np");
}

/* pipe: answers each byte on `ping` with one on `pong`. */
static void *pipe_echo(void *arg) {
    (void)arg;
    pin(cpu);
    char c;
    for (long i = 0; i < rounds; i++) {
        if (read(ping[0], &c, 1) != 1)
            die("read ping");
        if (write(pong[1], &c, 1) != 1)
            die("write pong");
    }
    return NULL;
}

static void pipe_round(void) {
    char c = 'x';
    if (write(ping[1], &c, 1) != 1)
        die("write ping");
    if (read(pong[0], &c, 1) != 1)
        die("read pong");
}

/* spin: answers every odd value of `turn` with the next even one. */
static void *spin_echo(void *arg) {
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

static long spin_i;
static void spin_round(void) {
    long i = spin_i++;
    atomic_store_explicit(&turn, 2 * i + 1, memory_order_release);
    while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 2)
        __builtin_ia32_pause();
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

static int usage(const char *argv0) {
    fprintf(stderr, "usage: %s pipe [ROUNDS [CPU]] | spin [ROUNDS]\n", argv0);
    return 64;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return usage(argv[0]);
    int spin = strcmp(argv[1], "spin") == 0;
    if (!spin && strcmp(argv[1], "pipe") != 0)
        return usage(argv[0]);
    if (argc > 2)
        rounds = atol(argv[2]);
    if (argc > 3 && !spin)
        cpu = atoi(argv[3]);
    if (rounds < 1)
        return usage(argv[0]);
    long long *rtt = malloc(sizeof *rtt * (size_t)rounds);
    if (!rtt)
        die("malloc");
    if (!spin && (pipe(ping) != 0 || pipe(pong) != 0))
        die("pipe");
    pthread_t t;
    if (pthread_create(&t, NULL, spin ? spin_echo : pipe_echo, NULL) != 0)
        die("pthread_create");
    pin(spin ? 0 : cpu);
    for (long i = 0; i < rounds; i++) {
        long long t0 = now_ns();
        if (spin)
            spin_round();
        else
            pipe_round();
        rtt[i] = now_ns() - t0;
    }
    pthread_join(t, NULL);
    qsort(rtt, (size_t)rounds, sizeof *rtt, by_value);
    if (spin)
        printf("%lld %lld\n", rtt[(rounds - 1) / 2], rtt[(rounds - 1) * 99 / 100]);
    else
        printf("%lld\n", rtt[(rounds - 1) / 2]);
    free(rtt);
    return 0;
}
