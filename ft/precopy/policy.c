#include "policy.h"

void precopy_init(struct precopy_state *s, const struct precopy_policy *p)
{
	*s = (struct precopy_state){ .p = *p, .prev = UINT64_MAX,
				     .best = UINT64_MAX,
				     .unit_bytes = (double)p->unit_bytes };
}

void precopy_round_done(struct precopy_state *s, uint64_t units,
			uint64_t bytes, uint64_t ns)
{
	if (s->rounds++ == 0)
		s->prev = units;
	if (units)
		s->unit_bytes = (double)bytes / (double)units;
	if (ns > 0 && (bytes >= s->p.rate_min_bytes ||
		       (s->p.rate_first_any && s->rate == 0)))
		s->rate = (double)bytes / ((double)ns / 1e9);
}

double precopy_predict_ms(const struct precopy_state *s, uint64_t n)
{
	if (s->rate <= 0)
		return PRECOPY_UNKNOWN_MS;
	return (double)n * s->unit_bytes / s->rate * 1e3 + s->p.fixed_ms;
}

/* a * an < b * bn, without overflow for any counts. */
static bool less(uint64_t a, unsigned an, uint64_t b, unsigned bn)
{
	return (unsigned __int128)a * an < (unsigned __int128)b * bn;
}

static bool should_stop(struct precopy_state *s, uint64_t dirty)
{
	const struct precopy_policy *p = &s->p;
	if (dirty <= p->small || s->rounds >= p->max_rounds)
		return true;
	if (p->limit_ms > 0 && s->predicted_ms <= p->limit_ms &&
	    (!less(dirty, 4, s->prev, 3) || s->predicted_ms <= p->target_ms))
		return true;
	if (!p->stall_rounds)
		return false;
	if (dirty < s->best) {
		s->best = dirty;
		s->stalled = 0;
		return false;
	}
	return ++s->stalled >= p->stall_rounds;
}

enum precopy_decision precopy_decide(struct precopy_state *s, uint64_t dirty)
{
	const struct precopy_policy *p = &s->p;
	s->dirty = dirty;
	s->predicted_ms = precopy_predict_ms(s, dirty);
	if (should_stop(s, dirty))
		return p->copy_taken ? PRECOPY_LAST : PRECOPY_STOP;
	enum precopy_decision d = PRECOPY_ROUND;
	/* Rounds that stop shrinking mean the guest dirties as fast as we
	 * copy: only a slower guest converges. */
	if (p->throttle_first && less(s->prev, 8, dirty, 10) &&
	    ++s->stuck >= p->throttle_after) {
		unsigned pct = s->throttle_pct ? s->throttle_pct +
						 p->throttle_step
					       : p->throttle_first;
		s->throttle_pct = pct > p->throttle_max ? p->throttle_max : pct;
		s->stuck = 0;
		d = PRECOPY_THROTTLE;
	}
	s->prev = dirty;
	return d;
}
