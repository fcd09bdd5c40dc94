/*
 * mkstream: writes a valid sample kagami stream with the stream writer, for
 * tests/integration/50_inspect.sh (nothing in kagami writes snapshots yet).
 *
 *   mkstream [--arch ID] [--version MAJOR.MINOR] [--no-end] FILE|-
 *
 * The sample has every known section kind, a streamed RAM section whose
 * payload is page-aligned (after a pad section), one epoch, and one
 * unknown ancillary kind (0x8123). Payloads are a pattern derived from the
 * section's kind and instance, so the output is the same on every run.
 *
 *   mkstream --send ADDR --hostile huge|many|cpu
 *
 * plays a hostile migration source to a 'kagami receive --listen ADDR'
 * (tests/integration/81_receive_hostile.sh): HELLO, a valid header and
 * configuration (a 64 MiB VM), then either an epoch whose first section
 * announces 1 GiB (huge: 1 MiB of it is sent), or a paused epoch of 1 MiB
 * sections that never ends (many: up to 2 GiB), or an epoch whose CPUID
 * section has a feature this host's KVM lacks (cpu: the first of sha,
 * rdpid, avx512f, avx2, pku missing here; leaf 7). Prints how the receiver
 * answered ("refused: <its ABORT>", or how the link ended); exit 0 once
 * the receiver has hung up or refused.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ft/checkpoint/cpuid_state.h"
#include "ft/checkpoint/epoch.h"
#include "ft/checkpoint/stream.h"
#include "ft/checkpoint/vm_state.h"
#include "ft/pipeline/rlink.h"
#include "transport/transport.h"
#include "vmm/cpuid.h"
#include "vmm/kvm.h"
#include "vmm/kvm_probe.h"
#include "vmm/vm.h"

static void fill(uint8_t *buf, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

static int section(struct kg_stream_writer *w, uint16_t kind, uint16_t inst,
		   size_t len, struct kg_err *e)
{
	uint8_t buf[4096];
	fill(buf, len, kind * 257u + inst);
	return kg_writer_section(w, kind, inst, 1, buf, len, e);
}

/* RAM as a streamed section: length declared, then 4 KiB pages. */
static int ram(struct kg_stream_writer *w, struct kg_err *e)
{
	uint8_t page[4096];
	const unsigned pages = 16;
	if (kg_writer_begin(w, KG_SEC_RAM_FULL, 0, 1, pages * sizeof(page),
			    e) < 0)
		return -1;
	for (unsigned i = 0; i < pages; i++) {
		fill(page, sizeof(page), i);
		if (kg_writer_append(w, page, sizeof(page), e) < 0)
			return -1;
	}
	return kg_writer_end_section(w, e);
}

static int write_sample(struct kg_stream_writer *w,
			const struct kg_stream_header *h, int end,
			struct kg_err *e)
{
	if (kg_writer_header(w, h, e) < 0 ||
	    section(w, KG_SEC_VM_CONFIG, 0, 64, e) < 0 ||
	    section(w, KG_SEC_VCPU, 0, 2048, e) < 0 ||
	    section(w, KG_SEC_VCPU, 1, 2048, e) < 0 ||
	    section(w, KG_SEC_IRQCHIP, 0, 512, e) < 0 ||
	    section(w, KG_SEC_IRQCHIP, 2, 512, e) < 0 ||
	    section(w, KG_SEC_PIT, 0, 112, e) < 0 ||
	    section(w, KG_SEC_CLOCK, 0, 48, e) < 0 ||
	    section(w, KG_SEC_DEVICE, 0, 300, e) < 0 ||
	    section(w, KG_SEC_DEVICE, 1, 200, e) < 0 ||
	    kg_writer_align(w, 4096, e) < 0 || ram(w, e) < 0 ||
	    section(w, KG_SEC_DISK, 0, 40, e) < 0 ||
	    section(w, 0x8123, 0, 10, e) < 0 ||
	    section(w, KG_SEC_EPOCH_BEGIN, 0, 16, e) < 0 ||
	    section(w, KG_SEC_RAM_PAGES, 0, 4000, e) < 0 ||
	    section(w, KG_SEC_VCPU, 0, 2048, e) < 0 ||
	    section(w, KG_SEC_EPOCH_END, 0, 16, e) < 0)
		return -1;
	return end ? kg_writer_end(w, e) : 0;
}

/* A "cpuid" section of a 1-vCPU VM on a host with one feature more than
 * this one (leaf 7 EBX/ECX): 0, or -1 with e set. */
static int cpu_beyond_this_host(struct kg_stream_writer *w, struct kg_err *e)
{
	static const struct { char reg; unsigned bit; } extra[] = {
		{ 'b', 29 }, { 'c', 22 }, { 'b', 16 }, { 'b', 5 }, { 'c', 3 },
	};
	struct vm vm = { .ncpus = 1 };
	int fd = kvm_open(e), r = -1;
	if (fd < 0)
		return -1;
	if (!(vm.cpuid = kvm_supported_cpuid(fd, e)) ||
	    kvm_cpuid_flags(fd, vm.cpuid, true, &vm.cpuid_flags, e) < 0)
		goto out;
	struct kvm_cpuid_entry2 *l7 = cpuid_find(vm.cpuid, 7, 0);
	if (!l7) {
		kg_errf(e, "this host's KVM reports no CPUID leaf 7");
		goto out;
	}
	size_t i;
	for (i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		uint32_t *reg = extra[i].reg == 'b' ? &l7->ebx : &l7->ecx;
		if (!(*reg & (1u << extra[i].bit))) {
			*reg |= 1u << extra[i].bit;
			break;
		}
	}
	if (i == sizeof(extra) / sizeof(extra[0])) {
		kg_errf(e, "this host has every feature mkstream would add");
		goto out;
	}
	r = cpuid_state_write(w, &vm, e);
out:
	free(vm.cpuid);
	close(fd);
	return r;
}

