#include "vm_state.h"

#include <stdlib.h>
#include <string.h>

#include "base/vmstate.h"
#include "base/clock.h"

static const struct vs_field cpu_fields[] = {
	VS_BYTES_FIELD(struct cpu_state, regs),
	VS_BYTES_FIELD(struct cpu_state, sregs),
	VS_BYTES_FIELD(struct cpu_state, xsave),
	VS_BYTES_FIELD(struct cpu_state, xcrs),
	VS_BYTES_FIELD(struct cpu_state, events),
	VS_BYTES_FIELD(struct cpu_state, debugregs),
	VS_BYTES_FIELD(struct cpu_state, mp_state),
	VS_BYTES_FIELD(struct cpu_state, lapic),
	VS_FIELD_MAX(struct cpu_state, nmsrs, VS_U32, CPU_STATE_MAX_MSRS),
	VS_BYTES_FIELD(struct cpu_state, msrs),
};
static const struct vs_desc cpu_vs = { "vcpu", 1, VS_TABLE(cpu_fields), NULL };

static const struct vs_field kvm_fields[] = {
	VS_BYTES_FIELD(struct vm_kvm_state, pic_master),
	VS_BYTES_FIELD(struct vm_kvm_state, pic_slave),
	VS_BYTES_FIELD(struct vm_kvm_state, ioapic),
	VS_BYTES_FIELD(struct vm_kvm_state, pit),
	VS_BYTES_FIELD(struct vm_kvm_state, clock),
	/* Added later; a stream without it loads kvmclock unadvanced. */
	VS_FIELD(struct vm_kvm_state, realtime_ns, VS_U64),
};
static const struct vs_desc kvm_vs = { "irqchip", 1, VS_TABLE(kvm_fields),
				       NULL };

static const struct vs_field config_fields[] = {
	VS_FIELD(struct vm_state_config, mem_size, VS_U64),
	VS_FIELD_MAX(struct vm_state_config, ncpus, VS_U32, VM_MAX_VCPUS),
	VS_FIELD_MAX(struct vm_state_config, ndisks, VS_U32, VM_MAX_DISKS),
	VS_FIELD_MAX(struct vm_state_config, nnets, VS_U32, VM_MAX_NETS),
	VS_FIELD(struct vm_state_config, boot_count, VS_U32),
	VS_FIELD_MAX(struct vm_state_config, flags, VS_U32,
		     VM_STATE_CONFIG_DETERMINISTIC),
};
static int config_check(const void *obj, const void *ctx, struct kg_err *e)
{
	const struct vm_state_config *c = obj;
	(void)ctx;
	if (c->ncpus == 0)
		return kg_errf(e, "no vCPUs");
	return guest_mem_check_size(c->mem_size, e);
}
/* Version 2 added flags. A stream without flags is written as version 1,
 * which every kagami reads alike; one with flags set is version 2, which
 * a kagami that knows no deterministic VM refuses at the first section
 * instead of building the wrong kind of VM. */
static const struct vs_desc config_vs = { "vm-config", 2,
					  VS_TABLE(config_fields),
					  config_check };
static const struct vs_desc config_vs_v1 = { "vm-config", 1,
					     VS_TABLE(config_fields),
					     config_check };

void vm_state_hold(struct vm *vm)
{
	vm_devices_hold(vm);
}

void vm_state_park(struct vm *vm)
{
	vm_state_hold(vm);
	vm->parked = true;
}

void vm_state_unpark(struct vm *vm)
{
	if (!vm->parked)
		return;
	vm->parked = false;
	vm_state_release(vm);
}

void vm_state_activate(struct vm *vm)
{
	if (!vm->parked)
		return;
	vm->parked = false;
	vm_state_release(vm);
	vm_devices_kick(vm);
}

void vm_state_release(struct vm *vm)
{
	vm_devices_release(vm);
}

int vm_state_put_table(struct kg_stream_writer *w, uint16_t kind,
		       uint16_t inst, const struct vs_desc *d, const void *obj,
		       struct kg_err *e)
{
	struct vs_buf b = { 0 };
	int r = vs_encode(d, obj, &b, e);
	if (r == 0)
		r = kg_writer_section(w, kind, inst, d->version, b.data, b.len, e);
	vs_buf_free(&b);
	return r;
}

