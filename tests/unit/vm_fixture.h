/*
 * Helpers shared by the unit tests that run real guests on /dev/kvm
 * (test_vm, test_state, test_epoch): header-only, since each test is one
 * translation unit.
 */
#ifndef KG_VM_FIXTURE_H
#define KG_VM_FIXTURE_H

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/vm.h"

#define MEMSTRESS "build/guests/memstress.elf"
#define HELLO "build/guests/hello.elf"
#define BLKTEST "build/guests/blktest.elf"

/* 1 when /dev/kvm is usable; 0 (the caller skips) when not, except under
 * CI=true, where that is a failure. */
static inline int kvm_or_skip(void)
{
	int fd = open("/dev/kvm", O_RDWR);
	if (fd >= 0) {
		close(fd);
		return 1;
	}
	const char *ci = getenv("CI");
	if (ci && !strcmp(ci, "true"))
		fail_msg("/dev/kvm is not usable (required under CI)");
	return 0;
}

/* A VM run on its own thread, its console in a file. */
struct vm_run {
	struct vm vm;
	struct vm_stop stop;
	struct kg_err err;
	int rc;
	pthread_t thread;
	char console[96];
};

static inline void *vm_run_thread(void *arg)
{
	struct vm_run *r = arg;
	r->rc = vm_run(&r->vm, &r->stop, &r->err);
	return NULL;
}

/* A config for image/cmdline (NULL image: to be restored) whose console
 * is a file unique to r. */
static inline void vm_run_config(struct vm_run *r, struct vm_config *cfg,
				 uint64_t mem, unsigned ncpus,
				 const char *image, const char *cmdline)
{
	struct kg_err e;
	memset(cfg, 0, sizeof(*cfg));
	cfg->mem_size = mem;
	cfg->ncpus = ncpus;
	cfg->kernel_path = image;
	cfg->cmdline = cmdline;
	snprintf(r->console, sizeof(r->console), "/tmp/kagami-unit-%d-%p",
		 getpid(), (void *)r);
	assert_int_equal(console_parse("file:/x", &cfg->console, &e), 0);
	snprintf(cfg->console.path, sizeof(cfg->console.path), "%s",
		 r->console);
}

static inline void vm_run_start(struct vm_run *r)
{
	assert_int_equal(pthread_create(&r->thread, NULL, vm_run_thread, r), 0);
}

/* The console file's contents (malloc'd); the file is removed. */
static inline char *vm_run_output(struct vm_run *r)
{
	FILE *f = fopen(r->console, "r");
	assert_non_null(f);
	char *buf = calloc(1, 1 << 16);
	size_t n = fread(buf, 1, (1 << 16) - 1, f);
	buf[n] = 0;
	fclose(f);
	unlink(r->console);
	return buf;
}

static inline uint64_t ram_digest(const struct vm *vm)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const uint64_t *p = (const uint64_t *)vm->mem.base;
	for (size_t i = 0; i < vm->mem.size / 8; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

#endif
