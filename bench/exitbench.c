/*
 * exitbench [n=N]
 * Measures, with the kagami clock device, what one trip from the guest to
 * the VMM and back costs:
 *   pio   N 32-bit reads of KAGAMI_PORT_VERSION (a KVM_EXIT_IO the kagami
 *         device answers; the port is granted to ring 3 by the TSS bitmap)
 *   mmio  N 32-bit reads of KAGAMI_MMIO_BASE + 0x100000, a guest-physical
 *         address in the MMIO hole with no device and no RAM (a
 *         KVM_EXIT_MMIO that reads as all ones)
 *   loop  N iterations of an empty loop (the measurement's own overhead)
 *   outsb N/200 64-byte `rep outsb` to the same port (string I/O, as the
 *         SDK's console uses; writes to that port are ignored). Divided
 *         by the pio figure it tells how many exits one such op takes.
 * and prints
 *   exitbench: pio_ns_per_exit=X mmio_ns_per_exit=Y
 *   exitbench: loop_ns_per_iter=L outsb64_ns_per_op=S n=N
 * (integers, ns). Exits 1 when there is no kagami clock (e.g. under QEMU),
 * or when a read returns something other than the expected value.
 */
#include "guests/sdk/sdk.h"

#define MMIO_PROBE_GPA (KAGAMI_MMIO_BASE + 0x100000ull)
#define WARMUP 64u

static uint32_t read_pio(uint64_t n)
{
	uint32_t acc = 0;
	for (uint64_t i = 0; i < n; i++)
		acc |= sdk_inl(KAGAMI_PORT_VERSION) ^ KAGAMI_PLATFORM_VERSION;
	return acc; /* 0 when every read returned the version */
}

static uint32_t read_mmio(uint64_t n)
{
	volatile const uint32_t *p =
		(volatile const uint32_t *)(uintptr_t)MMIO_PROBE_GPA;
	uint32_t acc = 0;
	for (uint64_t i = 0; i < n; i++)
		acc |= ~*p;
	return acc; /* 0 when every read returned all ones */
}

static void empty_loop(uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		__asm__ volatile("" : : : "memory");
}

static void write_string(uint64_t n)
{
	static const char buf[64] = "exitbench string I/O probe";
	for (uint64_t i = 0; i < n; i++) {
		const char *s = buf;
		size_t len = sizeof(buf);
		__asm__ volatile("rep outsb"
				 : "+S"(s), "+c"(len)
				 : "d"((uint16_t)KAGAMI_PORT_VERSION)
				 : "memory");
	}
}

/* ns per iteration of the timed body, rounded to the nearest ns. */
static uint64_t per_iter(uint64_t t0, uint64_t t1, uint64_t n)
{
	return (t1 - t0 + n / 2) / n;
}

int main(const char *cmdline)
{
	(void)cmdline;
	uint64_t n = sdk_arg_u64("n", 20000);
	if (n == 0) {
		sdk_printf("exitbench: n must be > 0\n");
		return 2;
	}
	if (!sdk_under_kagami()) {
		sdk_printf("exitbench: no kagami clock device; nothing to "
			   "measure\n");
		return 1;
	}

	/* Warm up each path (shadow page tables, caches) before timing. */
	if (read_pio(WARMUP) != 0) {
		sdk_printf("exitbench: KAGAMI_PORT_VERSION did not read %u\n",
			   KAGAMI_PLATFORM_VERSION);
		return 1;
	}
	uint64_t t0 = sdk_clock_ns();
	uint32_t bad = read_pio(n);
	uint64_t t1 = sdk_clock_ns();
	uint64_t pio = per_iter(t0, t1, n);
	if (bad) {
		sdk_printf("exitbench: KAGAMI_PORT_VERSION read changed\n");
		return 1;
	}

	/* An MMIO read that does not exit would be a plain load (a few ns,
	 * and probably not all ones); one that faults ends the VM here. */
	if (read_mmio(WARMUP) != 0) {
		sdk_printf("exitbench: MMIO hole at 0x%lx did not read as all "
			   "ones\n", (unsigned long)MMIO_PROBE_GPA);
		return 1;
	}
	t0 = sdk_clock_ns();
	bad = read_mmio(n);
	t1 = sdk_clock_ns();
	uint64_t mmio = per_iter(t0, t1, n);
	if (bad) {
		sdk_printf("exitbench: MMIO hole read changed\n");
		return 1;
	}

	t0 = sdk_clock_ns();
	empty_loop(n);
	t1 = sdk_clock_ns();
	uint64_t loop = per_iter(t0, t1, n);

	/* String I/O: fewer, longer operations (one may be 64 exits). */
	uint64_t ns = n / 200 ? n / 200 : 1;
	write_string(2);
	t0 = sdk_clock_ns();
	write_string(ns);
	t1 = sdk_clock_ns();
	uint64_t outsb = per_iter(t0, t1, ns);

	sdk_printf("exitbench: pio_ns_per_exit=%lu mmio_ns_per_exit=%lu\n",
		   (unsigned long)pio, (unsigned long)mmio);
	sdk_printf("exitbench: loop_ns_per_iter=%lu outsb64_ns_per_op=%lu "
		   "n=%lu\n", (unsigned long)loop, (unsigned long)outsb,
		   (unsigned long)n);
	return 0;
}