int vm_state_write(struct kg_stream_writer *w, struct vm *vm, struct kg_err *e)
{
	struct vm_kvm_state *ks = malloc(sizeof(*ks));
	struct cpu_state *cs = malloc(sizeof(*cs));
	uint32_t idx[CPU_STATE_MAX_MSRS], nmsr = 0;
	uint64_t guest_ns = gate_time_ns(&vm->gate);
	int r = -1;
	if (!ks || !cs) {
		kg_errf(e, "out of memory");
		goto out;
	}
	if (cpu_msr_index_list(vm->kvm_fd, idx, &nmsr, e) < 0)
		goto out;
	if (!vm->cfg.deterministic &&
	    (vm_kvm_state_save(vm, ks, e) < 0 ||
	     vm_state_put_table(w, KG_SEC_IRQCHIP, 0, &kvm_vs, ks, e) < 0))
		goto out;
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (cpu_state_save(&vm->vcpus[i], idx, nmsr, cs, e) < 0 ||
		    vm_state_put_table(w, KG_SEC_VCPU, (uint16_t)i, &cpu_vs, cs, e) < 0)
			goto out;
	for (unsigned i = 0; i < vm->ndevices; i++) {
		const struct vm_device *d = &vm->devices[i];
		for (unsigned t = 0; t < d->ops->ntables; t++)
			if (vm_state_put_table(w, KG_SEC_DEVICE,
					       (uint16_t)(d->instance + t),
					       d->ops->tables[t].vs,
					       vm_device_state(d, t), e) < 0)
				goto out;
	}
	r = kg_writer_section(w, KG_SEC_CLOCK, 0, 1, &guest_ns,
			      sizeof(guest_ns), e);
out:
	free(ks);
	free(cs);
	return r;
}

int vm_state_write_config(struct kg_stream_writer *w, const struct vm *vm,
			  struct kg_err *e)
{
	struct vm_state_config c = { vm->cfg.mem_size, vm->ncpus,
				     vm->cfg.ndisks, vm->cfg.nnets,
				     vm->boot_count,
				     vm->cfg.deterministic
					     ? VM_STATE_CONFIG_DETERMINISTIC
					     : 0 };
	return vm_state_put_config(w, &c, e);
}

int vm_state_put_config(struct kg_stream_writer *w,
			const struct vm_state_config *c, struct kg_err *e)
{
	return vm_state_put_table(w, KG_SEC_VM_CONFIG, 0,
				  c->flags ? &config_vs : &config_vs_v1, c, e);
}

static int decode(const struct kg_section *s, const struct vs_desc *d,
		  void *obj, const void *ctx, const uint8_t *buf,
		  struct kg_err *e);

int vm_state_read_config(struct kg_stream_reader *r,
			 const struct kg_section *s, struct vm_state_config *c,
			 struct kg_err *e)
{
	if (s->kind != KG_SEC_VM_CONFIG)
		return kg_errk(e, KG_ERR_CORRUPT, "the first section is not the VM "
			       "configuration");
	memset(c, 0, sizeof(*c));
	return vm_state_get_table(r, s, &config_vs, c, NULL, e);
}

int vm_state_get_table(struct kg_stream_reader *r, const struct kg_section *s,
		       const struct vs_desc *d, void *obj, const void *ctx,
		       struct kg_err *e)
{
	uint8_t *buf = kg_section_read_all(r, s, e);
	if (!buf)
		return -1;
	int rc = decode(s, d, obj, ctx, buf, e);
	kg_section_free(r, buf, s->length);
	return rc;
}

bool vm_state_section(uint16_t kind)
{
	return kind == KG_SEC_IRQCHIP || kind == KG_SEC_VCPU ||
	       kind == KG_SEC_DEVICE || kind == KG_SEC_CLOCK;
}

static int decode(const struct kg_section *s, const struct vs_desc *d,
		  void *obj, const void *ctx, const uint8_t *buf,
		  struct kg_err *e)
{
	if (vs_decode(d, s->version, obj, ctx, buf, s->length, e) < 0) {
		char where[128];
		kg_section_where(where, sizeof(where), s);
		return kg_err_prefix(e, "%s", where);
	}
	return 0;
}

