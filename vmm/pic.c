/* The 8259A pair (see pic.h); the structure follows the datasheet and
 * KVM's arch/x86/kvm/i8259.c, whose guest-visible behaviour it keeps. */
#include "pic.h"

#include <string.h>

#define ICW1_IC4 0x01
#define ICW1_SNGL 0x02
#define ICW4_AEOI 0x02

enum { MASTER, SLAVE };

/* Priority rank (0 highest) of the best bit in mask, 8 when empty. */
static unsigned priority(const struct pic_chip *c, uint8_t mask)
{
	if (!mask)
		return 8;
	unsigned p = 0;
	while (!(mask & (1u << ((p + c->priority_add) & 7))))
		p++;
	return p;
}

/* The IR the chip would present at INTA, or -1. */
static int chip_irq(const struct pic_chip *c)
{
	unsigned p = priority(c, c->irr & (uint8_t)~c->imr);
	if (p == 8)
		return -1;
	/* Special mask mode: a masked IR in service does not block lower
	 * ones (the point of the mode). */
	uint8_t in_service = c->isr;
	if (c->special_mask)
		in_service &= (uint8_t)~c->imr;
	if (p < priority(c, in_service))
		return (int)((p + c->priority_add) & 7);
	return -1;
}

static void chip_line(struct pic_chip *c, unsigned ir, int level)
{
	uint8_t bit = (uint8_t)(1u << ir);
	if (level) {
		if (!(c->lines & bit))
			c->irr |= bit;
		c->lines |= bit;
	} else {
		c->lines &= (uint8_t)~bit;
	}
}

/* The slave's INT reaches the master's IR2 as a pulse whenever it is
 * asserted (see pic.h), and as nothing otherwise. */
static void update_cascade(struct pic *p)
{
	if (chip_irq(&p->chip[SLAVE]) >= 0) {
		chip_line(&p->chip[MASTER], PIC_CASCADE_IRQ, 1);
		chip_line(&p->chip[MASTER], PIC_CASCADE_IRQ, 0);
	}
}

static void chip_power_on(struct pic_chip *c)
{
	memset(c, 0, sizeof(*c));
	c->imr = 0xff;
}

void pic_init(struct pic *p)
{
	chip_power_on(&p->chip[MASTER]);
	chip_power_on(&p->chip[SLAVE]);
}

void pic_reset(struct pic *p)
{
	pic_init(p);
}

void pic_set_irq(struct pic *p, unsigned irq, int level)
{
	if (irq > 15 || irq == PIC_CASCADE_IRQ)
		return;
	chip_line(&p->chip[irq >> 3], irq & 7, level);
	update_cascade(p);
}

/* INTA on one chip: edge triggered, so the request is consumed. */
static void intack(struct pic_chip *c, unsigned ir)
{
	uint8_t bit = (uint8_t)(1u << ir);
	c->irr &= (uint8_t)~bit;
	if (!c->auto_eoi)
		c->isr |= bit;
	else if (c->rotate_on_aeoi)
		c->priority_add = (uint8_t)((ir + 1) & 7);
}

bool pic_pending(const struct pic *p)
{
	return chip_irq(&p->chip[MASTER]) >= 0;
}

int pic_ack(struct pic *p)
{
	struct pic_chip *m = &p->chip[MASTER], *s = &p->chip[SLAVE];
	int vec;
	int ir = chip_irq(m);
	if (ir < 0) {
		vec = m->base + 7;
	} else {
		intack(m, (unsigned)ir);
		if (ir == PIC_CASCADE_IRQ) {
			int ir2 = chip_irq(s);
			if (ir2 >= 0)
				intack(s, (unsigned)ir2);
			else
				ir2 = 7;
			vec = s->base + ir2;
		} else {
			vec = m->base + ir;
		}
	}
	update_cascade(p);
	return vec & 0xff;
}

/* ICW1: the chip starts over; the edge latches are cleared, so a line
 * held high must fall and rise again to request. */
static void icw1(struct pic_chip *c, uint8_t val)
{
	uint8_t lines = c->lines;
	memset(c, 0, sizeof(*c));
	c->lines = lines;
	c->icw1 = val;
	c->init_step = 2;
}

