/* Each mode's pre-copy settings. */
#include "policy.h"

#define PAGE 4096u
#define MIB (1u << 20)

struct precopy_policy precopy_policy_snapshot(void)
{
	/* KVM's log is read and cleared at once: each pass writes what it
	 * took, and the pause only what came after. */
	return (struct precopy_policy){
		.small = 256, .max_rounds = 8, .stall_rounds = 1,
		.copy_taken = true,
	};
}

struct precopy_policy precopy_policy_migrate(unsigned limit_ms,
					     unsigned max_rounds)
{
	return (struct precopy_policy){
		.max_rounds = max_rounds ? max_rounds : 60,
		.limit_ms = limit_ms ? limit_ms : 50,
		/* Below this, further rounds are not worth it. */
		.target_ms = 2.0,
		/* What a paused epoch costs beyond its pages: state, commit,
		 * a round trip. Measured on these machines at about 1 ms; a
		 * guess on others. */
		.fixed_ms = 1.0,
		.unit_bytes = PAGE,
		/* Throughput from rounds big enough to measure it. */
		.rate_min_bytes = 4 * MIB, .rate_first_any = true,
		.throttle_first = 30, .throttle_step = 20,
		.throttle_max = 95, .throttle_after = 2,
	};
}

struct precopy_policy precopy_policy_first_copy(void)
{
	/* The first paused epoch takes what is left. */
	return (struct precopy_policy){ .small = 2048, .max_rounds = 30 };
}

struct precopy_policy precopy_policy_storage(uint64_t final_blocks,
					     unsigned max_rounds)
{
	return (struct precopy_policy){
		.small = final_blocks ? final_blocks : 256,
		.max_rounds = (max_rounds ? max_rounds : 30) + 1,
		.stall_rounds = 3,
		.unit_bytes = 4096, /* DISK_TRACK_BLOCK */
		.rate_min_bytes = MIB,
	};
}
