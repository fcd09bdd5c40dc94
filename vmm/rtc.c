/*
 * The CMOS RTC (see rtc.h): the pure model first, then the device — its
 * ports, its lock, and its place in the device registry (device.h). This
 * file and its line in device_list.h are the whole device.
 */
#include "rtc.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "vm.h"
#include "base/clock.h"

#define NS_PER_S 1000000000ull
#define DAY_S 86400
/* |base_s| can reach at most RTC_MAX_S plus the guest seconds a u64 of
 * nanoseconds holds (~1.8e10); anything past this bound is not state a
 * guest could have made. */
#define RTC_BASE_LIMIT (1ll << 40)

/* --- dates (proleptic Gregorian, after H. Hinnant's algorithms) --- */

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b < 0);
}

/* Days since 1970-01-01. Out-of-range months and days (a guest's
 * garbage) give some date, never undefined behaviour. */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	y -= m <= 2;
	int64_t era = floor_div(y, 400);
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

struct civil {
	int64_t year;
	unsigned month, day, hour, minute, second, wday; /* wday 0: Sunday */
};

static struct civil civil_from_s(int64_t t)
{
	struct civil c;
	int64_t z = floor_div(t, DAY_S), sod = t - z * DAY_S;
	c.hour = (unsigned)(sod / 3600);
	c.minute = (unsigned)(sod / 60 % 60);
	c.second = (unsigned)(sod % 60);
	/* 1970-01-01 was a Thursday */
	c.wday = (unsigned)(z + 4 - floor_div(z + 4, 7) * 7);
	z += 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	c.day = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	c.month = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	c.year = yoe + era * 400 + (c.month <= 2);
	return c;
}

static int64_t clamp_s(int64_t t)
{
	return t < RTC_MIN_S ? RTC_MIN_S : t > RTC_MAX_S ? RTC_MAX_S : t;
}

/* --- register formats --- */

static uint8_t to_reg(unsigned v, uint8_t b)
{
	return (uint8_t)(b & RTC_B_BINARY ? v : (v / 10) << 4 | v % 10);
}

static unsigned from_reg(uint8_t v, uint8_t b)
{
	return b & RTC_B_BINARY ? v : (v >> 4) * 10u + (v & 15u);
}

static bool is_time_reg(unsigned i)
{
	return i == RTC_SECONDS || i == RTC_MINUTES || i == RTC_HOURS ||
	       (i >= RTC_DAY_OF_WEEK && i <= RTC_YEAR) || i == RTC_CENTURY;
}

/* Second t as the time registers of regs (indexed like the CMOS), in
 * register B's format b. */
static void time_to_regs(int64_t t, uint8_t b, uint8_t *regs)
{
	struct civil c = civil_from_s(clamp_s(t));
	regs[RTC_SECONDS] = to_reg(c.second, b);
	regs[RTC_MINUTES] = to_reg(c.minute, b);
	if (b & RTC_B_24H)
		regs[RTC_HOURS] = to_reg(c.hour, b);
	else
		regs[RTC_HOURS] = (uint8_t)(to_reg(c.hour % 12 ? c.hour % 12
							       : 12, b) |
					    (c.hour >= 12 ? 0x80 : 0));
	regs[RTC_DAY_OF_WEEK] = to_reg(c.wday + 1, b);
	regs[RTC_DAY] = to_reg(c.day, b);
	regs[RTC_MONTH] = to_reg(c.month, b);
	regs[RTC_YEAR] = to_reg((unsigned)(c.year % 100), b);
	regs[RTC_CENTURY] = to_reg((unsigned)(c.year / 100), b);
}

/* The second the time registers of regs name (the day of week is
 * derived, not read), clamped into the chip's range. */
