/*
 * The platform's devices, one line each (see device.h): the order in
 * which a VM builds them, holds them for a checkpoint and destroys them.
 * A device may call into those below it while holding its own lock, so
 * the interrupt controller, which every device raises lines into, is
 * last. No include guard: device.h and device.c include it with their
 * own VM_DEVICE.
 */
VM_DEVICE(dev_uart_ops)     /* COM1 */
VM_DEVICE(dev_platform_ops) /* exit, reset, the kagami device */
VM_DEVICE(dev_rtc_ops)      /* CMOS RTC */
VM_DEVICE(dev_virtio_ops)   /* virtio-mmio: disks, then networks */
VM_DEVICE(dev_irq_ops)      /* deterministic mode's PIC and PIT: last */
