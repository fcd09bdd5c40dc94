/* kagami ctl: a client for the control socket. */
#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"

static void ctl_usage(FILE *f)
{
	fprintf(f,
"usage: kagami ctl SOCKET COMMAND [ARG...] [--KEY VALUE | --KEY=VALUE...]\n"
"\n"
"Sends one command to the control socket of a running kagami (run\n"
"--control SOCKET) and prints the JSON answer. Positional arguments go in\n"
"\"args\"; --KEY VALUE pairs become members (numbers and true/false are\n"
"typed). 'kagami ctl SOCKET help' lists the commands.\n"
"\n"
"exit status: 0 ok, 1 the command failed, 2 usage or connection error.\n");
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* A progress event as one line redrawn in place on the terminal; true if
 * it drew. */
static bool ctl_show_event(const cJSON *ev)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(ev, "event");
	const cJSON *phase = cJSON_GetObjectItemCaseSensitive(ev, "phase");
	if (strcmp(name->valuestring, "progress"))
		return false;
	fprintf(stderr, "\r\033[K%s round %.0f  %3.0f%%  %.0f MB/s  "
		"dirty %.0f pages  expected downtime %.1f ms",
		cJSON_IsString(phase) ? phase->valuestring : "",
		num(ev, "round"), num(ev, "percent"), num(ev, "mbps"),
		num(ev, "dirty_pages"), num(ev, "expected_downtime_ms"));
	fflush(stderr);
	return true;
}

static cJSON *typed(const char *v)
{
	char *end;
	double d = strtod(v, &end);
	if (*v && !*end)
		return cJSON_CreateNumber(d);
	if (!strcmp(v, "true") || !strcmp(v, "false"))
		return cJSON_CreateBool(!strcmp(v, "true"));
	return cJSON_CreateString(v);
}

/* Builds the request; returns NULL after printing a usage error. */
static cJSON *build_request(int argc, char **argv)
{
	cJSON *req = cJSON_CreateObject();
	cJSON *args = cJSON_CreateArray();
	cJSON_AddStringToObject(req, "cmd", argv[0]);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2)) {
			cJSON_AddItemToArray(args, cJSON_CreateString(a));
			continue;
		}
		const char *eq = strchr(a, '=');
		char key[64];
		size_t klen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		if (klen == 0 || klen >= sizeof(key)) {
			fprintf(stderr, "kagami ctl: bad option '%s'\n", a);
			goto fail;
		}
		memcpy(key, a + 2, klen);
		key[klen] = 0;
		for (char *p = key; *p; p++)
			if (*p == '-')
				*p = '_';
		/* Switches take no value unless given one with '='. */
		static const char *const switches[] = { "with_storage",
							"insecure", NULL };
		bool sw = false;
		for (const char *const *k = switches; *k; k++)
			sw |= !strcmp(key, *k);
		const char *val = eq ? eq + 1
			: sw ? "true" : (i + 1 < argc ? argv[++i] : NULL);
		if (!val) {
			fprintf(stderr, "kagami ctl: option %s needs a value\n", a);
			goto fail;
		}
		cJSON_AddItemToObject(req, key, typed(val));
	}
	cJSON_AddItemToObject(req, "args", args);
	return req;
fail:
	cJSON_Delete(args);
	cJSON_Delete(req);
	return NULL;
}

static int connect_to(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(a.sun_path)) {
		fprintf(stderr, "kagami ctl: socket path too long\n");
		return -1;
	}
	strcpy(a.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "kagami ctl: connect %s: %s\n", path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Sends req as one line: 0, or -1 after a message. */
static int send_request(int fd, cJSON *req)
{
	char *text = cJSON_PrintUnformatted(req);
	if (!text) {
		fprintf(stderr, "kagami ctl: out of memory\n");
		return -1;
	}
	size_t n = strlen(text);
	text[n] = '\n'; /* cJSON's buffer ends in a NUL we may replace */
	ssize_t w = send(fd, text, n + 1, MSG_NOSIGNAL);
	free(text);
	if (w != (ssize_t)(n + 1)) {
		fprintf(stderr, "kagami ctl: send: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* Reads progress events (jobs; drawn on a terminal) until the answer,
 * one line each: the answer's text (malloc'd, NUL-terminated) or NULL. */
static char *read_answer(int fd)
{
	bool tty = isatty(STDERR_FILENO), progress = false;
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		char *nl = buf ? memchr(buf, '\n', len) : NULL;
		if (nl) {
			*nl = 0;
			cJSON *ev = cJSON_Parse(buf);
			const cJSON *name = cJSON_GetObjectItemCaseSensitive(ev,
								       "event");
			if (!cJSON_IsString(name)) {
				cJSON_Delete(ev);
				*nl = '\n';
				break;
			}
			if (tty)
				progress |= ctl_show_event(ev);
			cJSON_Delete(ev);
			size_t used = (size_t)(nl - buf) + 1;
			memmove(buf, nl + 1, len - used);
			len -= used;
			continue;
		}
		if (!buf || len >= cap - 1)
			break;
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	if (progress)
		fputc('\n', stderr);
	if (buf && len == 0) {
		free(buf);
		return NULL;
	}
	if (buf)
		buf[len] = 0;
	return buf;
}

/* Prints the answer: the exit status (0 ok, 1 the command failed). */
static int print_answer(const char *text)
{
	cJSON *reply = cJSON_Parse(text);
	if (!reply) {
		fprintf(stderr, "kagami ctl: the answer is not JSON\n");
		return KG_EXIT_USAGE;
	}
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(reply, "ok");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(reply, "error");
	int status = cJSON_IsTrue(ok) ? 0 : 1;
	if (status && cJSON_IsString(err))
		fprintf(stderr, "kagami ctl: %s\n", err->valuestring);
	char *out = cJSON_Print(reply);
	printf("%s\n", out);
	free(out);
	cJSON_Delete(reply);
	return status;
}

int cmd_ctl(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		ctl_usage(stdout);
		return 0;
	}
	if (argc < 3) {
		fprintf(stderr, "kagami ctl: need SOCKET and COMMAND (try "
			"'kagami ctl --help')\n");
		return KG_EXIT_USAGE;
	}
	cJSON *req = build_request(argc - 2, argv + 2);
	if (!req)
		return KG_EXIT_USAGE;
	int fd = connect_to(argv[1]);
	int r = fd < 0 ? -1 : send_request(fd, req);
	cJSON_Delete(req);
	if (r < 0) {
		if (fd >= 0)
			close(fd);
		return KG_EXIT_USAGE;
	}
	char *answer = read_answer(fd);
	close(fd);
	if (!answer) {
		fprintf(stderr, "kagami ctl: no answer from %s\n", argv[1]);
		return KG_EXIT_USAGE;
	}
	int status = print_answer(answer);
	free(answer);
	return status;
}
