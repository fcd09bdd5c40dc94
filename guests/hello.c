/*
 * hello [exit=N] [reset] [poweroff] [spin]
 * Prints a greeting and its command line. `reset` resets the VM once (the
 * second boot reports its boot count); `poweroff` powers off cleanly;
 * `spin` never exits (for signal and timeout tests).
 */
#include "sdk/sdk.h"

int main(const char *cmdline)
{
	sdk_printf("hello: hello, world\n");
	sdk_printf("hello: cmdline=[%s]\n", cmdline);
	if (sdk_arg_present("reset")) {
		uint32_t boots = sdk_boot_count();
		if (boots == 0) {
			sdk_printf("hello: resetting\n");
			sdk_reset();
		}
		sdk_printf("hello: boot_count=%u\n", boots);
	}
	if (sdk_arg_present("poweroff")) {
		sdk_printf("hello: powering off\n");
		sdk_power_off();
	}
	if (sdk_arg_present("spin"))
		for (;;)
			__asm__ volatile("pause");
	return (int)sdk_arg_u64("exit", 0);
}
