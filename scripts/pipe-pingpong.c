/*
 * pipe-pingpong: the host-Linux baseline for `schedlab pingpong --same-cpu`.
 * Two threads pinned to one CPU bounce a byte over two pipes N times (the
 * loop of `perf bench sched pipe`, with threads); each round trip is timed
 * with CLOCK_MONOTONIC and the median is printed in nanoseconds.
 *
 *   pipe-pingpong [ROUNDS [CPU]]      (defaults: 10000 round trips, CPU 0)
 *
 * Built by scripts/bench.sh: cc -O2 -pthread -o pipe-pingpong pipe-pingpong.c
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int ping[2], pong[2];
static long rounds = 10000;
static int cpu;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void pin(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
        die("pthread_setaffinity_np");
}

static void *echo(void *arg) {
    (void)arg;
    pin();
    char c;
    for (long i = 0; i < rounds; i++) {
        if (read(ping[0], &c, 1) != 1)
            die("read ping");
        if (write(pong[1], &c, 1) != 1)
            die("write pong");
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
    if (argc > 2)
        cpu = atoi(argv[2]);
    if (rounds < 1) {
        fprintf(stderr, "usage: %s [ROUNDS [CPU]]\n", argv[0]);
        return 64;
    }
    long long *rtt = malloc(sizeof *rtt * (size_t)rounds);
    if (!rtt)
        die("malloc");
    if (pipe(ping) != 0 || pipe(pong) != 0)
        die("pipe");
    pthread_t t;
    if (pthread_create(&t, NULL, echo, NULL) != 0)
        die("pthread_create");
    pin();
    char c = 'x';
    for (long i = 0; i < rounds; i++) {
        long long t0 = now_ns();
        if (write(ping[1], &c, 1) != 1)
            die("write ping");
        if (read(pong[0], &c, 1) != 1)
            die("read pong");
        rtt[i] = now_ns() - t0;
    }
    pthread_join(t, NULL);
    qsort(rtt, (size_t)rounds, sizeof *rtt, by_value);
    printf("%lld\n", rtt[(rounds - 1) / 2]);
    free(rtt);
    return 0;
}
