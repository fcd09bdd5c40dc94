/*
 * hostile: a guest that attacks its virtio-blk device with malformed
 * virtqueues, to check that the VMM fails the request or marks the device
 * DEVICE_NEEDS_RESET, and keeps running. Self-contained on purpose (raw
 * registers, no SDK driver): it must be able to write what no driver would.
 *
 * For each case it prints "hostile: <case> -> <outcome>" where outcome is
 * needs_reset, status=N (the request failed with that virtio status) or
 * timeout, then checks the device works again after a reset, and prints
 * "hostile: done" (exit 0). Exit 1 when the device does not recover.
 */
#include "guests/sdk/sdk.h"

#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_DEV_FEAT 0x010
#define R_DEV_FEAT_SEL 0x014
#define R_DRV_FEAT 0x020
#define R_DRV_FEAT_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_STATUS 0x070
#define R_DESC_LO 0x080
#define R_DESC_HI 0x084
#define R_AVAIL_LO 0x090
#define R_AVAIL_HI 0x094
#define R_USED_LO 0x0a0
#define R_USED_HI 0x0a4
#define QSIZE 8
#define NEEDS_RESET 0x40

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};
struct ring {
	struct desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[QSIZE] */
	volatile uint16_t *used;  /* flags, idx, then elems */
	uint16_t avail_idx, used_seen;
};

static volatile uint32_t *regs;
static struct ring q;
static uint8_t *buf; /* request header, data, status */

static uint32_t rd(unsigned off) { return regs[off / 4]; }
static void wr(unsigned off, uint32_t v) { regs[off / 4] = v; }

static bool find_blk(void)
{
	const char *p = sdk_cmdline();
	const char *key = "virtio_mmio.device=";
	size_t klen = strlen(key);
	for (; *p; p++) {
		if (strncmp(p, key, klen))
			continue;
		const char *at = p + klen;
		while (*at && *at != '@')
			at++;
		if (*at != '@' || at[1] != '0' || at[2] != 'x')
			continue;
		uint64_t base = 0;
		for (at += 3; *at && *at != ':'; at++) {
			char c = *at;
			base = base * 16 + (uint64_t)(c <= '9' ? c - '0'
							       : (c | 0x20) - 'a' + 10);
		}
		regs = (volatile uint32_t *)(uintptr_t)base;
		if (rd(R_MAGIC) == 0x74726976 && rd(R_VERSION) == 2 &&
		    rd(R_DEVICE_ID) == 2)
			return true;
	}
	return false;
}

/* Reset, negotiate VERSION_1 only, set up queue 0 at the given rings. */
static void setup(uint64_t desc, uint64_t avail, uint64_t used)
{
	wr(R_STATUS, 0);
	wr(R_STATUS, 1 | 2);
	wr(R_DRV_FEAT_SEL, 1);
	wr(R_DRV_FEAT, 1); /* bit 32: VERSION_1 */
	wr(R_DRV_FEAT_SEL, 0);
	wr(R_DRV_FEAT, 0);
	wr(R_STATUS, 1 | 2 | 8);
	wr(R_QUEUE_SEL, 0);
	wr(R_QUEUE_NUM, QSIZE);
	wr(R_DESC_LO, (uint32_t)desc);
	wr(R_DESC_HI, (uint32_t)(desc >> 32));
	wr(R_AVAIL_LO, (uint32_t)avail);
	wr(R_AVAIL_HI, (uint32_t)(avail >> 32));
	wr(R_USED_LO, (uint32_t)used);
	wr(R_USED_HI, (uint32_t)(used >> 32));
	wr(R_QUEUE_READY, 1);
	wr(R_STATUS, 1 | 2 | 8 | 4);
	memset(q.desc, 0, 16 * QSIZE);
	memset((void *)q.avail, 0, 4 + 2 * QSIZE);
	memset((void *)q.used, 0, 4 + 8 * QSIZE);
	q.avail_idx = q.used_seen = 0;
}

static void setup_good(void)
{
	setup((uintptr_t)q.desc, (uintptr_t)q.avail, (uintptr_t)q.used);
}

