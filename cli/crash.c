#define UNW_LOCAL_ONLY
#include "crash.h"

#include <libunwind.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>


#if !defined(__SANITIZE_ADDRESS__)
/* The terminal's settings when kagami started: a crash while the console
 * holds it in raw mode must not leave the user's shell raw. Written once
 * before any thread, read only by the handler. */
static struct termios tty_at_start;
static volatile sig_atomic_t tty_saved;

/* Async-signal-safe output: write(2) and hand-made formatting only. */
static void put(const char *s)
{
	ssize_t r = write(STDERR_FILENO, s, strlen(s));
	(void)r;
}

static void put_hex(unsigned long v)
{
	char b[19] = "0x";
	for (int i = 0; i < 16; i++)
		b[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 0xf];
	b[18] = 0;
	put(b);
}

static void crash_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (tty_saved)
		tcsetattr(STDIN_FILENO, TCSANOW, &tty_at_start);
	put("kagami: fatal signal ");
	put(sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
	put(" at address ");
	put_hex((unsigned long)si->si_addr);
	put("\nkagami: backtrace:\n");
	unw_context_t ctx;
	unw_cursor_t cur;
	if (unw_getcontext(&ctx) == 0 && unw_init_local(&cur, &ctx) == 0) {
		for (int depth = 0; depth < 64 && unw_step(&cur) > 0; depth++) {
			unw_word_t ip, off;
			char name[128];
			unw_get_reg(&cur, UNW_REG_IP, &ip);
			put("  ");
			put_hex((unsigned long)ip);
			if (unw_get_proc_name(&cur, name, sizeof(name), &off) == 0) {
				put(" ");
				put(name);
				put("+");
				put_hex((unsigned long)off);
			}
			put("\n");
		}
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

#endif

int crash_install(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return 0;
#else
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE };
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &tty_at_start) == 0)
		tty_saved = 1;
	/* Lives for the process: a stack overflow needs somewhere to run. */
	stack_t ss = { .ss_sp = malloc(65536), .ss_size = 65536 };
	if (!ss.ss_sp || sigaltstack(&ss, NULL) < 0)
		return -1;
	struct sigaction sa = { .sa_sigaction = crash_handler,
				.sa_flags = SA_SIGINFO | SA_ONSTACK };
	sigemptyset(&sa.sa_mask);
	for (unsigned i = 0; i < sizeof(sigs) / sizeof(*sigs); i++)
		if (sigaction(sigs[i], &sa, NULL) < 0)
			return -1;
	return 0;
#endif
}
