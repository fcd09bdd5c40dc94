/*
 * memstress mib=M total=T rate=R seed=S [fill] [forever] [hold]
 *           [tsc_khz=K] [stats]
 * Writes T MiB as 4 KiB pages at pseudo-random pages of an M MiB working
 * set, paced to R MiB/s (0: flat out). Prints a checksum of the whole
 * working set after every M MiB and at the end; the output depends only on
 * M, T, S and the flags. `stats` adds a timing line (not deterministic).
 *
 * For the migration benchmark (bench/migration.sh):
 *   fill     start from a working set of pseudo-random pages (every page
 *            holds data) instead of zeros; prints "memstress: filled
 *            checksum=..." once it is done.
 *   forever  ignore T: keep writing (at R MiB/s) until the VM is stopped.
 *   hold     after the T MiB (and the done line), keep the VM alive
 *            without writing to memory, until it is stopped.
 *   stall_us=N  watch the clock between page writes, in the pace loop and
 *            while holding; print "memstress: stall us=D end_ms=E" for
 *            every gap of D >= N us (E: the clock at its end, in ms). A
 *            gap is time the vCPU did not run: host preemption, or a
 *            migration's downtime (source pause to destination resume).
 * The pace comes from the kagami clock device, or, when tsc_khz=K is given,
 * from rdtsc at K kHz (under QEMU, which has no kagami clock; the bench
 * passes the host's TSC rate, which a ring-3 guest reads unscaled here).
 */
#include "guests/sdk/sdk.h"
#include "memstress_core.h"

static uint64_t tsc_khz;

static uint64_t now_ns(void)
{
	if (!tsc_khz)
		return sdk_clock_ns();
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	uint64_t t = ((uint64_t)hi << 32) | lo;
	/* t / khz * 1e6 without overflow for ~centuries of cycles */
	return t / tsc_khz * 1000000ull + t % tsc_khz * 1000000ull / tsc_khz;
}

static uint64_t stall_ns, last_ns;

/* Prints a stall line a byte at a time, watching the gaps between bytes
 * too: under QEMU each byte is an exit, and a pause (a migration's) can
 * fall inside the line. Such a gap is reported on a line of its own. */
static void report_stall(uint64_t gap, uint64_t end)
{
	while (gap) {
		char line[64];
		int n = sdk_snprintf(line, sizeof(line),
				     "memstress: stall us=%lu end_ms=%lu\n",
				     (unsigned long)(gap / 1000),
				     (unsigned long)(end / 1000000));
		uint64_t prev = now_ns();
		gap = 0;
		for (int i = 0; i < n; i++) {
			sdk_write(line + i, 1);
			uint64_t t = now_ns();
			if (!gap && t - prev >= stall_ns) {
				gap = t - prev;
				end = t;
			}
			prev = t;
		}
		last_ns = prev;
	}
}

/* The stall watch: call often; a gap since the last call is reported. */
static inline void watch(void)
{
	if (!stall_ns)
		return;
	uint64_t t = now_ns();
	if (t - last_ns >= stall_ns)
		report_stall(t - last_ns, t);
	else
		last_ns = t;
}

static void watch_reset(void)
{
	last_ns = stall_ns ? now_ns() : 0;
}

static void pace(uint64_t start_ns, uint64_t done_pages, uint64_t rate_mib)
{
	uint64_t target = start_ns + done_pages * 1000000000ull /
					     (rate_mib * 256ull);
	while (now_ns() < target) {
		watch();
		__asm__ volatile("pause");
	}
}

static __attribute__((noreturn)) void hold_forever(void)
{
	/* Ring 3 cannot hlt; spin without writing memory or exiting. */
	watch_reset();
	for (;;) {
		watch();
		__asm__ volatile("pause");
	}
}

int main(const char *cmdline)
{
	(void)cmdline;
	uint64_t mib = sdk_arg_u64("mib", 16), total = sdk_arg_u64("total", 64);
	uint64_t rate = sdk_arg_u64("rate", 0), seed = sdk_arg_u64("seed", 1);
	bool fill = sdk_arg_present("fill"), forever = sdk_arg_present("forever");
	bool hold = sdk_arg_present("hold");
	tsc_khz = sdk_arg_u64("tsc_khz", 0);
	stall_ns = sdk_arg_u64("stall_us", 0) * 1000;
	if (mib == 0 || mib > 3072 || total > (1ull << 40)) {
		sdk_printf("memstress: bad arguments: need 0 < mib <= 3072\n");
		return 2;
	}
	if ((rate || stall_ns || sdk_arg_present("stats")) && !tsc_khz &&
	    !sdk_under_kagami()) {
		sdk_printf("memstress: rate, stall_us and stats need a clock: "
			   "the kagami "
			   "device or tsc_khz=\n");
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

	struct memstress_rng rng = { seed };
	uint64_t pages = mib * 256, total_pages = total * 256, pass = 0;
	if (fill) {
		for (uint64_t p = 0; p < pages; p++)
			memstress_fill(ws + p * MEMSTRESS_WORDS,
				       memstress_next(&rng));
		sdk_printf("memstress: filled checksum=%016lx\n",
			   (unsigned long)memstress_checksum(
				   ws, pages * MEMSTRESS_WORDS));
	} else {
		memset(ws, 0, mib << 20);
	}

	bool clock = rate || sdk_arg_present("stats");
	uint64_t t0 = clock ? now_ns() : 0;
	watch_reset();
	for (uint64_t i = 0; forever || i < total_pages; i++) {
		uint64_t r = memstress_next(&rng);
		memstress_fill(ws + (r % pages) * MEMSTRESS_WORDS, r);
		watch();
		if ((i + 1) % pages == 0) {
			sdk_printf("memstress: pass=%lu checksum=%016lx\n",
				   (unsigned long)++pass,
				   (unsigned long)memstress_checksum(
					   ws, pages * MEMSTRESS_WORDS));
			watch_reset(); /* the checksum is not a stall */
		}
		if (rate && (i + 1) % 256 == 0)
			pace(t0, i + 1, rate);
	}
	uint64_t sum = memstress_checksum(ws, pages * MEMSTRESS_WORDS);
	if (sdk_arg_present("stats")) {
		uint64_t ns = now_ns() - t0;
		sdk_printf("memstress: stats elapsed_us=%lu\n",
			   (unsigned long)(ns / 1000));
	}
	sdk_printf("memstress: done checksum=%016lx\n", (unsigned long)sum);
	if (hold)
		hold_forever();
	return 0;
}