struct vm_state_stage *vm_state_stage_new(struct kg_err *e)
{
	struct vm_state_stage *st = calloc(1, sizeof(*st));
	if (!st)
		kg_errf(e, "out of memory");
	return st;
}

void vm_state_stage_clear(struct vm_state_stage *st)
{
	st->have_kvm = st->have_clock = false;
	st->cpus_seen = 0;
	for (unsigned i = 0; i < VM_MAX_DEVICES; i++)
		for (unsigned t = 0; t < VM_DEVICE_MAX_TABLES; t++)
			st->dev[i][t].seen = false;
}

void vm_state_stage_free(struct vm_state_stage *st)
{
	if (!st)
		return;
	for (unsigned i = 0; i < VM_MAX_DEVICES; i++)
		for (unsigned t = 0; t < VM_DEVICE_MAX_TABLES; t++)
			free(st->dev[i][t].buf);
	free(st);
}

/* The staging copy for vm->devices[i]'s table t, at its defaults. */
static void *dev_copy(struct vm_state_stage *st, const struct vm *vm,
		      unsigned i, unsigned t, struct kg_err *e)
{
	const struct vm_device_table *table = &vm->devices[i].ops->tables[t];
	struct vm_state_dev_copy *c = &st->dev[i][t];
	if (c->table != table) {
		free(c->buf);
		c->table = NULL;
		if (!(c->buf = malloc(table->size))) {
			kg_errf(e, "out of memory");
			return NULL;
		}
		c->table = table;
	}
	c->seen = false;
	memset(c->buf, 0, table->size);
	if (table->defaults)
		table->defaults(c->buf);
	return c->buf;
}

/* Whether a section is the interrupt controller of the other kind of VM:
 * KVM's in-kernel irqchip for a deterministic one, or the state of a
 * deterministic VM's own controller for one with an in-kernel irqchip. */
static int other_irqchip(const struct kg_section *s, const struct vm *vm,
			 const char *where, struct kg_err *e)
{
	unsigned t;
	const struct vm_device_ops *k =
		s->kind == KG_SEC_DEVICE ? vm_device_kind(s->instance, &t)
					 : NULL;
	if (s->kind == KG_SEC_IRQCHIP && vm->cfg.deterministic)
		return kg_errk(e, KG_ERR_CORRUPT, "%s: in-kernel irqchip state cannot be "
			       "restored into a deterministic VM (its "
			       "interrupt controller is a userspace device)",
			       where);
	if (k && k->irqchip && !vm->cfg.deterministic)
		return kg_errk(e, KG_ERR_CORRUPT, "%s: deterministic-mode %s state cannot be "
			       "restored into a VM with an in-kernel irqchip",
			       where, k->tables[t].vs->name);
	return 0;
}

int vm_state_stage_section(struct kg_stream_reader *r,
			   const struct kg_section *s, struct vm *vm,
			   struct vm_state_stage *st, struct kg_err *e)
{
	char where[128];
	kg_section_where(where, sizeof(where), s);
	if (s->kind == KG_SEC_VCPU && s->instance >= vm->ncpus)
		return kg_errk(e, KG_ERR_CORRUPT, "%s: this VM has %u vCPUs",
			       where, vm->ncpus);
	if (other_irqchip(s, vm, where, e) < 0)
		return -1;
	unsigned t = 0;
	const struct vm_device *d =
		s->kind == KG_SEC_DEVICE ? vm_device_find(vm, s->instance, &t)
					 : NULL;
	if (s->kind == KG_SEC_DEVICE && !d)
		return kg_errk(e, KG_ERR_CORRUPT, "%s: no such device in this VM",
			       where);
	if (s->kind == KG_SEC_CLOCK && s->length != 8)
		return kg_errk(e, KG_ERR_CORRUPT, "%s: bad length", where);
	uint8_t *buf = kg_section_read_all(r, s, e);
	if (!buf)
		return -1;
	int rc = 0;
	switch (s->kind) {
	case KG_SEC_IRQCHIP:
		memset(&st->kvm, 0, sizeof(st->kvm));
		rc = decode(s, &kvm_vs, &st->kvm, NULL, buf, e);
		st->have_kvm = rc == 0;
		break;
	case KG_SEC_VCPU:
		memset(&st->cpu[s->instance], 0, sizeof(st->cpu[0]));
		rc = decode(s, &cpu_vs, &st->cpu[s->instance], NULL, buf, e);
		if (rc == 0)
			st->cpus_seen |= 1ull << s->instance;
		break;
	case KG_SEC_CLOCK:
		memcpy(&st->guest_ns, buf, 8);
		st->have_clock = true;
		break;
	default: {
		/* A device's table, checked against this VM's RAM. */
		unsigned i = (unsigned)(d - vm->devices);
		void *copy = dev_copy(st, vm, i, t, e);
		rc = copy ? decode(s, d->ops->tables[t].vs, copy, &vm->mem, buf,
				   e)
			  : -1;
		st->dev[i][t].seen = rc == 0;
	}
	}
	kg_section_free(r, buf, s->length);
	return rc;
}

