#include "cpuid.h"

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

/* XSAVE user components and the CPUID feature each needs. */
static const struct {
	unsigned component;
	uint32_t leaf, index;
	char reg; /* 'b', 'c', 'd' */
	unsigned bit;
} xsave_needs[] = {
	{ 2, 1, 0, 'c', 28 },  /* AVX */
	{ 3, 7, 0, 'b', 14 },  /* MPX bounds */
	{ 4, 7, 0, 'b', 14 },  /* MPX CSR */
	{ 5, 7, 0, 'b', 16 },  /* AVX-512 opmask */
	{ 6, 7, 0, 'b', 16 },  /* AVX-512 upper ZMM0-15 */
	{ 7, 7, 0, 'b', 16 },  /* AVX-512 ZMM16-31 */
	{ 9, 7, 0, 'c', 3 },   /* PKRU */
};
#define XSAVE_LEGACY 0x3ull          /* x87, SSE */
#define XSAVE_LEGACY_SIZE (512 + 64) /* legacy area + header */

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

static void xsave_policy(struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 *d0 = cpuid_find(c, 0xd, 0);
	if (!d0)
		return;
	uint64_t xcr0 = (uint64_t)d0->edx << 32 | d0->eax;
	uint64_t keep = XSAVE_LEGACY & xcr0;
	for (size_t i = 0; i < sizeof(xsave_needs) / sizeof(xsave_needs[0]); i++) {
		struct kvm_cpuid_entry2 *f = cpuid_find(c, xsave_needs[i].leaf,
							xsave_needs[i].index);
		unsigned comp = xsave_needs[i].component;
		if ((xcr0 >> comp & 1) && f &&
		    (reg_of(f, xsave_needs[i].reg) >> xsave_needs[i].bit & 1))
			keep |= 1ull << comp;
	}
	uint32_t max = XSAVE_LEGACY_SIZE;
	for (unsigned comp = 2; comp < 64; comp++) {
		if (!(xcr0 >> comp & 1))
			continue;
		struct kvm_cpuid_entry2 *s = cpuid_find(c, 0xd, comp);
		if (!s || s->index != comp)
			continue;
		if (!(keep >> comp & 1)) {
			s->eax = s->ebx = s->ecx = s->edx = 0;
			continue;
		}
		if (s->ebx + s->eax > max)
			max = s->ebx + s->eax;
	}
	d0->eax = (uint32_t)keep;
	d0->edx = (uint32_t)(keep >> 32);
	d0->ebx = XSAVE_LEGACY_SIZE; /* for XCR0 at reset; KVM tracks xsetbv */
	d0->ecx = max;
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

void cpuid_apply_policy(struct kvm_cpuid2 *c, unsigned vcpu_id,
			unsigned ncpus)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 1:
			e->ebx = (e->ebx & 0x0000ffffu) | vcpu_id << 24 |
				 (ncpus & 0xff) << 16;
			if (ncpus > 1)
				e->edx |= 1u << 28; /* HTT: ncpus is valid */
			else
				e->edx &= ~(1u << 28);
			e->ecx |= 1u << 31; /* running under a hypervisor */
			break;
		case 4:
			if ((e->eax & 0x1f) != 0) /* a cache, not the end */
				e->eax = (e->eax & 0x03ffffffu) |
					 (ncpus - 1) << 26;
			break;
		case 0xb:
		case 0x1f:
			topology_leaf(e, vcpu_id, ncpus);
			break;
		case 0x80000008:
			e->ecx = (e->ecx & ~0xf0ffu) | (ncpus - 1) |
				 bits_for(ncpus) << 12;
			break;
		case 0x8000001e:
			e->eax = vcpu_id;             /* extended APIC id */
			e->ebx = vcpu_id & 0xff;      /* core id, 1 thread */
			e->ecx = 0;                   /* node 0 */
			break;
		case KVM_SIGNATURE_LEAF:
			e->eax = KVM_FEATURES_LEAF;
			break;
		case KVM_FEATURES_LEAF:
			e->eax &= KVM_FEATURES_KEPT;
			e->edx = 0; /* no realtime hints */
			break;
		}
	}
	xsave_policy(c);
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
