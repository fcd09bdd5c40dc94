/*
 * memstress_host mib=M total=T rate=R seed=S [stats]
 *
 * The host-native peer of guests/memstress.c: the same loop (memstress_core.h)
 * with the same arguments and the same output, run as an ordinary Linux
 * process, so that the guest's throughput can be compared with the host's.
 * Arguments may be separate words or one string ("mib=64 total=2048 ...").
 *
 * Timing matches the guest's: from after the working set is allocated and
 * zeroed, through the final checksum (the per-pass checksum lines, which the
 * guest also prints inside that region, included), with CLOCK_MONOTONIC in
 * place of the kagami clock device.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "guests/memstress_core.h"

#define MAX_WORDS 64

static const char *words[MAX_WORDS];
static int nwords;
static char *argbuf;

static void split_args(int argc, char **argv)
{
	size_t len = 1;
	for (int i = 1; i < argc; i++)
		len += strlen(argv[i]) + 1;
	argbuf = calloc(1, len);
	if (!argbuf) {
		perror("memstress_host");
		exit(2);
	}
	char *p = argbuf;
	for (int i = 1; i < argc; i++) {
		p = stpcpy(p, argv[i]);
		*p++ = ' ';
	}
	for (char *tok = strtok(argbuf, " \t"); tok;
	     tok = strtok(NULL, " \t")) {
		if (nwords == MAX_WORDS) {
			fprintf(stderr, "memstress_host: too many arguments\n");
			exit(2);
		}
		words[nwords++] = tok;
	}
}

/* The value after "key=" in the last word naming key, or NULL. */
static const char *arg_value(const char *key)
{
	size_t n = strlen(key);
	const char *v = NULL;
	for (int i = 0; i < nwords; i++)
		if (strncmp(words[i], key, n) == 0 && words[i][n] == '=')
			v = words[i] + n + 1;
	return v;
}

static bool arg_present(const char *flag)
{
	size_t n = strlen(flag);
	for (int i = 0; i < nwords; i++)
		if (strncmp(words[i], flag, n) == 0 &&
		    (words[i][n] == '\0' || words[i][n] == '='))
			return true;
	return false;
}

/* Decimal or 0x hex with an optional K/M/G suffix, like sdk_arg_u64(). */
static uint64_t arg_u64(const char *key, uint64_t def)
{
	const char *s = arg_value(key);
	if (!s)
		return def;
	char *end;
	errno = 0;
	uint64_t v = strtoull(s, &end, 0);
	unsigned shift = 0;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	default: break;
	}
	if (errno || end == s || *end != '\0' || *s == '-' ||
	    (shift && v > (UINT64_MAX >> shift))) {
		printf("memstress: bad value for %s: %s\n", key, s);
		exit(2);
	}
	return v << shift;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pace(uint64_t start_ns, uint64_t done_pages, uint64_t rate_mib)
{
	uint64_t target = start_ns + done_pages * 1000000000ull /
					     (rate_mib * 256ull);
	while (mono_ns() < target)
		;
}

int main(int argc, char **argv)
{
	split_args(argc, argv);
	/* The guest writes its console through one exit per line; line
	 * buffering keeps the host's output cost per line comparable. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	uint64_t mib = arg_u64("mib", 16), total = arg_u64("total", 64);
	uint64_t rate = arg_u64("rate", 0), seed = arg_u64("seed", 1);
	if (mib == 0 || mib > 3072 || total > (1ull << 40)) {
		printf("memstress: bad arguments: need 0 < mib <= 3072\n");
		return 2;
	}
	uint64_t *ws = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ws == MAP_FAILED) {
		printf("memstress: cannot allocate %" PRIu64 " MiB\n", mib);
		return 2;
	}
	printf("memstress: mib=%" PRIu64 " total=%" PRIu64 " seed=%" PRIu64
	       "\n", mib, total, seed);
	/* Touches every page, as the guest's memset does, so that no page
	 * fault falls inside the timed region. */
	memset(ws, 0, mib << 20);

	struct memstress_rng rng = { seed };
	uint64_t pages = mib * 256, total_pages = total * 256, pass = 0;
	bool clock = rate || arg_present("stats");
	uint64_t t0 = clock ? mono_ns() : 0;
	for (uint64_t i = 0; i < total_pages; i++) {
		uint64_t r = memstress_next(&rng);
		memstress_fill(ws + (r % pages) * MEMSTRESS_WORDS, r);
		if ((i + 1) % pages == 0)
			printf("memstress: pass=%" PRIu64
			       " checksum=%016" PRIx64 "\n",
			       ++pass,
			       memstress_checksum(ws,
						  pages * MEMSTRESS_WORDS));
		if (rate && (i + 1) % 256 == 0)
			pace(t0, i + 1, rate);
	}
	uint64_t sum = memstress_checksum(ws, pages * MEMSTRESS_WORDS);
	if (arg_present("stats")) {
		uint64_t ns = mono_ns() - t0;
		printf("memstress: stats elapsed_us=%" PRIu64 "\n", ns / 1000);
	}
	printf("memstress: done checksum=%016" PRIx64 "\n", sum);
	munmap(ws, mib << 20);
	free(argbuf);
	return 0;
}
