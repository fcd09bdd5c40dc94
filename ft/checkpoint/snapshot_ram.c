#include "snapshot_ram.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "base/crc32c.h"
#include "base/le.h"
#include "base/log.h"
#include "vmm/mem_lazy.h"
#include "vmm/vm.h"

#define PAGE 4096u
#define HEAD 24u   /* the fixed fields before the group hashes */
#define CHUNK (1u << 20)

/* --- save --- */

int snap_ram_write_hashes(struct kg_stream_writer *w, uint16_t region,
			  uint64_t first, const uint64_t *hashes, uint64_t n,
			  struct kg_err *e)
{
	uint64_t ngroups = (n + SNAP_HASH_GROUP - 1) / SNAP_HASH_GROUP;
	size_t index_len = HEAD + ngroups * 8;
	uint8_t *index = malloc(index_len + 8);
	uint8_t *le = malloc(SNAP_HASH_GROUP * 8);
	int r = -1;
	if (!index || !le) {
		kg_errk(e, KG_ERR_NOMEM, "out of memory for RAM hashes");
		goto out;
	}
	le64_put(index, first);
	le64_put(index + 8, n);
	le32_put(index + 16, SNAP_HASH_GROUP);
	le32_put(index + 20, 0);
	for (uint64_t g = 0; g < ngroups; g++) {
		uint64_t a = g * SNAP_HASH_GROUP;
		uint64_t cnt = n - a < SNAP_HASH_GROUP ? n - a : SNAP_HASH_GROUP;
		for (uint64_t i = 0; i < cnt; i++)
			le64_put(le + i * 8, hashes[a + i]);
		le64_put(index + HEAD + g * 8, XXH3_64bits(le, cnt * 8));
	}
	le64_put(index + index_len, XXH3_64bits(index, index_len));
	if (kg_writer_begin(w, KG_SEC_RAM_HASHES, region, SNAP_HASH_VERSION,
			    index_len + 8 + n * 8, e) < 0 ||
	    kg_writer_append(w, index, index_len + 8, e) < 0)
		goto out;
	for (uint64_t a = 0; a < n; a += SNAP_HASH_GROUP) {
		uint64_t cnt = n - a < SNAP_HASH_GROUP ? n - a : SNAP_HASH_GROUP;
		for (uint64_t i = 0; i < cnt; i++)
			le64_put(le + i * 8, hashes[a + i]);
		if (kg_writer_append(w, le, cnt * 8, e) < 0)
			goto out;
	}
	r = kg_writer_end_section(w, e);
out:
	free(index);
	free(le);
	return r;
}

/* --- restore --- */

/* One ram-hashes section: its index in memory, its page hashes read a
 * group at a time on demand. */
struct span {
	uint64_t first, n;    /* region-relative pages */
	uint32_t group;
	uint64_t ngroups;
	uint64_t *group_hash;
	uint64_t hashes_off;  /* file offset of the first page hash */
	uint64_t *hashes;     /* n, valid where loaded (calloc: untouched
			       * pages cost nothing) */
	_Atomic uint64_t *loaded; /* one bit per group */
};

struct region {
	bool have;
	struct kg_section sec;  /* the RAM section */
	uint32_t crc;           /* its stored CRC */
	struct span *spans;
	unsigned nspans;
};

struct snap_ram {
	char path[4096];
	int fd;
	const struct guest_mem *m;
	struct vm *vm;
	struct region reg[GUEST_MEM_MAX_REGIONS];
	pthread_mutex_t lock; /* loading a group */
	uint64_t zero_hash;
};

struct snap_ram *snap_ram_new(const char *path, int fd,
			      const struct guest_mem *m, struct kg_err *e)
{
	struct snap_ram *sr = calloc(1, sizeof(*sr));
	if (!sr) {
		kg_errk(e, KG_ERR_NOMEM, "out of memory");
		return NULL;
	}
	snprintf(sr->path, sizeof(sr->path), "%s", path);
	sr->m = m;
	/* Its own descriptor: the loader may outlive the reader. */
	sr->fd = dup(fd);
	if (sr->fd < 0) {
		kg_errno(e, "snapshot %s: dup", path);
		free(sr);
		return NULL;
	}
	pthread_mutex_init(&sr->lock, NULL);
	static const uint8_t zero[PAGE];
	sr->zero_hash = XXH3_64bits(zero, PAGE);
	return sr;
}

