/*
 * PVH entry for kagami guests: 32-bit protected mode, paging off, %ebx =
 * hvm_start_info. Ring 0 is emulated ~1000x slower than ring 3 on the PVM
 * KVM we run on, so this path does the minimum — static page tables, GDT,
 * TSS with the I/O bitmap, IDT — and drops to ring 3, where the SDK and the
 * workload run natively.
 */
#define USER_CS 0x1b
#define USER_DS 0x23
#define TSS_SEL 0x28

	.section .note.Xen, "a"
	.align 4
	.long 4                 /* namesz */
	.long 4                 /* descsz */
	.long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_start32
	.align 4
	/* kagami's own note: this guest drops to ring 3 at once, so the
	 * host need not warn that its kernel would run emulated
	 * (abi/kagami_platform.h, KAGAMI_ELFNOTE_RING3). */
	.long 7                 /* namesz */
	.long 4                 /* descsz */
	.long 1                 /* KAGAMI_ELFNOTE_RING3 */
	.asciz "KAGAMI"
	.align 4
	.long 2                 /* the platform version it was built for */
	.align 4

	.section .text.entry, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	cli
	mov %ebx, %esi
	mov $pml4, %eax
	mov %eax, %cr3
	mov %cr4, %eax
	or $0x620, %eax         /* PAE | OSFXSR | OSXMMEXCPT */
	mov %eax, %cr4
	mov $0xc0000080, %ecx   /* EFER */
	rdmsr
	or $0x100, %eax         /* LME */
	wrmsr
	mov %cr0, %eax
	and $~0x4, %eax         /* EM off: SSE allowed */
	or $0x80000023, %eax    /* PG | NE | MP | PE */
	mov %eax, %cr0
	lgdt gdt_ptr
	ljmp $0x08, $start64

	.code64
start64:
	mov $0x10, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	xor %ax, %ax
	mov %ax, %fs
	mov %ax, %gs
	mov $kstack_top, %rsp
	mov %rsi, %rbx
	call sdk_setup_ring0    /* TSS descriptor, IDT */
	mov $TSS_SEL, %ax
	ltr %ax
	lidt idt_ptr
	pushq $USER_DS
	pushq $ustack_top - 8  /* as if called: the ABI wants rsp+8 aligned */
	pushq $0x2              /* RFLAGS: IF=0, IOPL=0; ports come from the TSS */
	pushq $USER_CS
	pushq $sdk_user_start
	mov %rbx, %rdi
	iretq

/* Exception stubs: push a dummy error code where the CPU does not. */
.macro VEC n, has_err
	.globl sdk_vec\n
sdk_vec\n:
	.if \has_err == 0
	pushq $0
	.endif
	pushq $\n
	jmp fault_common
.endm
	VEC 0,0; VEC 1,0; VEC 2,0; VEC 3,0; VEC 4,0; VEC 5,0; VEC 7,0

/* #UD: a fault report, except for the ud2 at sdk_irq_enable_trap, the
 * SDK's one ring-0 service (ring 3 cannot use `int n` under PVM: it
 * raises #UD). Stack: rip, cs, rflags, rsp, ss. */
	.globl sdk_vec6
sdk_vec6:
	cmpq $sdk_irq_enable_trap, (%rsp)
	je irq_enable
	pushq $0
	pushq $6
	jmp fault_common
	VEC 8,1; VEC 9,0; VEC 10,1; VEC 11,1; VEC 12,1; VEC 13,1; VEC 14,1; VEC 15,0
	VEC 16,0; VEC 17,1; VEC 18,0; VEC 19,0; VEC 20,0; VEC 21,1; VEC 22,0; VEC 23,0
	VEC 24,0; VEC 25,0; VEC 26,0; VEC 27,0; VEC 28,0; VEC 29,1; VEC 30,1; VEC 31,0

	.section .data
	.globl sdk_vec_table
sdk_vec_table:
	.irp n,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad sdk_vec\n
	.endr

/* The timer interrupt (sdk_irq_enable_timer, sdk.h). IRQ 0 on
 * SDK_TIMER_VECTOR: counts a tick, non-specific EOI to the master 8259A,
 * back. Ring 0 is emulated (slow): three instructions and the port write.
 * Only %rax is clobbered; nothing here touches the flags iretq restores. */
	.section .text
	.globl sdk_timer_isr
sdk_timer_isr:
	push %rax
	incq sdk_ticks
	mov $0x20, %al
	outb %al, $0x20
	pop %rax
	iretq

/* IRQ 7's vector: the 8259A's spurious interrupt (a request that vanished
 * before INTA). It sets no ISR bit, so it takes no EOI. */
	.globl sdk_spurious_isr
sdk_spurious_isr:
	incq sdk_spurious
	iretq

