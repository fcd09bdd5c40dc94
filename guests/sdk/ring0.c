/*
 * The little the SDK does in ring 0: the TSS (with the I/O bitmap that
 * grants ring 3 its ports), the IDT, the exception report, and the timer
 * interrupt setup (sdk_irq_enable_timer). Everything
 * here runs emulated, so it stays short and loop-free where it can.
 */
/* Ring 0 runs under KVM's instruction emulator here, which has no SSE. */
#pragma GCC target("general-regs-only")
#include "sdk.h"

struct __attribute__((packed)) tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
	uint8_t iomap[65536 / 8 + 1];
};

/* A clear bit grants the port. Byte index = port / 8. */
#define GRANT_BYTE(port) [(port) / 8]
extern char kstack_top[];
extern uint64_t sdk_gdt[];
extern uint8_t sdk_idt[];
extern uint64_t sdk_vec_table[32];

/* The grants below cover the kagami device in whole bytes of the bitmap. */
_Static_assert(KAGAMI_PORT_BASE % 8 == 0 && KAGAMI_PORT_COUNT == 5 * 8,
	       "grant the kagami device's ports in the TSS I/O bitmap");

/* Deny everything, then grant: the overrides are the point. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
static struct tss64 tss __attribute__((aligned(16))) = {
	.rsp = { (uint64_t)kstack_top, 0, 0 },
	.iomap_base = __builtin_offsetof(struct tss64, iomap),
	.iomap = {
		[0 ... 65536 / 8] = 0xff,
		GRANT_BYTE(KAGAMI_COM1_PORT) = 0x00,             /* 0x3f8-0x3ff */
		GRANT_BYTE(KAGAMI_DEBUG_EXIT_PORT) = 0x0f,       /* 0xf4-0xf7 */
		GRANT_BYTE(KAGAMI_PORT_BASE) = 0x00,             /* 0xee0-0xf07 */
		GRANT_BYTE(KAGAMI_PORT_BASE + 8) = 0x00,
		GRANT_BYTE(KAGAMI_PORT_BASE + 16) = 0x00,
		GRANT_BYTE(KAGAMI_PORT_BASE + 24) = 0x00,
		GRANT_BYTE(KAGAMI_PORT_BASE + 32) = 0x00,
		GRANT_BYTE(KAGAMI_RESET_PORT) = 0xfd,            /* 0xcf9 */
	},
};
#pragma GCC diagnostic pop

/* entry.S: the timer and spurious IRQ stubs (sdk_irq_enable_timer). */
extern char sdk_timer_isr[], sdk_spurious_isr[];

/* An interrupt gate (IF cleared on entry), selector 0x08, DPL `dpl`. */
static void set_gate(unsigned v, uint64_t h, unsigned dpl)
{
	uint64_t *g = (uint64_t *)(sdk_idt + 16 * v);
	g[0] = (h & 0xffff) | (0x08ull << 16) |
	       ((0x8eull | ((uint64_t)dpl << 5)) << 40) |
	       (((h >> 16) & 0xffff) << 48);
	g[1] = h >> 32;
}

void sdk_setup_ring0(void);
void sdk_setup_ring0(void)
{
	uint64_t base = (uint64_t)&tss, limit = sizeof(tss) - 1;

	sdk_gdt[5] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
		     (0x89ull << 40) | (((limit >> 16) & 0xf) << 48) |
		     (((base >> 24) & 0xff) << 56);
	sdk_gdt[6] = base >> 32;
	for (int v = 0; v < 32; v++)
		set_gate((unsigned)v, sdk_vec_table[v], 0);
	/* Inert until a guest calls sdk_irq_enable_timer: the PICs stay
	 * masked and IF clear in ring 3 until then. */
	set_gate(SDK_TIMER_VECTOR, (uint64_t)sdk_timer_isr, 0);
	set_gate(SDK_TIMER_VECTOR + 7, (uint64_t)sdk_spurious_isr, 0);
}

/* From sdk_irq_enable_trap's ud2 (entry.S), IF clear: both 8259As
 * initialised (edge triggered, cascade on IR2, 8086 mode, normal EOI) with
 * vectors SDK_TIMER_VECTOR and SDK_TIMER_VECTOR + 8, only IRQ 0 unmasked;
 * PIT counter 0 in mode 2 (rate generator) with reload `count` (0: 65536).
 * The caller's IF is set on the way back. */
void sdk_irq_setup(uint32_t count);
void sdk_irq_setup(uint32_t count)
{
	sdk_outb(0x21, 0xff); /* mask while reprogramming */
	sdk_outb(0xa1, 0xff);
	sdk_outb(0x20, 0x11); /* ICW1: edge, cascade, ICW4 follows */
	sdk_outb(0xa0, 0x11);
	sdk_outb(0x21, SDK_TIMER_VECTOR);     /* ICW2: vector base */
	sdk_outb(0xa1, SDK_TIMER_VECTOR + 8);
	sdk_outb(0x21, 0x04); /* ICW3: a slave on IR2 */
	sdk_outb(0xa1, 0x02); /* ICW3: slave id 2 */
	sdk_outb(0x21, 0x01); /* ICW4: 8086 mode, normal EOI */
	sdk_outb(0xa1, 0x01);
	sdk_outb(0x43, 0x34); /* counter 0, lobyte then hibyte, mode 2 */
	sdk_outb(0x40, (uint8_t)count);
	sdk_outb(0x40, (uint8_t)(count >> 8));
	sdk_outb(0xa1, 0xff); /* OCW1: only IRQ 0 */
	sdk_outb(0x21, 0xfe);
}

static void ring0_puts(const char *s)
{
	while (*s)
		sdk_outb(KAGAMI_COM1_PORT, (uint8_t)*s++);
}

static void ring0_hex(const char *name, uint64_t v)
{
	char buf[32];
	int i = 0;
	while (*name)
		buf[i++] = *name++;
	buf[i++] = '=';
	for (int s = 60; s >= 0; s -= 4)
		buf[i++] = "0123456789abcdef"[(v >> s) & 0xf];
	buf[i++] = ' ';
	buf[i] = 0;
	ring0_puts(buf);
}

void sdk_fault(struct kagami_fault_frame *f);
/* kagami stops the VM at the report port write; the console report and the
 * debug-exit write below are for hosts without the kagami device (QEMU). */
void sdk_fault(struct kagami_fault_frame *f)
{
	sdk_outl(KAGAMI_PORT_FAULT, (uint32_t)(uintptr_t)f);
	ring0_puts("\nguest fault: ");
	ring0_hex("vector", f->vector);
	ring0_hex("error", f->error_code);
	ring0_hex("rip", f->rip);
	ring0_hex("cr2", f->cr2);
	ring0_hex("rsp", f->rsp);
	ring0_puts("\n");
	sdk_outl(KAGAMI_DEBUG_EXIT_PORT, KAGAMI_EXIT_GUEST_CRASH);
}
