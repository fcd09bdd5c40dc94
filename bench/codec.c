/*
 * The page codec's benchmark (`make bench-codec`, also run by `make bench`):
 * encoder throughput per kind of page, as MB/s of input and as a ratio to
 * memcpy bandwidth measured in the same run, the bytes out per page
 * against a raw 4 KiB page, and the decoder's throughput.
 *
 * Each workload is a RAM of BENCH_CODEC_MIB MiB (default 64) whose pages
 * are all of one kind, encoded in 1 MiB batches the way an epoch streams
 * them. Only page_encode() and page_decode() calls are timed; batches are
 * aborted (untimed) so that every run encodes against the same shadow.
 * Figures are medians of BENCH_REPEAT runs (default 5).
 *
 * Workloads:
 *   zero         never sent, all zeros                      -> ZERO
 *   light        sent before, then ~80 bytes written        -> DELTA
 *   text         never sent, words and numbers              -> LZ4
 *   random       never sent, random bytes                   -> RAW
 *   rewritten    sent before, then rewritten with random    -> RAW (after
 *                                               a failed delta and LZ4)
 *   unchanged    sent before, dirty but written the same    -> not sent
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ft/checkpoint/page_codec.h"

#define PAGE 4096u
#define BATCH (1u << 20)

struct bench {
	size_t size, npages;
	struct guest_mem src, dst;
	uint8_t *sram, *dram, *base; /* base: what the receiver holds */
	uint8_t *out, *arena;        /* a batch; every batch of a run */
	size_t *lens;                /* of the batches in the arena */
	uint64_t *gpas;
	struct page_encoder *pe;
	uint64_t rng;
	int repeat;
};

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what, const struct kg_err *e)
{
	fprintf(stderr, "bench/codec: %s%s%s\n", what, e ? ": " : "",
		e ? e->msg : "");
	exit(1);
}

static void *xalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		die("out of memory", NULL);
	memset(p, 0, n); /* fault the pages in before anything is timed */
	return p;
}

static uint64_t rnd(struct bench *b)
{
	b->rng ^= b->rng << 13;
	b->rng ^= b->rng >> 7;
	b->rng ^= b->rng << 17;
	return b->rng;
}

static void fill_random(struct bench *b, uint8_t *p)
{
	for (size_t i = 0; i < PAGE; i += 8) {
		uint64_t v = rnd(b);
		memcpy(p + i, &v, 8);
	}
}

static void fill_text(struct bench *b, uint8_t *p)
{
	static const char *const words[] = {
		"the", "replica", "epoch", "checkpoint", "of", "guest",
		"memory", "page", "dirty", "and", "a", "kvstore", "write",
		"acknowledged", "backup", "primary", "failover", "to",
		"request", "latency", "session", "key", "value", "log",
	};
	size_t n = 0;
	while (n < PAGE) {
		char w[32];
		uint64_t r = rnd(b);
		size_t nw = sizeof(words) / sizeof(words[0]);
		int k = r % 5 == 0
				? snprintf(w, sizeof(w), "%u ",
					   (unsigned)(r >> 8) % 100000)
				: snprintf(w, sizeof(w), "%s ",
					   words[(r >> 8) % nw]);
		for (int i = 0; i < k && n < PAGE; i++)
			p[n++] = (uint8_t)w[i];
	}
}

/* Six scattered 8-byte stores and a 32-byte run: a lightly written page. */
static void write_light(struct bench *b, uint8_t *p)
{
	for (int i = 0; i < 6; i++) {
		uint64_t v = rnd(b);
		memcpy(p + (rnd(b) % (PAGE / 8)) * 8, &v, 8);
	}
	size_t at = rnd(b) % (PAGE - 32);
	for (size_t i = 0; i < 32; i++)
		p[at + i] = (uint8_t)rnd(b);
}

static void mem_init(struct guest_mem *m, uint8_t *ram, size_t size)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	guest_mem_layout(size, m);
	m->base = ram;
	for (unsigned i = 0; i < m->nregions; i++)
		m->regions[i].hva = ram + m->regions[i].offset;
}

/* Encodes every page in 1 MiB batches into the arena; returns the seconds
 * spent in page_encode() and leaves every page un-pending. */
