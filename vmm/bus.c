#include "bus.h"

#include <stddef.h>

int bus_add(struct bus *b, uint64_t base, uint64_t len,
	    const struct bus_dev_ops *ops, void *opaque, const char *name,
	    struct kg_err *e)
{
	if (len == 0 || base + len < base)
		return kg_errf(e, "%s bus: %s: bad range", b->name, name);
	for (unsigned i = 0; i < b->n; i++) {
		const struct bus_range *r = &b->ranges[i];
		if (base < r->base + r->len && r->base < base + len)
			return kg_errf(e, "%s bus: %s at 0x%llx overlaps %s",
				       b->name, name, (unsigned long long)base,
				       r->name);
	}
	if (b->n == BUS_MAX_RANGES)
		return kg_errf(e, "%s bus: no room for %s", b->name, name);
	b->ranges[b->n++] = (struct bus_range){ base, len, ops, opaque, name };
	return 0;
}

const struct bus_range *bus_find(const struct bus *b, uint64_t addr,
				 unsigned size)
{
	for (unsigned i = 0; i < b->n; i++) {
		const struct bus_range *r = &b->ranges[i];
		if (addr >= r->base && addr - r->base < r->len &&
		    size <= r->len - (addr - r->base))
			return r;
	}
	return NULL;
}
