/*
 * Address-space buses for port I/O and MMIO: a device claims a range and
 * gets read/write callbacks with the offset inside its range. Accesses to
 * no device read as all ones and drop writes, as on a PC.
 */
#ifndef KG_BUS_H
#define KG_BUS_H

#include <stdint.h>
#include "base/err.h"

struct bus_dev_ops {
	void (*read)(void *opaque, uint64_t offset, void *data, unsigned size);
	void (*write)(void *opaque, uint64_t offset, const void *data,
		      unsigned size);
	/* Optional: called once after the accesses of one exit (e.g. a
	 * string I/O of a whole line), so devices can batch their output. */
	void (*flush)(void *opaque);
};

struct bus_range {
	uint64_t base, len;
	const struct bus_dev_ops *ops;
	void *opaque;
	const char *name;
};

#define BUS_MAX_RANGES 32

struct bus {
	const char *name; /* "pio" or "mmio", for messages */
	unsigned n;
	struct bus_range ranges[BUS_MAX_RANGES];
};

/* Claims [base, base+len); refuses overlaps and a full bus. */
int bus_add(struct bus *b, uint64_t base, uint64_t len,
	    const struct bus_dev_ops *ops, void *opaque, const char *name,
	    struct kg_err *e);
/* The range containing the whole access, or NULL. */
const struct bus_range *bus_find(const struct bus *b, uint64_t addr,
				 unsigned size);

#endif
