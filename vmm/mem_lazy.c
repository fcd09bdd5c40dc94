#include "mem_lazy.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/clock.h"
#include "mem.h"

#define PAGE 4096u

struct mem_lazy {
	struct guest_mem *m;
	struct mem_source src;
	struct mem_lazy_opts opts;
	int uffd;
	int stopfd;           /* eventfd: the threads end */
	bool zeropage;        /* UFFDIO_ZEROPAGE offered for this range */
	uint64_t npages;
	_Atomic uint64_t *present; /* one bit per memfd page: copied in */
	pthread_t fault_thread, prefetch_thread;
	bool fault_started, prefetch_started;
	atomic_bool fault_joined;
	atomic_bool released;
	atomic_bool failed;
	atomic_bool finishing; /* unregistered or about to be: errors of
				* copies are nobody's concern any more */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;            /* every page in, or the load failed */
	struct kg_err err;    /* the failure, when failed */
	uint64_t t0;
	_Atomic uint64_t faults, pages, zero_pages, done_ns;
};

static bool is_present(struct mem_lazy *L, uint64_t pg)
{
	return atomic_load_explicit(&L->present[pg / 64],
				    memory_order_acquire) >> (pg % 64) & 1;
}

static void mark_present(struct mem_lazy *L, uint64_t pg, uint64_t n)
{
	for (uint64_t p = pg; p < pg + n; p++)
		atomic_fetch_or_explicit(&L->present[p / 64], 1ull << (p % 64),
					 memory_order_release);
}

static void set_done(struct mem_lazy *L)
{
	pthread_mutex_lock(&L->lock);
	L->done = true;
	pthread_cond_broadcast(&L->cond);
	pthread_mutex_unlock(&L->lock);
}

static void unregister(struct mem_lazy *L)
{
	atomic_store(&L->finishing, true);
	/* Unregistering wakes the threads waiting on the range, and they
	 * retry their fault without userfaultfd — but it wakes them before
	 * it detaches the range, and a fault taken under the per-VMA lock
	 * (6.4+) can queue in between and sleep for good (seen here on
	 * 6.18). Once the range is detached no fault queues any more: wake
	 * whoever did (UFFDIO_WAKE needs no registration). */
	struct uffdio_range r = { (uint64_t)(uintptr_t)L->m->base,
				  L->m->size };
	ioctl(L->uffd, UFFDIO_UNREGISTER, &r);
	ioctl(L->uffd, UFFDIO_WAKE, &r);
}

static void stop_threads(struct mem_lazy *L)
{
	uint64_t one = 1;
	if (write(L->stopfd, &one, sizeof(one)) < 0) {
		/* an eventfd write fails only on overflow: already signalled */
	}
}

/* The first failure stops the VM (the source's callback) and lets every
 * waiting thread go on. */
static void fail(struct mem_lazy *L, const struct kg_err *e)
{
	if (atomic_load(&L->finishing) && !atomic_load(&L->failed))
		return; /* every page is in: the source no longer matters */
	if (atomic_exchange(&L->failed, true))
		return;
	pthread_mutex_lock(&L->lock);
	L->err = *e;
	pthread_mutex_unlock(&L->lock);
	L->src.failed(L->src.ctx, e);
	unregister(L);
	set_done(L);
	stop_threads(L);
}

static void wake(struct mem_lazy *L, uint64_t pg)
{
	struct uffdio_range r = { (uint64_t)(uintptr_t)(L->m->base + pg * PAGE),
				  PAGE };
	ioctl(L->uffd, UFFDIO_WAKE, &r);
}

/* One page, or a run: 0 copied (or already there), -1 failed. */
static int copy_run(struct mem_lazy *L, uint64_t pg, uint64_t n,
		    const uint8_t *src)
{
	struct kg_err e = { 0 };
	uint64_t done = 0;
	while (done < n) {
		struct uffdio_copy c = {
			.dst = (uint64_t)(uintptr_t)(L->m->base +
						     (pg + done) * PAGE),
			.src = (uint64_t)(uintptr_t)(src + done * PAGE),
			.len = (n - done) * PAGE,
		};
		if (ioctl(L->uffd, UFFDIO_COPY, &c) == 0) {
			mark_present(L, pg + done, n - done);
			atomic_fetch_add(&L->pages, n - done);
			return 0;
		}
		int err = errno;
		uint64_t got = c.copy > 0 ? (uint64_t)c.copy / PAGE : 0;
		mark_present(L, pg + done, got);
		atomic_fetch_add(&L->pages, got);
		done += got;
		if (err == EAGAIN)
			continue;
		if (err == EEXIST) {
			/* the other thread copied this page: skip it */
			mark_present(L, pg + done, 1);
			wake(L, pg + done);
			done++;
			continue;
		}
		if (atomic_load(&L->finishing))
			return -1;
		errno = err;
		kg_errno(&e, "UFFDIO_COPY at RAM offset 0x%llx",
			 (unsigned long long)((pg + done) * PAGE));
		fail(L, &e);
		return -1;
	}
	return 0;
}

