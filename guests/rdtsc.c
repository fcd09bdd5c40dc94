/*
 * rdtsc [rounds=50]
 * A guest that breaks the determinism contract on purpose: rdtsc, which
 * the host can neither trap nor log here, steers what it writes to memory,
 * what it prints and which branch it takes. Each round reads rdtsc, stores
 * its low bits in a buffer, prints a line carrying a value derived from
 * it, reads the kagami clock and idles (exits the replayer can match). A
 * replay of a recorded run must therefore diverge: different console
 * bytes, registers and memory at some exit. The first line reports the
 * platform version and mode the SDK sees. Exits 0.
 */
#include "guests/sdk/sdk.h"

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

#define ROUNDS_MAX 100000u

static uint8_t buf[ROUNDS_MAX];

int main(const char *cmdline)
{
	(void)cmdline;
	uint64_t rounds = sdk_arg_u64("rounds", 50);
	if (rounds > ROUNDS_MAX) {
		sdk_printf("rdtsc: rounds=%lu: at most %u\n",
			   (unsigned long)rounds, ROUNDS_MAX);
		return 2;
	}
	sdk_printf("rdtsc: platform=%u deterministic=%d rounds=%lu\n",
		   sdk_under_kagami() ? sdk_inl(KAGAMI_PORT_VERSION) : 0,
		   (int)sdk_deterministic(), (unsigned long)rounds);
	uint64_t mix = 0, odd = 0;
	for (uint64_t i = 0; i < rounds; i++) {
		uint64_t t = rdtsc();
		buf[i] = (uint8_t)t;
		mix = (mix ^ t) * 0x100000001b3ull;
		if (t & 1) /* control flow, not only data, follows the TSC */
			odd++;
		sdk_printf("rdtsc: round=%lu tsc_low=%02x mix=%016lx\n",
			   (unsigned long)i, buf[i], (unsigned long)mix);
		(void)sdk_clock_ns();
		sdk_idle(1); /* deterministic mode: an IDLE exit per round */
	}
	sdk_printf("rdtsc: done odd=%lu\n", (unsigned long)odd);
	return 0;
}
