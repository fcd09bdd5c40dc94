/* disksum FILE: prints the guests/disksum.h checksum of a whole image
 * (its length must be a multiple of 8), as blktest mode=churn prints it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guests/disksum.h"

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: disksum FILE\n");
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	size_t cap = 1 << 20;
	uint64_t *buf = malloc(cap);
	uint64_t h = DISKSUM_INIT;
	size_t n;
	while (buf && (n = fread(buf, 1, cap, f)) > 0)
		h = disksum(h, buf, n & ~(size_t)7);
	if (!buf || ferror(f)) {
		fprintf(stderr, "disksum: %s: read error\n", argv[1]);
		return 1;
	}
	fclose(f);
	free(buf);
	printf("%016llx\n", (unsigned long long)h);
	return 0;
}
