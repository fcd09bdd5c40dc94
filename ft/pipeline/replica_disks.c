#include "replica_disks.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "incoming.h"
#include "rlink.h"
#include "vmm/vm.h"

int replica_disks_prepare(struct vm_config *cfg, const struct incoming *in,
			  bool created[], struct kg_err *e)
{
	bool storage = in->mode & RLINK_F_STORAGE;
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		struct disk_spec *d = &cfg->disks[i];
		struct stat st;
		bool exists = stat(d->path, &st) == 0;
		if (!storage) {
			if (!exists)
				return kg_errno(e, "disk %s", d->path);
			if ((uint64_t)st.st_size != in->disk_size[i])
				return kg_errk(e, KG_ERR_INVALID, "disk %s: %llu "
					       "bytes, the source's disk %u has "
					       "%llu (not the same image?)",
					       d->path,
					       (unsigned long long)st.st_size, i,
					       (unsigned long long)in->disk_size[i]);
			d->defer_lock = true; /* taken at hand-over */
			continue;
		}
		if (exists && st.st_size > 0)
			return kg_errk(e, KG_ERR_INVALID, "disk %s: exists and is "
				       "not empty; the incoming copy is written "
				       "to a new image (give a path that does "
				       "not exist)", d->path);
		int fd = open(d->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return kg_errno(e, "disk %s: open", d->path);
		created[i] = !exists;
		int r = ftruncate(fd, (off_t)in->disk_size[i]);
		close(fd);
		if (r < 0)
			return kg_errno(e, "disk %s: ftruncate", d->path);
	}
	return 0;
}

void replica_disks_remove(const struct vm_config *cfg, const bool created[])
{
	for (unsigned i = 0; i < cfg->ndisks; i++)
		if (created[i])
			unlink(cfg->disks[i].path);
}

static void held_path(const struct vm_config *cfg, unsigned i, char *buf,
		      size_t size)
{
	snprintf(buf, size, "%s.held", cfg->disks[i].path);
}

void replica_disks_hold(const struct vm_config *cfg, bool created[],
			bool aside)
{
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		char held[sizeof(cfg->disks[i].path) + 8];
		held_path(cfg, i, held, sizeof(held));
		if (aside)
			rename(cfg->disks[i].path, held);
		else
			rename(held, cfg->disks[i].path);
		created[i] = !aside;
	}
}

void replica_disks_drop_held(const struct vm_config *cfg)
{
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		char held[sizeof(cfg->disks[i].path) + 8];
		held_path(cfg, i, held, sizeof(held));
		unlink(held);
	}
}
