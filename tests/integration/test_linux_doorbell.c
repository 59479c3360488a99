/*
 * test_linux_doorbell.c - the hypercall path of Linux guests (hv_abi.h):
 * a driver registers an argument page through HV_ARGREG_PORT and rings
 * HV_DOORBELL_PORT.  A real kernel cannot load modules on this machine's
 * emulated CPL0, so a tiny hand-assembled "kernel" (an x86-64 vmlinux-style
 * ELF, entered by the Linux loader in 64-bit mode at CPL0) does what a
 * driver does: register, HC_NOP, a refused HC_EXIT, a bad registration,
 * and reads the feature bits of densevm's CPUID leaf: the VM's spec's.
 */
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testvm.h"

#define LOAD_GPA 0x1000000ull   /* 16 MiB */
#define ARG_GPA  0x2000000ull   /* 32 MiB: the argument page */

static const uint8_t code[] = {
	0xb8, 0x00, 0x20, 0x00, 0x00,             /* mov $0x2000,%eax (pfn)  */
	0xe7, 0xe4,                               /* out %eax,$0xe4: register */
	0xbf, 0x00, 0x00, 0x00, 0x02,             /* mov $0x2000000,%edi      */
	0x48, 0xc7, 0x07, 0x05, 0, 0, 0,          /* movq $HC_NOP,(%rdi)      */
	0xe7, 0xe0,                               /* out: doorbell            */
	0x48, 0x8b, 0x47, 0x30,                   /* mov 0x30(%rdi),%rax: ret */
	0x48, 0xc7, 0x07, 0x07, 0, 0, 0,          /* movq $HC_RESULT,(%rdi)   */
	0x48, 0xc7, 0x47, 0x08, 1, 0, 0, 0,       /* movq $1,8(%rdi): key 1   */
	0x48, 0x83, 0xc0, 0x2a,                   /* add $42,%rax             */
	0x48, 0x89, 0x47, 0x10,                   /* mov %rax,16(%rdi): value */
	0xe7, 0xe0,                               /* out: doorbell            */
	0x48, 0xc7, 0x07, 0x02, 0, 0, 0,          /* movq $HC_EXIT,(%rdi)     */
	0xe7, 0xe0,                               /* out: refused for Linux   */
	0x48, 0x8b, 0x47, 0x30,                   /* mov 0x30(%rdi),%rax: ret */
	0x48, 0xc7, 0x07, 0x07, 0, 0, 0,          /* movq $HC_RESULT,(%rdi)   */
	0x48, 0xc7, 0x47, 0x08, 2, 0, 0, 0,       /* movq $2,8(%rdi): key 2   */
	0x48, 0x89, 0x47, 0x10,                   /* mov %rax,16(%rdi)        */
	0xe7, 0xe0,                               /* out: doorbell            */
	0xb8, 0xff, 0xff, 0xff, 0x00,             /* mov $0xffffff,%eax       */
	0xe7, 0xe4,                               /* out: a pfn beyond RAM    */
	0x48, 0xc7, 0x07, 0x07, 0, 0, 0,          /* HC_RESULT through the    */
	0x48, 0xc7, 0x47, 0x08, 3, 0, 0, 0,       /* page registered before:  */
	0x48, 0xc7, 0x47, 0x10, 7, 0, 0, 0,       /* key 3 = 7                */
	0xe7, 0xe0,                               /* out: doorbell            */
	0xb8, 0x01, 0x01, 0x00, 0x40,             /* mov $HV_CPUID_PORTS,%eax */
	0x31, 0xc9,                               /* xor %ecx,%ecx            */
	0x0f, 0xa2,                               /* cpuid                    */
	0x89, 0xc9,                               /* mov %ecx,%ecx: features  */
	0x48, 0xc7, 0x07, 0x07, 0, 0, 0,          /* movq $HC_RESULT,(%rdi)   */
	0x48, 0xc7, 0x47, 0x08, 4, 0, 0, 0,       /* movq $4,8(%rdi): key 4   */
	0x48, 0x89, 0x4f, 0x10,                   /* mov %rcx,16(%rdi)        */
	0xe7, 0xe0,                               /* out: doorbell            */
	0xf4, 0xeb, 0xfd,                         /* hlt; jmp hlt             */
};

