#include "cpuid_state.h"

#include <stdlib.h>

#include "vm_state.h"
#include "base/vmstate.h"
#include "vmm/cpuid.h"
#include "vmm/vm.h"

/* KVM reports about 50 entries on today's hosts; the policy adds a few. */
#define CPUID_STATE_MAX 160

struct cpuid_ent {
	uint32_t function, index, flags, eax, ebx, ecx, edx;
};

struct cpuid_image {
	uint32_t nent;
	struct cpuid_ent ent[CPUID_STATE_MAX];
};

#define ENT(f) VS_STRUCT_ARRAY(struct cpuid_image, ent, CPUID_STATE_MAX, \
			       struct cpuid_ent, f, VS_U32, "ent." #f)
static const struct vs_field cpuid_fields[] = {
	VS_FIELD_MAX(struct cpuid_image, nent, VS_U32, CPUID_STATE_MAX),
	ENT(function), ENT(index), ENT(flags),
	ENT(eax), ENT(ebx), ENT(ecx), ENT(edx),
};
static const struct vs_desc cpuid_vs = { "cpuid", 1, VS_TABLE(cpuid_fields),
					 NULL };

static struct kvm_cpuid2 *vcpu0_cpuid(const struct vm *vm, struct kg_err *e)
{
	if (!vm->cpuid)
		return kg_errf(e, "the VM has no CPUID"), NULL;
	return cpuid_for_vcpu(vm->cpuid, 0, vm->ncpus, vm->cpuid_flags, e);
}

int cpuid_state_write(struct kg_stream_writer *w, const struct vm *vm,
		      struct kg_err *e)
{
	struct kvm_cpuid2 *c = vcpu0_cpuid(vm, e);
	if (!c)
		return -1;
	struct cpuid_image *img = calloc(1, sizeof(*img));
	int rc = -1;
	if (!img) {
		kg_errk(e, KG_ERR_NOMEM, "out of memory");
		goto out;
	}
	img->nent = c->nent < CPUID_STATE_MAX ? c->nent : CPUID_STATE_MAX;
	for (uint32_t i = 0; i < img->nent; i++) {
		const struct kvm_cpuid_entry2 *k = &c->entries[i];
		img->ent[i] = (struct cpuid_ent){ k->function, k->index,
						  k->flags, k->eax, k->ebx,
						  k->ecx, k->edx };
	}
	rc = vm_state_put_table(w, KG_SEC_CPUID, 0, &cpuid_vs, img, e);
out:
	free(img);
	free(c);
	return rc;
}

int cpuid_state_check(struct kg_stream_reader *r, const struct kg_section *s,
		      const struct vm *vm, struct kg_err *e)
{
	struct cpuid_image *img = calloc(1, sizeof(*img));
	struct kvm_cpuid2 *want = calloc(1, sizeof(*want) + CPUID_STATE_MAX *
						     sizeof(want->entries[0]));
	struct kvm_cpuid2 *have = NULL;
	int rc = -1;
	if (!img || !want) {
		kg_errk(e, KG_ERR_NOMEM, "out of memory");
		goto out;
	}
	if (vm_state_get_table(r, s, &cpuid_vs, img, NULL, e) < 0)
		goto out;
	want->nent = img->nent;
	for (uint32_t i = 0; i < img->nent; i++) {
		const struct cpuid_ent *c = &img->ent[i];
		want->entries[i] = (struct kvm_cpuid_entry2){
			.function = c->function, .index = c->index,
			.flags = c->flags, .eax = c->eax, .ebx = c->ebx,
			.ecx = c->ecx, .edx = c->edx };
	}
	if (!(have = vcpu0_cpuid(vm, e)))
		goto out;
	if (cpuid_check_target(want, have, e) < 0) {
		kg_err_as(e, KG_ERR_INVALID);
		kg_err_prefix(e, "the guest's CPU at the source does not fit "
			      "this host");
		goto out;
	}
	rc = 0;
out:
	free(have);
	free(want);
	free(img);
	return rc;
}
