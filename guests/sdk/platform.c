/* Exit, power, clock, mode, idle and console: plain port I/O from ring 3. */
#include "sdk.h"

bool sdk_under_kagami(void)
{
	return sdk_inl(KAGAMI_PORT_MAGIC) == KAGAMI_DEVICE_MAGIC;
}

uint64_t sdk_clock_ns(void)
{
	if (!sdk_under_kagami())
		return 0;
	uint32_t lo = sdk_inl(KAGAMI_PORT_CLOCK_LO);
	uint32_t hi = sdk_inl(KAGAMI_PORT_CLOCK_HI);
	return ((uint64_t)hi << 32) | lo;
}

uint32_t sdk_boot_count(void)
{
	return sdk_under_kagami() ? sdk_inl(KAGAMI_PORT_BOOT_COUNT) : 0;
}

/* Probed once: the mode is fixed for the life of a boot, and sdk_idle is
 * called on every empty poll, where an exit per call would cost ~22 us.
 * (A snapshot taken outside deterministic mode carries the cached 0 with
 * it: deterministic runs start from boot.) */
static int deterministic = -1; /* -1: not probed yet */

bool sdk_deterministic(void)
{
	if (deterministic < 0)
		deterministic = sdk_under_kagami() &&
				sdk_inl(KAGAMI_PORT_VERSION) >= 2 &&
				(sdk_inl(KAGAMI_PORT_MODE) &
				 KAGAMI_MODE_DETERMINISTIC);
	return deterministic;
}

void sdk_idle(uint32_t max_us)
{
	if (sdk_deterministic())
		sdk_outl(KAGAMI_PORT_IDLE, max_us);
	else
		__asm__ volatile("pause");
}

/* entry.S: a ud2 the #UD stub turns into sdk_irq_setup (ring0.c). */
void sdk_irq_enable_trap(uint32_t count);

bool sdk_irq_enable_timer(uint32_t hz)
{
	if (hz < 19 || hz > 596591u)
		return false;
	uint32_t count = (1193182u + hz / 2) / hz; /* 2-62799 */
	sdk_irq_enable_trap(count);
	return true;
}

static __attribute__((noreturn)) void spin_forever(void)
{
	for (;;)
		__asm__ volatile("pause");
}

void sdk_exit(unsigned code)
{
	sdk_outl(KAGAMI_DEBUG_EXIT_PORT, code);
	sdk_power_off();
}

void sdk_power_off(void)
{
	sdk_outl(KAGAMI_PORT_POWER, KAGAMI_POWER_OFF);
	spin_forever();
}

void sdk_reset(void)
{
	sdk_outl(KAGAMI_PORT_POWER, KAGAMI_POWER_RESET);
	sdk_outb(KAGAMI_RESET_PORT, 0x06);
	spin_forever();
}

/* Under kagami, a whole buffer leaves in one exit through the kagami
 * device's console port; elsewhere (QEMU) through COM1, where string I/O
 * still costs one exit per byte. */
struct console_state {
	int under_kagami; /* -1: not probed yet */
	struct kagami_console_buf buf;
	char data[KAGAMI_CONSOLE_MAX];
};
static struct console_state con = { .under_kagami = -1 };

void sdk_write(const char *s, size_t n)
{
	if (con.under_kagami < 0)
		con.under_kagami = sdk_under_kagami();
	while (con.under_kagami && n) {
		size_t take = n < KAGAMI_CONSOLE_MAX ? n : KAGAMI_CONSOLE_MAX;
		memcpy(con.data, s, take);
		con.buf.len = (unsigned)take;
		sdk_outl(KAGAMI_PORT_CONSOLE, (uint32_t)(uintptr_t)&con.buf);
		s += take;
		n -= take;
	}
	__asm__ volatile("rep outsb"
			 : "+S"(s), "+c"(n)
			 : "d"((uint16_t)KAGAMI_COM1_PORT)
			 : "memory");
}

void sdk_puts(const char *s)
{
	sdk_write(s, strlen(s));
}

int sdk_printf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = sdk_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	size_t len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
	sdk_write(buf, len);
	return n;
}

void sdk_assert_fail(const char *expr, const char *file, int line)
{
	sdk_printf("assertion failed: %s at %s:%d\n", expr, file, line);
	sdk_exit(1);
}