static int zero_page(struct mem_lazy *L, uint64_t pg, const uint8_t *zeros)
{
	if (!L->zeropage)
		return copy_run(L, pg, 1, zeros);
	struct uffdio_zeropage z = {
		.range = { (uint64_t)(uintptr_t)(L->m->base + pg * PAGE), PAGE },
	};
	while (ioctl(L->uffd, UFFDIO_ZEROPAGE, &z) < 0) {
		if (errno == EAGAIN)
			continue;
		if (errno == EEXIST) {
			wake(L, pg);
			break;
		}
		if (atomic_load(&L->finishing))
			return -1;
		struct kg_err e = { 0 };
		kg_errno(&e, "UFFDIO_ZEROPAGE at RAM offset 0x%llx",
			 (unsigned long long)(pg * PAGE));
		fail(L, &e);
		return -1;
	}
	mark_present(L, pg, 1);
	atomic_fetch_add(&L->zero_pages, 1);
	return 0;
}

/* Reads [first, first + n) from the source and copies in the pages that
 * hold data and are not there yet; `want` (a faulting page, or
 * UINT64_MAX) gets a zero page if it holds zeros. */
static int load(struct mem_lazy *L, uint64_t first, unsigned n,
		uint64_t want, uint8_t *buf, const uint8_t *zeros)
{
	uint64_t zero[MEM_LAZY_BATCH / 64] = { 0 };
	struct kg_err e = { 0 };
	if (L->src.read(L->src.ctx, first, n, buf, zero, &e) < 0) {
		/* A fault whose page came in meanwhile (the background load
		 * was faster) needs nothing more from the source; the pages
		 * around it are the background load's to judge. */
		if (want != UINT64_MAX && is_present(L, want)) {
			wake(L, want);
			return 0;
		}
		fail(L, &e);
		return -1;
	}
	for (unsigned i = 0; i < n;) {
		if (zero[i / 64] >> (i % 64) & 1 || is_present(L, first + i)) {
			i++;
			continue;
		}
		unsigned j = i + 1;
		while (j < n && !(zero[j / 64] >> (j % 64) & 1) &&
		       !is_present(L, first + j))
			j++;
		if (copy_run(L, first + i, j - i, buf + (size_t)i * PAGE) < 0)
			return -1;
		i = j;
	}
	if (want != UINT64_MAX && !is_present(L, want)) {
		unsigned w = (unsigned)(want - first);
		if (zero[w / 64] >> (w % 64) & 1)
			return zero_page(L, want, zeros);
	}
	return 0;
}

/* The region holding memfd page pg: the batch must not cross it. */
static void batch_bounds(const struct mem_lazy *L, uint64_t pg, unsigned size,
			 uint64_t *first, unsigned *n)
{
	const struct guest_mem *m = L->m;
	uint64_t lo = 0, hi = L->npages;
	for (unsigned r = 0; r < m->nregions; r++) {
		uint64_t a = m->regions[r].offset / PAGE;
		uint64_t b = a + m->regions[r].size / PAGE;
		if (pg >= a && pg < b) {
			lo = a;
			hi = b;
		}
	}
	uint64_t f = pg - (pg - lo) % size;
	*first = f;
	*n = (unsigned)(hi - f < size ? hi - f : size);
}

static void *fault_main(void *arg)
{
	struct mem_lazy *L = arg;
	uint8_t *buf = aligned_alloc(PAGE, MEM_LAZY_BATCH * PAGE);
	uint8_t *zeros = aligned_alloc(PAGE, PAGE);
	if (!buf || !zeros) {
		struct kg_err e = { 0 };
		kg_errk(&e, KG_ERR_NOMEM, "RAM loader: out of memory");
		fail(L, &e);
		goto out;
	}
	memset(zeros, 0, PAGE);
	struct pollfd p[2] = { { .fd = L->uffd, .events = POLLIN },
			       { .fd = L->stopfd, .events = POLLIN } };
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			struct kg_err e = { 0 };
			kg_errno(&e, "RAM loader: poll");
			fail(L, &e);
			break;
		}
		if (p[1].revents)
			break;
		struct uffd_msg msg[16];
		ssize_t k = read(L->uffd, msg, sizeof(msg));
		if (k < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			struct kg_err e = { 0 };
			kg_errno(&e, "RAM loader: reading userfaultfd");
			fail(L, &e);
			break;
		}
		for (size_t i = 0; i < (size_t)k / sizeof(msg[0]); i++) {
			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			uint64_t addr = msg[i].arg.pagefault.address;
			uint64_t pg = (addr - (uint64_t)(uintptr_t)L->m->base) /
				      PAGE;
			if (pg >= L->npages)
				continue;
			atomic_fetch_add(&L->faults, 1);
			if (is_present(L, pg)) {
				wake(L, pg); /* copied meanwhile */
				continue;
			}
			uint64_t first;
			unsigned n;
			batch_bounds(L, pg, MEM_LAZY_FAULT_BATCH, &first, &n);
			if (load(L, first, n, pg, buf, zeros) < 0 &&
			    atomic_load(&L->failed))
				goto out;
		}
	}
