#include "guard.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmm/vm.h"
#include "ft/lease/lease.h"
#include "base/clock.h"
#include "base/log.h"

struct guard {
	struct vm *vm;
	struct lease *l;
	unsigned ttl_ms;
	bool granted;         /* once: later grants must be renewals */
	uint64_t gen;
	pthread_mutex_t lock; /* one lease call at a time */
	pthread_t thread;
	atomic_bool stop, fenced;
	bool warned;
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* 1 held (our grant, renewed), 0 someone else has it or may have had
 * it, -1 cannot tell. */
static int renew(struct guard *g, struct kg_err *e)
{
	long long until;
	pthread_mutex_lock(&g->lock);
	int r = lease_acquire(g->l, g->ttl_ms, &until, e);
	if (r == 1 && g->granted && !lease_renewed(g->l)) {
		/* Granted afresh: our grant ended (released, expired and
		 * taken, or forgotten by a restarted witness), so another
		 * side may have run the guest meanwhile. */
		kg_errf(e, "the lease changed hands (granted afresh with "
			"generation %llu; ours was %llu)",
			(unsigned long long)lease_generation(g->l),
			(unsigned long long)g->gen);
		r = 0;
	}
	if (r == 1) {
		g->granted = true;
		g->gen = lease_generation(g->l);
	}
	pthread_mutex_unlock(&g->lock);
	return r;
}

static void *guard_thread(void *arg)
{
	struct guard *g = arg;
	while (!atomic_load(&g->stop)) {
		sleep_ms(g->ttl_ms / 3);
		struct kg_err e;
		int r = renew(g, &e);
		if (r == 0) {
			/* Someone else runs the guest now: this copy must not. */
			atomic_store(&g->fenced, true);
			vm_request_stop(g->vm, VM_STOP_ERROR, 0,
					"split-brain guard: %s; this copy stops",
					e.msg);
			return NULL;
		}
		if (r < 0 && !g->warned)
			kg_log(KG_LOG_WARN, "cannot renew the lease "
				"(%s): a failure now could not be resolved",
				e.msg);
		g->warned = r < 0;
	}
	return NULL;
}

struct guard *guard_start(struct vm *vm, const char *spec,
			  const struct kg_tp_key *key, unsigned ttl_ms,
			  unsigned wait_ms, struct kg_err *e)
{
	struct guard *g = calloc(1, sizeof(*g));
	if (!g) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	char holder[96], host[64] = "host";
	gethostname(host, sizeof(host) - 1);
	for (char *p = host; *p; p++)
		if (*p == ' ' || *p == '/')
			*p = '_';
	snprintf(holder, sizeof(holder), "kagami@%s:%d", host, (int)getpid());
	g->vm = vm;
	g->ttl_ms = ttl_ms;
	pthread_mutex_init(&g->lock, NULL);
	g->l = lease_open(spec, holder, key, e);
	if (!g->l)
		goto fail;
	uint64_t deadline = kg_now_ns() + (uint64_t)wait_ms * 1000000u;
	for (;;) {
		int r = renew(g, e);
		if (r == 1)
			break;
		if (kg_now_ns() >= deadline) {
			kg_err_prefix(e, "lease %s", spec);
			goto fail;
		}
		sleep_ms(ttl_ms / 10 ? ttl_ms / 10 : 1);
	}
	int pr = pthread_create(&g->thread, NULL, guard_thread, g);
	if (pr) {
		errno = pr;
		kg_errno(e, "split-brain guard: pthread_create");
		goto fail;
	}
	return g;
fail:
	if (g->l)
		lease_close(g->l);
	pthread_mutex_destroy(&g->lock);
	free(g);
	return NULL;
}

bool guard_confirm(struct guard *g, struct kg_err *e)
{
	int r = renew(g, e);
	if (r == 0)
		atomic_store(&g->fenced, true);
	return r == 1;
}

bool guard_fenced(struct guard *g)
{
	return g && atomic_load(&g->fenced);
}

void guard_stop(struct guard *g)
{
	if (!g)
		return;
	atomic_store(&g->stop, true);
	pthread_join(g->thread, NULL);
	lease_close(g->l);
	pthread_mutex_destroy(&g->lock);
	free(g);
}
