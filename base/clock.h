/*
 * Clocks. kg_now_ns() is CLOCK_MONOTONIC: durations, deadlines, guest time
 * bases. It stops while the host is suspended, so anything that must expire
 * across a suspend (leases) uses kg_boottime_ns(), which counts it.
 * kg_realtime_ns() is the wall clock (it may jump). clock_gettime cannot
 * fail for these clock ids on Linux, so the results are plain values.
 */
#ifndef KG_CLOCK_H
#define KG_CLOCK_H

#include <stdint.h>
#include <time.h>

uint64_t kg_now_ns(void);
uint64_t kg_boottime_ns(void);
uint64_t kg_realtime_ns(void);

/* The absolute time ms from now on clock clk, for pthread timed waits (a
 * condition variable waits on CLOCK_REALTIME unless its attributes say
 * otherwise). */
struct timespec kg_deadline(clockid_t clk, long ms);

#endif