/* The hostile source: 0 when the receiver refused or hung up. */
static int send_hostile(const char *addr, const char *how)
{
	struct kg_err e = { 0 };
	struct kg_tp_opts to;
	struct kg_transport *t;
	kg_tp_opts_default(&to);
	to.max_frame = RLINK_MAX_FRAME;
	if (kg_tp_connect(addr, &to, &t, &e) < 0) {
		fprintf(stderr, "mkstream: %s\n", e.msg);
		return 1;
	}
	struct rlink *l = rlink_new(t, 0, &e);
	if (!l || rlink_send(l, RLINK_HELLO, 1, RLINK_MODE_MIGRATE, NULL,
			     &e) < 0) {
		fprintf(stderr, "mkstream: %s\n", e.msg);
		return 1;
	}
	struct kg_stream_writer w;
	kg_writer_init(&w, -1, NULL, "hostile stream");
	kg_writer_set_io(&w, &rlink_stream_io, l);
	struct vm_state_config c = { .mem_size = 64u << 20, .ncpus = 1 };
	bool many = !strcmp(how, "many");
	uint64_t begin[2] = { 1, many ? 0 : EPOCH_F_LIVE };
	static uint8_t mib[1u << 20];
	int r = 0;
	if (kg_writer_header(&w, NULL, &e) < 0 ||
	    vm_state_put_config(&w, &c, &e) < 0 ||
	    kg_writer_flush(&w, &e) < 0 || rlink_start_reader(l, &e) < 0 ||
	    kg_writer_section(&w, KG_SEC_EPOCH_BEGIN, 0, 2, begin,
			      sizeof(begin), &e) < 0)
		r = -1;
	if (r == 0 && !strcmp(how, "cpu")) {
		r = cpu_beyond_this_host(&w, &e);
		if (r == 0)
			r = kg_writer_section(&w, KG_SEC_RAM_PAGES, 0, 1, mib,
					      sizeof(mib), &e);
	} else if (r == 0 && many) {
		for (unsigned i = 0; i < 2048 && r == 0; i++)
			r = kg_writer_section(&w, KG_SEC_RAM_PAGES, 0, 1, mib,
					      sizeof(mib), &e);
	} else if (r == 0) {
		r = kg_writer_begin(&w, KG_SEC_RAM_PAGES, 0, 1, 1ull << 30,
				    &e);
		if (r == 0)
			r = kg_writer_append(&w, mib, sizeof(mib), &e);
	}
	if (r == 0)
		r = kg_writer_flush(&w, &e);
	/* What the receiver said (its ABORT), or how the link ended. */
	struct rlink_msg m;
	struct kg_err we = { 0 };
	int k = rlink_wait_msg(l, 0, 30000, &m, &we);
	if (k == 1)
		printf("refused: %s\n", m.text);
	else if (k < 0)
		printf("link ended: %s\n", we.msg);
	else
		printf("no answer within 30 s%s%s\n", r < 0 ? "; " : "",
		       r < 0 ? e.msg : "");
	rlink_free(l);
	return k != 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "--send") &&
	    !strcmp(argv[3], "--hostile") &&
	    (!strcmp(argv[4], "huge") || !strcmp(argv[4], "many") ||
	     !strcmp(argv[4], "cpu")))
		return send_hostile(argv[2], argv[4]);
	struct kg_stream_header h;
	struct kg_stream_writer w;
	struct kg_err e = { 0 };
	const char *path = NULL;
	int end = 1;

	kg_stream_header_host(&h);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--arch") && i + 1 < argc) {
			h.arch = (uint16_t)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--version") && i + 1 < argc) {
			unsigned ma, mi;
			if (sscanf(argv[++i], "%u.%u", &ma, &mi) != 2)
				goto usage;
			h.major = (uint16_t)ma;
			h.minor = (uint16_t)mi;
		} else if (!strcmp(argv[i], "--no-end")) {
			end = 0;
		} else if (!path && argv[i][0] != '-') {
			path = argv[i];
		} else if (!path && !strcmp(argv[i], "-")) {
			path = argv[i];
		} else {
			goto usage;
		}
	}
	if (!path)
		goto usage;
	int fd = strcmp(path, "-")
		? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
		: STDOUT_FILENO;
	if (fd < 0) {
		perror(path);
		return 1;
	}
	kg_writer_init(&w, fd, NULL, NULL);
	if (write_sample(&w, &h, end, &e) < 0) {
		fprintf(stderr, "mkstream: %s\n", e.msg);
		return 1;
	}
	if (fd != STDOUT_FILENO && close(fd) < 0) {
		perror(path);
		return 1;
	}
	return 0;
usage:
	fprintf(stderr, "usage: mkstream [--arch ID] [--version MAJOR.MINOR] "
		"[--no-end] FILE|-\n"
		"       mkstream --send ADDR --hostile huge|many|cpu\n");
	return 2;
}
