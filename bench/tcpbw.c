/*
 * tcpbw [MIB]: loopback TCP bandwidth, one stream, as bench/migration.sh's
 * "link". A child connects to 127.0.0.1 and writes MIB MiB (default 1024)
 * in 1 MiB writes; the parent accepts, reads it all into a 1 MiB buffer and
 * prints MiB/s from accept to the last byte. Both ends copy through the
 * kernel as a migration stream does (no splice, no zero-copy).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	uint64_t mib = argc > 1 ? strtoull(argv[1], NULL, 10) : 1024;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (!mib || l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &alen)) {
		perror("tcpbw");
		return 1;
	}
	char *buf = malloc(CHUNK);
	if (!buf)
		return 1;
	memset(buf, 0x5a, CHUNK);
	pid_t pid = fork();
	if (pid < 0) {
		perror("tcpbw: fork");
		return 1;
	}
	if (pid == 0) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)))
			_exit(1);
		for (uint64_t i = 0; i < mib; i++)
			for (size_t off = 0; off < CHUNK;) {
				ssize_t w = write(s, buf + off, CHUNK - off);
				if (w <= 0)
					_exit(1);
				off += (size_t)w;
			}
		close(s);
		_exit(0);
	}
	int c = accept(l, NULL, NULL);
	if (c < 0) {
		perror("tcpbw: accept");
		return 1;
	}
	double t0 = now();
	uint64_t got = 0;
	ssize_t r;
	while ((r = read(c, buf, CHUNK)) > 0)
		got += (uint64_t)r;
	double t1 = now();
	int st = 0;
	waitpid(pid, &st, 0);
	if (got != mib * CHUNK || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "tcpbw: short transfer (%llu bytes)\n",
			(unsigned long long)got);
		return 1;
	}
	printf("%.1f\n", (double)got / (1 << 20) / (t1 - t0));
	return 0;
}
