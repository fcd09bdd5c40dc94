/*
 * The one logger. Library code never writes to stderr itself: it returns
 * errors, and reports what a user must know while work goes on (a warning,
 * a device disabled by a guest error, a side going unprotected) through
 * kg_log. The program configures where lines go, once, before it starts
 * threads; this is the process's only logging setting, read-only after
 * that, so a primary and its replica in one process share it harmlessly.
 *
 * Default: lines go to stderr as "kagami: <msg>" ("kagami: warning: <msg>"
 * for warnings), each in one write so that threads never interleave
 * inside a line. Debug lines are dropped unless the level allows them.
 */
#ifndef KG_LOG_H
#define KG_LOG_H

enum kg_log_level { KG_LOG_ERROR, KG_LOG_WARN, KG_LOG_INFO, KG_LOG_DEBUG };

/* Receives one formatted line (no newline). */
typedef void (*kg_log_fn)(void *ctx, enum kg_log_level level, const char *msg);

/* prog prefixes default lines (NULL keeps "kagami"); fn NULL keeps the
 * default stderr sink; lines above max are dropped. */
void kg_log_configure(const char *prog, enum kg_log_level max, kg_log_fn fn,
		      void *ctx);

void kg_log(enum kg_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define kg_warn(...) kg_log(KG_LOG_WARN, __VA_ARGS__)
#define kg_info(...) kg_log(KG_LOG_INFO, __VA_ARGS__)

#endif
