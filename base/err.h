/*
 * Error reporting below main(): functions return -1 (or NULL) and fill a
 * caller-provided struct kg_err with one line naming what failed, e.g.
 * "KVM_SET_SREGS: Invalid argument". Nothing below main() exits or aborts,
 * so the replication layer can decide what a failure means.
 */
#ifndef KG_ERR_H
#define KG_ERR_H

struct kg_err {
	char msg[512];
};

/* Formats into e (may be NULL) and returns -1. */
int kg_errf(struct kg_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "<what>: strerror(errno)"; returns -1 and preserves errno. */
int kg_errno(struct kg_err *e, const char *what, ...)
	__attribute__((format(printf, 2, 3)));
/* Prefixes an existing message: "<prefix>: <old message>"; returns -1. */
int kg_err_prefix(struct kg_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
