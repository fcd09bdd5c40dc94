/*
 * memstress mib=M total=T rate=R seed=S [stats]
 * Writes T MiB as 4 KiB pages at pseudo-random pages of an M MiB working
 * set, paced to R MiB/s by the clock device (0: flat out). Prints a checksum
 * of the whole working set after every M MiB and at the end; the output
 * depends only on M, T and S. `stats` adds a timing line (not deterministic).
 */
#include "sdk/sdk.h"
#include "memstress_core.h"

static void pace(uint64_t start_ns, uint64_t done_pages, uint64_t rate_mib)
{
	uint64_t target = start_ns + done_pages * 1000000000ull /
					     (rate_mib * 256ull);
	while (sdk_clock_ns() < target)
		;
}

int main(const char *cmdline)
{
	(void)cmdline;
	uint64_t mib = sdk_arg_u64("mib", 16), total = sdk_arg_u64("total", 64);
	uint64_t rate = sdk_arg_u64("rate", 0), seed = sdk_arg_u64("seed", 1);
	if (mib == 0 || mib > 3072 || total > (1ull << 40)) {
		sdk_printf("memstress: bad arguments: need 0 < mib <= 3072\n");
		return 2;
	}
	uint64_t *ws = sdk_alloc(mib << 20);
	if (!ws) {
		sdk_printf("memstress: cannot allocate %lu MiB (free %lu MiB)\n",
			   (unsigned long)mib,
			   (unsigned long)(sdk_mem_free() >> 20));
		return 2;
	}
	sdk_printf("memstress: mib=%lu total=%lu seed=%lu\n",
		   (unsigned long)mib, (unsigned long)total,
		   (unsigned long)seed);
	memset(ws, 0, mib << 20);

	struct memstress_rng rng = { seed };
	uint64_t pages = mib * 256, total_pages = total * 256, pass = 0;
	bool clock = rate || sdk_arg_present("stats");
	uint64_t t0 = clock ? sdk_clock_ns() : 0;
	for (uint64_t i = 0; i < total_pages; i++) {
		uint64_t r = memstress_next(&rng);
		memstress_fill(ws + (r % pages) * MEMSTRESS_WORDS, r);
		if ((i + 1) % pages == 0)
			sdk_printf("memstress: pass=%lu checksum=%016lx\n",
				   (unsigned long)++pass,
				   (unsigned long)memstress_checksum(
					   ws, pages * MEMSTRESS_WORDS));
		if (rate && (i + 1) % 256 == 0)
			pace(t0, i + 1, rate);
	}
	uint64_t sum = memstress_checksum(ws, pages * MEMSTRESS_WORDS);
	if (sdk_arg_present("stats")) {
		uint64_t ns = sdk_clock_ns() - t0;
		sdk_printf("memstress: stats elapsed_us=%lu\n",
			   (unsigned long)(ns / 1000));
	}
	sdk_printf("memstress: done checksum=%016lx\n", (unsigned long)sum);
	return 0;
}
