#include "clock.h"

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t kg_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t kg_boottime_ns(void)
{
	return clock_ns(CLOCK_BOOTTIME);
}

uint64_t kg_realtime_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

struct timespec kg_deadline(clockid_t clk, long ms)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}
