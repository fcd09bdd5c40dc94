#include "cpuid.h"

#include <stdlib.h>
#include <string.h>

#define KVM_SIGNATURE_LEAF 0x40000000u
#define KVM_FEATURES_LEAF 0x40000001u
/* KVM paravirtual features kagami saves and restores (linux/kvm_para.h
 * numbering): CLOCKSOURCE, NOP_IO_DELAY, CLOCKSOURCE2, PV_EOI and the
 * clocksource stable bit. Async page faults, steal time, PV TLB flush,
 * PV IPIs and PV spinlocks are left out until their state travels with
 * the VM. */
#define KVM_FEATURES_KEPT ((1u << 0) | (1u << 1) | (1u << 3) | (1u << 6) | \
			   (1u << 24))

struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t function,
				    uint32_t index)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function == function &&
		    (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) ||
		     e->index == index))
			return e;
	}
	return NULL;
}

static uint32_t reg_of(const struct kvm_cpuid_entry2 *e, char r)
{
	return r == 'a' ? e->eax : r == 'b' ? e->ebx : r == 'c' ? e->ecx
								 : e->edx;
}

static unsigned bits_for(unsigned n)
{
	unsigned b = 0;
	while ((1u << b) < n)
		b++;
	return b;
}

/* What needs XSAVE, hidden with it when XSETBV does not reach KVM. */
static const struct {
	uint32_t leaf, index;
	char reg;
	uint32_t bits;
} xsave_users[] = {
	/* XSAVE, OSXSAVE, AVX, FMA, F16C */
	{ 1, 0, 'c', (1u << 26) | (1u << 27) | (1u << 28) | (1u << 12) |
			     (1u << 29) },
	/* AVX2, AVX-512 F/DQ/IFMA/PF/ER/CD/BW/VL */
	{ 7, 0, 'b', (1u << 5) | (1u << 16) | (1u << 17) | (1u << 21) |
			     (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) |
			     (1u << 31) },
	/* AVX512VBMI, PKU, OSPKE, VBMI2, VAES, VPCLMULQDQ, VNNI, BITALG,
	 * VPOPCNTDQ */
	{ 7, 0, 'c', (1u << 1) | (1u << 3) | (1u << 4) | (1u << 6) |
			     (1u << 9) | (1u << 10) | (1u << 11) | (1u << 12) |
			     (1u << 14) },
	/* AVX512 4VNNIW/4FMAPS, VP2INTERSECT, AMX, AVX512-FP16 */
	{ 7, 0, 'd', (1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) |
			     (1u << 23) | (1u << 24) | (1u << 25) },
	{ 7, 1, 'a', (1u << 4) | (1u << 5) }, /* AVX-VNNI, AVX512-BF16 */
	{ 0x80000001, 0, 'c', (1u << 11) | (1u << 16) }, /* XOP, FMA4 */
};

static void clear_bits(struct kvm_cpuid_entry2 *e, char reg, uint32_t bits)
{
	uint32_t *r = reg == 'a' ? &e->eax : reg == 'b' ? &e->ebx
			: reg == 'c' ? &e->ecx : &e->edx;
	*r &= ~bits;
}

static void hide_xsave(struct kvm_cpuid2 *c)
{
	for (size_t i = 0; i < sizeof(xsave_users) / sizeof(xsave_users[0]); i++) {
		struct kvm_cpuid_entry2 *e = cpuid_find(c, xsave_users[i].leaf,
							xsave_users[i].index);
		if (e)
			clear_bits(e, xsave_users[i].reg, xsave_users[i].bits);
	}
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == 0xd) {
			struct kvm_cpuid_entry2 *e = &c->entries[i];
			e->eax = e->ebx = e->ecx = e->edx = 0;
		}
}

/* Adds (function, index) with significant index if it is missing; c has
 * room (cpuid_for_vcpu allocates it). */
static void ensure_entry(struct kvm_cpuid2 *c, uint32_t function,
			 uint32_t index)
{
	if (cpuid_find(c, function, index))
		return;
	c->entries[c->nent++] = (struct kvm_cpuid_entry2){
		.function = function, .index = index,
		.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
	};
}

