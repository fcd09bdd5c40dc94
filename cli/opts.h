/*
 * Option parsing as every subcommand does it, so that each says the same
 * things in the same words (tests and scripts read them):
 *
 *   NAME: option --x needs a value
 *   NAME: unknown option '--y' (try 'NAME --help')
 *   NAME: --keys '0': expected a whole number from 1 to 10000000
 *   NAME: unexpected argument 'z'
 *
 * NAME is the command as the user typed it ("kagami kv"). A command's
 * loop, with long options only and "help" mapped to 'h':
 *
 *	static const struct option longopts[] = {
 *		{ "keys", required_argument, NULL, O_KEYS },
 *		{ "help", no_argument, NULL, 'h' },
 *		{ NULL, 0, NULL, 0 },
 *	};
 *	struct opts p;
 *	opts_init(&p, "kagami kv", argc, argv, longopts, OPTS_PERMUTE);
 *	for (int c; (c = opts_next(&p)) != OPTS_END;) {
 *		switch (c) {
 *		case O_KEYS:
 *			if (opts_uint(&p, 1, MAX_KEYS, &keys) < 0)
 *				return KG_EXIT_USAGE;
 *			break;
 *		case 'h':
 *			usage(stdout);
 *			return 0;
 *		default: // OPTS_ERROR: opts_next said what was wrong
 *			return KG_EXIT_USAGE;
 *		}
 *	}
 *	// operands: argv[p.optind] .. argv[argc - 1]
 *
 * The value parsers print "NAME: OPT 'VALUE': " and their complaint,
 * and return -1; opts_bad words a command's own complaint after a pure
 * parse (base/parse.h) where its message differs:
 *
 *	if (kg_parse_u64(p.arg, 10, 0, UINT64_MAX, &v) < 0) {
 *		opts_bad(&p, "expected an exit index (a whole number)");
 *		return KG_EXIT_USAGE;
 *	}
 *
 * getopt's state is global: one parse at a time (the CLI is one thread
 * when it parses).
 */
#ifndef KG_CLI_OPTS_H
#define KG_CLI_OPTS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

enum {
	OPTS_END = -1,   /* no more options */
	OPTS_ERROR = -2, /* a missing value or an unknown option: said */
};

enum opts_order {
	OPTS_PERMUTE,  /* options may follow operands ("kv get K --req-id 7") */
	OPTS_IN_ORDER, /* options end at the first operand */
};

struct opts {
	const char *name; /* "kagami kv": the start of every message */
	int argc;
	char **argv;
	const struct option *longopts;
	const char *shortopts;
	/* The option opts_next returned last: */
	int code;
	int longindex;   /* its longopts index; -1 if given as -X */
	const char *arg; /* its value; NULL if none */
	/* After OPTS_END: the first operand's index in argv. */
	int optind;
	char optname[64]; /* "--keys", for messages */
};

void opts_init(struct opts *p, const char *name, int argc, char **argv,
	       const struct option *longopts, enum opts_order order);

/* The next option's code (its longopts val, or 'h' for -h), with p->arg
 * and p->longindex set; OPTS_END; or OPTS_ERROR after printing
 * "needs a value" or "unknown option" to stderr. */
int opts_next(struct opts *p);

/* The option just returned as the user would name it: "--keys", "-h". */
const char *opts_name(struct opts *p);

/* Prints "NAME: OPT 'VALUE': " and the formatted complaint; returns -1. */
int opts_bad(struct opts *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* p->arg as a whole number in [min, max] (decimal); otherwise prints
 * "...: expected a whole number from MIN to MAX" and returns -1. */
int opts_uint(struct opts *p, uint64_t min, uint64_t max, uint64_t *out);

/* p->arg as a number in [min, max], (min, max] when min_open; otherwise
 * prints "...: expected a number from|above MIN and at most MAX". */
int opts_real(struct opts *p, double min, double max, bool min_open,
	      double *out);

/* After the options: -1 after "NAME: unexpected argument 'X'" if an
 * operand is left, else 0. For commands that take no operands. */
int opts_no_operands(const struct opts *p);

#endif