void snap_ram_free(struct snap_ram *sr)
{
	if (!sr)
		return;
	for (unsigned r = 0; r < GUEST_MEM_MAX_REGIONS; r++) {
		for (unsigned i = 0; i < sr->reg[r].nspans; i++) {
			struct span *s = &sr->reg[r].spans[i];
			free(s->group_hash);
			free(s->hashes);
			free(s->loaded);
		}
		free(sr->reg[r].spans);
	}
	pthread_mutex_destroy(&sr->lock);
	close(sr->fd);
	free(sr);
}

int snap_ram_region(struct snap_ram *sr, struct kg_stream_reader *r,
		    const struct kg_section *s, struct kg_err *e)
{
	const struct guest_mem *m = sr->m;
	uint64_t payload = s->offset + KG_SECTION_HEADER_SIZE;
	if (s->instance >= m->nregions || s->length != m->regions[s->instance].size)
		return kg_sec_err(e, s, KG_ERR_CORRUPT, "RAM section does not "
				  "match region %u", s->instance);
	if (payload % PAGE)
		return kg_sec_err(e, s, KG_ERR_CORRUPT,
				  "RAM payload not page aligned");
	struct region *g = &sr->reg[s->instance];
	if (g->have)
		return kg_sec_err(e, s, KG_ERR_CORRUPT, "RAM region %u given "
				  "twice", s->instance);
	if (kg_section_skip_unverified(r, &g->crc, e) < 0)
		return -1;
	g->have = true;
	g->sec = *s;
	return 0;
}

int snap_ram_hashes(struct snap_ram *sr, struct kg_stream_reader *r,
		    const struct kg_section *s, struct kg_err *e)
{
	const struct guest_mem *m = sr->m;
	uint8_t head[HEAD];
	if (s->version != SNAP_HASH_VERSION)
		return kg_sec_err(e, s, KG_ERR_INVALID, "RAM hashes version %u "
				  "(this kagami reads %d)", s->version,
				  SNAP_HASH_VERSION);
	if (s->instance >= m->nregions)
		return kg_sec_err(e, s, KG_ERR_CORRUPT, "RAM hashes of region %u, "
				  "which the VM lacks", s->instance);
	if (s->length < HEAD)
		return kg_sec_err(e, s, KG_ERR_CORRUPT, "RAM hashes of %" PRIu64
				  " bytes", s->length);
	if (kg_section_read(r, head, HEAD, e) < 0)
		return -1;
	uint64_t first = le64_get(head), n = le64_get(head + 8);
	uint32_t group = le32_get(head + 16);
	uint64_t pages = m->regions[s->instance].size / PAGE;
	if (group < 64 || group > 65536 || (group & (group - 1)) ||
	    first % group || n == 0 || first > pages || n > pages - first)
		return kg_sec_err(e, s, KG_ERR_CORRUPT, "RAM hashes for pages "
				  "%" PRIu64 "+%" PRIu64 " in groups of %u (the "
				  "region has %" PRIu64 " pages)", first, n,
				  group, pages);
	uint64_t ngroups = (n + group - 1) / group;
	if (s->length != HEAD + ngroups * 8 + 8 + n * 8)
		return kg_sec_err(e, s, KG_ERR_CORRUPT, "RAM hashes of %" PRIu64
				  " bytes for %" PRIu64 " pages", s->length, n);
	struct region *g = &sr->reg[s->instance];
	for (unsigned i = 0; i < g->nspans; i++)
		if (first < g->spans[i].first + g->spans[i].n &&
		    g->spans[i].first < first + n)
			return kg_sec_err(e, s, KG_ERR_CORRUPT, "RAM hashes for "
					  "pages %" PRIu64 "+%" PRIu64 " given "
					  "twice", first, n);
	struct span *sp = realloc(g->spans, (g->nspans + 1) * sizeof(*sp));
	if (!sp)
		return kg_sec_err(e, s, KG_ERR_NOMEM, "out of memory");
	g->spans = sp;
	sp = &g->spans[g->nspans];
	memset(sp, 0, sizeof(*sp));
	size_t index_len = HEAD + ngroups * 8;
	uint8_t *index = malloc(index_len + 8);
	sp->group_hash = malloc(ngroups * 8);
	sp->hashes = calloc(n, 8);
	sp->loaded = calloc((ngroups + 63) / 64, 8);
	if (!index || !sp->group_hash || !sp->hashes || !sp->loaded) {
		free(index);
		free(sp->group_hash);
		free(sp->hashes);
		free(sp->loaded);
		return kg_sec_err(e, s, KG_ERR_NOMEM, "out of memory for RAM "
				  "hashes");
	}
	g->nspans++; /* freed with the others from here */
	memcpy(index, head, HEAD);
	if (kg_section_read(r, index + HEAD, index_len + 8 - HEAD, e) < 0) {
		free(index);
		return -1;
	}
	bool ok = XXH3_64bits(index, index_len) == le64_get(index + index_len);
	for (uint64_t i = 0; ok && i < ngroups; i++)
		sp->group_hash[i] = le64_get(index + HEAD + i * 8);
	free(index);
	if (!ok)
		return kg_sec_err(e, s, KG_ERR_CORRUPT, "RAM hashes: index "
				  "checksum mismatch");
	sp->first = first;
	sp->n = n;
	sp->group = group;
	sp->ngroups = ngroups;
	sp->hashes_off = s->offset + KG_SECTION_HEADER_SIZE + index_len + 8;
	/* The page hashes are read when needed, each group checked then. */
	uint32_t crc;
	return kg_section_skip_unverified(r, &crc, e);
}