static void topology_leaf(struct kvm_cpuid_entry2 *e, unsigned id,
			  unsigned ncpus)
{
	e->edx = id;
	switch (e->index) {
	case 0: /* SMT: one thread per core */
		e->eax = 0;
		e->ebx = 1;
		e->ecx = 0 | 1u << 8;
		break;
	case 1: /* cores: every vCPU */
		e->eax = bits_for(ncpus);
		e->ebx = ncpus;
		e->ecx = 1 | 2u << 8;
		break;
	default:
		e->eax = e->ebx = 0;
		e->ecx = e->index; /* level type 0: no more levels */
	}
}

static unsigned next_pow2(unsigned n)
{
	unsigned p = 1;
	while (p < n)
		p <<= 1;
	return p;
}

#define EXTRA_ENTRIES 6

struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *supported,
				  unsigned vcpu_id, unsigned ncpus,
				  unsigned flags, struct kg_err *e)
{
	size_t n = supported->nent + EXTRA_ENTRIES;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
	if (!c) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	c->nent = supported->nent;
	memcpy(c->entries, supported->entries,
	       supported->nent * sizeof(c->entries[0]));
	struct kvm_cpuid_entry2 *l0 = cpuid_find(c, 0, 0);
	uint32_t max_basic = l0 ? l0->eax : 0;
	/* The topology leaves Linux reads, whether or not KVM fills them. */
	for (uint32_t leaf = 0xb; leaf <= 0x1f; leaf += 0x1f - 0xb)
		if (max_basic >= leaf) {
			ensure_entry(c, leaf, 0);
			ensure_entry(c, leaf, 1);
			ensure_entry(c, leaf, 2);
		}
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *ent = &c->entries[i];
		switch (ent->function) {
		case 1:
			ent->ebx = (ent->ebx & 0x0000ffffu) | vcpu_id << 24 |
				   (next_pow2(ncpus) & 0xff) << 16;
			if (ncpus > 1)
				ent->edx |= 1u << 28; /* HTT: the count is valid */
			else
				ent->edx &= ~(1u << 28);
			ent->ecx |= 1u << 31; /* running under a hypervisor */
			ent->ecx &= ~((1u << 5) | (1u << 15)); /* VMX, PDCM */
			if (flags & CPUID_TSC_DEADLINE)
				ent->ecx |= 1u << 24;
			break;
		case 4:
			if ((ent->eax & 0x1f) != 0) /* a cache, not the end */
				ent->eax = (ent->eax & 0x03ffffffu) |
					   (ncpus - 1) << 26;
			break;
		case 0xb:
		case 0x1f:
			topology_leaf(ent, vcpu_id, ncpus);
			break;
		case 0x80000001:
			ent->ecx &= ~(1u << 2); /* SVM: no nesting */
			break;
		case 0x80000008:
			ent->ecx = (ent->ecx & ~0xf0ffu) | (ncpus - 1) |
				   bits_for(ncpus) << 12;
			break;
		case 0x8000001e:
			ent->eax = vcpu_id;             /* extended APIC id */
			ent->ebx = vcpu_id & 0xff;      /* core id, 1 thread */
			ent->ecx = 0;                   /* node 0 */
			break;
		case KVM_SIGNATURE_LEAF:
			ent->eax = KVM_FEATURES_LEAF;
			break;
		case KVM_FEATURES_LEAF:
			ent->eax &= KVM_FEATURES_KEPT;
			ent->edx = 0; /* no realtime hints */
			break;
		}
	}
	if (flags & CPUID_NO_XSAVE)
		hide_xsave(c);
	return c;
}

/* Feature registers compared between hosts, with names for the bits
 * users meet; others are named by number. */
static const struct {
	uint32_t leaf, index;
	char reg;
} feature_regs[] = {
	{ 1, 0, 'c' }, { 1, 0, 'd' }, { 7, 0, 'b' }, { 7, 0, 'c' },
	{ 7, 0, 'd' }, { 0xd, 0, 'a' }, { 0xd, 1, 'a' },
	{ 0x80000001, 0, 'c' }, { 0x80000001, 0, 'd' },
	{ KVM_FEATURES_LEAF, 0, 'a' },
};

