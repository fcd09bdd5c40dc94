#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

/* Written once by kg_log_configure before threads start; read-only after. */
static struct {
	const char *prog;
	enum kg_log_level max;
	kg_log_fn fn;
	void *ctx;
} log_cfg = { "kagami", KG_LOG_INFO, NULL, NULL };

void kg_log_configure(const char *prog, enum kg_log_level max, kg_log_fn fn,
		      void *ctx)
{
	if (prog)
		log_cfg.prog = prog;
	log_cfg.max = max;
	log_cfg.fn = fn;
	log_cfg.ctx = ctx;
}

void kg_log(enum kg_log_level level, const char *fmt, ...)
{
	if (level > log_cfg.max)
		return;
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_cfg.fn) {
		log_cfg.fn(log_cfg.ctx, level, msg);
		return;
	}
	char line[4200];
	int n = snprintf(line, sizeof(line), "%s: %s%s\n", log_cfg.prog,
			 level == KG_LOG_WARN ? "warning: " : "", msg);
	if (n > (int)sizeof(line) - 1) {
		n = (int)sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}
