/*
 * The PC's CMOS real-time clock, an MC146818 as a pure model (no I/O, no
 * locks, no clock of its own): the owner serialises calls and passes the
 * guest time, in nanoseconds, to every call that depends on it. The
 * wall clock is `base_s` (seconds since 1970, UTC, at guest time 0) plus
 * the guest's seconds, so a replay that passes the same guest times reads
 * the same dates, and a restored VM's clock goes on from its snapshot
 * with the guest clock. rtc.c also wires the model to the VM (ports
 * 0x70/0x71, the host's wall clock when the VM is built, a lock, its
 * state section): see dev_rtc_ops.
 *
 * Ports: 0x70 selects a register (bit 7, the PC's NMI mask, is ignored;
 * a read returns 0xff, as the port is write-only on a PC), 0x71 reads or
 * writes it. Registers: 0x00-0x09 seconds, seconds alarm, minutes,
 * minutes alarm, hours, hours alarm, day of week (1 = Sunday), day of
 * month, month, year; 0x0a status A (UIP, bit 7, read-only: set during
 * the last 244 us of each guest second, before the registers change;
 * bits 6-0 stored); 0x0b status B (bit 1 24-hour, bit 2 binary instead
 * of BCD, bit 7 SET; the rest stored); 0x0c status C (reads 0); 0x0d
 * status D (reads 0x80: valid RAM and time); 0x32 century. The other
 * bytes of the 128 are battery-backed RAM (the alarms among them).
 * Defaults: 24-hour, BCD, as a PC's firmware leaves them.
 *
 * Time registers follow register B's format when read. While SET is
 * clear, a write to one sets the clock at once (the others keep the
 * current time); while SET is set, the registers hold still and take
 * writes, and clearing SET starts the clock from them. Dates run from
 * year 0 to 9999; a write outside that range is clamped into it.
 *
 * Not modelled, documented instead: interrupts (IRQ 8 is never raised:
 * periodic, alarm and update-ended interrupts are stored enables that do
 * nothing, and status C is always 0); the divider bits of status A (the
 * clock always runs); daylight saving (bit 0 of status B is stored).
 */
#ifndef KG_RTC_H
#define KG_RTC_H

#include <stdint.h>

#include "base/vmstate.h"

#define RTC_PORT_INDEX 0x70u
#define RTC_PORT_DATA 0x71u
#define RTC_IRQ 8u /* for firmware tables: never raised (see above) */
#define RTC_CMOS_SIZE 128u

enum {
	RTC_SECONDS = 0x00, RTC_SECONDS_ALARM = 0x01, RTC_MINUTES = 0x02,
	RTC_MINUTES_ALARM = 0x03, RTC_HOURS = 0x04, RTC_HOURS_ALARM = 0x05,
	RTC_DAY_OF_WEEK = 0x06, RTC_DAY = 0x07, RTC_MONTH = 0x08,
	RTC_YEAR = 0x09, RTC_REG_A = 0x0a, RTC_REG_B = 0x0b,
	RTC_REG_C = 0x0c, RTC_REG_D = 0x0d, RTC_CENTURY = 0x32,
};
#define RTC_A_UIP 0x80u
#define RTC_B_24H 0x02u
#define RTC_B_BINARY 0x04u
#define RTC_B_SET 0x80u
#define RTC_D_VRT 0x80u
#define RTC_UIP_NS 244000u

/* 0000-01-01 00:00:00 and 9999-12-31 23:59:59 UTC, in Unix seconds. */
#define RTC_MIN_S (-62167219200ll)
#define RTC_MAX_S 253402300799ll

struct rtc {
	uint8_t index;
	/* Status A and B, RAM and alarms; the time registers only while
	 * SET holds them (otherwise they are computed on each read). */
	uint8_t cmos[RTC_CMOS_SIZE];
	int64_t base_s; /* wall-clock seconds at guest time 0 */
};

/* Power-on state with the clock at base_s at guest time 0. */
void rtc_init(struct rtc *r, int64_t base_s);
/* The RESET line (a guest reboot): interrupt enables cleared; the time
 * and RAM are kept, as a battery keeps them. */
void rtc_reset(struct rtc *r);
uint8_t rtc_io_read(struct rtc *r, uint16_t port, uint64_t guest_ns);
void rtc_io_write(struct rtc *r, uint16_t port, uint8_t value,
		  uint64_t guest_ns);
/* The wall-clock second the chip shows at guest_ns (SET aside). */
int64_t rtc_wall_s(const struct rtc *r, uint64_t guest_ns);

/* The state as a field table; its check refuses an index past the RAM
 * and a time base no guest write can produce. */
extern const struct vs_desc rtc_vs;

#endif
