/*
 * The input gate: every value that enters the guest from outside passes
 * here — port and MMIO read values, bytes devices write into guest RAM,
 * interrupt lines, and time. Record/replay and lockstep replace the
 * pass-through ops with ones that log or substitute values; nothing else in
 * the VMM may feed the guest directly.
 *
 * The pass-through gate is thread-safe (vCPU threads and device threads
 * call it concurrently) and keeps per-kind counters.
 */
#ifndef KG_GATE_H
#define KG_GATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "mem.h"

enum gate_input {
	GATE_PIO_IN,
	GATE_MMIO_READ,
	GATE_GUEST_WRITE,
	GATE_IRQ,
	GATE_TIME,
	GATE_NINPUTS
};

struct gate;
struct kvm_run;

/*
 * The userspace interrupt controller and timer of deterministic mode
 * (dev_irq: 8259A pair + 8254 PIT). Set by the VM when cfg.deterministic;
 * NULL otherwise (the in-kernel irqchip takes KVM_IRQ_LINE). Every hook
 * takes the controller's own lock; callers hold none of the VM's.
 */
struct gate_irqchip {
	void *ctx;
	void (*set_line)(void *ctx, unsigned irq, int level);
	/* Advances the timer to guest time now_ns (raising IRQ 0 edges),
	 * then, if an unmasked interrupt is pending, performs the INTA cycle
	 * and returns its vector; -1 when none is. */
	int (*ack)(void *ctx, uint64_t now_ns);
	/* Whether ack would return a vector at now_ns (no state change). */
	bool (*pending)(void *ctx, uint64_t now_ns);
	/* Guest time at which the timer next raises IRQ 0, or UINT64_MAX. */
	uint64_t (*next_deadline)(void *ctx, uint64_t now_ns);
};

struct gate_ops {
	const char *name;
	/* `data` holds the device's value; the gate may log or replace it. */
	void (*pio_in)(struct gate *g, unsigned vcpu, uint16_t port,
		       unsigned size, void *data);
	void (*mmio_read)(struct gate *g, unsigned vcpu, uint64_t gpa,
			  unsigned size, void *data);
	int (*guest_write)(struct gate *g, uint64_t gpa, const void *src,
			   size_t len, struct kg_err *e);
	int (*irq_line)(struct gate *g, unsigned irq, int level,
			struct kg_err *e);
	uint64_t (*time_ns)(struct gate *g);
	/* The guest has nothing to do (KAGAMI_PORT_IDLE): a deterministic
	 * gate may block the vCPU up to max_ns until an input is pending;
	 * the pass-through gate returns at once. vCPU thread only. */
	void (*idle)(struct gate *g, uint64_t max_ns);
	/* Deterministic gates only (NULL in the pass-through one). A
	 * synchronous exit (port I/O, MMIO, HLT) of the vCPU begins: the
	 * recorder notes it, the replayer checks it against the log and
	 * returns false on a divergence (it has stopped the VM; the exit is
	 * not served). */
	bool (*exit_begin)(struct gate *g, int vcpu_fd, struct kvm_run *run);
	/* ...and ends: the one point where asynchronous inputs (device
	 * writes into RAM, interrupts) enter a deterministic VM. */
	void (*exit_end)(struct gate *g, int vcpu_fd, struct kvm_run *run);
};

struct gate {
	const struct gate_ops *ops;
	struct guest_mem *mem;
	int vm_fd; /* updated by the VM when it is re-created on reset */
	const struct gate_irqchip *irqchip; /* deterministic mode only */
	void *impl; /* a recorder's or replayer's own state */
	uint64_t clock_base_ns;
	_Atomic uint64_t count[GATE_NINPUTS];
};

/* Initialises the pass-through gate; the guest clock starts at 0 now. */
void gate_init_passthrough(struct gate *g, struct guest_mem *mem, int vm_fd);

static inline void gate_pio_in(struct gate *g, unsigned vcpu, uint16_t port,
			       unsigned size, void *data)
{
	g->ops->pio_in(g, vcpu, port, size, data);
}
static inline void gate_mmio_read(struct gate *g, unsigned vcpu, uint64_t gpa,
				  unsigned size, void *data)
{
	g->ops->mmio_read(g, vcpu, gpa, size, data);
}
/* Copies into guest RAM; fails (nothing written) if the range leaves RAM. */
static inline int gate_guest_write(struct gate *g, uint64_t gpa,
				   const void *src, size_t len,
				   struct kg_err *e)
{
	return g->ops->guest_write(g, gpa, src, len, e);
}
static inline int gate_irq_line(struct gate *g, unsigned irq, int level,
				struct kg_err *e)
{
	return g->ops->irq_line(g, irq, level, e);
}
static inline uint64_t gate_time_ns(struct gate *g)
{
	return g->ops->time_ns(g);
}
static inline void gate_idle(struct gate *g, uint64_t max_ns)
{
	g->ops->idle(g, max_ns);
}

#endif
