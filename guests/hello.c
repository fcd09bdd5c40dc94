/*
 * hello [exit=N] [initrd] [reset] [poweroff] [spin]
 * Prints a greeting and its command line. `reset` resets the VM once (the
 * second boot reports its boot count); `poweroff` powers off cleanly;
 * `initrd` prints the first module's size and checksum; `spin` never exits (for signal and timeout tests).
 */
#include "guests/sdk/sdk.h"

int main(const char *cmdline)
{
	sdk_printf("hello: hello, world\n");
	sdk_printf("hello: cmdline=[%s]\n", cmdline);
	if (sdk_arg_present("initrd")) {
		const void *data;
		uint64_t size, sum = 0xcbf29ce484222325ull;
		if (!sdk_module(0, &data, &size)) {
			sdk_printf("hello: no initrd\n");
			return 1;
		}
		for (uint64_t i = 0; i < size; i++)
			sum = (sum ^ ((const uint8_t *)data)[i]) * 0x100000001b3ull;
		sdk_printf("hello: modules=%u initrd_size=%lu fnv1a=%016lx\n",
			   sdk_module_count(), (unsigned long)size,
			   (unsigned long)sum);
	}
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