static double encode_all(struct bench *b, size_t *nbatch,
			 struct page_codec_stats *sum)
{
	double t = 0;
	size_t done = 0, at = 0, n = 0;
	struct kg_err e;
	memset(sum, 0, sizeof(*sum));
	while (done < b->npages) {
		struct page_codec_stats st;
		size_t len;
		double t0 = now();
		long k = page_encode(b->pe, b->gpas + done, b->npages - done,
				     b->out, BATCH, &len, &st, &e);
		t += now() - t0;
		if (k <= 0)
			die("page_encode", &e);
		memcpy(b->arena + at, b->out, len);
		b->lens[n++] = len;
		at += len;
		done += (size_t)k;
		page_codec_stats_add(sum, &st);
	}
	for (size_t i = 0, off = 0; i < n; off += b->lens[i++])
		page_encoder_abort(b->pe, b->arena + off, b->lens[i]);
	*nbatch = n;
	return t;
}

/* Decodes the arena's batches into the receiver, reset to `base` first. */
static double decode_all(struct bench *b, size_t nbatch)
{
	struct kg_err e;
	memcpy(b->dram, b->base, b->size);
	double t0 = now();
	for (size_t i = 0, off = 0; i < nbatch; off += b->lens[i++])
		if (page_decode(&b->dst, PAGE_CODEC_VERSION, b->arena + off,
				b->lens[i], NULL, &e) < 0)
			die("page_decode", &e);
	double t = now() - t0;
	if (memcmp(b->dram, b->sram, b->size))
		die("the receiver differs from the sender", NULL);
	return t;
}

