/*
 * Field tables for every device's guest-visible state, and the check that
 * validates what a stream brings back (queue addresses inside RAM, indexes
 * in range) before a device uses it. The host side of each device (console,
 * image fd, TAP, threads) is not here: restore rebuilds it.
 */
#ifndef KG_DEV_STATE_H
#define KG_DEV_STATE_H

#include "base/vmstate.h"

extern const struct vs_desc dev_uart_vs;     /* struct uart */
extern const struct vs_desc dev_platform_vs; /* struct dev_platform */
extern const struct vs_desc dev_pic_vs;      /* struct pic (deterministic) */
extern const struct vs_desc dev_pit_vs;      /* struct pit (deterministic) */
extern const struct vs_desc dev_virtio_vs;   /* struct virtio_mmio; ctx:
						struct guest_mem */

#endif
