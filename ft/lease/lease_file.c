/*
 * The file backend of lease.h: a lease file on storage both hosts share,
 * one JSON line {"kagami_lease":1,"holder":H,"generation":G,"expiry_ms":X}
 * (X in CLOCK_REALTIME ms, 0: released). No file: never held.
 *
 * acquire reads the file; if another holder's lease runs, it is refused.
 * Otherwise it writes the new record to a new PATH.tmp.XXXXXX (mkostemp:
 * unpredictable, O_EXCL, so never through a planted link), fsyncs it,
 * rename()s it over PATH (atomic: a reader sees the old or the new file,
 * never a mix) and fsyncs the directory. Two sides may both find the
 * lease free and both rename; the last rename wins, so each then waits
 * SETTLE_MS and re-reads the file to see whether it is still its own.
 *
 * Assumptions (what makes it safe):
 *  - Clocks: expiry is wall-clock time, the only clock the hosts share
 *    (through the file). Their CLOCK_REALTIME must agree within SKEW_MS
 *    (NTP does far better on a LAN); a reader counts a lease as expired
 *    only SKEW_MS after its expiry. Our own end (until_ms) is on our
 *    boot clock from before the read, earlier still. Clock rates are
 *    taken as equal (drift over one TTL is negligible).
 *  - The race: a racer that read the file before our rename renames
 *    within SETTLE_MS/2 of its read, so our re-read SETTLE_MS after our
 *    rename sees its record and we back off (and symmetrically). A side
 *    whose own read-to-rename took longer than SETTLE_MS/2 does not claim
 *    (-1) and claims nothing for ttl_ms, since it may have overwritten a
 *    record someone else believes in.
 *  - Storage: a rename on one host is visible to a read on the other
 *    within SETTLE_MS/2 (on NFS: mount with lookupcache=none or
 *    actimeo=0; attribute caching would hide it for seconds).
 * A renewal of our own running lease skips the wait: nobody else writes
 * while it runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "lease_impl.h"
#include "witness_proto.h"

#define SKEW_MS 100
#define SETTLE_MS 100
#define FILE_MAX 4096

struct record {
	char holder[LEASE_HOLDER_MAX + 1]; /* "": no file */
	uint64_t gen;
	long long expiry_ms;
};

static int parse_record(const struct lease *l, const char *buf, size_t len,
			struct record *r, struct kg_err *e)
{
	cJSON *o = cJSON_ParseWithLength(buf, len);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "kagami_lease");
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "holder");
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "generation");
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "expiry_ms");
	bool ok = cJSON_IsNumber(v) && v->valuedouble == 1 &&
		  cJSON_IsString(h) &&
		  witness_name_ok(h->valuestring, LEASE_HOLDER_MAX) &&
		  cJSON_IsNumber(g) && g->valuedouble >= 0 &&
		  g->valuedouble < 9007199254740992.0 &&
		  cJSON_IsNumber(x) && x->valuedouble >= 0 &&
		  x->valuedouble < 9007199254740992.0;
	if (ok) {
		snprintf(r->holder, sizeof(r->holder), "%s", h->valuestring);
		r->gen = (uint64_t)g->valuedouble;
		r->expiry_ms = (long long)x->valuedouble;
	}
	cJSON_Delete(o);
	return ok ? 0 : kg_errk(e, KG_ERR_CORRUPT, "lease file %s: corrupt (not a kagami "
				"lease record; remove it only if no side runs "
				"the guest)", l->path);
}

static int read_record(const struct lease *l, struct record *r,
		       struct kg_err *e)
{
	memset(r, 0, sizeof(*r));
	int fd = open(l->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0
				       : kg_errno(e, "lease file %s", l->path);
	char buf[FILE_MAX];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			kg_errno(e, "lease file %s: read", l->path);
			close(fd);
			return -1;
		}
		if (n == 0 || (len += (size_t)n) == sizeof(buf))
			break;
	}
	close(fd);
	if (len == sizeof(buf))
		return kg_errk(e, KG_ERR_CORRUPT, "lease file %s: corrupt (over %d bytes)",
			       l->path, FILE_MAX);
	return parse_record(l, buf, len, r, e);
}

static int fsync_dir(const struct lease *l, struct kg_err *e)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", l->path);
	int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return kg_errno(e, "lease file %s: open its directory", l->path);
	int r = fsync(fd);
	close(fd);
	return r < 0 ? kg_errno(e, "lease file %s: fsync its directory",
				l->path) : 0;
}

/* tmp, fsync, rename over PATH, fsync the directory: the record is whole
 * and durable before anyone can read it. */
