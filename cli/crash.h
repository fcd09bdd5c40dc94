/* Crash handler: on SIGSEGV, SIGBUS, SIGABRT, SIGILL or SIGFPE prints
 * kagami's own backtrace (libunwind) to stderr, then dies of the signal.
 * Not installed in sanitizer builds, whose reports are better. */
#ifndef KG_CRASH_H
#define KG_CRASH_H

int crash_install(void);

#endif