/* Whether a stream brought table t of vm->devices[i] (a copy staged for
 * another VM's device does not count). */
static bool staged(const struct vm_state_stage *st, const struct vm *vm,
		   unsigned i, unsigned t)
{
	const struct vm_state_dev_copy *c = &st->dev[i][t];
	return c->seen && c->table == &vm->devices[i].ops->tables[t];
}

int vm_state_complete(const struct vm *vm, const struct vm_state_stage *st,
		      struct kg_err *e)
{
	uint64_t cpus = vm->ncpus == 64 ? ~0ull : (1ull << vm->ncpus) - 1;
	bool kvm = vm->cfg.deterministic || st->have_kvm;
	unsigned tables = 0, seen = 0;
	const char *missing = NULL;
	for (unsigned i = 0; i < vm->ndevices; i++) {
		const struct vm_device_ops *o = vm->devices[i].ops;
		for (unsigned t = 0; t < o->ntables; t++, tables++) {
			if (staged(st, vm, i, t))
				seen++;
			else if (!missing && !o->optional)
				missing = o->tables[t].vs->name;
		}
	}
	if (!kvm || !st->have_clock || st->cpus_seen != cpus || missing)
		return kg_errk(e, KG_ERR_CORRUPT, "incomplete state: %d of %u vCPUs, %u of %u "
			       "device sections%s%s%s%s",
			       __builtin_popcountll(st->cpus_seen), vm->ncpus,
			       seen, tables,
			       st->have_clock ? "" : ", no clock",
			       kvm ? "" : ", no irqchip",
			       missing ? ", no " : "", missing ? missing : "");
	return 0;
}

int vm_state_apply(struct vm *vm, struct vm_state_stage *st, struct kg_err *e)
{
	if (vm_state_complete(vm, st, e) < 0)
		return -1;
	if (!vm->cfg.deterministic && vm_kvm_state_load(vm, &st->kvm, e) < 0)
		return -1;
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (cpu_state_load(&vm->vcpus[i], &st->cpu[i], e) < 0)
			return -1;
	if (!vm->cfg.deterministic && vm_kvm_clock_stopped(vm, e) < 0)
		return -1;
	/* A parked replica's devices are held already, and must not act
	 * on what the state says is pending until the VM is activated. */
	if (!vm->parked)
		vm_state_hold(vm);
	for (unsigned i = 0; i < vm->ndevices; i++) {
		const struct vm_device *d = &vm->devices[i];
		/* (only an optional device's table may be missing) */
		for (unsigned t = 0; t < d->ops->ntables; t++)
			if (staged(st, vm, i, t))
				vs_copy(d->ops->tables[t].vs,
					vm_device_state(d, t),
					st->dev[i][t].buf);
	}
	if (!vm->parked) {
		vm_state_release(vm);
		vm_devices_kick(vm);
	}
	/* The guest clock goes on from where it stopped. */
	vm->gate.clock_base_ns = kg_now_ns() - st->guest_ns;
	return 0;
}