static int64_t regs_to_time(const uint8_t *regs, uint8_t b)
{
	unsigned h = regs[RTC_HOURS];
	if (b & RTC_B_24H)
		h = from_reg((uint8_t)h, b);
	else
		h = from_reg((uint8_t)(h & 0x7f), b) % 12 + (h & 0x80 ? 12 : 0);
	int64_t year = from_reg(regs[RTC_CENTURY], b) * 100ll +
		       from_reg(regs[RTC_YEAR], b);
	int64_t days = days_from_civil(year, from_reg(regs[RTC_MONTH], b),
				       from_reg(regs[RTC_DAY], b));
	return clamp_s(days * DAY_S + h * 3600ll +
		       from_reg(regs[RTC_MINUTES], b) * 60ll +
		       from_reg(regs[RTC_SECONDS], b));
}

/* --- the model --- */

void rtc_init(struct rtc *r, int64_t base_s)
{
	memset(r, 0, sizeof(*r));
	r->cmos[RTC_REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate */
	r->cmos[RTC_REG_B] = RTC_B_24H;
	r->base_s = base_s;
}

void rtc_reset(struct rtc *r)
{
	r->cmos[RTC_REG_B] &= (uint8_t)~0x78; /* PIE, AIE, UIE, SQWE */
}

int64_t rtc_wall_s(const struct rtc *r, uint64_t guest_ns)
{
	return clamp_s(r->base_s + (int64_t)(guest_ns / NS_PER_S));
}

/* The clock shows second t from guest_ns on. */
static void set_time(struct rtc *r, int64_t t, uint64_t guest_ns)
{
	r->base_s = clamp_s(t) - (int64_t)(guest_ns / NS_PER_S);
}

static uint8_t read_reg(const struct rtc *r, unsigned i, uint64_t ns)
{
	uint8_t b = r->cmos[RTC_REG_B];
	if (is_time_reg(i) && !(b & RTC_B_SET)) {
		uint8_t regs[RTC_CMOS_SIZE];
		time_to_regs(rtc_wall_s(r, ns), b, regs);
		return regs[i];
	}
	switch (i) {
	case RTC_REG_A: {
		bool uip = !(b & RTC_B_SET) &&
			   ns % NS_PER_S >= NS_PER_S - RTC_UIP_NS;
		return (uint8_t)((r->cmos[i] & 0x7f) | (uip ? RTC_A_UIP : 0));
	}
	case RTC_REG_C:
		return 0; /* no interrupt flags: none is ever raised */
	case RTC_REG_D:
		return RTC_D_VRT;
	}
	return r->cmos[i];
}

static void write_reg(struct rtc *r, unsigned i, uint8_t v, uint64_t ns)
{
	uint8_t b = r->cmos[RTC_REG_B];
	if (is_time_reg(i) && !(b & RTC_B_SET)) {
		uint8_t regs[RTC_CMOS_SIZE];
		time_to_regs(rtc_wall_s(r, ns), b, regs);
		regs[i] = v;
		set_time(r, regs_to_time(regs, b), ns);
		return;
	}
	switch (i) {
	case RTC_REG_A:
		r->cmos[i] = v & 0x7f;
		return;
	case RTC_REG_B:
		/* SET stops the registers at this instant's time; clearing
		 * it starts the clock from what they hold then, read in the
		 * format the same write selects. */
		if (v & RTC_B_SET && !(b & RTC_B_SET))
			time_to_regs(rtc_wall_s(r, ns), b, r->cmos);
		else if (!(v & RTC_B_SET) && b & RTC_B_SET)
			set_time(r, regs_to_time(r->cmos, v), ns);
		r->cmos[i] = v;
		return;
	case RTC_REG_C:
	case RTC_REG_D:
		return; /* read-only */
	}
	r->cmos[i] = v;
}

uint8_t rtc_io_read(struct rtc *r, uint16_t port, uint64_t guest_ns)
{
	if (port == RTC_PORT_DATA)
		return read_reg(r, r->index, guest_ns);
	return 0xff;
}

void rtc_io_write(struct rtc *r, uint16_t port, uint8_t value,
		  uint64_t guest_ns)
{
	if (port == RTC_PORT_INDEX)
		r->index = value & 0x7f; /* bit 7: the NMI mask, not ours */
	else if (port == RTC_PORT_DATA)
		write_reg(r, r->index, value, guest_ns);
}

/* --- state --- */

static int rtc_check(const void *obj, const void *ctx, struct kg_err *e)
{
	const struct rtc *r = obj;
	(void)ctx;
	if (r->base_s < -RTC_BASE_LIMIT || r->base_s > RTC_BASE_LIMIT)
		return kg_errf(e, "time base %lld s is out of range",
			       (long long)r->base_s);
	return 0;
}

static const struct vs_field rtc_fields[] = {
	VS_FIELD_MAX(struct rtc, index, VS_U8, RTC_CMOS_SIZE - 1),
	VS_BYTES_FIELD(struct rtc, cmos),
	VS_FIELD(struct rtc, base_s, VS_U64),
};
const struct vs_desc rtc_vs = { "rtc", 1, VS_TABLE(rtc_fields), rtc_check };

/* --- the device --- */

struct dev_rtc {
	pthread_mutex_t lock;
	struct rtc rtc;
	struct vm *vm;
};

/* Time is read before the lock (the gate may take its own around the
 * read), and only for the data port: selecting a register needs none, so
 * a recording logs no time for it. */
static void io(struct dev_rtc *d, uint64_t off, uint8_t *b, unsigned size,
	       bool write)
{
	uint64_t now = off + size > 1 ? gate_time_ns(&d->vm->gate) : 0;
	pthread_mutex_lock(&d->lock);
	for (unsigned i = 0; i < size; i++) {
		uint16_t port = (uint16_t)(RTC_PORT_INDEX + off + i);
		if (write)
			rtc_io_write(&d->rtc, port, b[i], now);
		else
			b[i] = rtc_io_read(&d->rtc, port, now);
	}
	pthread_mutex_unlock(&d->lock);
}

static void bus_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	io(opaque, off, data, size, false);
}

