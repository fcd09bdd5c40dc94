/*
 * bench/checkpoint: snapshot and restore costs of memstress guests.
 * For each guest size: the pause per snapshot (vCPUs stopped), the time to
 * write a full snapshot, the snapshot's size, and the restore time to the
 * first guest instruction (snapshot_open + VM build + snapshot_load: what
 * runs before the vCPUs start), the time until every page of RAM is in
 * (RAM loads while the guest runs: pages it touches first, the rest in
 * the background), plus KVM_GET_DIRTY_LOG's cost on a clean and a written
 * log. Medians of R runs; Firecracker's published restore target (under
 * 8 ms for 512 MB) is printed beside the restore figure.
 *
 * usage: checkpoint [R] [DIR] [MAX_MIB]   (R default 5; DIR for snapshot
 *        files, default /tmp; guests of 256 MiB, 1 GiB and 4 GiB up to
 *        MAX_MIB, default 4096)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "ft/checkpoint/epoch.h"
#include "ft/checkpoint/snapshot.h"
#include "vmm/mem_lazy.h"
#include "vmm/vm.h"
#include "base/clock.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t median(uint64_t *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	return v[n / 2];
}

static void *runner(void *arg)
{
	struct vm *vm = arg;
	struct vm_stop st;
	struct kg_err e;
	if (vm_run(vm, &st, &e) < 0)
		fprintf(stderr, "checkpoint: vm_run: %s\n", e.msg);
	return NULL;
}

static int boot(struct vm *vm, uint64_t mem, const char *cmdline)
{
	struct vm_config cfg = { .mem_size = mem, .ncpus = 1,
				 .kernel_path = "build/guests/memstress.elf",
				 .cmdline = cmdline };
	struct kg_err e;
	console_parse("none", &cfg.console, &e);
	if (vm_create(vm, &cfg, &e) < 0) {
		fprintf(stderr, "checkpoint: %s\n", e.msg);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int R = argc > 1 ? atoi(argv[1]) : 5;
	const char *dir = argc > 2 ? argv[2] : "/tmp";
	uint64_t max_mib = argc > 3 ? strtoull(argv[3], NULL, 10) : 4096;
	if (R < 1 || R > 100)
		R = 5;
	static const uint64_t sizes[] = { 256ull << 20, 1024ull << 20,
					  4096ull << 20 };
	printf("bench/checkpoint: memstress mib=64 rate=256 (MiB/s written "
	       "while the snapshot runs), medians of %d runs\n\n", R);
	printf("%-10s %12s %12s %10s %14s %12s %16s %16s\n", "guest",
	       "pause_us", "snapshot_ms", "size_MiB", "restore_ms",
	       "ram_in_ms", "dirtylog_clean_us", "dirtylog_used_us");
	for (unsigned s = 0; s < sizeof(sizes) / sizeof(*sizes); s++) {
		if (sizes[s] >> 20 > max_mib)
			break;
		uint64_t pause[100], total[100], bytes[100], restore[100];
		uint64_t clean[100], used[100], open_us[100], create_us[100];
		uint64_t passes[100], ram_in[100];
		for (int i = 0; i < R; i++) {
			struct vm *vm = calloc(1, sizeof(*vm));
			pthread_t t;
			if (boot(vm, sizes[s], "mib=64 total=1000000 rate=256") < 0)
				return 1;
			pthread_create(&t, NULL, runner, vm);
			usleep(400000);
			struct kg_err e;
			/* the dirty log: clean, then after 50 ms of writes */
			guest_mem_dirty_log(&vm->mem, vm->vm_fd, true, &e);
			uint64_t *bits = calloc(guest_mem_bitmap_words(&vm->mem), 8);
			uint64_t t0 = kg_now_ns();
			guest_mem_fetch_kvm_dirty(&vm->mem, vm->vm_fd, bits, &e);
			clean[i] = (kg_now_ns() - t0) / 1000;
			usleep(50000);
			t0 = kg_now_ns();
			guest_mem_fetch_kvm_dirty(&vm->mem, vm->vm_fd, bits, &e);
			used[i] = (kg_now_ns() - t0) / 1000;
			guest_mem_dirty_log(&vm->mem, vm->vm_fd, false, &e);
			free(bits);

			char path[4200];
			snprintf(path, sizeof(path), "%s/kagami-bench-%d.kgs", dir,
				 getpid());
			struct snapshot_stats st;
			if (snapshot_save(vm, path, &st, &e) < 0) {
				fprintf(stderr, "checkpoint: %s\n", e.msg);
				return 1;
			}
			pause[i] = st.pause_us;
			total[i] = st.total_us / 1000;
			bytes[i] = st.bytes >> 20;
			vm_request_stop(vm, VM_STOP_REQUEST, 0, NULL);
			pthread_join(t, NULL);
			vm_destroy(vm);

			/* restore: everything before the first instruction */
			struct vm_config cfg = { 0 };
			console_parse("none", &cfg.console, &e);
			t0 = kg_now_ns();
			struct snapshot_reader *sr = snapshot_open(path, &cfg, &e);
			uint64_t t_open = kg_now_ns();
			if (!sr || vm_create(vm, &cfg, &e) < 0) {
				fprintf(stderr, "checkpoint: restore: %s\n", e.msg);
				return 1;
			}
			uint64_t t_create = kg_now_ns();
			if (snapshot_load(sr, vm, &e) < 0) {
				fprintf(stderr, "checkpoint: restore: %s\n", e.msg);
				return 1;
			}
			restore[i] = (kg_now_ns() - t0) / 1000;
			open_us[i] = (t_open - t0) / 1000;
			create_us[i] = (t_create - t_open) / 1000;
			passes[i] = st.second_pass_pages;
			pthread_create(&t, NULL, runner, vm);
			struct mem_lazy_stats ls = { 0 };
			if (guest_mem_lazy_wait(&vm->mem, &e) < 0) {
				fprintf(stderr, "checkpoint: restore: %s\n", e.msg);
				return 1;
			}
			guest_mem_lazy_stats(&vm->mem, &ls);
			ram_in[i] = ls.done_ns / 1000000;
			usleep(20000);
			vm_request_stop(vm, VM_STOP_REQUEST, 0, NULL);
			pthread_join(t, NULL);
			snapshot_close(sr);
			vm_destroy(vm);
			free(vm);
			unlink(path);
		}
		char name[32];
		snprintf(name, sizeof(name), "%llu MiB",
			 (unsigned long long)(sizes[s] >> 20));
		uint64_t rs = median(restore, R);
		fprintf(stderr, "  (restore: open %llu us, VM build %llu us, "
			"state+pages %llu us; paused pages %llu)\n",
			(unsigned long long)median(open_us, R),
			(unsigned long long)median(create_us, R),
			(unsigned long long)(rs - median(open_us, R) -
					     median(create_us, R)),
			(unsigned long long)median(passes, R));
		printf("%-10s %12llu %12llu %10llu %11llu.%02llu %12llu %16llu "
		       "%16llu\n",
		       name, (unsigned long long)median(pause, R),
		       (unsigned long long)median(total, R),
		       (unsigned long long)median(bytes, R),
		       (unsigned long long)(rs / 1000),
		       (unsigned long long)(rs % 1000 / 10),
		       (unsigned long long)median(ram_in, R),
		       (unsigned long long)median(clean, R),
		       (unsigned long long)median(used, R));
	}
	/* Incremental epochs at several dirty rates: stream bytes against the
	 * raw 4 KiB pages they carry, and the pause per epoch. */
	static const unsigned rates[] = { 16, 64, 256, 1024 };
	printf("\nincremental epochs, 256 MiB guest, memstress mib=64 at R MiB/s,"
	       " one epoch per 100 ms, medians of %d epochs\n", 10 * R);
	printf("%-10s %14s %14s %10s %10s %12s\n", "rate", "dirty_KiB",
	       "stream_KiB", "ratio", "pause_us", "encode_MB/s");
	/* pause_us: vCPUs stopped (dirty set, page copy, state); encoding
	 * then runs on the epoch's thread while the guest runs. */
	for (unsigned k = 0; k < sizeof(rates) / sizeof(*rates); k++) {
		char cmd[96];
		snprintf(cmd, sizeof(cmd), "mib=64 total=1000000 rate=%u", rates[k]);
		struct vm *vm = calloc(1, sizeof(*vm));
		if (boot(vm, 256ull << 20, cmd) < 0)
			return 1;
		int devnull = open("/dev/null", O_WRONLY);
		struct kg_err e;
		struct epoch_sender *es = epoch_sender_new(vm, devnull, &e);
		if (!es) {
			fprintf(stderr, "checkpoint: %s\n", e.msg);
			return 1;
		}
		pthread_t t;
		pthread_create(&t, NULL, runner, vm);
		usleep(300000);
		struct epoch_stats st;
		epoch_send(es, true, &st, &e);
		epoch_wait(es, &e);
		int n = 10 * R > 100 ? 100 : 10 * R;
		uint64_t dirty[100], bytes[100], pause[100], mbs[100];
		for (int i = 0; i < n; i++) {
			usleep(100000);
			if (epoch_send(es, false, &st, &e) < 0 ||
			    epoch_wait(es, &e) < 0) {
				fprintf(stderr, "checkpoint: %s\n", e.msg);
				return 1;
			}
			dirty[i] = st.dirty_pages * 4;
			bytes[i] = st.stream_bytes >> 10;
			pause[i] = st.pause_us;
			mbs[i] = st.encode_us ? st.codec.bytes_in / st.encode_us : 0;
		}
		uint64_t d = median(dirty, n), b = median(bytes, n);
		printf("%4u MiB/s %14llu %14llu %9.3f %10llu %12llu\n", rates[k],
		       (unsigned long long)d, (unsigned long long)b,
		       d ? (double)b / (double)d : 0.0,
		       (unsigned long long)median(pause, n),
		       (unsigned long long)median(mbs, n));
		vm_request_stop(vm, VM_STOP_REQUEST, 0, NULL);
		pthread_join(t, NULL);
		epoch_sender_free(es);
		close(devnull);
		vm_destroy(vm);
		free(vm);
	}
	printf("memstress writes pseudo-random whole pages, which neither LZ4 nor "
	       "deltas shrink (ratio ~1 is the honest figure for it); "
	       "build/bench/codec measures the codec on zero, lightly written "
	       "and text pages, against memcpy.\n");

	printf("\nrestore_ms: snapshot_open + VM build + state load, i.e. until "
	       "the first guest instruction can run; RAM loads after that, "
	       "each page checked against its hash (ram_in_ms: from the "
	       "start of the load until every page is in and the file is no "
	       "longer read).\n"
	       "peer: Firecracker publishes < 8 ms restore for a 512 MB guest.\n");
	return 0;
}
