#include "precopy.h"

#include "base/clock.h"

int precopy_run(struct precopy_state *s, const struct precopy_policy *p,
		const struct precopy_ops *ops, void *ctx, struct kg_err *e)
{
	precopy_init(s, p);
	for (bool first = true, last = false;; first = false) {
		struct precopy_round r = { 0 };
		uint64_t t = kg_now_ns();
		if (ops->round(ctx, first, &r, e) < 0)
			return -1;
		precopy_round_done(s, r.units, r.bytes, kg_now_ns() - t);
		if (last)
			return 0;
		uint64_t dirty;
		if (ops->pending(ctx, &dirty, e) < 0)
			return -1;
		enum precopy_decision d = precopy_decide(s, dirty);
		if (ops->report)
			ops->report(ctx, s, d);
		if (d == PRECOPY_STOP)
			return 0;
		if (d == PRECOPY_THROTTLE) {
			if (!ops->throttle)
				return kg_errf(e, "pre-copy: this mode cannot "
					       "throttle the guest");
			if (ops->throttle(ctx, s->throttle_pct, e) < 0)
				return -1;
		}
		last = d == PRECOPY_LAST;
	}
}
