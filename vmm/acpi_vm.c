/* The VM's ACPI tables (acpi.h) from its shape: vCPUs, COM1, the RTC, the
 * virtio-mmio transports and the platform's sleep and reset registers. */
#include "acpi_vm.h"

#include "acpi.h"
#include "device.h"
#include "rtc.h"
#include "virtio_mmio.h"
#include "vm.h"
#include "abi/kagami_platform.h"

int acpi_vm_write(struct vm *vm, uint64_t *rsdp, struct kg_err *e)
{
	*rsdp = 0;
	if (vm->cfg.deterministic)
		return 0; /* no LAPIC or IOAPIC to describe */
	struct acpi_config c = {
		.ncpus = vm->ncpus,
		.sleep_control_port = KAGAMI_ACPI_SLEEP_CONTROL_PORT,
		.sleep_status_port = KAGAMI_ACPI_SLEEP_STATUS_PORT,
		.reset_port = KAGAMI_RESET_PORT, .reset_value = 0x06,
		.com1_port = KAGAMI_COM1_PORT, .com1_irq = KAGAMI_COM1_IRQ,
		.rtc_port = RTC_PORT_INDEX, .rtc_irq = RTC_IRQ,
		.ioapic_addr = 0xfec00000, .lapic_addr = 0xfee00000,
	};
	for (unsigned i = 0; i < vm->ndevices; i++) {
		const struct vm_device *d = &vm->devices[i];
		if (d->ops != &dev_virtio_ops || c.nvirtio == ACPI_MAX_VIRTIO)
			continue;
		const struct virtio_mmio *t = d->dev;
		c.virtio[c.nvirtio++] = (struct acpi_virtio){
			t->base, KAGAMI_VIRTIO_SIZE, t->irq
		};
	}
	uint8_t *buf = guest_mem_ptr(&vm->mem, KAGAMI_ACPI_GPA,
				     KAGAMI_ACPI_SIZE);
	if (!buf)
		return kg_errf(e, "ACPI: guest RAM too small for the tables");
	struct acpi_layout l;
	if (acpi_build(&c, buf, KAGAMI_ACPI_SIZE, KAGAMI_ACPI_GPA, &l, e) < 0)
		return -1;
	guest_mem_mark_dirty(&vm->mem, KAGAMI_ACPI_GPA, l.used);
	*rsdp = l.rsdp;
	return 0;
}
