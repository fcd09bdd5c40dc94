/*
 * blktest [mode=write|verify] [seed=S] [sectors=N] [run=R] [stats]
 * Tests the first virtio-blk device. N sectors (default 4096), in chunks
 * of R (default 8) spread evenly from the first to the last sector, get a
 * pattern that depends only on the seed and the sector number.
 *   mode=write (default): write them (batched), flush, read back and
 *     verify; discard the first chunk (if offered), rewrite and verify it.
 *   mode=verify: only read back and verify, e.g. after a VMM restart.
 *   mode=churn secs=S: for S seconds, write runs of 1..16 sectors at
 *     pseudo-random (unaligned) places, discard now and then, flush now
 *     and then; then flush, read the whole disk back and print
 *     `blktest: churn writes=N discards=N checksum=HEX` (guests/disksum.h:
 *     the host computes the same over the image). For storage migration.
 * write and verify also read the serial (get-id) and check that reads
 * past the end fail with IOERR and leave the device working. Prints `blktest: ok ...`
 * lines and exits 0, or one `blktest: FAIL ...` line and exits 1 (2 for
 * bad arguments or no disk). `stats` adds timings (under kagami).
 */
#include "disksum.h"
#include "guests/sdk/blk.h"

#define GROUP_SECTORS 2048u /* 1 MiB of chunks in flight at a time */
#define WORDS (BLK_SECTOR / 8)
#define MAGIC 0x3154535453544b42ull /* "BKTSTST1" */

static struct blk_dev disk;
static uint64_t seed, nsect, run, nchunks, spacing;
static bool packed; /* the chunks do not fit apart: back to back */
static uint8_t *buf;

