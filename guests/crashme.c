/*
 * crashme [mode=pf|gp|ud|de|io]
 * Faults on purpose so that the host's fault report can be tested:
 * pf: write to an unmapped address; gp: a privileged instruction in ring 3;
 * ud: an undefined opcode; de: divide by zero; io: a port not granted.
 */
#include "guests/sdk/sdk.h"

int main(const char *cmdline)
{
	(void)cmdline;
	char mode[8] = "pf";
	sdk_arg_str("mode", mode, sizeof(mode));
	sdk_printf("crashme: faulting with mode=%s\n", mode);
	if (!strncmp(mode, "pf", 3))
		*(volatile uint64_t *)0xdead0000000ull = 0x1234;
	else if (!strncmp(mode, "gp", 3))
		__asm__ volatile("hlt");
	else if (!strncmp(mode, "ud", 3))
		__asm__ volatile("ud2");
	else if (!strncmp(mode, "de", 3)) {
		/* asm: the compiler may fold 1u / x into x == 1 */
		unsigned a = 1, d = 0, zero = 0;
		__asm__ volatile("divl %2" : "+a"(a), "+d"(d) : "r"(zero));
	} else if (!strncmp(mode, "io", 3))
		sdk_outb(0x80, 0);
	else {
		sdk_printf("crashme: unknown mode %s\n", mode);
		return 2;
	}
	sdk_printf("crashme: still alive\n");
	return 1;
}
