/* kagami drill: runs scripts/drill.sh from the tree this binary was built
 * in (the drill orchestrates network namespaces and processes, which a
 * shell does plainly), passing this binary as the kagami to drill. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cmd_drill(int argc, char **argv)
{
	char self[PATH_MAX], script[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0) {
		fprintf(stderr, "kagami drill: readlink /proc/self/exe: %s\n",
			strerror(errno));
		return KG_EXIT_USAGE;
	}
	self[n] = 0;
	char *slash = strrchr(self, '/');
	*slash = 0;
	/* build/kagami and build/asan/kagami: the tree is one or two up. */
	const char *ups[] = { "/../scripts/drill.sh", "/../../scripts/drill.sh" };
	for (size_t i = 0; i < sizeof(ups) / sizeof(ups[0]); i++) {
		snprintf(script, sizeof(script), "%s%s", self, ups[i]);
		if (access(script, X_OK) == 0)
			break;
		script[0] = 0;
	}
	if (!script[0]) {
		fprintf(stderr, "kagami drill: scripts/drill.sh not found next "
			"to %s (the drill runs from the source tree)\n", self);
		return KG_EXIT_USAGE;
	}
	*slash = '/';
	if (setenv("KAGAMI", self, 1) < 0) {
		fprintf(stderr, "kagami drill: setenv: %s\n", strerror(errno));
		return KG_EXIT_USAGE;
	}
	char **args = calloc((size_t)argc + 2, sizeof(*args));
	if (!args) {
		fprintf(stderr, "kagami drill: out of memory\n");
		return KG_EXIT_USAGE;
	}
	args[0] = script;
	for (int i = 1; i < argc; i++)
		args[i] = argv[i];
	execv(script, args);
	fprintf(stderr, "kagami drill: exec %s: %s\n", script, strerror(errno));
	free(args);
	return KG_EXIT_USAGE;
}
