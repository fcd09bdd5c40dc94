/* The 8254 (see pit.h). A counter holds no running value: everything is
 * computed from the ticks elapsed since it was loaded, so the model needs
 * no timer and reads exactly what the times passed in imply. */
#include "pit.h"

#include <string.h>

#define NS_PER_S 1000000000ull
#define REFRESH_NS 15085u /* the PC's DRAM refresh toggle, port 0x61 bit 4 */

/* floor(ns * PIT_HZ / 1e9) without a 128-bit product. */
static uint64_t ns_to_ticks(uint64_t ns)
{
	return ns / NS_PER_S * PIT_HZ + ns % NS_PER_S * PIT_HZ / NS_PER_S;
}

/* The first ns at which ns_to_ticks reaches t: ceil(t * 1e9 / PIT_HZ). */
static uint64_t ticks_to_ns(uint64_t t)
{
	return t / PIT_HZ * NS_PER_S +
	       (t % PIT_HZ * NS_PER_S + PIT_HZ - 1) / PIT_HZ;
}

static uint64_t elapsed(const struct pit_channel *c, uint64_t now_ns)
{
	if (!c->counting || now_ns < c->load_ns)
		return c->base_ticks;
	return c->base_ticks + ns_to_ticks(now_ns - c->load_ns);
}

static int out_level(const struct pit_channel *c, uint64_t now_ns)
{
	if (!c->armed)
		return c->mode != 0;
	/* Waiting for a trigger, or stopped by the gate: OUT rests high. */
	if (!c->counting && c->mode != 0 && c->mode != 4)
		return 1;
	uint64_t d = elapsed(c, now_ns), n = c->count;
	switch (c->mode) {
	case 0: case 1:
		return d >= n;
	case 2:
		return n < 2 || d % n != n - 1;
	case 3:
		return n < 2 || d % n < (n + 1) / 2;
	default: /* 4, 5 */
		return d != n;
	}
}

/* Rising edges of OUT within the first d ticks after the load. A count
 * of 1 in modes 2 and 3, illegal on the 8254, keeps OUT high. */
static uint64_t edges_by(const struct pit_channel *c, uint64_t d)
{
	uint64_t n = c->count;
	switch (c->mode) {
	case 0: case 1:
		return d >= n;
	case 2: case 3:
		return n < 2 ? 0 : d / n;
	default:
		return d > n;
	}
}

static uint16_t counter_value(const struct pit_channel *c, uint64_t now_ns)
{
	if (!c->armed)
		return (uint16_t)c->count;
	uint64_t d = elapsed(c, now_ns), n = c->count;
	switch (c->mode) {
	case 2:
		return (uint16_t)(n - d % n);
	case 3:
		return (uint16_t)((n - (2 * d) % n) & 0xfffe);
	default:
		return (uint16_t)(n - d % 65536);
	}
}

static uint8_t status_byte(const struct pit_channel *c, uint64_t now_ns)
{
	return (uint8_t)(out_level(c, now_ns) << 7 | !c->armed << 6 |
			 c->access << 4 | c->mode << 1 | c->bcd);
}

static void channel_power_on(struct pit_channel *c, int gate)
{
	memset(c, 0, sizeof(*c));
	c->count = 65536;
	c->access = 3;
	c->gate = (uint8_t)gate;
}

void pit_init(struct pit *p)
{
	channel_power_on(&p->ch[0], 1);
	channel_power_on(&p->ch[1], 1);
	channel_power_on(&p->ch[2], 0);
	p->sysctl = 0;
}

void pit_reset(struct pit *p)
{
	pit_init(p);
}

static void load(struct pit_channel *c, uint32_t v, uint64_t now_ns)
{
	c->count = v ? v : 65536;
	c->armed = 1;
	c->load_ns = now_ns;
	c->base_ticks = 0;
	c->edges_seen = 0;
	c->counting = c->gate && c->mode != 1 && c->mode != 5;
}

