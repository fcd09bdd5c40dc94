/* The pass-through input gate: values flow unchanged, and are counted. */
#include "gate.h"

#include <string.h>
#include <time.h>

#include "kvm.h"
#include "base/clock.h"

static void count(struct gate *g, enum gate_input k)
{
	atomic_fetch_add_explicit(&g->count[k], 1, memory_order_relaxed);
}

static void pt_pio_in(struct gate *g, unsigned vcpu, uint16_t port,
		      unsigned size, void *data)
{
	(void)vcpu, (void)port, (void)size, (void)data;
	count(g, GATE_PIO_IN);
}

static void pt_mmio_read(struct gate *g, unsigned vcpu, uint64_t gpa,
			 unsigned size, void *data)
{
	(void)vcpu, (void)gpa, (void)size, (void)data;
	count(g, GATE_MMIO_READ);
}

static int pt_guest_write(struct gate *g, uint64_t gpa, const void *src,
			  size_t len, struct kg_err *e)
{
	void *dst = guest_mem_ptr(g->mem, gpa, len);
	if (!dst)
		return kg_errf(e, "device write of %zu bytes at 0x%llx is "
			       "outside guest RAM", len,
			       (unsigned long long)gpa);
	memcpy(dst, src, len);
	guest_mem_mark_dirty(g->mem, gpa, len);
	count(g, GATE_GUEST_WRITE);
	return 0;
}

static int pt_irq_line(struct gate *g, unsigned irq, int level,
		       struct kg_err *e)
{
	struct kvm_irq_level l = { .irq = irq, .level = (uint32_t)level };
	count(g, GATE_IRQ);
	return kvm_ioctl(g->vm_fd, KVM_IRQ_LINE, &l, e) < 0 ? -1 : 0;
}

static uint64_t pt_time_ns(struct gate *g)
{
	count(g, GATE_TIME);
	return kg_now_ns() - g->clock_base_ns;
}

static void pt_idle(struct gate *g, uint64_t max_ns)
{
	(void)g, (void)max_ns;
}

static const struct gate_ops passthrough_ops = {
	.name = "passthrough",
	.pio_in = pt_pio_in,
	.mmio_read = pt_mmio_read,
	.guest_write = pt_guest_write,
	.irq_line = pt_irq_line,
	.time_ns = pt_time_ns,
	.idle = pt_idle,
};

void gate_init_passthrough(struct gate *g, struct guest_mem *mem, int vm_fd)
{
	memset(g, 0, sizeof(*g));
	g->ops = &passthrough_ops;
	g->mem = mem;
	g->vm_fd = vm_fd;
	g->clock_base_ns = kg_now_ns();
}