/* The one ring-0 service ring 3 can call (sdk_irq_enable_timer): the ud2
 * at sdk_irq_enable_trap, %edi = the PIT reload count. Programs the PICs
 * and the PIT (sdk_irq_setup, ring0.c), then returns past the ud2 with IF
 * set in the RFLAGS the iretq restores: from then on ring 3 runs with
 * interrupts on. The stack is 16-byte aligned at the call (5 words from
 * the CPU, 9 pushed). */
irq_enable:
	push %rax; push %rcx; push %rdx; push %rsi; push %rdi
	push %r8; push %r9; push %r10; push %r11
	call sdk_irq_setup
	pop %r11; pop %r10; pop %r9; pop %r8
	pop %rdi; pop %rsi; pop %rdx; pop %rcx; pop %rax
	addq $2, (%rsp)         /* past the ud2 */
	orq $0x200, 16(%rsp)    /* the caller's RFLAGS: IF */
	iretq

/* Ring 3: void sdk_irq_enable_trap(uint32_t count). */
	.globl sdk_irq_enable_trap
sdk_irq_enable_trap:
	ud2
	ret

	.section .data
	.align 8
	.globl sdk_ticks, sdk_spurious
sdk_ticks:
	.quad 0
sdk_spurious:
	.quad 0

	.section .text
/* Stack on entry: vector, error, rip, cs, rflags, rsp, ss. Builds a
 * struct kagami_fault_frame below it and calls sdk_fault(frame). */
fault_common:
	push %r15; push %r14; push %r13; push %r12; push %r11; push %r10; push %r9; push %r8
	push %rbp; push %rdi; push %rsi; push %rdx; push %rcx; push %rbx; push %rax
	/* now: rax..r15 (15), vector, error, rip, cs, rflags, rsp, ss */
	mov %rsp, %rbx
	sub $(25*8), %rsp
	and $~0xf, %rsp
	mov %rsp, %rdi
	movabs $0x544c554146474b, %rax
	mov %rax, 0(%rdi)
	mov 15*8(%rbx), %rax; mov %rax, 1*8(%rdi)   /* vector */
	mov 16*8(%rbx), %rax; mov %rax, 2*8(%rdi)   /* error */
	mov %cr2, %rax;       mov %rax, 3*8(%rdi)
	mov 17*8(%rbx), %rax; mov %rax, 4*8(%rdi)   /* rip */
	mov 18*8(%rbx), %rax; mov %rax, 5*8(%rdi)   /* cs */
	mov 19*8(%rbx), %rax; mov %rax, 6*8(%rdi)   /* rflags */
	mov 20*8(%rbx), %rax; mov %rax, 7*8(%rdi)   /* rsp */
	mov 21*8(%rbx), %rax; mov %rax, 8*8(%rdi)   /* ss */
	xor %ecx, %ecx
1:	mov (%rbx,%rcx,8), %rax
	mov %rax, 9*8(%rdi,%rcx,8)
	inc %ecx
	cmp $15, %ecx
	jne 1b
	call sdk_fault
2:	hlt
	jmp 2b

/* Static identity map of the first 4 GiB with 2 MiB user-accessible pages:
 * no ring-0 loop builds it. */
	.section .data
	.align 4096
	.globl pml4
pml4:
	.quad pdpt + 0x7
	.fill 511, 8, 0
	.align 4096
pdpt:
	.quad pd + 0x7
	.quad pd + 0x1000 + 0x7
	.quad pd + 0x2000 + 0x7
	.quad pd + 0x3000 + 0x7
	.fill 508, 8, 0
	.align 4096
pd:
	.set i, 0
	.rept 2048
	.quad (i << 21) | 0x87  /* P | RW | US | PS */
	.set i, i + 1
	.endr

	.align 16
	.globl sdk_gdt
sdk_gdt:
	.quad 0
	.quad 0x00af9a000000ffff    /* 0x08 kernel code 64 */
	.quad 0x00cf92000000ffff    /* 0x10 kernel data */
	.quad 0x00affa000000ffff    /* 0x18 user code 64 */
	.quad 0x00cff2000000ffff    /* 0x20 user data */
	.quad 0, 0                  /* 0x28 TSS, filled by sdk_setup_ring0 */
sdk_gdt_end:
gdt_ptr:
	.word sdk_gdt_end - sdk_gdt - 1
	.quad sdk_gdt
	.globl idt_ptr
idt_ptr:
	.word 256 * 16 - 1      /* vectors 32-255 not present, bar the SDK's */
	.quad sdk_idt

	.section .bss
	.align 4096
	.globl sdk_idt
sdk_idt:
	.skip 256 * 16
	.align 16
kstack:
	.skip 16384
	.globl kstack_top
kstack_top:
	.align 16
ustack:
	.skip 65536
ustack_top:

	.section .note.GNU-stack, "", @progbits