/* OCW2: R (bit 7), SL (bit 6), EOI (bit 5), level (bits 2-0). */
static void ocw2(struct pic_chip *c, uint8_t val)
{
	unsigned level = val & 7;
	switch (val >> 5) {
	case 0: /* clear rotate in auto-EOI mode */
		c->rotate_on_aeoi = 0;
		break;
	case 4: /* set rotate in auto-EOI mode */
		c->rotate_on_aeoi = 1;
		break;
	case 1: /* non-specific EOI */
	case 5: { /* rotate on non-specific EOI */
		unsigned pr = priority(c, c->isr);
		if (pr == 8)
			break;
		unsigned ir = (pr + c->priority_add) & 7;
		c->isr &= (uint8_t)~(1u << ir);
		if (val >> 5 == 5)
			c->priority_add = (uint8_t)((ir + 1) & 7);
		break;
	}
	case 3: /* specific EOI */
		c->isr &= (uint8_t)~(1u << level);
		break;
	case 7: /* rotate on specific EOI */
		c->isr &= (uint8_t)~(1u << level);
		c->priority_add = (uint8_t)((level + 1) & 7);
		break;
	case 6: /* set priority: `level` becomes the lowest */
		c->priority_add = (uint8_t)((level + 1) & 7);
		break;
	default: /* 2: no operation */
		break;
	}
}

static void ocw3(struct pic_chip *c, uint8_t val)
{
	if (val & 0x04)
		c->poll = 1;
	if (val & 0x02)
		c->read_isr = val & 0x01;
	if (val & 0x40)
		c->special_mask = (val >> 5) & 1;
}

static void write_data(struct pic_chip *c, uint8_t val)
{
	switch (c->init_step) {
	case 2:
		c->base = val & 0xf8;
		c->init_step = (c->icw1 & ICW1_SNGL)
				       ? ((c->icw1 & ICW1_IC4) ? 4 : 0)
				       : 3;
		break;
	case 3:
		c->icw3 = val;
		c->init_step = (c->icw1 & ICW1_IC4) ? 4 : 0;
		break;
	case 4:
		c->icw4 = val;
		c->auto_eoi = (val & ICW4_AEOI) ? 1 : 0;
		c->init_step = 0;
		break;
	default: /* OCW1 */
		c->imr = val;
		break;
	}
}

static struct pic_chip *chip_of(struct pic *p, uint16_t port)
{
	switch (port) {
	case PIC_MASTER_CMD: case PIC_MASTER_DATA:
		return &p->chip[MASTER];
	case PIC_SLAVE_CMD: case PIC_SLAVE_DATA:
		return &p->chip[SLAVE];
	default:
		return NULL;
	}
}

void pic_io_write(struct pic *p, uint16_t port, uint8_t val)
{
	struct pic_chip *c = chip_of(p, port);
	if (!c)
		return;
	if (port & 1)
		write_data(c, val);
	else if (val & 0x10)
		icw1(c, val);
	else if (val & 0x08)
		ocw3(c, val);
	else
		ocw2(c, val);
	update_cascade(p);
}

/* Poll mode: the next read is that chip's INTA (bit 7: a request was
 * there, bits 2-0: its IR); a CPU polling a cascaded pair polls the slave
 * itself when the master answers IR2. */
static uint8_t poll_read(struct pic_chip *c)
{
	c->poll = 0;
	int ir = chip_irq(c);
	if (ir < 0)
		return 0;
	intack(c, (unsigned)ir);
	return (uint8_t)(0x80 | ir);
}

uint8_t pic_io_read(struct pic *p, uint16_t port)
{
	struct pic_chip *c = chip_of(p, port);
	if (!c)
		return 0xff;
	uint8_t v;
	if (c->poll)
		v = poll_read(c);
	else if (port & 1)
		v = c->imr;
	else
		v = c->read_isr ? c->isr : c->irr;
	update_cascade(p);
	return v;
}

/* --- state: every field, since the model holds nothing but guest-visible
 * state --- */

static int pic_check(const void *obj, const void *ctx, struct kg_err *e)
{
	const struct pic *p = obj;
	(void)ctx;
	for (unsigned i = 0; i < 2; i++) {
		const struct pic_chip *c = &p->chip[i];
		if (c->init_step == 1 || c->init_step > 4 || c->base & 7 ||
		    c->priority_add > 7)
			return kg_errf(e, "chip %u: bad initialisation state", i);
		if ((c->auto_eoi | c->rotate_on_aeoi | c->read_isr | c->poll |
		     c->special_mask) > 1)
			return kg_errf(e, "chip %u: bad flag", i);
	}
	return 0;
}

#define CHIP(f) VS_STRUCT_ARRAY(struct pic, chip, 2, struct pic_chip, f, \
				VS_U8, "chip." #f)
static const struct vs_field pic_fields[] = {
	CHIP(irr), CHIP(isr), CHIP(imr), CHIP(lines), CHIP(base),
	CHIP(init_step), CHIP(icw1), CHIP(icw3), CHIP(icw4), CHIP(auto_eoi),
	CHIP(rotate_on_aeoi), CHIP(priority_add), CHIP(read_isr), CHIP(poll),
	CHIP(special_mask),
};
const struct vs_desc pic_vs = { "pic", 1, VS_TABLE(pic_fields),
				    pic_check };
