/*
 * The kagami guest SDK: a freestanding runtime for PVH guests (no libc).
 *
 * The image boots through entry.S, which enters long mode and drops to ring
 * 3; main() runs in ring 3 with the platform's ports granted through the TSS
 * I/O bitmap, so console output, the clock and exit are plain port accesses
 * that never cross into the (emulated, slow) guest kernel mode.
 *
 * The same image boots under QEMU (-M microvm -kernel); there the kagami
 * device is absent: sdk_clock_ns() returns 0 and sdk_under_kagami() false.
 *
 * Deterministic guests (record/replay, lockstep): read time only through
 * sdk_clock_ns(), never rdtsc/rdrand/cpuid for values that matter, and wait
 * with sdk_idle() — the SDK's own waits (virtio_wait_step) already do.
 *
 * Devices: virtio.h (virtio-mmio transport, split virtqueues), blk.h
 * (virtio-blk), net.h (virtio-net) and ip.h (ARP, IPv4, ICMP echo, UDP),
 * all polled from ring 3.
 */
#ifndef KAGAMI_SDK_H
#define KAGAMI_SDK_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "abi/kagami_platform.h"

/* The program's entry point, in ring 3; its return value is the exit code. */
int main(const char *cmdline);

/* Ends the VM with `code` (kagami exits with it, QEMU with code*2+1). */
__attribute__((noreturn)) void sdk_exit(unsigned code);
/* Clean power-off / reset through the kagami device (or 0xcf9 for reset). */
__attribute__((noreturn)) void sdk_power_off(void);
__attribute__((noreturn)) void sdk_reset(void);

bool sdk_under_kagami(void);
/* Monotonic ns from the kagami clock device; 0 when there is none. */
uint64_t sdk_clock_ns(void);
/* Resets since the VM was created (0 when not under kagami). */
uint32_t sdk_boot_count(void);

/* True when the host runs the VM in deterministic mode (record/replay,
 * lockstep: KAGAMI_MODE_DETERMINISTIC): device completions, received
 * frames and interrupts reach the guest only when it exits (port I/O or
 * MMIO). Probed once (a few exits), then a load from the SDK's cache;
 * false under QEMU and on hosts older than platform version 2. */
bool sdk_deterministic(void);
/* "Nothing to do for now, up to max_us microseconds": call it once per
 * empty round of any loop that waits for a device (or anything else from
 * outside). Deterministic mode: one write to KAGAMI_PORT_IDLE, an exit at
 * which the host delivers what is pending and may block the vCPU (at most
 * min(max_us, KAGAMI_IDLE_MAX_US)) until something is; it can return at
 * once, so re-check and call again. Otherwise: one `pause`, no exit —
 * devices write RAM asynchronously and polling memory sees them. */
void sdk_idle(uint32_t max_us);

/* Timer interrupts (opt-in; nothing below happens unless a guest calls
 * sdk_irq_enable_timer). The SDK runs ring 3 with IF clear, and ring 3
 * cannot set it (IOPL 0), so enabling goes through the one ring-0 service
 * the SDK has: a ud2 at a fixed SDK address (sdk_irq_enable_trap; `int n`
 * from ring 3 raises #UD under PVM), which the #UD stub (entry.S,
 * sdk_irq_setup in ring0.c) recognises by its address — any other #UD is
 * a fault report as before. The service initialises both 8259As
 * (vectors SDK_TIMER_VECTOR and SDK_TIMER_VECTOR + 8, only IRQ 0
 * unmasked), programs PIT counter 0 in mode 2 at `hz`, and returns to ring
 * 3 with IF set in RFLAGS. From then on every IRQ 0 enters the ring-0 stub
 * on SDK_TIMER_VECTOR, which increments a 64-bit tick count, sends the
 * master a non-specific EOI and returns (IRQ 7's vector, the 8259A's
 * spurious one, only counts). Other vectors from 32 up are not present
 * (a fault report).
 *
 * Each tick runs ring 0, emulated on PVM (~50 us): keep hz low (100-1000).
 * In deterministic mode (record/replay, lockstep) an interrupt enters only
 * at an exit (port I/O, MMIO): a loop that waits for ticks must exit,
 * e.g. through sdk_idle(), which waits until the next tick is due. Under
 * kagami run without --deterministic the in-kernel 8259A/8254 deliver
 * asynchronously, as on hardware. hz: 19 to 596591 (the PIT's input
 * clock divided by a count of 2-65535), rounded to the nearest count; false
 * (and nothing changes) outside that range. Calling it again reprograms
 * both chips and the rate; interrupts cannot be turned off again. */
#define SDK_TIMER_VECTOR 0x20
bool sdk_irq_enable_timer(uint32_t hz);
/* Timer interrupts taken since boot (0 before sdk_irq_enable_timer), and
 * spurious IRQ 7s. Readable from ring 3 at any time; one aligned load. */
static inline uint64_t sdk_irq_ticks(void)
{
	extern volatile uint64_t sdk_ticks;
	return sdk_ticks;
}
static inline uint64_t sdk_irq_spurious(void)
{
	extern volatile uint64_t sdk_spurious;
	return sdk_spurious;
}

/* Console (COM1). Output is batched into one string-I/O exit per call. */
void sdk_write(const char *s, size_t n);
void sdk_puts(const char *s);
int sdk_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int sdk_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int sdk_snprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Command line "key=value key2=value2": value of `key` as u64 (decimal or
 * 0x hex, with K/M/G suffixes), or `def` when absent. Malformed values end
 * the program with a message and exit code 2. */
uint64_t sdk_arg_u64(const char *key, uint64_t def);
/* True when the bare word `flag` or `flag=...` appears. */
bool sdk_arg_present(const char *flag);
/* Copies the value of `key` into buf (NUL-terminated); false if absent. */
bool sdk_arg_str(const char *key, char *buf, size_t size);
const char *sdk_cmdline(void);

/* PVH modules (the first is the initrd): count, and the i-th's location. */
uint32_t sdk_module_count(void);
bool sdk_module(uint32_t i, const void **data, uint64_t *size);

/* Page-aligned bump allocation from RAM the memory map marks usable and the
 * SDK maps (below 4 GiB); NULL when there is not enough. */
void *sdk_alloc(size_t bytes);
/* Usable RAM bytes known to the allocator (left to allocate). */
uint64_t sdk_mem_free(void);

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);

/* Tiny test helper: prints the failed expression with file:line, exits 1. */
#define SDK_ASSERT(cond)                                                       \
	do {                                                                   \
		if (!(cond))                                                   \
			sdk_assert_fail(#cond, __FILE__, __LINE__);           \
	} while (0)
__attribute__((noreturn)) void sdk_assert_fail(const char *expr,
					      const char *file, int line);

/* Port I/O, usable from ring 3 for the granted ports. */
static inline void sdk_outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline void sdk_outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t sdk_inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint32_t sdk_inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

#endif
