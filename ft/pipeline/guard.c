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

/* How often the watchdog looks at the lease's end at the latest (and
 * sees a stop). */
#define WATCH_POLL_MS 50

struct guard {
	struct vm *vm;
	struct lease *l;
	unsigned ttl_ms;
	bool granted;         /* once: later grants must be renewals */
	uint64_t gen;
	pthread_mutex_t lock; /* one lease call at a time */
	pthread_t thread, watch;
	bool watching;
	atomic_bool stop, fenced;
	/* CLOCK_BOOTTIME ms at which our lease ends, as last confirmed; the
	 * renewing thread moves it, the watchdog reads it. */
	atomic_llong until_ms;
	pthread_mutex_t plock; /* paused and the VM's fence */
	bool paused;           /* we hold the VM fenced (vm_fence) */
	bool warned;
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static long long boot_ms(void)
{
	return (long long)(kg_boottime_ns() / 1000000u);
}

/* The fence comes this long before the lease ends: room to park the
 * vCPUs, and to spare. */
static long long margin_ms(const struct guard *g)
{
	return g->ttl_ms / 6 ? g->ttl_ms / 6 : 1;
}

/* Pauses the guest until a renewal succeeds: it must not run once the
 * lease may be someone else's. Its held output stays held (vm_fence keeps
 * it paused whatever else resumes it). */
static void fence_vm(struct guard *g, const char *why)
{
	pthread_mutex_lock(&g->plock);
	if (!g->paused) {
		g->paused = true;
		vm_fence(g->vm, true);
		kg_log(KG_LOG_INFO, "%s: the guest is PAUSED (held output "
			"stays held) so that it cannot run twice, until the "
			"lease is renewed", why);
	}
	pthread_mutex_unlock(&g->plock);
}

/* After a renewal: only while the lease runs for more than the margin
 * (a renewal that took nearly a ttl to answer would be fenced again at
 * once; the next one lifts it). */
static void unfence_vm(struct guard *g)
{
	pthread_mutex_lock(&g->plock);
	if (g->paused && !atomic_load(&g->fenced) &&
	    boot_ms() < atomic_load(&g->until_ms) - margin_ms(g)) {
		g->paused = false;
		vm_fence(g->vm, false);
		kg_log(KG_LOG_INFO, "the lease is renewed: the guest resumes");
	}
	pthread_mutex_unlock(&g->plock);
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
		atomic_store(&g->until_ms, until);
	}
	pthread_mutex_unlock(&g->lock);
	return r;
}

/* Someone else runs the guest now: this copy must not. */
static void lost(struct guard *g, const struct kg_err *e)
{
	atomic_store(&g->fenced, true);
	vm_request_stop(g->vm, VM_STOP_ERROR, 0,
			"split-brain guard: %s; this copy stops", e->msg);
}

static void sleep_until_boot(long long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (clock_nanosleep(CLOCK_BOOTTIME, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

static void *guard_thread(void *arg)
{
	struct guard *g = arg;
	/* Every ttl/3 from the last renewal's start, not its end: a slow
	 * answer does not push the next one towards the lease's end. */
	long long next = boot_ms() + g->ttl_ms / 3;
	while (!atomic_load(&g->stop)) {
		sleep_until_boot(next);
		if (atomic_load(&g->stop))
			break;
		next = boot_ms() + g->ttl_ms / 3;
		struct kg_err e;
		int r = renew(g, &e);
		if (r == 0) {
			lost(g, &e);
			return NULL;
		}
		if (r == 1)
			unfence_vm(g);
		if (r < 0 && !g->warned)
			kg_log(KG_LOG_WARN, "cannot renew the lease (%s); the "
				"guest pauses if it is not renewed before it "
				"ends", e.msg);
		g->warned = r < 0;
	}
	return NULL;
}

/* Fences the VM as soon as the lease is about to end unconfirmed, however
 * long a renewal blocks (a witness that accepts and says nothing) and
 * however long the host slept (CLOCK_BOOTTIME counts a suspend). */
static void *watch_thread(void *arg)
{
	struct guard *g = arg;
	while (!atomic_load(&g->stop)) {
		long long now = boot_ms();
		long long until = atomic_load(&g->until_ms);
		long long at = until - margin_ms(g);
		if (now >= at) {
			char why[160];
			snprintf(why, sizeof(why), "the lease could not be "
				 "renewed and ends in %lld ms", until - now);
			fence_vm(g, why);
			at = now + WATCH_POLL_MS;
		} else if (at > now + WATCH_POLL_MS) {
			at = now + WATCH_POLL_MS;
		}
		sleep_until_boot(at);
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
	pthread_mutex_init(&g->plock, NULL);
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
	int pr = pthread_create(&g->watch, NULL, watch_thread, g);
	if (pr == 0) {
		g->watching = true;
		pr = pthread_create(&g->thread, NULL, guard_thread, g);
	}
	if (pr) {
		errno = pr;
		kg_errno(e, "split-brain guard: pthread_create");
		goto fail;
	}
	return g;
fail:
	atomic_store(&g->stop, true);
	if (g->watching)
		pthread_join(g->watch, NULL);
	/* The guest has not run: a fence the watchdog set goes too. */
	if (g->paused)
		vm_fence(vm, false);
	if (g->l)
		lease_close(g->l);
	pthread_mutex_destroy(&g->lock);
	pthread_mutex_destroy(&g->plock);
	free(g);
	return NULL;
}

bool guard_confirm(struct guard *g, struct kg_err *e)
{
	int r = renew(g, e);
	if (r == 1) {
		unfence_vm(g);
		return true;
	}
	if (r == 0)
		lost(g, e);
	else
		fence_vm(g, "the lease cannot be confirmed");
	return false;
}

bool guard_fenced(struct guard *g)
{
	return g && atomic_load(&g->fenced);
}

unsigned guard_ttl_ms(const struct guard *g)
{
	return g ? g->ttl_ms : 0;
}

void guard_stop(struct guard *g)
{
	if (!g)
		return;
	atomic_store(&g->stop, true);
	pthread_join(g->thread, NULL);
	pthread_join(g->watch, NULL);
	lease_close(g->l);
	pthread_mutex_destroy(&g->lock);
	pthread_mutex_destroy(&g->plock);
	free(g);
}