/* Whether region r's hashes cover it exactly (spans sorted here). */
static bool covered(struct region *g, uint64_t pages)
{
	for (unsigned i = 1; i < g->nspans; i++)
		for (unsigned j = i; j > 0 &&
		     g->spans[j].first < g->spans[j - 1].first; j--) {
			struct span t = g->spans[j];
			g->spans[j] = g->spans[j - 1];
			g->spans[j - 1] = t;
		}
	uint64_t at = 0;
	for (unsigned i = 0; i < g->nspans; i++) {
		if (g->spans[i].first != at)
			return false;
		at += g->spans[i].n;
	}
	return g->nspans && at == pages;
}

/* Reads exactly n bytes at off unless the file ends: bytes read. */
static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t k = pread(fd, (uint8_t *)buf + done, n - done,
				  (off_t)(off + done));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		if (k == 0)
			break;
		done += (size_t)k;
	}
	return (ssize_t)done;
}

/* Where the file ends now (it was cut after restore began). */
static uint64_t file_end(const struct snap_ram *sr, uint64_t fallback)
{
	struct stat st;
	return fstat(sr->fd, &st) == 0 ? (uint64_t)st.st_size : fallback;
}

/* "snapshot X: RAM page 0x...": errors about a page name the snapshot
 * and the page's guest-physical address. */
__attribute__((format(printf, 5, 6)))
static int page_err(const struct snap_ram *sr, unsigned r, uint64_t rp,
		    struct kg_err *e, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return kg_errk(e, KG_ERR_CORRUPT, "snapshot %s: RAM page 0x%" PRIx64
		       " %s", sr->path, sr->m->regions[r].gpa + rp * PAGE,
		       what);
}

