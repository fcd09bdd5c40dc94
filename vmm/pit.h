/*
 * The 8254 programmable interval timer as a pure model (no I/O, no locks,
 * no clock of its own): the owner serialises calls and passes the guest
 * time, in nanoseconds, to every call that depends on it. The counters
 * derive only from those values, so a replay that passes the same times
 * reads the same counts. Time must not go backwards between calls (an
 * earlier time reads as the later one).
 *
 * Ports: 0x40-0x42 counters 0-2, 0x43 control word; 0x61 (PC system
 * control port B): bit 0 gate of counter 2, bit 1 speaker data (stored),
 * bits 2-3 stored, bit 4 the refresh toggle (every 15.085 us of guest
 * time), bit 5 OUT of counter 2. Counter 0's OUT drives IRQ 0; counters 0
 * and 1 have their gate wired high.
 *
 * Input clock 1193182 Hz. Modes 0 (interrupt on terminal count), 2 (rate
 * generator), 3 (square wave) and 4 (software strobe) count and drive OUT;
 * modes 1 and 5 (hardware triggered) start on a rising edge of the gate,
 * which only counter 2 has. Control word: counter select, latch command,
 * read-back (count and status), lobyte / hibyte / lobyte-then-hibyte
 * access. Simplifications, documented:
 *   - a new count takes effect at once (the 8254 waits for the end of the
 *     current period in modes 2 and 3);
 *   - a count of 1 in modes 2 and 3 (illegal on the 8254) keeps OUT
 *     high: no edges at the input clock's rate;
 *   - BCD is stored and reported in the status byte, but counting is
 *     binary;
 *   - writing the control word sets OUT to the mode's initial level
 *     without an edge to IRQ 0 (as QEMU and KVM);
 *   - a counter is idle after power-on and after its control word until a
 *     count is written (no IRQ 0 before the guest programs the PIT).
 * Unknown ports read 0xff and ignore writes.
 */
#ifndef KG_PIT_H
#define KG_PIT_H

#include <stdint.h>

#include "base/vmstate.h"

#define PIT_HZ 1193182u
#define PIT_PORT_BASE 0x40u /* 0x40-0x43 */
#define PIT_PORT_CONTROL 0x43u
#define PIT_PORT_SYSCTL 0x61u

/* Guest-visible state of one counter (snapshots carry every field). */
struct pit_channel {
	uint64_t load_ns;      /* guest time counting (re)started */
	uint64_t base_ticks;   /* elapsed ticks already counted at load_ns */
	uint64_t edges_seen;   /* OUT rising edges reported (counter 0) */
	uint32_t count;        /* initial count, 1-65536 */
	uint16_t latch;        /* latched count */
	uint8_t latched;       /* 0, or the access mode left to read */
	uint8_t status;        /* latched status byte */
	uint8_t status_latched;
	uint8_t mode;          /* 0-5 */
	uint8_t access;        /* 1 lobyte, 2 hibyte, 3 lobyte then hibyte */
	uint8_t bcd;
	uint8_t read_hi;       /* lobyte-then-hibyte flip-flops */
	uint8_t write_hi;
	uint8_t write_lo;      /* the lobyte written first */
	uint8_t armed;         /* a count was written since the control word */
	uint8_t counting;      /* armed and (gate high or triggered) */
	uint8_t gate;
};

struct pit {
	struct pit_channel ch[3];
	uint8_t sysctl; /* port 0x61 bits 0-3 */
};

void pit_init(struct pit *p);
/* Guest-visible reset: as pit_init. */
void pit_reset(struct pit *p);

uint8_t pit_io_read(struct pit *p, uint16_t port, uint64_t now_ns);
void pit_io_write(struct pit *p, uint16_t port, uint8_t val, uint64_t now_ns);

/* How many rising edges OUT of counter 0 made since the last call (or
 * since it was programmed), up to now_ns. A caller may coalesce them into
 * one IRQ 0 edge, as the 8259A's IRR latch does for a guest that has not
 * taken the last one yet. */
uint64_t pit_irq0_edges(struct pit *p, uint64_t now_ns);
/* Guest time of the first OUT0 rising edge pit_irq0_edges has not
 * reported yet — at or before now_ns when such edges are due — or
 * UINT64_MAX when counter 0 will make no more. pit_irq0_edges called at
 * that time reports it. */
uint64_t pit_next_edge_ns(const struct pit *p, uint64_t now_ns);

/* The whole model as a field table, with a check of what a stream brings
 * back (modes, access, counts, flags). */
extern const struct vs_desc pit_vs;

#endif