static __attribute__((noreturn)) void fail(const char *what, int err)
{
	sdk_printf("blktest: FAIL %s: %s\n", what, blk_strerror(err));
	sdk_exit(1);
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull; /* splitmix64 */
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void fill(uint64_t *w, uint64_t lba)
{
	w[0] = MAGIC;
	w[1] = lba;
	w[2] = seed;
	for (unsigned i = 3; i < WORDS; i++)
		w[i] = mix(seed ^ mix(lba) ^ i);
}

/* Chunk j starts at j * spacing (spacing >= run, so chunks never
 * overlap), except that the last one ends at the last sector unless the
 * chunks are packed. */
static void chunk(uint64_t j, uint64_t *start, uint64_t *len)
{
	bool last = j + 1 == nchunks;
	*len = last ? nsect - (nchunks - 1) * run : run;
	*start = last && !packed ? disk.capacity - *len : j * spacing;
}

/* Writes (or reads and verifies) chunks [first, first+n). */
static void do_chunks(uint64_t first, uint64_t n, bool write)
{
	while (n) {
		uint64_t j = first, used = 0;
		/* A group: as many chunks as fit in the buffer, one notify. */
		for (; j < first + n; j++) {
			uint64_t s, len;
			chunk(j, &s, &len);
			if (used + len > GROUP_SECTORS)
				break;
			uint8_t *p = buf + used * BLK_SECTOR;
			int r;
			if (write) {
				for (uint64_t k = 0; k < len; k++)
					fill((uint64_t *)(p + k * BLK_SECTOR),
					     s + k);
				r = blk_queue_write(&disk, s, p, (uint32_t)len);
			} else {
				memset(p, 0, len * BLK_SECTOR);
				r = blk_queue_read(&disk, s, p, (uint32_t)len);
			}
			if (r)
				fail(write ? "queue write" : "queue read", r);
			used += len;
		}
		int r = blk_complete(&disk);
		if (r)
			fail(write ? "write" : "read", r);
		if (!write) {
			uint64_t expect[WORDS], off = 0;
			for (uint64_t c = first; c < j; c++) {
				uint64_t s, len;
				chunk(c, &s, &len);
				for (uint64_t k = 0; k < len; k++, off++) {
					const uint8_t *got = buf + off * BLK_SECTOR;
					fill(expect, s + k);
					if (memcmp(got, expect, BLK_SECTOR)) {
						sdk_printf("blktest: FAIL verify: "
							   "sector %lu differs "
							   "(seed=%lu)\n",
							   (unsigned long)(s + k),
							   (unsigned long)seed);
						sdk_exit(1);
					}
				}
			}
		}
		n -= j - first;
		first = j;
	}
}

static void timed(const char *what, uint64_t t0, uint64_t sectors)
{
	uint64_t us = (sdk_clock_ns() - t0) / 1000;
	if (sdk_arg_present("stats") && t0)
		sdk_printf("blktest: stats %s sectors=%lu us=%lu\n", what,
			   (unsigned long)sectors, (unsigned long)us);
}

static void out_of_range(void)
{
	int r = blk_read(&disk, disk.capacity, buf, 1);
	if (r != BLK_EIO) {
		sdk_printf("blktest: FAIL read at sector %lu (the capacity) "
			   "gave \"%s\", want IOERR\n",
			   (unsigned long)disk.capacity, blk_strerror(r));
		sdk_exit(1);
	}
	r = blk_read(&disk, disk.capacity - 1, buf, 2);
	if (r != BLK_EIO) {
		sdk_printf("blktest: FAIL read across the end gave \"%s\", "
			   "want IOERR\n", blk_strerror(r));
		sdk_exit(1);
	}
	sdk_printf("blktest: ok out-of-range reads fail with IOERR\n");
}

#define CHURN_BATCH 16 /* writes per notify */

/* mode=churn: see the top. */
static int churn(void)
{
	uint64_t secs = sdk_arg_u64("secs", 3), rnd = seed, gen = 0;
	uint64_t writes = 0, discards = 0, t0 = sdk_clock_ns();
	if (disk.capacity < 64 || disk.read_only) {
		sdk_printf("blktest: FAIL churn needs a writable disk of 64+ "
			   "sectors\n");
		return 2;
	}
	sdk_printf("blktest: churning capacity=%lu secs=%lu\n",
		   (unsigned long)disk.capacity, (unsigned long)secs);
	while (sdk_clock_ns() - t0 < secs * 1000000000ull) {
		uint64_t used = 0;
		for (unsigned i = 0; i < CHURN_BATCH; i++) {
			rnd = mix(rnd);
			uint64_t len = 1 + rnd % 16;
			uint64_t s = (rnd >> 8) % (disk.capacity - len + 1);
			uint8_t *p = buf + used * BLK_SECTOR;
			gen++;
			for (uint64_t k = 0; k < len; k++)
				fill((uint64_t *)(p + k * BLK_SECTOR),
				     (s + k) ^ (gen << 40));
			int r = blk_queue_write(&disk, s, p, (uint32_t)len);
			if (r)
				fail("churn queue write", r);
			used += len;
			writes++;
		}
		int r = blk_complete(&disk);
		if (r)
			fail("churn write", r);
		if (gen % (8 * CHURN_BATCH) == 0 && disk.has_discard) {
			rnd = mix(rnd);
			uint64_t len = 8 + rnd % 57;
			uint64_t s = (rnd >> 8) % (disk.capacity - len + 1);
			if ((r = blk_discard(&disk, s, len)))
				fail("churn discard", r);
			discards++;
		}
		if (gen % (4 * CHURN_BATCH) == 0 && (r = blk_flush(&disk)))
			fail("churn flush", r);
	}
	int r = blk_flush(&disk);
	if (r)
		fail("churn flush", r);
	uint64_t h = DISKSUM_INIT;
	for (uint64_t s = 0; s < disk.capacity; s += GROUP_SECTORS) {
		uint64_t n = disk.capacity - s < GROUP_SECTORS
				     ? disk.capacity - s : GROUP_SECTORS;
		if ((r = blk_read(&disk, s, buf, (uint32_t)n)))
			fail("churn read back", r);
		h = disksum(h, buf, n * BLK_SECTOR);
	}
	sdk_printf("blktest: churn writes=%lu discards=%lu checksum=%016lx\n",
		   (unsigned long)writes, (unsigned long)discards,
		   (unsigned long)h);
	return 0;
}

int main(const char *cmdline)
{
	char mode[16] = "write", id[21];
	const char *why;
	(void)cmdline;
	sdk_arg_str("mode", mode, sizeof(mode));
	bool write = !strncmp(mode, "write", 6);
	bool churning = !strncmp(mode, "churn", 6);
	seed = sdk_arg_u64("seed", 1);
	nsect = sdk_arg_u64("sectors", 4096);
	run = sdk_arg_u64("run", 8);
	if ((!write && !churning && strncmp(mode, "verify", 7)) || !nsect ||
	    !run || run > GROUP_SECTORS) {
		sdk_printf("blktest: bad arguments: mode=write|verify|churn, "
			   "sectors>0, 0<run<=%u\n", GROUP_SECTORS);
		return 2;
	}
	int r = blk_open(&disk, 0, &why);
	if (r) {
		sdk_printf("blktest: FAIL open: %s\n", why);
		return r == BLK_ENODEV ? 2 : 1;
	}
	if (nsect > disk.capacity) {
		sdk_printf("blktest: bad arguments: sectors=%lu > capacity "
			   "%lu\n", (unsigned long)nsect,
			   (unsigned long)disk.capacity);
		return 2;
	}
	nchunks = (nsect + run - 1) / run;
	packed = nchunks * run > disk.capacity;
	spacing = packed ? run : disk.capacity / nchunks;
	buf = sdk_alloc(GROUP_SECTORS * BLK_SECTOR);
	if (!buf) {
		sdk_printf("blktest: FAIL out of memory\n");
		return 1;
	}
	sdk_printf("blktest: ok open capacity=%lu flush=%d discard=%d ro=%d "
		   "max_req_sectors=%u queue=%u\n",
		   (unsigned long)disk.capacity, disk.has_flush,
		   disk.has_discard, disk.read_only, disk.max_req_sectors,
		   disk.q.size);

	if (churning)
		return churn();
	if (write && disk.read_only) {
		sdk_printf("blktest: FAIL mode=write on a read-only disk\n");
		return 1;
	}
	r = blk_get_id(&disk, id);
	if (r == BLK_EUNSUPP)
		sdk_printf("blktest: ok get-id unsupported\n");
	else if (r)
		fail("get-id", r);
	else
		sdk_printf("blktest: ok get-id id=\"%s\"\n", id);

	uint64_t t0;
	if (write) {
		t0 = sdk_clock_ns();
		do_chunks(0, nchunks, true);
		timed("write", t0, nsect);
		t0 = sdk_clock_ns();
		if ((r = blk_flush(&disk)))
			fail("flush", r);
		timed("flush", t0, 0);
		sdk_printf("blktest: ok write sectors=%lu chunks=%lu seed=%lu "
			   "and flush\n", (unsigned long)nsect,
			   (unsigned long)nchunks, (unsigned long)seed);
	}
	out_of_range();
	t0 = sdk_clock_ns();
	do_chunks(0, nchunks, false);
	timed("verify", t0, nsect);
	sdk_printf("blktest: ok verify sectors=%lu chunks=%lu seed=%lu\n",
		   (unsigned long)nsect, (unsigned long)nchunks,
		   (unsigned long)seed);

	if (write && !disk.has_discard) {
		sdk_printf("blktest: ok discard unsupported\n");
	} else if (write) {
		uint64_t s, len;
		chunk(0, &s, &len);
		if ((r = blk_discard(&disk, s, len)))
			fail("discard", r);
		do_chunks(0, 1, true);
		if ((r = blk_flush(&disk)))
			fail("flush after discard", r);
		do_chunks(0, 1, false);
		sdk_printf("blktest: ok discard sectors=%lu, rewritten and "
			   "verified\n", (unsigned long)len);
	}
	sdk_printf("blktest: ok done mode=%s\n", mode);
	return 0;
}
