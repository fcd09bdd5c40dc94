/*
 * The pre-shared key file. The whole file is the key, so both hosts agree
 * byte for byte whatever editor wrote it. A key that anyone but its owner
 * can read or write (group included), or that belongs to another user,
 * is refused rather than warned about: it lets them write the replica's
 * memory (or, as the lease key, take the lease).
 */
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int kg_tp_key_load(const char *path, struct kg_tp_key *k, struct kg_err *e)
{
	memset(k, 0, sizeof(*k));
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return kg_errno(e, "key file %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0) {
		kg_errno(e, "key file %s: fstat", path);
		close(fd);
		return -1;
	}
	int r = -1;
	if (!S_ISREG(st.st_mode))
		kg_errk(e, KG_ERR_INVALID, "key file %s: not a regular file", path);
	else if (st.st_mode & 077)
		kg_errk(e, KG_ERR_INVALID, "key file %s: readable or writable by group or others (mode %04o); run chmod 600 %s",
			path, (unsigned)(st.st_mode & 07777), path);
	else if (st.st_uid != geteuid())
		kg_errf(e, "key file %s: owned by uid %u, not by this user (uid %u): its owner could change it; use a key file of your own",
			path, (unsigned)st.st_uid, (unsigned)geteuid());
	else if (st.st_size < KG_TP_KEY_MIN)
		kg_errk(e, KG_ERR_INVALID, "key file %s: %lld bytes, a key needs at least %d (e.g. head -c 32 /dev/urandom)",
			path, (long long)st.st_size, KG_TP_KEY_MIN);
	else if (st.st_size > KG_TP_KEY_MAX)
		kg_errk(e, KG_ERR_INVALID, "key file %s: %lld bytes, more than %d", path,
			(long long)st.st_size, KG_TP_KEY_MAX);
	else
		r = 0;
	size_t got = 0;
	while (r == 0 && got < (size_t)st.st_size) {
		ssize_t n = read(fd, k->bytes + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r = kg_errno(e, "key file %s: read", path);
		else if (n == 0)
			r = kg_errk(e, KG_ERR_IO, "key file %s: shrank while being read", path);
		else
			got += (size_t)n;
	}
	close(fd);
	if (r == 0)
		k->len = got;
	else
		memset(k, 0, sizeof(*k));
	return r;
}