static int write_record(const struct lease *l, const struct record *r,
			struct kg_err *e)
{
	char buf[FILE_MAX];
	int n = snprintf(buf, sizeof(buf), "{\"kagami_lease\":1,\"holder\":"
			 "\"%s\",\"generation\":%llu,\"expiry_ms\":%lld}\n",
			 r->holder, (unsigned long long)r->gen, r->expiry_ms);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return kg_errf(e, "lease file %s: record too long", l->path);
	/* A name nobody can predict, created here (O_EXCL) and never a link
	 * someone planted: whoever may write the directory must not make us
	 * write through a symlink, nor rename theirs over PATH. */
	char tmp[PATH_MAX + 16];
	int m = snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", l->path);
	if (m < 0 || (size_t)m >= sizeof(tmp))
		return kg_errf(e, "lease file %s: path too long", l->path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return kg_errno(e, "lease file %s: create %s", l->path, tmp);
	/* Readable by the other host's kagami, as the record was before. */
	if (fchmod(fd, 0644) < 0) {
		kg_errno(e, "lease file %s: chmod %s", l->path, tmp);
		goto fail;
	}
	size_t off = 0;
	while (off < (size_t)n) {
		ssize_t w = write(fd, buf + off, (size_t)n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			kg_errno(e, "lease file %s: write %s", l->path, tmp);
			goto fail;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0) {
		kg_errno(e, "lease file %s: fsync %s", l->path, tmp);
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		kg_errno(e, "lease file %s: close %s", l->path, tmp);
		goto fail;
	}
	fd = -1;
	if (rename(tmp, l->path) < 0) {
		kg_errno(e, "lease file %s: rename %s over it", l->path, tmp);
		goto fail;
	}
	return fsync_dir(l, e);
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

static void sleep_until(long long boot_ms)
{
	struct timespec ts = { boot_ms / 1000, (boot_ms % 1000) * 1000000L };
	/* EINTR: go on sleeping; nothing else can fail with this clock. */
	while (clock_nanosleep(CLOCK_BOOTTIME, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

static int file_acquire(struct lease *l, unsigned ttl_ms, long long *until_ms,
			struct kg_err *e)
{
	long long t0, t1, real;
	struct record cur;
	if (lease_boot_ms(&t0, e) < 0)
		return -1;
	if (t0 < l->no_claim_until_ms)
		return kg_errf(e, "lease file %s: not claiming for another "
			       "%lld ms after a write slower than %d ms",
			       l->path, l->no_claim_until_ms - t0,
			       SETTLE_MS / 2);
	if (read_record(l, &cur, e) < 0 || lease_real_ms(&real, e) < 0)
		return -1;
	if (cur.gen > l->seen_gen)
		l->seen_gen = cur.gen;
	bool ours = !strcmp(cur.holder, l->holder);
	bool running = cur.holder[0] && cur.expiry_ms &&
		       real < cur.expiry_ms + SKEW_MS;
	if (running && !ours) {
		kg_errf(e, "lease file %s: held by %s for %lld ms (generation "
			"%llu)", l->path, cur.holder,
			cur.expiry_ms + SKEW_MS - real,
			(unsigned long long)cur.gen);
		return 0;
	}
	/* Our last grant, untouched since: nobody else wrote meanwhile. */
	bool same = ours && l->gen && cur.gen == l->gen;
	bool renewal = same && l->until_ms && t0 < l->until_ms;
	struct record mine = { .gen = ours ? cur.gen : l->seen_gen + 1 };
	snprintf(mine.holder, sizeof(mine.holder), "%s", l->holder);
	if (lease_real_ms(&real, e) < 0)
		return -1;
	mine.expiry_ms = real + ttl_ms;
	if (write_record(l, &mine, e) < 0 || lease_boot_ms(&t1, e) < 0)
		return -1;
	if (mine.gen > l->seen_gen)
		l->seen_gen = mine.gen;
	if (!renewal) {
		if (t1 - t0 > SETTLE_MS / 2) {
			l->no_claim_until_ms = t1 + ttl_ms;
			return kg_errf(e, "lease file %s: read-to-rename took "
				       "%lld ms (over %d ms): a racer may not "
				       "see it; not claiming", l->path,
				       t1 - t0, SETTLE_MS / 2);
		}
		sleep_until(t1 + SETTLE_MS);
		if (read_record(l, &cur, e) < 0)
			return -1;
		if (cur.gen > l->seen_gen)
			l->seen_gen = cur.gen;
		if (strcmp(cur.holder, l->holder) || cur.gen != mine.gen) {
			kg_errf(e, "lease file %s: lost a race to %s "
				"(generation %llu)", l->path,
				cur.holder[0] ? cur.holder : "(none)",
				(unsigned long long)cur.gen);
			return 0;
		}
	}
	l->gen = mine.gen;
	l->renewed = same;
	*until_ms = t0 + ttl_ms;
	return 1;
}

static int file_release(struct lease *l, struct kg_err *e)
{
	struct record cur;
	if (read_record(l, &cur, e) < 0)
		return -1;
	if (strcmp(cur.holder, l->holder) || cur.gen != l->gen)
		return 0; /* not ours any more: nothing to free */
	cur.expiry_ms = 0;
	return write_record(l, &cur, e);
}

const struct lease_ops lease_file_ops = {
	.acquire = file_acquire,
	.release = file_release,
};
