/*
 * kagami inspect FILE [--json]: lists the file header and every section of
 * a snapshot or stream (ft/checkpoint/stream.h), verifying each section's
 * checksum and the end marker. Payloads are read and checked but never
 * interpreted, so inspect also lists kinds this kagami does not know. A
 * device section is named after the device whose instance it is (the
 * registry's kinds, vmm/device.h).
 *
 * Exit status: 0 valid, 1 not valid (the sections read so far are listed,
 * then one line on stderr names the section and byte offset), 2 on a usage
 * error or a file that cannot be opened.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "opts.h"
#include "ft/checkpoint/stream.h"
#include "vmm/device.h"

#define EXIT_INVALID 1

static void inspect_usage(FILE *f)
{
	fprintf(f,
		"usage: kagami inspect [--json] FILE\n"
		"\n"
		"Lists the sections of a kagami snapshot or stream and checks "
		"them: magic,\n"
		"format version, every section's checksum and limits, the end "
		"marker.\n"
		"FILE '-' reads standard input (a stream from a pipe).\n"
		"\n"
		"options:\n"
		"  --json      print one JSON document instead of the table\n"
		"  -h, --help  show this help\n"
		"\n"
		"exit status: 0 the stream is valid; 1 it is not (the sections "
		"read so far\n"
		"are listed, the error is one line on stderr); 2 usage error or "
		"FILE cannot\n"
		"be opened\n");
}

/* What was read, printed as a table as it goes or gathered as JSON. */
struct listing {
	bool json;
	cJSON *root, *sections;
	uint64_t count;
};

static const char *arch_label(uint16_t arch, char *buf, size_t n)
{
	const char *name = kg_arch_name(arch);
	if (name)
		return name;
	snprintf(buf, n, "machine %u", arch);
	return buf;
}

static void kind_label(uint16_t kind, char *buf, size_t n)
{
	const char *name = kg_sec_name(kind);
	if (name)
		snprintf(buf, n, "%s", name);
	else
		snprintf(buf, n, "unknown 0x%04x%s", kind,
			 kind & KG_SEC_ANCILLARY ? " (anc)" : "");
}

/* "rtc" for device section #4; NULL for other kinds and unknown ones. */
static const char *device_label(const struct kg_section *s)
{
	unsigned t;
	const struct vm_device_ops *k =
		s->kind == KG_SEC_DEVICE ? vm_device_kind(s->instance, &t) : NULL;
	return k ? k->tables[t].vs->name : NULL;
}

static void show_header(struct listing *l, const char *path,
			const struct kg_stream_header *h)
{
	char a[32];
	const char *arch = arch_label(h->arch, a, sizeof(a));
	if (l->json) {
		cJSON *j = cJSON_AddObjectToObject(l->root, "header");
		char v[16];
		snprintf(v, sizeof(v), "%u.%u", h->major, h->minor);
		cJSON_AddStringToObject(j, "version", v);
		cJSON_AddNumberToObject(j, "major", h->major);
		cJSON_AddNumberToObject(j, "minor", h->minor);
		cJSON_AddStringToObject(j, "arch", arch);
		cJSON_AddNumberToObject(j, "arch_id", h->arch);
		cJSON_AddBoolToObject(j, "arch_is_host",
				      h->arch == kg_arch_host());
		cJSON_AddNumberToObject(j, "page_size", h->page_size);
		cJSON_AddNumberToObject(j, "flags", h->flags);
		cJSON_AddNumberToObject(j, "header_size", h->header_size);
		l->sections = cJSON_AddArrayToObject(l->root, "sections");
		return;
	}
	printf("%s: kagami stream format %u.%u, %s%s, %u-byte pages, "
	       "flags 0x%x\n", path, h->major, h->minor, arch,
	       h->arch == kg_arch_host() ? "" : " (not this host)",
	       h->page_size, h->flags);
	printf("%6s %14s  %-22s %8s %8s %14s  %-4s  %s\n", "index", "offset",
	       "kind", "instance", "version", "length", "crc", "device");
}

static void show_section(struct listing *l, const struct kg_section *s,
			 bool ok)
{
	char kind[48];
	kind_label(s->kind, kind, sizeof(kind));
	l->count++;
	if (l->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddNumberToObject(j, "index", (double)s->index);
		cJSON_AddNumberToObject(j, "offset", (double)s->offset);
		cJSON_AddStringToObject(j, "kind", kg_sec_name(s->kind)
					? kg_sec_name(s->kind) : "unknown");
		cJSON_AddNumberToObject(j, "kind_id", s->kind);
		cJSON_AddBoolToObject(j, "known", kg_sec_name(s->kind) != NULL);
		cJSON_AddNumberToObject(j, "instance", s->instance);
		if (device_label(s))
			cJSON_AddStringToObject(j, "device", device_label(s));
		cJSON_AddNumberToObject(j, "version", s->version);
		cJSON_AddNumberToObject(j, "length", (double)s->length);
		cJSON_AddBoolToObject(j, "crc_ok", ok);
		cJSON_AddItemToArray(l->sections, j);
		return;
	}
	const char *dev = device_label(s);
	printf("%6" PRIu64 " %14" PRIu64 "  %-22s %8u %8u %14" PRIu64 "  %s%s%s\n",
	       s->index, s->offset, kind, s->instance, s->version, s->length,
	       ok ? "ok" : "FAIL", dev ? ok ? "    " : "  " : "",
	       dev ? dev : "");
}