/* The hash of region r's page rp, its group read and checked first. */
static int page_hash(struct snap_ram *sr, unsigned r, uint64_t rp,
		     uint64_t *h, struct kg_err *e)
{
	struct region *g = &sr->reg[r];
	struct span *s = NULL;
	for (unsigned i = 0; i < g->nspans && !s; i++)
		if (rp >= g->spans[i].first &&
		    rp - g->spans[i].first < g->spans[i].n)
			s = &g->spans[i];
	if (!s)
		return page_err(sr, r, rp, e, "has no hash");
	uint64_t i = rp - s->first, grp = i / s->group;
	_Atomic uint64_t *w = &s->loaded[grp / 64];
	uint64_t bit = 1ull << (grp % 64);
	if (!(atomic_load_explicit(w, memory_order_acquire) & bit)) {
		pthread_mutex_lock(&sr->lock);
		int rc = 0;
		if (!(atomic_load(w) & bit)) {
			uint64_t a = grp * s->group;
			uint64_t cnt = s->n - a < s->group ? s->n - a : s->group;
			uint64_t off = s->hashes_off + a * 8;
			ssize_t got = pread_full(sr->fd, s->hashes + a, cnt * 8,
						 off);
			if (got < 0)
				rc = kg_errno(e, "snapshot %s: reading RAM "
					      "hashes at offset %" PRIu64,
					      sr->path, off);
			else if ((uint64_t)got < cnt * 8)
				rc = page_err(sr, r, rp, e, "damaged (truncated:"
					      " the file ends at offset %" PRIu64
					      ", before its hash)",
					      file_end(sr, off + (uint64_t)got));
			else if (XXH3_64bits(s->hashes + a, cnt * 8) !=
				 s->group_hash[grp])
				rc = page_err(sr, r, rp, e, "damaged (hash "
					      "mismatch in the page hashes at "
					      "offset %" PRIu64 ")", off);
			if (rc == 0) {
				for (uint64_t k = 0; k < cnt; k++)
					s->hashes[a + k] = le64_get(
						(const uint8_t *)&s->hashes[a + k]);
				atomic_fetch_or_explicit(w, bit,
							 memory_order_release);
			}
		}
		pthread_mutex_unlock(&sr->lock);
		if (rc < 0)
			return -1;
	}
	*h = s->hashes[i];
	return 0;
}

/* mem_source.read: pages known to be zero are not read; the others are
 * read in one pread and each checked against its hash. */
static int src_read(void *ctx, uint64_t first, unsigned n, uint8_t *buf,
		    uint64_t zero[MEM_LAZY_BATCH / 64], struct kg_err *e)
{
	struct snap_ram *sr = ctx;
	const struct guest_mem *m = sr->m;
	unsigned r = 0;
	while (r + 1 < m->nregions && first * PAGE >= m->regions[r + 1].offset)
		r++;
	uint64_t rp0 = first - m->regions[r].offset / PAGE;
	uint64_t h[MEM_LAZY_BATCH];
	int lo = -1, hi = -1;
	for (unsigned i = 0; i < n; i++) {
		if (page_hash(sr, r, rp0 + i, &h[i], e) < 0)
			return -1;
		if (h[i] == sr->zero_hash) {
			zero[i / 64] |= 1ull << (i % 64);
		} else {
			if (lo < 0)
				lo = (int)i;
			hi = (int)i;
		}
	}
	if (lo < 0)
		return 0;
	uint64_t off = sr->reg[r].sec.offset + KG_SECTION_HEADER_SIZE +
		       (rp0 + (uint64_t)lo) * PAGE;
	size_t want = (size_t)(hi - lo + 1) * PAGE;
	ssize_t got = pread_full(sr->fd, buf + (size_t)lo * PAGE, want, off);
	if (got < 0)
		return kg_errno(e, "snapshot %s: reading RAM at offset %" PRIu64,
				sr->path, off);
	for (int i = lo; i <= hi; i++) {
		if (zero[i / 64] >> (i % 64) & 1)
			continue;
		uint64_t end = (uint64_t)(i - lo + 1) * PAGE;
		if ((uint64_t)got < end)
			return page_err(sr, r, rp0 + (uint64_t)i, e, "damaged "
					"(truncated: the file ends at offset %"
					PRIu64 ")",
					file_end(sr, off + (uint64_t)got));
		if (XXH3_64bits(buf + (size_t)i * PAGE, PAGE) != h[i])
			return page_err(sr, r, rp0 + (uint64_t)i, e,
					"damaged (hash mismatch)");
	}
	return 0;
}

static void src_failed(void *ctx, const struct kg_err *e)
{
	struct snap_ram *sr = ctx;
	vm_request_stop(sr->vm, VM_STOP_ERROR, 0, "%s", e->msg);
}