/* The shadow and the receiver's base take the sender's current RAM. */
static void sync_all(struct bench *b)
{
	struct kg_err e;
	size_t done = 0;
	while (done < b->npages) {
		size_t len;
		long k = page_encode(b->pe, b->gpas + done, b->npages - done,
				     b->out, BATCH, &len, NULL, &e);
		if (k <= 0 || page_encoder_commit(b->pe, b->out, len, &e) < 0)
			die("sync", &e);
		done += (size_t)k;
	}
	memcpy(b->base, b->sram, b->size);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* memcpy bandwidth in the encoder's pattern: the same RAM read page by
 * page into a 1 MiB buffer. Measured next to every encoder run, so both see
 * the same machine (it is shared and noisy). */
static double memcpy_mbs(struct bench *b)
{
	double t0 = now();
	for (size_t i = 0; i < b->npages; i++)
		memcpy(b->out + i * PAGE % BATCH, b->sram + i * PAGE, PAGE);
	__asm__ volatile("" ::: "memory"); /* keep the copies */
	return (double)b->size / (now() - t0) / 1e6;
}

/* For reference: one RAM-to-RAM memcpy of the whole set (what
 * "memcpy 6-7 GB/s" in DESIGN.md means: writes go to RAM too). */
static double memcpy_ram_mbs(struct bench *b)
{
	double t0 = now();
	memcpy(b->dram, b->sram, b->size);
	__asm__ volatile("" ::: "memory");
	return (double)b->size / (now() - t0) / 1e6;
}

enum kind { ZERO, LIGHT, TEXT, RANDOM, REWRITTEN, UNCHANGED, NKINDS };
static const char *const kind_name[NKINDS] = {
	"zero", "light", "text", "random", "rewritten", "unchanged",
};

/* Puts the sender, shadow and receiver in the state the workload
 * starts from. */
static void prepare(struct bench *b, enum kind k)
{
	page_encoder_reset(b->pe);
	memset(b->sram, 0, b->size);
	memset(b->base, 0, b->size);
	for (size_t i = 0; i < b->npages; i++) {
		uint8_t *p = b->sram + i * PAGE;
		if (k == TEXT || k == LIGHT || k == UNCHANGED)
			fill_text(b, p);
		else if (k == RANDOM || k == REWRITTEN)
			fill_random(b, p);
	}
	if (k == LIGHT || k == REWRITTEN || k == UNCHANGED) {
		sync_all(b);
		for (size_t i = 0; i < b->npages; i++) {
			uint8_t *p = b->sram + i * PAGE;
			if (k == LIGHT)
				write_light(b, p);
			else if (k == REWRITTEN)
				fill_random(b, p);
		}
	}
}

int main(void)
{
	struct bench b = { .rng = 0x9e3779b97f4a7c15ull };
	const char *s = getenv("BENCH_REPEAT");
	b.repeat = s ? atoi(s) : 5;
	s = getenv("BENCH_CODEC_MIB");
	int mib = s ? atoi(s) : 64;
	if (b.repeat < 1 || b.repeat > 64 || mib < 2 || mib > 4096)
		die("BENCH_REPEAT must be 1..64 and BENCH_CODEC_MIB 2..4096",
		    NULL);
	b.size = (size_t)mib << 20;
	b.npages = b.size / PAGE;
	b.sram = xalloc(b.size);
	b.dram = xalloc(b.size);
	b.base = xalloc(b.size);
	b.out = xalloc(BATCH);
	/* Worst case: every page raw, plus a header per batch. */
	b.arena = xalloc(b.npages * (PAGE + PAGE_CODEC_RECORD_HEADER) +
			 (b.npages + 1) * PAGE_CODEC_BATCH_HEADER);
	b.lens = xalloc((b.npages + 1) * sizeof(*b.lens));
	b.gpas = xalloc(b.npages * sizeof(*b.gpas));
	mem_init(&b.src, b.sram, b.size);
	mem_init(&b.dst, b.dram, b.size);
	/* Every page, in gpa order (offset order, too: one region below
	 * 3 GiB). */
	for (size_t i = 0; i < b.npages; i++)
		b.gpas[i] = (uint64_t)i * PAGE;
	struct kg_err e;
	b.pe = page_encoder_new(&b.src, &e);
	if (!b.pe)
		die("page_encoder_new", &e);

	double ram[64];
	for (int r = 0; r < b.repeat; r++)
		ram[r] = memcpy_ram_mbs(&b);
	printf("page codec, %d MiB of pages per workload, 1 MiB batches, "
	       "medians of %d runs\n", mib, b.repeat);
	printf("memcpy of the whole %d MiB RAM to RAM: %.0f MB/s (reference "
	       "only)\n\n", mib, median(ram, b.repeat));
	printf("%-10s %10s %8s %8s %10s %8s %10s  %s\n", "workload",
	       "enc MB/s", "memcpy", "xmemcpy", "bytes/pg", "vs raw",
	       "dec MB/s", "codings");
	printf("%-10s %10s %8s %8s %10s %8s %10s  %s\n", "--------",
	       "--------", "------", "-------", "--------", "------",
	       "--------", "-------");
	for (int k = 0; k < NKINDS; k++) {
		prepare(&b, (enum kind)k);
		double enc[64], dec[64], cp[64], ratio[64];
		struct page_codec_stats st;
		size_t nbatch = 0;
		for (int r = 0; r < b.repeat; r++) {
			cp[r] = memcpy_mbs(&b);
			enc[r] = (double)b.size / encode_all(&b, &nbatch, &st) /
				 1e6;
			ratio[r] = enc[r] / cp[r];
			dec[r] = (double)b.size / decode_all(&b, nbatch) / 1e6;
		}
		double em = median(enc, b.repeat), dm = median(dec, b.repeat);
		double copy = median(cp, b.repeat);
		double rm = median(ratio, b.repeat);
		double per = (double)st.bytes_out / (double)b.npages;
		char codings[128] = "";
		size_t at = 0;
		for (unsigned c = 1; c < KG_PAGE_NCODINGS; c++)
			if (st.pages[c])
				at += (size_t)snprintf(
					codings + at, sizeof(codings) - at,
					"%s%s %.0f%%", at ? ", " : "",
					page_coding_name(c),
					100.0 * (double)st.pages[c] /
						(double)b.npages);
		if (st.same)
			snprintf(codings + at, sizeof(codings) - at,
				 "%sunchanged %.0f%%", at ? ", " : "",
				 100.0 * (double)st.same / (double)b.npages);
		char dbuf[32] = "-"; /* nothing sent: nothing to decode */
		if (st.bytes_out > nbatch * PAGE_CODEC_BATCH_HEADER)
			snprintf(dbuf, sizeof(dbuf), "%.0f", dm);
		printf("%-10s %10.0f %8.0f %8.2f %10.1f %7.2f%% %10s  %s\n",
		       kind_name[k], em, copy, rm, per, 100.0 * per / PAGE,
		       dbuf, codings);
	}
	printf("\nenc MB/s: input pages per second of page_encode(); memcpy: "
	       "MB/s copying the same\npages into a 1 MiB buffer, measured "
	       "before each encoder run; xmemcpy: median of\nthe per-run "
	       "ratios enc / memcpy;\nbytes/pg: payload bytes per page "
	       "(record headers and batch headers in), vs raw: of 4096;\n"
	       "dec MB/s: pages per second of page_decode() (validate, then "
	       "apply).\n");
	page_encoder_free(b.pe);
	return 0;
}
