/* The subcommands' option parsing: see opts.h. */
#include "opts.h"

#include <stdarg.h>
#include <stdio.h>

#include "base/parse.h"

void opts_init(struct opts *p, const char *name, int argc, char **argv,
	       const struct option *longopts, enum opts_order order)
{
	*p = (struct opts){
		.name = name, .argc = argc, .argv = argv,
		.longopts = longopts,
		/* ':' first: a missing value is told from an unknown option */
		.shortopts = order == OPTS_IN_ORDER ? "+:h" : ":h",
		.longindex = -1, .optind = 1,
	};
	opterr = 0;
	optind = 1;
}

int opts_next(struct opts *p)
{
	p->longindex = -1;
	p->arg = NULL;
	int c = getopt_long(p->argc, p->argv, p->shortopts, p->longopts,
			    &p->longindex);
	p->optind = optind;
	p->code = c;
	if (c == -1)
		return OPTS_END;
	p->arg = optarg;
	if (c == ':') {
		fprintf(stderr, "%s: option %s needs a value\n", p->name,
			p->argv[optind - 1]);
		return OPTS_ERROR;
	}
	if (c == '?') {
		fprintf(stderr, "%s: unknown option '%s' (try '%s --help')\n",
			p->name, p->argv[optind - 1], p->name);
		return OPTS_ERROR;
	}
	return c;
}

const char *opts_name(struct opts *p)
{
	if (p->longindex >= 0)
		snprintf(p->optname, sizeof(p->optname), "--%s",
			 p->longopts[p->longindex].name);
	else
		snprintf(p->optname, sizeof(p->optname), "-%c", p->code);
	return p->optname;
}

int opts_bad(struct opts *p, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s '%s': %s\n", p->name, opts_name(p),
		p->arg ? p->arg : "", why);
	return -1;
}

int opts_uint(struct opts *p, uint64_t min, uint64_t max, uint64_t *out)
{
	if (kg_parse_u64(p->arg, 10, min, max, out) == 0)
		return 0;
	return opts_bad(p, "expected a whole number from %llu to %llu",
			(unsigned long long)min, (unsigned long long)max);
}

int opts_real(struct opts *p, double min, double max, bool min_open,
	      double *out)
{
	if (kg_parse_double(p->arg, min, max, min_open, out) == 0)
		return 0;
	return opts_bad(p, "expected a number %s %g and at most %g",
			min_open ? "above" : "from", min, max);
}

int opts_no_operands(const struct opts *p)
{
	if (p->optind >= p->argc)
		return 0;
	fprintf(stderr, "%s: unexpected argument '%s'\n", p->name,
		p->argv[p->optind]);
	return -1;
}
