/*
 * testvm.h - helpers for integration tests that boot real micro guests:
 * finding the built guest, skipping by name where /dev/kvm is missing, and
 * a VM whose console lines are kept for assertions.
 */
#ifndef DENSEVM_TESTVM_H
#define DENSEVM_TESTVM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "hv.h"

/* cmocka's skip() with a line saying why; every KVM test starts with it */
#define SKIP_WITHOUT_KVM()                                                   \
	do {                                                                 \
		char e_[256];                                                \
		if (!hv_kvm_available() || hv_init(e_, sizeof(e_)) < 0) {   \
			print_message("[  SKIPPED ] %s: needs /dev/kvm\n", __func__); \
			skip();                                              \
		}                                                            \
	} while (0)

/* make test runs every test twice, plainly and then built with ASan and
 * UBSan (make SAN=1), where a VM's memory traffic costs several times as
 * much.  The sanitizer build runs the heaviest cases (kernel KSM
 * comparisons, fills of 4 x 512 MiB) smaller or not at all, and says so;
 * the plain build keeps every assertion.  DENSEVM_TEST_FULL=1 runs them
 * in full in the sanitizer build too. */
bool test_san_light(void);
/* Skips the case in the light sanitizer build with a line saying why. */
#define SKIP_IN_SAN_BUILD(why)                                               \
	do {                                                                 \
		if (test_san_light()) {                                      \
			print_message("[  SKIPPED ] %s: %s; skipped in the " \
				      "sanitizer build (the plain build runs " \
				      "it; DENSEVM_TEST_FULL=1 runs it here)\n", \
				      __func__, why);                        \
			skip();                                              \
		}                                                            \
	} while (0)

struct testvm {
	struct hv_vm *vm;
	pthread_mutex_t lock;
	char *log;          /* every console line, '\n'-separated */
	size_t len, cap;
	int echo;           /* print lines as they come (TEST_VERBOSE=1) */
};

const char *test_build_dir(void);      /* build/ or build/san/ */
const char *test_guest_path(void);
const char *test_densevm_path(void);

/* Creates (asserting success) a micro guest running `args`. */
void testvm_create(struct testvm *t, const char *name, uint64_t mem,
		   unsigned cpus, const char *args);
/* Same with a full config (console/ctx are set by the helper). */
int testvm_create_cfg(struct testvm *t, struct hv_vm_config *c, char *err,
		      size_t errlen);
void testvm_destroy(struct testvm *t);
bool testvm_log_has(struct testvm *t, const char *needle);
/* Waits up to `secs` for the VM to end; asserts it ended; returns status */
struct hv_exit_status testvm_wait(struct testvm *t, double secs);

/* Runs the densevm binary with argv (NULL-terminated, argv[0] ignored);
 * returns its exit status and its stderr+stdout in out (malloc'd). */
int run_densevm(char *const argv[], char **out);

double percentile(double *v, size_t n, double p);

#endif