static void set_gate(struct pit_channel *c, int gate, uint64_t now_ns)
{
	if (gate == c->gate)
		return;
	c->gate = (uint8_t)gate;
	if (!c->armed)
		return;
	if (!gate) {
		/* Modes 1 and 5 run on once triggered; the others stop. */
		if (c->mode != 1 && c->mode != 5 && c->counting) {
			c->base_ticks = elapsed(c, now_ns);
			c->counting = 0;
		}
		return;
	}
	if (c->mode == 0 || c->mode == 4) {
		c->counting = 1; /* resumes where it stopped */
		c->load_ns = now_ns;
	} else {
		load(c, c->count, now_ns); /* (re)triggers from the top */
	}
}

static void latch_count(struct pit_channel *c, uint64_t now_ns)
{
	if (c->latched)
		return;
	c->latch = counter_value(c, now_ns);
	c->latched = c->access;
}

static void control(struct pit *p, uint8_t val, uint64_t now_ns)
{
	unsigned sc = val >> 6, access = (val >> 4) & 3;
	if (sc == 3) { /* read-back */
		for (unsigned i = 0; i < 3; i++) {
			struct pit_channel *c = &p->ch[i];
			if (!(val & (2u << i)))
				continue;
			if (!(val & 0x20))
				latch_count(c, now_ns);
			if (!(val & 0x10) && !c->status_latched) {
				c->status = status_byte(c, now_ns);
				c->status_latched = 1;
			}
		}
		return;
	}
	struct pit_channel *c = &p->ch[sc];
	if (access == 0) {
		latch_count(c, now_ns);
		return;
	}
	unsigned mode = (val >> 1) & 7;
	c->mode = (uint8_t)(mode > 5 ? mode - 4 : mode); /* 6, 7: 2, 3 */
	c->access = (uint8_t)access;
	c->bcd = val & 1;
	c->armed = c->counting = 0;
	c->base_ticks = c->edges_seen = 0;
	c->read_hi = c->write_hi = c->write_lo = 0;
	c->latched = c->status_latched = 0;
}

static void write_count(struct pit_channel *c, uint8_t val, uint64_t now_ns)
{
	switch (c->access) {
	case 1:
		load(c, val, now_ns);
		break;
	case 2:
		load(c, (uint32_t)val << 8, now_ns);
		break;
	default:
		if (!c->write_hi) {
			c->write_lo = val;
			c->write_hi = 1;
		} else {
			c->write_hi = 0;
			load(c, c->write_lo | (uint32_t)val << 8, now_ns);
		}
	}
}

static uint8_t read_count(struct pit_channel *c, uint64_t now_ns)
{
	if (c->status_latched) {
		c->status_latched = 0;
		return c->status;
	}
	if (c->latched) {
		/* 3: lobyte now, hibyte next (2); 2: hibyte; 1: lobyte. */
		uint8_t v = c->latched == 2 ? (uint8_t)(c->latch >> 8)
					    : (uint8_t)c->latch;
		c->latched = c->latched == 3 ? 2 : 0;
		return v;
	}
	uint16_t v = counter_value(c, now_ns);
	switch (c->access) {
	case 1:
		return (uint8_t)v;
	case 2:
		return (uint8_t)(v >> 8);
	default:
		c->read_hi ^= 1;
		return c->read_hi ? (uint8_t)v : (uint8_t)(v >> 8);
	}
}

uint8_t pit_io_read(struct pit *p, uint16_t port, uint64_t now_ns)
{
	if (port == PIT_PORT_SYSCTL)
		return (uint8_t)(p->sysctl | (now_ns / REFRESH_NS & 1) << 4 |
				 out_level(&p->ch[2], now_ns) << 5);
	if (port < PIT_PORT_BASE || port >= PIT_PORT_CONTROL)
		return 0xff; /* the control word is write-only */
	return read_count(&p->ch[port - PIT_PORT_BASE], now_ns);
}