static const struct {
	uint32_t leaf;
	char reg;
	unsigned bit;
	const char *name;
} bit_names[] = {
	{ 1, 'c', 0, "sse3" }, { 1, 'c', 9, "ssse3" }, { 1, 'c', 12, "fma" },
	{ 1, 'c', 19, "sse4.1" }, { 1, 'c', 20, "sse4.2" },
	{ 1, 'c', 21, "x2apic" }, { 1, 'c', 22, "movbe" },
	{ 1, 'c', 23, "popcnt" }, { 1, 'c', 24, "tsc-deadline" },
	{ 1, 'c', 25, "aes" }, { 1, 'c', 26, "xsave" }, { 1, 'c', 28, "avx" },
	{ 1, 'c', 29, "f16c" }, { 1, 'c', 30, "rdrand" },
	{ 1, 'd', 25, "sse" }, { 1, 'd', 26, "sse2" },
	{ 7, 'b', 3, "bmi1" }, { 7, 'b', 5, "avx2" }, { 7, 'b', 8, "bmi2" },
	{ 7, 'b', 9, "erms" }, { 7, 'b', 16, "avx512f" },
	{ 7, 'b', 18, "rdseed" }, { 7, 'b', 19, "adx" }, { 7, 'b', 29, "sha" },
	{ 7, 'c', 3, "pku" }, { 7, 'c', 22, "rdpid" },
	{ 0x80000001, 'c', 5, "abm" }, { 0x80000001, 'd', 20, "nx" },
	{ 0x80000001, 'd', 26, "pdpe1gb" }, { 0x80000001, 'd', 27, "rdtscp" },
	{ 0x80000001, 'd', 29, "lm" },
	{ KVM_FEATURES_LEAF, 'a', 0, "kvmclock" },
	{ KVM_FEATURES_LEAF, 'a', 1, "kvm-nop-io-delay" },
	{ KVM_FEATURES_LEAF, 'a', 3, "kvmclock2" },
	{ KVM_FEATURES_LEAF, 'a', 6, "kvm-pv-eoi" },
	{ KVM_FEATURES_LEAF, 'a', 24, "kvmclock-stable" },
};

static const char *bit_name(uint32_t leaf, char reg, unsigned bit)
{
	for (size_t i = 0; i < sizeof(bit_names) / sizeof(bit_names[0]); i++)
		if (bit_names[i].leaf == leaf && bit_names[i].reg == reg &&
		    bit_names[i].bit == bit)
			return bit_names[i].name;
	return NULL;
}

int cpuid_check_target(const struct kvm_cpuid2 *want,
		       const struct kvm_cpuid2 *have, struct kg_err *e)
{
	for (size_t r = 0; r < sizeof(feature_regs) / sizeof(feature_regs[0]); r++) {
		const struct kvm_cpuid_entry2 *w =
			cpuid_find((struct kvm_cpuid2 *)want, feature_regs[r].leaf,
				   feature_regs[r].index);
		const struct kvm_cpuid_entry2 *h =
			cpuid_find((struct kvm_cpuid2 *)have, feature_regs[r].leaf,
				   feature_regs[r].index);
		uint32_t wv = w ? reg_of(w, feature_regs[r].reg) : 0;
		uint32_t hv = h ? reg_of(h, feature_regs[r].reg) : 0;
		/* Bits a VMM sets itself are not host features. */
		if (feature_regs[r].leaf == 1 && feature_regs[r].reg == 'c')
			wv &= ~((1u << 31) | (1u << 27)); /* hypervisor, OSXSAVE */
		if (feature_regs[r].leaf == 1 && feature_regs[r].reg == 'd')
			wv &= ~(1u << 28); /* HTT: the VM's shape */
		uint32_t missing = wv & ~hv;
		if (!missing)
			continue;
		unsigned bit = (unsigned)__builtin_ctz(missing);
		const char *name = bit_name(feature_regs[r].leaf,
					    feature_regs[r].reg, bit);
		return kg_errf(e, "the target lacks CPU feature %s (CPUID 0x%x "
			       "%c%cX bit %u)", name ? name : "?",
			       feature_regs[r].leaf, 'E',
			       feature_regs[r].reg - 'a' + 'A', bit);
	}
	return 0;
}
