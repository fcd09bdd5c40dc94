/*
 * kagami_platform.h — the guest-visible platform of a kagami VM.
 *
 * Self-contained (no includes) and shared verbatim by the host (vmm/) and the
 * guest SDK (guests/sdk/), so the two can never disagree. Bump
 * KAGAMI_PLATFORM_VERSION on any change; the guest can read the version the
 * host implements from KAGAMI_PORT_VERSION. Versions only add ports: a guest
 * built for version N runs on a host of version >= N.
 *
 * Version 3 adds what unmodified kernels need (Linux): ACPI tables
 * (hardware-reduced: RSDP, XSDT, FADT, MADT, DSDT at KAGAMI_ACPI_GPA, the
 * RSDP address also in hvm_start_info and the Linux zero page), the ACPI
 * sleep control/status ports, a CMOS RTC at 0x70/0x71, and virtio-mmio
 * interrupts on IOAPIC pins KAGAMI_VIRTIO_GSI_BASE + slot for VMs with
 * KVM's in-kernel irqchip (deterministic VMs keep their 8259 lines
 * KAGAMI_VIRTIO_IRQ_BASE + slot). All but the RTC are absent from
 * deterministic VMs, which have no LAPIC or IOAPIC.
 *
 * Version 2 adds KAGAMI_PORT_MODE and KAGAMI_PORT_IDLE (the device range
 * grows from 0x20 to 0x28 ports). A version 1 host has neither: a guest
 * checks KAGAMI_PORT_VERSION >= 2 before trusting MODE (under QEMU, or past
 * the end of a version 1 device, a read returns ~0, which would look like
 * every mode bit set).
 *
 * Ports (all little-endian, 32-bit accesses unless noted):
 *   0x3f8-0x3ff  COM1 16550 UART (IRQ 4), byte accesses
 *   0x0f4        isa-debug-exit layout: a write ends the VM. kagami exits with
 *                the value written (& 0xff); QEMU exits with (value << 1) | 1.
 *   0xcf9        PC reset control: writing 0x06 or 0x0e resets the VM
 *                (also the FADT's reset register).
 *   0x070-0x071  CMOS RTC (MC146818): index, data.
 *   0x600        ACPI sleep control (FADT): SLP_EN | SLP_TYP 5 powers off.
 *   0x601        ACPI sleep status (reads 0).
 *   0xee0-0xf07  the kagami device: identity, clock, power, fault report,
 *                console, mode, idle.
 *
 * Guest-physical memory: RAM from 0 up to min(mem, 3 GiB), the rest of RAM
 * from 4 GiB; the PVH start_info memory map is authoritative. The range
 * [KAGAMI_MMIO_BASE, 4 GiB) is reserved for MMIO devices.
 */
#ifndef KAGAMI_PLATFORM_H
#define KAGAMI_PLATFORM_H

#define KAGAMI_PLATFORM_VERSION 3u

#define KAGAMI_COM1_PORT 0x3f8u
#define KAGAMI_COM1_IRQ 4u
#define KAGAMI_DEBUG_EXIT_PORT 0xf4u
#define KAGAMI_RESET_PORT 0xcf9u

#define KAGAMI_PORT_BASE 0xee0u
#define KAGAMI_PORT_COUNT 0x28u
/* R: KAGAMI_DEVICE_MAGIC when running under kagami (QEMU reads ~0). */
#define KAGAMI_PORT_MAGIC (KAGAMI_PORT_BASE + 0x00u)
/* R: KAGAMI_PLATFORM_VERSION implemented by the host. */
#define KAGAMI_PORT_VERSION (KAGAMI_PORT_BASE + 0x04u)
/* R: monotonic guest clock in ns, low 32 bits; the read latches the high
 * half so that CLOCK_LO then CLOCK_HI is one consistent 64-bit value. */
#define KAGAMI_PORT_CLOCK_LO (KAGAMI_PORT_BASE + 0x08u)
/* R: high 32 bits latched by the last CLOCK_LO read. */
#define KAGAMI_PORT_CLOCK_HI (KAGAMI_PORT_BASE + 0x0cu)
/* R: number of resets since the VM was created (0 on first boot). */
#define KAGAMI_PORT_BOOT_COUNT (KAGAMI_PORT_BASE + 0x10u)
/* W: KAGAMI_POWER_OFF or KAGAMI_POWER_RESET. */
#define KAGAMI_PORT_POWER (KAGAMI_PORT_BASE + 0x14u)
/* W: guest-physical address of a struct kagami_fault_frame describing an
 * unexpected exception; the host reports it and stops the VM. */
#define KAGAMI_PORT_FAULT (KAGAMI_PORT_BASE + 0x18u)
/* W: guest-physical address of a struct kagami_console_buf whose bytes go
 * to the console (the same one as COM1's) in one exit, where COM1 takes
 * one exit per byte. */
