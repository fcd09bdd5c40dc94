#include "faultpoint.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int kg_faults_parse(const char *spec, struct kg_faults *f, struct kg_err *e)
{
	const char *p = spec;
	while (*p) {
		size_t n = strcspn(p, ",");
		const char *eq = memchr(p, '=', n);
		if (!eq || eq == p || (size_t)(eq - p) >= sizeof(f->f[0].point))
			return kg_errk(e, KG_ERR_INVALID, "test fault '%s': want "
				       "POINT=kill|fail|at:N[,...]", spec);
		if (f->n == KG_FAULTS_MAX)
			return kg_errk(e, KG_ERR_INVALID, "test fault '%s': at "
				       "most %d points", spec, KG_FAULTS_MAX);
		size_t plen = (size_t)(eq - p), alen = n - plen - 1;
		const char *a = eq + 1;
		struct kg_fault *x = &f->f[f->n];
		memset(x, 0, sizeof(*x));
		memcpy(x->point, p, plen);
		if (alen == 4 && !strncmp(a, "kill", 4)) {
			x->action = KG_FAULT_KILL;
		} else if (alen == 4 && !strncmp(a, "fail", 4)) {
			x->action = KG_FAULT_FAIL;
		} else if (alen > 3 && !strncmp(a, "at:", 3)) {
			char num[24], *end;
			if (alen - 3 >= sizeof(num))
				return kg_errk(e, KG_ERR_INVALID, "test fault "
					       "'%s': count too long", spec);
			memcpy(num, a + 3, alen - 3);
			num[alen - 3] = 0;
			errno = 0;
			x->at = strtoull(num, &end, 10);
			if (*end || errno || !num[0] || num[0] == '-')
				return kg_errk(e, KG_ERR_INVALID, "test fault "
					       "'%s': bad count", spec);
			x->action = KG_FAULT_AT;
		} else {
			return kg_errk(e, KG_ERR_INVALID, "test fault '%s': the "
				       "action is kill, fail or at:N", spec);
		}
		f->n++;
		p += n + (p[n] == ',');
	}
	return 0;
}

bool kg_fault_hit(const struct kg_faults *f, const char *point,
		  uint64_t *at)
{
	for (unsigned i = 0; f && i < f->n; i++) {
		if (strcmp(f->f[i].point, point))
			continue;
		switch (f->f[i].action) {
		case KG_FAULT_KILL:
			kg_log(KG_LOG_INFO, "test injection: SIGKILL at %s", point);
			kill(getpid(), SIGKILL);
			return true;
		case KG_FAULT_AT:
			if (at)
				*at = f->f[i].at;
			return true;
		case KG_FAULT_FAIL:
			return true;
		}
	}
	return false;
}