static void bus_write(void *opaque, uint64_t off, const void *data,
		      unsigned size)
{
	uint8_t b[8];
	memcpy(b, data, size < sizeof(b) ? size : sizeof(b));
	io(opaque, off, b, size < sizeof(b) ? size : sizeof(b), true);
}

static const struct bus_dev_ops rtc_ops = { bus_read, bus_write, NULL };

static void reset(void *dev)
{
	struct dev_rtc *d = dev;
	pthread_mutex_lock(&d->lock);
	rtc_reset(&d->rtc);
	pthread_mutex_unlock(&d->lock);
}

static void quiesce(void *dev)
{
	pthread_mutex_lock(&((struct dev_rtc *)dev)->lock);
}

static void release(void *dev)
{
	pthread_mutex_unlock(&((struct dev_rtc *)dev)->lock);
}

static void destroy(void *dev)
{
	struct dev_rtc *d = dev;
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* The clock starts at the host's wall clock: guest time is 0 when the
 * VM is built. A restore or a replica then brings its own base. */
static int create(struct vm *vm, struct kg_err *e)
{
	struct dev_rtc *d = calloc(1, sizeof(*d));
	if (!d)
		return kg_errf(e, "out of memory");
	pthread_mutex_init(&d->lock, NULL);
	d->vm = vm;
	rtc_init(&d->rtc, (int64_t)(kg_realtime_ns() / NS_PER_S));
	if (bus_add(&vm->pio, RTC_PORT_INDEX, 2, &rtc_ops, d, "rtc", e) < 0 ||
	    vm_device_add(vm, &dev_rtc_ops, d, e) < 0) {
		destroy(d);
		return -1;
	}
	return 0;
}

/* A staging copy starts at power-on values (a field the stream lacks
 * keeps them). */
static void defaults(void *obj)
{
	rtc_init(obj, 0);
}

static const struct vm_device_table tables[] = {
	{ &rtc_vs, offsetof(struct dev_rtc, rtc), sizeof(struct rtc),
	  defaults },
};

/* Optional: snapshots and streams from before the RTC have no section
 * for it; a VM restored from one keeps the host's time. */
const struct vm_device_ops dev_rtc_ops = {
	.name = "rtc", .instance = 4, .ninstances = 1,
	.tables = tables, .ntables = 1, .optional = true,
	.create = create, .reset = reset, .quiesce = quiesce,
	.release = release, .destroy = destroy,
};