static void src_release(void *ctx)
{
	snap_ram_free(ctx);
}

/* Without hashes: each RAM section copied into RAM (zero pages left as
 * holes) and its CRC checked, before the guest starts. */
static int load_checked(struct snap_ram *sr, struct guest_mem *m,
			struct kg_err *e)
{
	uint8_t *buf = malloc(CHUNK);
	if (!buf)
		return kg_errk(e, KG_ERR_NOMEM, "out of memory");
	static const uint8_t zero[PAGE];
	int rc = 0;
	for (unsigned r = 0; r < m->nregions && rc == 0; r++) {
		const struct kg_section *s = &sr->reg[r].sec;
		uint8_t hb[KG_SECTION_HEADER_SIZE];
		kg_section_header_encode(s, hb);
		uint32_t crc = kg_crc32c(0, hb, sizeof(hb));
		uint64_t payload = s->offset + KG_SECTION_HEADER_SIZE;
		for (uint64_t off = 0; off < s->length;) {
			size_t n = s->length - off < CHUNK ? s->length - off
							   : CHUNK;
			ssize_t got = pread_full(sr->fd, buf, n, payload + off);
			if (got < 0) {
				rc = kg_errno(e, "snapshot %s: reading RAM at "
					      "offset %" PRIu64, sr->path,
					      payload + off);
				break;
			}
			if ((size_t)got < n) {
				rc = kg_sec_err(e, s, KG_ERR_CORRUPT, "truncated: "
						"declares %" PRIu64 " bytes, %"
						PRIu64 " present", s->length,
						off + (uint64_t)got);
				break;
			}
			crc = kg_crc32c(crc, buf, n);
			for (size_t p = 0; p < n; p += PAGE)
				if (memcmp(buf + p, zero, PAGE))
					memcpy(m->regions[r].hva + off + p,
					       buf + p, PAGE);
			off += n;
		}
		if (rc == 0 && crc != sr->reg[r].crc)
			rc = kg_sec_err(e, s, KG_ERR_CORRUPT, "checksum mismatch");
	}
	free(buf);
	if (rc < 0)
		kg_err_prefix(e, "snapshot %s", sr->path);
	return rc;
}

int snap_ram_load(struct snap_ram **srp, struct vm *vm,
		  const struct snap_ram_opts *o, struct kg_err *e)
{
	struct snap_ram *sr = *srp;
	*srp = NULL;
	struct guest_mem *m = &vm->mem;
	sr->vm = vm;
	bool hashed = true;
	int rc = -1;
	for (unsigned r = 0; r < m->nregions; r++) {
		if (!sr->reg[r].have) {
			kg_errk(e, KG_ERR_CORRUPT, "snapshot %s: no RAM section "
				"for region %u", sr->path, r);
			goto out;
		}
		if (!sr->reg[r].nspans) {
			hashed = false;
		} else if (!covered(&sr->reg[r], m->regions[r].size / PAGE)) {
			kg_errk(e, KG_ERR_CORRUPT, "snapshot %s: the RAM hashes "
				"of region %u do not cover it", sr->path, r);
			goto out;
		}
	}
	/* RAM comes only from the snapshot: nothing else may be there. */
	if (guest_mem_clear(m, e) < 0)
		goto out;
	if (!hashed) {
		rc = load_checked(sr, m, e);
		goto out;
	}
	struct mem_source src = { .read = src_read, .failed = src_failed,
				  .release = src_release, .ctx = sr };
	struct mem_lazy_opts lo = {
		.prefetch_delay_ms = o ? o->test_prefetch_delay_ms : 0,
	};
	struct kg_err le = { 0 };
	if (guest_mem_lazy_start(m, &src, &lo, &le) == 0)
		return 0; /* sr is the loader's now */
	if (le.kind != KG_ERR_INVALID) {
		*e = le;
		goto out;
	}
	kg_log(KG_LOG_WARN, "%s: RAM is copied before the guest starts",
	       le.msg);
	rc = guest_mem_load_eager(m, &src, e);
out:
	snap_ram_free(sr);
	return rc;
}
