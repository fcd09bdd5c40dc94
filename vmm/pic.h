/*
 * The PC's two cascaded 8259A programmable interrupt controllers, as a
 * pure model (no I/O, no locks, no time): the owner serialises calls. The
 * master answers ports 0x20/0x21, the slave 0xa0/0xa1; the slave's INT
 * output is wired to the master's IR2, so IRQs 8-15 arrive through IRQ 2.
 *
 * Modelled: the ICW1-ICW4 initialisation sequence (ICW3 is stored, the
 * wiring is fixed; ICW4 optional), OCW1 (IMR), every OCW2 command
 * (non-specific, specific and rotating EOIs, rotate in auto-EOI mode, set
 * priority), OCW3 (read IRR or ISR, poll, special mask mode), auto-EOI,
 * fully nested priority with rotation, and the spurious IRQ 7 / 15.
 *
 * Not modelled, documented instead:
 *   - every input is edge triggered: ICW1's LTIM bit and the ELCR are
 *     ignored (the PC's ISA lines are edge triggered);
 *   - edges are latched as KVM's and QEMU's 8259 latch them: a rising
 *     edge sets the IRR bit and it stays set when the line falls again,
 *     so a device may pulse a line (set 1, then 0). A request therefore
 *     "vanishes" before INTA only when the guest masks it, reinitialises
 *     the chip or puts a higher priority in service meanwhile; pic_ack
 *     then answers with the spurious vector as the 8259A does;
 *   - special fully nested mode (ICW4 SFNM), buffered mode and the 8080
 *     call address (ICW1 ADI) are accepted and ignored;
 *   - the slave's request reaches the master as a fresh edge at every
 *     state change (as KVM does), so a higher-priority slave IRQ arriving
 *     while a lower one is in service is never lost behind a line that
 *     stayed high.
 *
 * IRQ 2 is the cascade: pic_set_irq(p, 2, ...) is ignored (devices of the
 * PC that used IRQ 2 use IRQ 9). An out-of-range IRQ or port is ignored
 * (reads of an unknown port return 0xff).
 */
#ifndef KG_PIC_H
#define KG_PIC_H

#include <stdbool.h>
#include <stdint.h>

#include "base/vmstate.h"

#define PIC_MASTER_CMD 0x20u
#define PIC_MASTER_DATA 0x21u
#define PIC_SLAVE_CMD 0xa0u
#define PIC_SLAVE_DATA 0xa1u
#define PIC_CASCADE_IRQ 2u

/* One 8259A; every field is guest-visible state (snapshots carry all). */
struct pic_chip {
	uint8_t irr, isr, imr;
	uint8_t lines;        /* input levels, for edge detection */
	uint8_t base;         /* vector of IR0 (ICW2 & 0xf8) */
	uint8_t init_step;    /* 0: operational; 2, 3, 4: expecting ICWn */
	uint8_t icw1;         /* IC4 and SNGL are honoured */
	uint8_t icw3;         /* stored only: the cascade is wired */
	uint8_t icw4;         /* stored; AEOI is honoured */
	uint8_t auto_eoi;
	uint8_t rotate_on_aeoi;
	uint8_t priority_add; /* IR (priority_add) has the highest priority */
	uint8_t read_isr;     /* OCW3 RR/RIS: the command port reads the ISR */
	uint8_t poll;         /* OCW3 P: the next command-port read polls */
	uint8_t special_mask; /* OCW3 SMM */
};

struct pic {
	struct pic_chip chip[2]; /* master, slave */
};

/* Power-on state: both chips wait for ICW1, every input is masked (IMR
 * 0xff: the 8259A's power-on state is undefined, and no interrupt should
 * reach a guest before it programs the vectors), vectors 0, lines low. */
void pic_init(struct pic *p);
/* Guest-visible reset (a reboot): as pic_init. */
void pic_reset(struct pic *p);

/* Drives input `irq` (0-15) to `level` (0 or non-zero); a rising edge
 * latches the request in IRR. */
void pic_set_irq(struct pic *p, unsigned irq, int level);

/* Port accesses (ports above; byte wide). */
uint8_t pic_io_read(struct pic *p, uint16_t port);
void pic_io_write(struct pic *p, uint16_t port, uint8_t val);

/* Whether the master's INT output is asserted: an unmasked request of
 * higher priority than everything in service. */
bool pic_pending(const struct pic *p);
/* The INTA cycle: moves the highest request from IRR to ISR (not with
 * auto-EOI) in the master and, through IRQ 2, the slave; returns its
 * vector (0-255). With nothing pending it returns the spurious vector:
 * IRQ 7's (master base + 7), or IRQ 15's when the master saw the cascade
 * but the slave's request vanished; no ISR bit is set for a spurious
 * IRQ except the master's IRQ 2 in the latter case, as on the 8259A. */
int pic_ack(struct pic *p);

/* The whole model as a field table, with a check of what a stream brings
 * back (initialisation step, vector base, flags). */
extern const struct vs_desc pic_vs;

#endif
