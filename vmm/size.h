/* Size arguments ("512M", "2G", "1048576B"; a bare number means MiB, as
 * QEMU's -m). Pure. */
#ifndef KG_SIZE_H
#define KG_SIZE_H

#include <stdint.h>
#include "base/err.h"

int size_parse(const char *s, uint64_t *out, struct kg_err *e);

#endif
