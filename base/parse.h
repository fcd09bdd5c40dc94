/*
 * Numbers as the command line and requests give them. Pure: no messages,
 * no errno left behind; the caller words the complaint (each command has
 * its own, which tests and scripts read).
 *
 * Accepted text is a whole string: no leading or trailing blanks, no '+',
 * no '-' before a whole number (strtoull would wrap it around), nothing
 * after the number. Out of range, overflow and empty text fail alike.
 */
#ifndef KG_PARSE_H
#define KG_PARSE_H

#include <stdbool.h>
#include <stdint.h>

/* A whole number in [min, max]; base 10, or 16 (an optional "0x" prefix,
 * as strtoull takes it). 0, or -1 with *out untouched. */
int kg_parse_u64(const char *s, int base, uint64_t min, uint64_t max,
		 uint64_t *out);

/* A real number (as strtod reads it: "1.5", "2e3", "inf") in [min, max],
 * or in (min, max] when min_open; NaN never is. 0, or -1 with *out
 * untouched. */
int kg_parse_double(const char *s, double min, double max, bool min_open,
		    double *out);

#endif