/* The total, the verdict and the JSON document; returns the exit status. */
static int finish(struct listing *l, const char *path, uint64_t bytes,
		  const char *error)
{
	if (l->json) {
		if (!l->sections) { /* the file header failed */
			cJSON_AddNullToObject(l->root, "header");
			cJSON_AddArrayToObject(l->root, "sections");
		}
		cJSON *t = cJSON_AddObjectToObject(l->root, "total");
		cJSON_AddNumberToObject(t, "sections", (double)l->count);
		cJSON_AddNumberToObject(t, "bytes", (double)bytes);
		cJSON_AddBoolToObject(l->root, "valid", !error);
		if (error)
			cJSON_AddStringToObject(l->root, "error", error);
		else
			cJSON_AddNullToObject(l->root, "error");
		char *text = cJSON_Print(l->root);
		if (!text) {
			fprintf(stderr, "kagami inspect: out of memory\n");
			return KG_EXIT_HOST;
		}
		printf("%s\n", text);
		cJSON_free(text);
	} else {
		printf("total: %" PRIu64 " sections, %" PRIu64 " bytes%s\n",
		       l->count, bytes, error ? " read before the error" : "");
	}
	fflush(stdout);
	if (error) {
		fprintf(stderr, "kagami inspect: %s: %s\n", path, error);
		return EXIT_INVALID;
	}
	return 0;
}

/* Reads the whole stream; returns the exit status. */
static int list_stream(struct listing *l, const char *path, int fd)
{
	struct kg_stream_opts o;
	struct kg_stream_reader r;
	struct kg_stream_header h;
	struct kg_section s;
	struct kg_err e = { 0 };

	kg_stream_opts_default(&o);
	o.any_arch = true; /* list foreign snapshots; restore refuses them */
	kg_reader_init(&r, fd, &o);
	if (kg_reader_header(&r, &h, &e) < 0)
		return finish(l, path, r.offset, e.msg);
	show_header(l, path, &h);
	for (;;) {
		int rc = kg_reader_next(&r, &s, &e);
		if (rc < 0) {
			/* A section whose header was read failed its payload
			 * or checksum: list it as failed. */
			if (r.nsections > l->count)
				show_section(l, &r.cur, false);
			return finish(l, path, r.offset, e.msg);
		}
		if (rc == 0)
			break;
		if (kg_section_finish(&r, &e) < 0) {
			show_section(l, &s, false);
			return finish(l, path, r.offset, e.msg);
		}
		show_section(l, &s, true);
	}
	show_section(l, &s, true); /* the end marker */
	if (kg_reader_expect_eof(&r, &e) < 0)
		return finish(l, path, r.offset, e.msg);
	return finish(l, path, r.offset, NULL);
}

static int open_input(const char *path)
{
	if (!strcmp(path, "-"))
		return STDIN_FILENO;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "kagami inspect: %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		fprintf(stderr, "kagami inspect: %s: is a directory\n", path);
		close(fd);
		return -1;
	}
	return fd;
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct listing l = { .json = false };
	struct opts p;
	opts_init(&p, "kagami inspect", argc, argv, opts, OPTS_PERMUTE);
	for (int c; (c = opts_next(&p)) != OPTS_END;) {
		switch (c) {
		case 'j':
			l.json = true;
			break;
		case 'h':
			inspect_usage(stdout);
			return 0;
		default:
			return KG_EXIT_USAGE;
		}
	}
	if (p.optind != argc - 1) {
		fprintf(stderr, p.optind == argc
			? "kagami inspect: no file given (try 'kagami inspect "
			  "--help')\n"
			: "kagami inspect: more than one file given\n");
		return KG_EXIT_USAGE;
	}
	const char *path = argv[p.optind];
	int fd = open_input(path);
	if (fd < 0)
		return KG_EXIT_USAGE;
	if (l.json) {
		l.root = cJSON_CreateObject();
		if (!l.root) {
			fprintf(stderr, "kagami inspect: out of memory\n");
			return KG_EXIT_HOST;
		}
		cJSON_AddStringToObject(l.root, "file", path);
	}
	int status = list_stream(&l, path, fd);
	if (fd != STDIN_FILENO)
		close(fd);
	cJSON_Delete(l.root);
	return status;
}