#define KAGAMI_PORT_CONSOLE (KAGAMI_PORT_BASE + 0x1cu)
/* R (version 2): KAGAMI_MODE_* bits describing how the host runs the VM. */
#define KAGAMI_PORT_MODE (KAGAMI_PORT_BASE + 0x20u)
/* W (version 2): the guest has nothing to do for up to the value written,
 * in microseconds. The host may return at once (it always does outside
 * deterministic mode) and never holds the vCPU longer than
 * KAGAMI_IDLE_MAX_US. In deterministic mode this write is where the guest
 * collects what is pending — completed requests, received frames,
 * interrupts — so a guest that waits on memory a device writes must make
 * it (or another port/MMIO access) while it waits: a loop that only reads
 * RAM never sees the device's answer. */
#define KAGAMI_PORT_IDLE (KAGAMI_PORT_BASE + 0x24u)

#define KAGAMI_DEVICE_MAGIC 0x494d474bu /* "KGMI" */
#define KAGAMI_POWER_OFF 1u
#define KAGAMI_POWER_RESET 2u
/* Deterministic inputs (record/replay, lockstep): everything from outside
 * — bytes devices write into RAM, interrupts, time — reaches the guest
 * only at its port and MMIO exits. The guest must read time from
 * KAGAMI_PORT_CLOCK_LO/HI (never rdtsc, rdrand or cpuid for values that
 * matter: the host cannot trap or log them) and wait with
 * KAGAMI_PORT_IDLE. One vCPU. */
#define KAGAMI_MODE_DETERMINISTIC 0x1u
/* The longest the host blocks one KAGAMI_PORT_IDLE write. */
#define KAGAMI_IDLE_MAX_US 10000u

/* An ELF note (name "KAGAMI", this type, a 4-byte platform version) in a
 * PVH image that runs its work in ring 3 and keeps ring 0 to a few
 * hundred instructions, as SDK guests do. On a host whose KVM emulates
 * ring 0 (PVM), kagami warns about images without it: a kernel that runs
 * in ring 0 would crawl there. */
#define KAGAMI_ELFNOTE_RING3 1u

/* Exit status kagami uses when the guest crashed (fault report or triple
 * fault); the guest SDK writes the same value to the debug-exit port. */
#define KAGAMI_EXIT_GUEST_CRASH 3u

/* Memory layout kagami uses for PVH boot. */
#define KAGAMI_START_INFO_GPA 0x6000ull
#define KAGAMI_CMDLINE_GPA 0x20000ull
#define KAGAMI_CMDLINE_MAX 4096u
#define KAGAMI_LOW_RAM_END 0x9fc00ull   /* below the EBDA */
#define KAGAMI_HIGH_RAM_START 0x100000ull
#define KAGAMI_MMIO_BASE 0xc0000000ull /* 3 GiB */
#define KAGAMI_HIGH_MEM_BASE 0x100000000ull /* 4 GiB */

/*
 * virtio-mmio transports, laid out as QEMU's microvm lays them out: slot i
 * at KAGAMI_VIRTIO_BASE + i * KAGAMI_VIRTIO_SIZE with IRQ
 * KAGAMI_VIRTIO_IRQ_BASE + i, devices placed from the top slot down. Each
 * device is announced on the guest command line as
 * "virtio_mmio.device=512@0x<base>:<irq>", as QEMU does with acpi=off.
 */
#define KAGAMI_VIRTIO_BASE 0xfeb00000ull
#define KAGAMI_VIRTIO_SIZE 0x200u
#define KAGAMI_VIRTIO_SLOTS 8u
#define KAGAMI_VIRTIO_IRQ_BASE 5u  /* deterministic VMs (8259) */
#define KAGAMI_VIRTIO_GSI_BASE 16u /* VMs with an in-kernel IOAPIC */

/* ACPI (version 3): tables in the BIOS area (reserved in the memory map),
 * and the FADT's sleep registers. */
#define KAGAMI_ACPI_GPA 0xe0000ull
#define KAGAMI_ACPI_SIZE 0x10000u
#define KAGAMI_ACPI_SLEEP_CONTROL_PORT 0x600u
#define KAGAMI_ACPI_SLEEP_STATUS_PORT 0x601u
/* The reset vector (F000:FFF0, in the reserved BIOS area): code that
 * resets the VM through KAGAMI_RESET_PORT, for kernels that reboot by
 * jumping there (Linux does when it finds no other way). */
#define KAGAMI_RESET_VECTOR_GPA 0xffff0ull

#define KAGAMI_CONSOLE_MAX 4096u
struct kagami_console_buf {
	unsigned int len; /* at most KAGAMI_CONSOLE_MAX */
	char data[];
};

/* Written by the guest SDK's exception handler; all fields 64-bit. */
struct kagami_fault_frame {
	unsigned long long magic; /* KAGAMI_FAULT_MAGIC */
	unsigned long long vector, error_code, cr2;
	unsigned long long rip, cs, rflags, rsp, ss;
	unsigned long long rax, rbx, rcx, rdx, rsi, rdi, rbp;
	unsigned long long r8, r9, r10, r11, r12, r13, r14, r15;
};
#define KAGAMI_FAULT_MAGIC 0x544c554146474bull /* "KGFAULT" */

#endif