static void post(uint16_t head, uint16_t idx_advance)
{
	q.avail[2 + q.avail_idx % QSIZE] = head;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	q.avail_idx = (uint16_t)(q.avail_idx + idx_advance);
	q.avail[1] = q.avail_idx;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	wr(R_QUEUE_NOTIFY, 0);
}

/* Waits for a used entry or NEEDS_RESET; prints the outcome. */
static const char *outcome(char *out, size_t n)
{
	for (uint32_t spin = 0; spin < 200000000u; spin++) {
		if (q.used[1] != q.used_seen) {
			q.used_seen = q.used[1];
			sdk_snprintf(out, n, "status=%u", buf[16 + 512]);
			return out;
		}
		if ((spin & 0xffff) == 0 && (rd(R_STATUS) & NEEDS_RESET))
			return "needs_reset";
	}
	return "timeout";
}

/* A well-formed read of sector `sector` (header, 512 data, status). */
static void chain_read(uint64_t sector, uint64_t data_addr, uint32_t data_len)
{
	uint32_t hdr[4] = { 0, 0, (uint32_t)sector, (uint32_t)(sector >> 32) };
	memcpy(buf, hdr, 16);
	buf[16 + 512] = 0xff;
	q.desc[0] = (struct desc){ (uintptr_t)buf, 16, 1, 1 };
	q.desc[1] = (struct desc){ data_addr, data_len, 1 | 2, 2 };
	q.desc[2] = (struct desc){ (uintptr_t)buf + 16 + 512, 1, 2, 0 };
}

static void report(const char *name)
{
	char tmp[32];
	sdk_printf("hostile: %s -> %s\n", name, outcome(tmp, sizeof(tmp)));
}

static bool recovers(void)
{
	setup_good();
	chain_read(0, (uintptr_t)buf + 16, 512);
	post(0, 1);
	char tmp[32];
	const char *o = outcome(tmp, sizeof(tmp));
	return !strncmp(o, "status=0", 9);
}

int main(const char *cmdline)
{
	(void)cmdline;
	if (!find_blk()) {
		sdk_printf("hostile: no virtio-blk device\n");
		return 2;
	}
	uint8_t *mem = sdk_alloc(4 * 4096);
	q.desc = (struct desc *)mem;
	q.avail = (volatile uint16_t *)(mem + 4096);
	q.used = (volatile uint16_t *)(mem + 8192);
	buf = mem + 12288;
	if (!recovers()) {
		sdk_printf("hostile: device does not work to begin with\n");
		return 1;
	}
	static const char *const names[] = {
		"buffer outside RAM", "buffer in the MMIO hole",
		"descriptor loop", "4 GiB length", "available index backwards",
		"next index out of range", "head index out of range",
		"no status byte", "sector past the end", "unknown request type",
		"rings outside RAM",
	};
	for (unsigned c = 0; c < sizeof(names) / sizeof(*names); c++) {
		setup_good();
		chain_read(0, (uintptr_t)buf + 16, 512);
		switch (c) {
		case 0: q.desc[1].addr = 0x7f0000000000ull; break;
		case 1: q.desc[1].addr = KAGAMI_VIRTIO_BASE; break;
		case 2: q.desc[2].flags |= 1; q.desc[2].next = 1; break;
		case 3: q.desc[1].len = 0xffffffffu; break;
		case 4: post(0, 0xffff); report(names[c]); goto check;
		case 5: q.desc[1].next = 200; break;
		case 6: post(QSIZE + 3, 1); report(names[c]); goto check;
		case 7: q.desc[1].flags = 1; q.desc[2].flags = 0; break;
		case 8: chain_read(1ull << 40, (uintptr_t)buf + 16, 512); break;
		case 9: buf[0] = 77; break;
		case 10:
			setup(0x7f0000000000ull, (uintptr_t)q.avail,
			      (uintptr_t)q.used);
			sdk_printf("hostile: %s -> %s\n", names[c],
				   rd(R_STATUS) & NEEDS_RESET ? "needs_reset"
							      : "accepted");
			goto check;
		}
		post(0, 1);
		report(names[c]);
	check:
		if (!recovers()) {
			sdk_printf("hostile: device did not recover after "
				   "'%s'\n", names[c]);
			return 1;
		}
	}
	sdk_printf("hostile: done\n");
	return 0;
}
