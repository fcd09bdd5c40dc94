#include "detector.h"

#include <string.h>

void detector_init(struct detector *d, uint64_t base_ns, uint64_t cap_ns)
{
	memset(d, 0, sizeof(*d));
	d->base_ns = base_ns;
	d->cap_ns = cap_ns < base_ns ? base_ns : cap_ns;
}

void detector_beat(struct detector *d, uint64_t now_ns)
{
	d->st.beats++;
	d->doubt = false;
	if (d->last_beat_ns && now_ns >= d->last_beat_ns) {
		uint64_t gap = now_ns - d->last_beat_ns;
		d->gap_ns[d->next] = gap;
		d->next = (d->next + 1) % DETECTOR_WINDOW;
		if (d->ngaps < DETECTOR_WINDOW)
			d->ngaps++;
		if (gap > d->st.max_gap_ns)
			d->st.max_gap_ns = gap;
		if (gap > d->base_ns)
			d->st.late++;
	}
	d->last_beat_ns = now_ns;
}

uint64_t detector_timeout(const struct detector *d)
{
	uint64_t m = 0;
	for (unsigned i = 0; i < d->ngaps; i++)
		if (d->gap_ns[i] > m)
			m = d->gap_ns[i];
	/* Saturates: a gap near UINT64_MAX / 2 only means "the cap". */
	uint64_t t = m > d->cap_ns ? d->cap_ns : m * DETECTOR_FACTOR;
	if (t < d->base_ns)
		t = d->base_ns;
	if (t > d->cap_ns)
		t = d->cap_ns;
	return t;
}

enum detector_verdict detector_check(struct detector *d, uint64_t silence_ns)
{
	if (silence_ns <= detector_timeout(d)) {
		d->doubt = false;
		return DETECTOR_OK;
	}
	if (!d->doubt) {
		d->doubt = true;
		d->st.doubts++;
		return DETECTOR_DOUBT;
	}
	d->st.suspicions++;
	return DETECTOR_SUSPECT;
}