out:
	free(buf);
	free(zeros);
	return NULL;
}

static void release_source(struct mem_lazy *L)
{
	if (!atomic_exchange(&L->released, true))
		L->src.release(L->src.ctx);
}

static void *prefetch_main(void *arg)
{
	struct mem_lazy *L = arg;
	uint8_t *buf = aligned_alloc(PAGE, MEM_LAZY_BATCH * PAGE);
	if (!buf) {
		struct kg_err e = { 0 };
		kg_errk(&e, KG_ERR_NOMEM, "RAM loader: out of memory");
		fail(L, &e);
		return NULL;
	}
	if (L->opts.prefetch_delay_ms) {
		struct pollfd p = { .fd = L->stopfd, .events = POLLIN };
		if (poll(&p, 1, (int)L->opts.prefetch_delay_ms) != 0)
			goto out; /* stopped (or poll failed: stop anyway) */
	}
	for (uint64_t pg = 0; pg < L->npages;) {
		struct pollfd p = { .fd = L->stopfd, .events = POLLIN };
		if (poll(&p, 1, 0) != 0)
			goto out;
		uint64_t first;
		unsigned n;
		batch_bounds(L, pg, MEM_LAZY_BATCH, &first, &n);
		bool all = true;
		for (unsigned i = 0; i < n && all; i++)
			all = is_present(L, first + i);
		if (!all && load(L, first, n, UINT64_MAX, buf, NULL) < 0)
			goto out;
		pg = first + n;
	}
	/* Every page holding data is in; the rest are holes, which read
	 * as zeros once userfaultfd lets go of the range. */
	unregister(L);
	atomic_store(&L->done_ns, kg_now_ns() - L->t0);
	stop_threads(L);
	pthread_join(L->fault_thread, NULL);
	atomic_store(&L->fault_joined, true);
	release_source(L);
	set_done(L);
out:
	free(buf);
	return NULL;
}

/* userfaultfd(2), or /dev/userfaultfd where the syscall is refused to
 * this process (vm.unprivileged_userfaultfd = 0 without CAP_SYS_PTRACE):
 * never UFFD_USER_MODE_ONLY, which would keep KVM's faults out. */
static int uffd_open(struct kg_err *e)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0)
		return fd;
	int err = errno;
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		err = errno;
		close(dev);
		if (fd >= 0)
			return fd;
	}
	errno = err;
	kg_errno(e, "userfaultfd");
	return kg_err_as(e, KG_ERR_INVALID);
}

static void lazy_free(struct mem_lazy *L)
{
	if (L->uffd >= 0)
		close(L->uffd);
	if (L->stopfd >= 0)
		close(L->stopfd);
	pthread_cond_destroy(&L->cond);
	pthread_mutex_destroy(&L->lock);
	free(L->present);
	free(L);
}