void pit_io_write(struct pit *p, uint16_t port, uint8_t val, uint64_t now_ns)
{
	if (port == PIT_PORT_SYSCTL) {
		p->sysctl = val & 0x0f;
		set_gate(&p->ch[2], val & 1, now_ns);
	} else if (port == PIT_PORT_CONTROL) {
		control(p, val, now_ns);
	} else if (port >= PIT_PORT_BASE && port < PIT_PORT_CONTROL) {
		write_count(&p->ch[port - PIT_PORT_BASE], val, now_ns);
	}
}

uint64_t pit_irq0_edges(struct pit *p, uint64_t now_ns)
{
	struct pit_channel *c = &p->ch[0];
	if (!c->counting)
		return 0;
	uint64_t e = edges_by(c, elapsed(c, now_ns));
	if (e <= c->edges_seen)
		return 0;
	uint64_t n = e - c->edges_seen;
	c->edges_seen = e;
	return n;
}

uint64_t pit_next_edge_ns(const struct pit *p, uint64_t now_ns)
{
	const struct pit_channel *c = &p->ch[0];
	(void)now_ns; /* the next edge follows from what was reported */
	if (!c->counting)
		return UINT64_MAX;
	uint64_t n = c->count, k = c->edges_seen + 1, tick;
	switch (c->mode) {
	case 0: case 1:
		if (k > 1)
			return UINT64_MAX;
		tick = n;
		break;
	case 2: case 3:
		if (n < 2 || k > UINT64_MAX / n)
			return UINT64_MAX;
		tick = k * n;
		break;
	default:
		if (k > 1)
			return UINT64_MAX;
		tick = n + 1;
	}
	if (tick <= c->base_ticks)
		return c->load_ns;
	uint64_t ns = c->load_ns + ticks_to_ns(tick - c->base_ticks);
	return ns < c->load_ns ? UINT64_MAX : ns;
}

/* --- state: every field, since the model holds nothing but guest-visible
 * state --- */

static int pit_check(const void *obj, const void *ctx, struct kg_err *e)
{
	const struct pit *p = obj;
	(void)ctx;
	if (p->sysctl > 0x0f)
		return kg_errf(e, "port 0x61: 0x%x", p->sysctl);
	for (unsigned i = 0; i < 3; i++) {
		const struct pit_channel *c = &p->ch[i];
		if (c->mode > 5 || c->access < 1 || c->access > 3 ||
		    c->count < 1 || c->count > 65536 || c->latched > 3)
			return kg_errf(e, "counter %u: bad mode, access or "
				       "count", i);
		if ((c->status_latched | c->bcd | c->read_hi | c->write_hi |
		     c->armed | c->counting | c->gate) > 1 ||
		    (c->counting && !c->armed) || (i < 2 && !c->gate))
			return kg_errf(e, "counter %u: bad flag", i);
	}
	return 0;
}

#define CH(f, t) VS_STRUCT_ARRAY(struct pit, ch, 3, struct pit_channel, f, \
				 t, "ch." #f)
static const struct vs_field pit_fields[] = {
	CH(load_ns, VS_U64), CH(base_ticks, VS_U64), CH(edges_seen, VS_U64),
	CH(count, VS_U32), CH(latch, VS_U16), CH(latched, VS_U8),
	CH(status, VS_U8), CH(status_latched, VS_U8), CH(mode, VS_U8),
	CH(access, VS_U8), CH(bcd, VS_U8), CH(read_hi, VS_U8),
	CH(write_hi, VS_U8), CH(write_lo, VS_U8), CH(armed, VS_U8),
	CH(counting, VS_U8), CH(gate, VS_U8),
	VS_FIELD(struct pit, sysctl, VS_U8),
};
const struct vs_desc pit_vs = { "pit", 1, VS_TABLE(pit_fields),
				    pit_check };
