/* Crash handler: on SIGSEGV, SIGBUS, SIGABRT, SIGILL or SIGFPE prints
 * kagami's own backtrace (libunwind) to stderr, then dies of the signal.
 * It also gives a terminal on stdin back the settings it had when kagami
 * started (the console puts it in raw mode). Not installed in sanitizer
 * builds, whose reports are better. */
#ifndef KG_CRASH_H
#define KG_CRASH_H

int crash_install(void);

#endif