int guest_mem_lazy_start(struct guest_mem *m, const struct mem_source *src,
			 const struct mem_lazy_opts *o, struct kg_err *e)
{
	struct mem_lazy *L = calloc(1, sizeof(*L));
	if (!L)
		return kg_errk(e, KG_ERR_NOMEM, "out of memory");
	L->m = m;
	L->src = *src;
	if (o)
		L->opts = *o;
	L->uffd = L->stopfd = -1;
	L->npages = m->size / PAGE;
	L->t0 = kg_now_ns();
	pthread_mutex_init(&L->lock, NULL);
	pthread_cond_init(&L->cond, NULL);
	L->present = calloc(guest_mem_bitmap_words(m), sizeof(uint64_t));
	if (!L->present) {
		kg_errk(e, KG_ERR_NOMEM, "out of memory");
		goto fail;
	}
	if ((L->uffd = uffd_open(e)) < 0)
		goto fail;
	struct uffdio_api api = { .api = UFFD_API };
	if (ioctl(L->uffd, UFFDIO_API, &api) < 0) {
		kg_errno(e, "UFFDIO_API");
		kg_err_as(e, KG_ERR_INVALID);
		goto fail;
	}
	if (!(api.features & UFFD_FEATURE_MISSING_SHMEM)) {
		kg_errk(e, KG_ERR_INVALID, "userfaultfd: no shared memory "
			"support in this kernel");
		goto fail;
	}
	/* Only pages the loader copies may be in the memfd: any other
	 * would never fault. */
	if (guest_mem_clear(m, e) < 0)
		goto fail;
	struct uffdio_register reg = {
		.range = { (uint64_t)(uintptr_t)m->base, m->size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	if (ioctl(L->uffd, UFFDIO_REGISTER, &reg) < 0) {
		kg_errno(e, "UFFDIO_REGISTER guest RAM");
		kg_err_as(e, KG_ERR_INVALID);
		goto fail;
	}
	if (!(reg.ioctls & (1ull << _UFFDIO_COPY))) {
		kg_errk(e, KG_ERR_INVALID, "userfaultfd: no UFFDIO_COPY for "
			"guest RAM");
		goto unreg;
	}
	L->zeropage = reg.ioctls & (1ull << _UFFDIO_ZEROPAGE);
	if ((L->stopfd = eventfd(0, EFD_CLOEXEC)) < 0) {
		kg_errno(e, "eventfd");
		goto unreg;
	}
	/* The loader's threads take no signal meant for the process. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&L->fault_thread, NULL, fault_main, L);
	if (!rc) {
		L->fault_started = true;
		rc = pthread_create(&L->prefetch_thread, NULL, prefetch_main, L);
		L->prefetch_started = !rc;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		errno = rc;
		kg_errno(e, "RAM loader: pthread_create");
		if (L->fault_started) {
			stop_threads(L);
			pthread_join(L->fault_thread, NULL);
		}
		goto unreg;
	}
	m->lazy = L;
	return 0;
unreg:
	unregister(L);
fail:
	lazy_free(L);
	return -1;
}

int guest_mem_load_eager(struct guest_mem *m, const struct mem_source *src,
			 struct kg_err *e)
{
	uint8_t *buf = aligned_alloc(PAGE, MEM_LAZY_BATCH * PAGE);
	if (!buf)
		return kg_errk(e, KG_ERR_NOMEM, "out of memory");
	int r = 0;
	for (unsigned ri = 0; ri < m->nregions && r == 0; ri++) {
		uint64_t a = m->regions[ri].offset / PAGE;
		uint64_t b = a + m->regions[ri].size / PAGE;
		for (uint64_t first = a; first < b; first += MEM_LAZY_BATCH) {
			unsigned n = (unsigned)(b - first < MEM_LAZY_BATCH
						? b - first : MEM_LAZY_BATCH);
			uint64_t zero[MEM_LAZY_BATCH / 64] = { 0 };
			if ((r = src->read(src->ctx, first, n, buf, zero, e)) < 0)
				break;
			for (unsigned i = 0; i < n; i++)
				if (!(zero[i / 64] >> (i % 64) & 1))
					memcpy(m->base + (first + i) * PAGE,
					       buf + (size_t)i * PAGE, PAGE);
		}
	}
	free(buf);
	return r;
}

bool guest_mem_lazy(const struct guest_mem *m)
{
	struct mem_lazy *L = m->lazy;
	if (!L)
		return false;
	pthread_mutex_lock(&L->lock);
	bool lazy = !L->done || atomic_load(&L->failed);
	pthread_mutex_unlock(&L->lock);
	return lazy;
}

int guest_mem_lazy_wait(struct guest_mem *m, struct kg_err *e)
{
	struct mem_lazy *L = m->lazy;
	if (!L)
		return 0;
	pthread_mutex_lock(&L->lock);
	while (!L->done)
		pthread_cond_wait(&L->cond, &L->lock);
	int r = 0;
	if (atomic_load(&L->failed)) {
		if (e)
			*e = L->err;
		r = -1;
	}
	pthread_mutex_unlock(&L->lock);
	return r;
}

bool guest_mem_lazy_stats(const struct guest_mem *m, struct mem_lazy_stats *st)
{
	struct mem_lazy *L = m->lazy;
	if (!L)
		return false;
	st->faults = atomic_load(&L->faults);
	st->pages = atomic_load(&L->pages);
	st->zero_pages = atomic_load(&L->zero_pages);
	st->done_ns = atomic_load(&L->done_ns);
	return true;
}

void guest_mem_lazy_stop(struct guest_mem *m)
{
	struct mem_lazy *L = m->lazy;
	if (!L)
		return;
	stop_threads(L);
	if (L->prefetch_started)
		pthread_join(L->prefetch_thread, NULL);
	if (L->fault_started && !atomic_load(&L->fault_joined))
		pthread_join(L->fault_thread, NULL);
	unregister(L);
	release_source(L);
	m->lazy = NULL;
	lazy_free(L);
}
