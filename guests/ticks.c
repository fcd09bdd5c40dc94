/*
 * ticks [hz=200] [rounds=40] [per=N]
 * A guest that takes timer interrupts: sdk_irq_enable_timer(hz) (8259A
 * vectors 0x20/0x28, 8254 counter 0 in mode 2), then `rounds` rounds,
 * each waiting for `per` more ticks (default hz/50, at least 1). Every
 * iteration of a wait mixes the tick count, the iteration number and
 * (every 16th) the kagami clock into a hash with some ring-3 work that
 * makes no exit, then calls sdk_idle() — in deterministic mode the exit
 * where the pending tick enters. So the count of iterations, and the
 * hash, depend on exactly where interrupts arrived: a replay that injects
 * one at another exit prints different lines.
 *
 * Each round prints "ticks: round=R ticks=T iters=I hash=H"; the end
 * "ticks: done ticks=N hash=H async=A spurious=S" and exit 0. `async`
 * counts ticks that arrived during the exit-free work: in deterministic
 * mode that must never happen (exit 1 if it does); under plain kagami run
 * the in-kernel PIT may interrupt anywhere. A round that sees no tick for
 * 5 s of kagami clock (or 2^22 iterations without it) ends the
 * guest with exit 1 ("ticks: no timer interrupt"); a bad hz exits 2.
 * Under QEMU (-M microvm, TCG) no tick arrives and it ends so (exit 1):
 * the SDK programs no local APIC, and there the 8259A most likely reaches
 * the CPU only through LINT0 in ExtINT mode.
 */
#include "guests/sdk/sdk.h"

#define FNV_PRIME 0x100000001b3ull
#define STALL_NS 5000000000ull
#define STALL_ITERS (1ull << 22)

int main(const char *cmdline)
{
	(void)cmdline;
	uint64_t hz = sdk_arg_u64("hz", 200);
	uint64_t rounds = sdk_arg_u64("rounds", 40);
	uint64_t per = sdk_arg_u64("per", hz / 50 ? hz / 50 : 1);
	bool det = sdk_deterministic();

	if (hz > UINT32_MAX || !sdk_irq_enable_timer((uint32_t)hz)) {
		sdk_printf("ticks: hz=%lu: out of range (19-596591)\n",
			   (unsigned long)hz);
		return 2;
	}
	sdk_printf("ticks: hz=%lu rounds=%lu per=%lu deterministic=%d\n",
		   (unsigned long)hz, (unsigned long)rounds,
		   (unsigned long)per, (int)det);

	uint64_t hash = 0xcbf29ce484222325ull, async = 0;
	uint64_t base = sdk_irq_ticks();
	for (uint64_t r = 0; r < rounds; r++) {
		uint64_t target = base + per * (r + 1), iters = 0, t;
		uint64_t since = sdk_clock_ns(), last = sdk_irq_ticks();
		while ((t = sdk_irq_ticks()) < target) {
			if (t != last) {
				last = t;
				since = sdk_clock_ns();
			}
			/* Ring-3 work without an exit (the clock read above
			 * is one: read the count afresh): it must hold. */
			uint64_t w = sdk_irq_ticks();
			for (unsigned k = 0; k < 64; k++)
				hash = (hash ^ (w + k + iters)) * FNV_PRIME;
			if (sdk_irq_ticks() != w)
				async++;
			if ((++iters & 15) == 0) {
				uint64_t now = sdk_clock_ns();
				hash = (hash ^ now) * FNV_PRIME;
				if (now ? now - since > STALL_NS
					: iters > STALL_ITERS) {
					sdk_printf("ticks: no timer interrupt "
						   "in round %lu (ticks=%lu)\n",
						   (unsigned long)r,
						   (unsigned long)t);
					return 1;
				}
			}
			sdk_idle(1000);
		}
		hash = (hash ^ iters) * FNV_PRIME;
		sdk_printf("ticks: round=%lu ticks=%lu iters=%lu hash=%016lx\n",
			   (unsigned long)r, (unsigned long)(t - base),
			   (unsigned long)iters, (unsigned long)hash);
	}
	uint64_t n = sdk_irq_ticks() - base;
	sdk_printf("ticks: done ticks=%lu hash=%016lx async=%lu spurious=%lu\n",
		   (unsigned long)n, (unsigned long)hash, (unsigned long)async,
		   (unsigned long)sdk_irq_spurious());
	if (det && async) {
		sdk_printf("ticks: %lu interrupts arrived without an exit in "
			   "deterministic mode\n", (unsigned long)async);
		return 1;
	}
	return 0;
}
