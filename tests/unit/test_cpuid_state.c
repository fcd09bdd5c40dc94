/* The "cpuid" stream section (ft/checkpoint/cpuid_state.c): written from
 * one VM, checked on a receiving VM with the same, and with fewer, CPU
 * features; a damaged section is refused as corrupt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "ft/checkpoint/cpuid_state.h"
#include "ft/checkpoint/stream.h"
#include "vmm/cpuid.h"
#include "vmm/vm.h"

#define IDX KVM_CPUID_FLAG_SIGNIFCANT_INDEX

/* A supported set: sse2, xsave, avx2, kvmclock... */
static struct kvm_cpuid2 *supported(void)
{
	static const struct kvm_cpuid_entry2 ents[] = {
		{ .function = 0, .eax = 0xd, .ebx = 0x68747541 },
		{ .function = 1, .eax = 0x806f8, .ebx = 0x00000800,
		  .ecx = (1u << 28) | (1u << 26) | (1u << 0), .edx = 1u << 26 },
		{ .function = 7, .index = 0, .flags = IDX, .ebx = 1u << 5 },
		{ .function = 0xd, .index = 0, .flags = IDX, .eax = 0x7,
		  .ebx = 832, .ecx = 832 },
		{ .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b },
		{ .function = 0x40000001, .eax = 0x01ffffff },
		{ .function = 0x80000001, .ecx = 1u << 5, .edx = 1u << 29 },
	};
	size_t n = sizeof(ents) / sizeof(ents[0]);
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(ents[0]));
	assert_non_null(c);
	c->nent = (uint32_t)n;
	memcpy(c->entries, ents, sizeof(ents));
	return c;
}

static void vm_with(struct vm *vm, struct kvm_cpuid2 *c)
{
	memset(vm, 0, sizeof(*vm));
	vm->cpuid = c;
	vm->ncpus = 2;
	vm->cpuid_flags = CPUID_TSC_DEADLINE;
}

/* A stream holding only src's cpuid section, in a memfd at its start. */
static int stream_of(const struct vm *src)
{
	int fd = memfd_create("stream", MFD_CLOEXEC);
	assert_true(fd >= 0);
	struct kg_stream_writer w;
	struct kg_err e = { 0 };
	kg_writer_init(&w, fd, NULL, NULL);
	if (kg_writer_header(&w, NULL, &e) < 0 ||
	    cpuid_state_write(&w, src, &e) < 0 || kg_writer_end(&w, &e) < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

/* Checks the stream in fd against dst: cpuid_state_check's result. */
static int check(int fd, const struct vm *dst, struct kg_err *e)
{
	struct kg_stream_reader r;
	struct kg_stream_header h;
	struct kg_section s;
	kg_reader_init(&r, fd, NULL);
	assert_int_equal(kg_reader_header(&r, &h, e), 0);
	assert_int_equal(kg_reader_next(&r, &s, e), 1);
	assert_int_equal(s.kind, KG_SEC_CPUID);
	return cpuid_state_check(&r, &s, dst, e);
}

static void test_same_host(void **state)
{
	(void)state;
	struct vm src, dst;
	vm_with(&src, supported());
	vm_with(&dst, supported());
	struct kg_err e = { 0 };
	int fd = stream_of(&src);
	assert_int_equal(check(fd, &dst, &e), 0);
	close(fd);
	free(src.cpuid);
	free(dst.cpuid);
}

static void test_target_lacks_avx2(void **state)
{
	(void)state;
	struct vm src, dst;
	vm_with(&src, supported());
	vm_with(&dst, supported());
	struct kvm_cpuid_entry2 *l7 = cpuid_find(dst.cpuid, 7, 0);
	assert_non_null(l7);
	l7->ebx = 0;
	struct kg_err e = { 0 };
	int fd = stream_of(&src);
	assert_int_equal(check(fd, &dst, &e), -1);
	assert_int_equal(e.kind, KG_ERR_INVALID);
	assert_non_null(strstr(e.msg, "does not fit this host"));
	assert_non_null(strstr(e.msg, "avx2 (CPUID 0x7 EBX bit 5)"));
	close(fd);
	/* The other way round fits: the source had fewer features. */
	fd = stream_of(&dst);
	assert_int_equal(check(fd, &src, &e), 0);
	close(fd);
	free(src.cpuid);
	free(dst.cpuid);
}

static void test_damaged_section(void **state)
{
	(void)state;
	struct vm src;
	vm_with(&src, supported());
	int fd = stream_of(&src);
	/* A byte of the payload (after the 32-byte header and the 16-byte
	 * section header): the section's CRC no longer matches. */
	uint8_t b;
	assert_int_equal(pread(fd, &b, 1, 60), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, 60), 1);
	struct kg_err e = { 0 };
	assert_int_equal(check(fd, &src, &e), -1);
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	close(fd);
	free(src.cpuid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_host),
		cmocka_unit_test(test_target_lacks_avx2),
		cmocka_unit_test(test_damaged_section),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
