/* The control socket's built-in commands: status, pause, resume, quit,
 * help. */
#include <pthread.h>

#include "control.h"
#include "base/clock.h"
#include "vmm/vm.h"

static const char *state_name(struct vm *vm)
{
	switch (vm->req) {
	case VM_REQ_RUN: return "running";
	case VM_REQ_PAUSE: return "paused";
	default: return "stopping";
	}
}

static int do_status(struct control_call *call, struct kg_err *e)
{
	(void)e;
	struct vm *vm = call->vm;
	cJSON *reply = call->reply;
	pthread_mutex_lock(&vm->lock);
	cJSON_AddStringToObject(reply, "state", state_name(vm));
	pthread_mutex_unlock(&vm->lock);
	cJSON_AddStringToObject(reply, "image", vm->cfg.kernel_path
					? vm->cfg.kernel_path : "");
	cJSON_AddNumberToObject(reply, "vcpus", vm->ncpus);
	cJSON_AddNumberToObject(reply, "mem_mib",
				(double)(vm->cfg.mem_size >> 20));
	cJSON_AddNumberToObject(reply, "uptime_ms",
				(double)(kg_now_ns() - vm->stats.run_start_ns) /
					1e6);
	cJSON *ex = cJSON_AddObjectToObject(reply, "exits");
	cJSON_AddNumberToObject(ex, "pio", (double)vm->stats.exits[VM_EXIT_PIO]);
	cJSON_AddNumberToObject(ex, "mmio",
				(double)vm->stats.exits[VM_EXIT_MMIO]);
	cJSON_AddNumberToObject(ex, "other",
				(double)vm->stats.exits[VM_EXIT_OTHER]);
	cJSON_AddNumberToObject(reply, "resets", vm->stats.resets);
	return 0;
}

static int do_pause(struct control_call *call, struct kg_err *e)
{
	struct vm *vm = call->vm;
	uint64_t t0 = kg_now_ns();
	vm_pause(vm);
	if (vm->req != VM_REQ_PAUSE)
		return kg_errf(e, "the VM is stopping");
	cJSON_AddNumberToObject(call->reply, "pause_us",
				(double)(kg_now_ns() - t0) / 1e3);
	return 0;
}

static int do_resume(struct control_call *call, struct kg_err *e)
{
	struct vm *vm = call->vm;
	if (vm->req != VM_REQ_PAUSE)
		return kg_errf(e, "the VM is not paused");
	if (vm_fenced(vm))
		return kg_errf(e, "the split-brain guard holds the VM paused "
			       "until its lease is renewed");
	vm_resume(vm);
	return 0;
}

static int do_quit(struct control_call *call, struct kg_err *e)
{
	(void)e;
	vm_request_stop(call->vm, VM_STOP_REQUEST, 0,
			"stopped by the control socket (quit)");
	return 0;
}

const struct control_cmd control_builtin[] = {
	{ "status", "state, image, vCPUs, memory, uptime, exits", do_status, false },
	{ "pause", "park every vCPU", do_pause, false },
	{ "resume", "run again after pause", do_resume, false },
	{ "quit", "stop the VM; kagami exits 0", do_quit, false },
	{ "help", "list the commands", control_help, false },
	{ NULL, NULL, NULL, false },
};

/* help is answered by the server itself: it knows the extra table. */
int control_help(struct control_call *call, struct kg_err *e)
{
	(void)call, (void)e;
	return 0;
}
