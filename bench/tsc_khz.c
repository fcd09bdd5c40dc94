/*
 * tsc_khz: prints the host's TSC rate in kHz, measured against
 * CLOCK_MONOTONIC_RAW over ~200 ms (median of 5). bench/migration.sh passes
 * it to memstress as tsc_khz= so that the guest can pace its writes under
 * QEMU, where there is no kagami clock device; a ring-3 guest reads the
 * host's TSC unscaled on this machine.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static uint64_t ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc > 1) {
		unsigned long long k = strtoull(argv[1], NULL, 10);
		if (!k)
			return 2;
		printf("%llu\n", (unsigned long long)rdtsc() / k);
		return 0;
	}
	uint64_t khz[5];
	for (int i = 0; i < 5; i++) {
		uint64_t n0 = ns(), c0 = rdtsc(), n1, c1;
		do {
			n1 = ns();
			c1 = rdtsc();
		} while (n1 - n0 < 40000000ull);
		khz[i] = (c1 - c0) * 1000000ull / (n1 - n0);
	}
	qsort(khz, 5, sizeof(khz[0]), cmp);
	printf("%llu\n", (unsigned long long)khz[2]);
	return 0;
}