static char *make_kernel(void)
{
	struct { Elf64_Ehdr eh; Elf64_Phdr ph; uint8_t code[sizeof(code)]; } k;
	memset(&k, 0, sizeof(k));
	memcpy(k.eh.e_ident, ELFMAG, SELFMAG);
	k.eh.e_ident[EI_CLASS] = ELFCLASS64;
	k.eh.e_ident[EI_DATA] = ELFDATA2LSB;
	k.eh.e_ident[EI_VERSION] = EV_CURRENT;
	k.eh.e_type = ET_EXEC;
	k.eh.e_machine = EM_X86_64;
	k.eh.e_version = EV_CURRENT;
	k.eh.e_entry = LOAD_GPA;
	k.eh.e_phoff = offsetof(typeof(k), ph);
	k.eh.e_ehsize = sizeof(Elf64_Ehdr);
	k.eh.e_phentsize = sizeof(Elf64_Phdr);
	k.eh.e_phnum = 1;
	k.ph.p_type = PT_LOAD;
	k.ph.p_flags = PF_R | PF_X;
	k.ph.p_offset = offsetof(typeof(k), code);
	k.ph.p_vaddr = k.ph.p_paddr = LOAD_GPA;
	k.ph.p_filesz = k.ph.p_memsz = sizeof(code);
	memcpy(k.code, code, sizeof(code));
	char *path = strdup("/tmp/densevm-doorbell-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, &k, sizeof(k)), (ssize_t)sizeof(k));
	close(fd);
	return path;
}

static void doorbell(uint32_t features)
{
	char *kernel = make_kernel();
	char err[512];
	struct testvm t;
	struct hv_vm_config c = {
		.name = "lxdoor", .mem_bytes = 64 << 20, .ncpus = 1,
		.kind = HV_GUEST_LINUX, .image = kernel, .base_memfd = -1,
		.timeout_s = 120, .features = features,
	};
	if (testvm_create_cfg(&t, &c, err, sizeof(err)))
		fail_msg("%s", err);
	hv_vm_start(t.vm);
	uint64_t v1 = 0, v2 = 0, v3 = 0, v4 = ~0ull;
	for (int i = 0; i < 1200 && !hv_vm_result(t.vm, 4, &v4); i++)
		usleep(50000);
	struct hv_exit_status st;
	hv_vm_status(t.vm, &st);
	if (!hv_vm_result(t.vm, 1, &v1) || !hv_vm_result(t.vm, 2, &v2) ||
	    !hv_vm_result(t.vm, 3, &v3))
		fail_msg("results missing; VM %s: %s", hv_exit_kind_name(st.kind),
			 st.reason);
	assert_int_equal(v1, 42);                       /* HC_NOP returned 0 */
	assert_int_equal((int64_t)v2, -ENOSYS);         /* HC_EXIT refused */
	assert_int_equal(v3, 7);                        /* old page still works */
	assert_true(hv_vm_result(t.vm, 4, &v4));
	assert_int_equal(v4, features);                 /* CPUID says the spec's */
	hv_pstate_t ps = hv_page_get(t.vm, ARG_GPA >> 12);
	assert_true(hv_ps_flags(ps) & HV_PF_DEVICE);
	struct hv_vm_counters ct;
	hv_vm_counters(t.vm, &ct);
	assert_true(ct.bad_hypercalls >= 2);            /* EXIT + bad pfn */
	assert_int_equal(st.kind, HV_EXIT_RUNNING);     /* halted, not crashed */
	testvm_destroy(&t);
	unlink(kernel);
	free(kernel);
}

static void linux_driver_doorbell(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	doorbell(HV_FEAT_BALLOON);
}

/* balloon = off: the guest is not told of a balloon (it was, once). */
static void linux_no_balloon_feature(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	doorbell(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(linux_driver_doorbell),
		cmocka_unit_test(linux_no_balloon_feature),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
