/*
 * CRC32C (Castagnoli, reflected polynomial 0x82f63b78): the checksum of
 * every stream section. Chosen over CRC-32 (zlib) because x86-64 computes
 * it with one instruction per 8 bytes (SSE4.2 crc32), and it detects all
 * burst errors up to 32 bits like CRC-32 does.
 */
#ifndef KG_CRC32C_H
#define KG_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: start with crc = 0, feed the chunks in order; the result
 * of one call over the concatenation equals chained calls over the parts.
 * crc32c("123456789") = 0xe3069283. Uses SSE4.2 when the CPU has it. */
uint32_t kg_crc32c(uint32_t crc, const void *buf, size_t len);

/* The table-driven implementation alone, for hosts without SSE4.2 and for
 * tests that compare both paths. */
uint32_t kg_crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif
