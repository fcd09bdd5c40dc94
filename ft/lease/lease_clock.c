/* Clocks for the lease backends (lease_impl.h). */
#include <time.h>

#include "lease_impl.h"

static int clock_ms(clockid_t id, const char *name, long long *ms,
		    struct kg_err *e)
{
	struct timespec ts;
	if (clock_gettime(id, &ts) < 0)
		return kg_errno(e, "clock_gettime(%s)", name);
	*ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	return 0;
}

int lease_boot_ms(long long *ms, struct kg_err *e)
{
	return clock_ms(CLOCK_BOOTTIME, "CLOCK_BOOTTIME", ms, e);
}

int lease_real_ms(long long *ms, struct kg_err *e)
{
	return clock_ms(CLOCK_REALTIME, "CLOCK_REALTIME", ms, e);
}
