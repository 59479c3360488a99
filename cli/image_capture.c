/*
 * image_capture.c - `densevm image capture NAME [--mem SIZE] [--boots N]
 * [--workload W] ...`: boots the Debian cloud kernel under QEMU with the
 * capture initramfs (guest/linux/build-userland.sh), waits for the
 * workload's DENSEVM-IMAGE-READY on the serial console, pauses the guest
 * and streams its guest-physical memory (QMP pmemsave into a FIFO) into
 * an image (images/images.h), then stops QEMU.
 *
 * Each boot is one child process (at most --jobs at once, each QEMU is one
 * TCG thread), so a failure or a timeout ends that boot alone.  A boot
 * prints its stages with the seconds since its start.  An image that is
 * already there for the same RAM size, workload, seed, kernel and packages
 * is used as is (the cache) unless --force.  A failed capture says where
 * (QEMU missing, QEMU exited, boot timeout, marker not seen, workload
 * failed, save failed) and leaves no image: the writer renames its
 * temporary directory only at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "image_cmd.h"
#include "images/images.h"

extern char **environ;

static const char capture_usage[] =
"usage: densevm image capture NAME [options]\n"
"\n"
"Boots the Debian cloud kernel under QEMU with a real userland (busybox,\n"
"python3, redis-server, sqlite3 from Debian packages), runs a workload in\n"
"the guest, and saves its guest-physical memory at the workload's marker\n"
"as a RAM image (build/images/NAME, see `densevm image --help`).  With\n"
"--boots N > 1 the images are NAME0 .. NAME<N-1>, one independent boot each\n"
"(KASLR on, seed S+k).  An image already captured with the same settings\n"
"is reused.\n"
"\n"
"  --mem SIZE       guest RAM, a multiple of 2M up to 3G (default 512M)\n"
"  --boots N        independent boots, one image each (default 1)\n"
"  --workload W     idle | short | sqlite | redis | mixed (default mixed)\n"
"  --seed S         the first boot's seed (default 1)\n"
"  --jobs J         boots at once (default: the CPUs, at most N)\n"
"  --timeout SEC    per boot, boot to saved image (default 600)\n"
"  --accel A        auto | tcg | kvm (default auto: kvm where the CPU has\n"
"                   VT-x/AMD-V and /dev/kvm opens, else tcg)\n"
"  --kernel PATH    bzImage (default build/linux/vmlinuz: make guest-linux)\n"
"  --initrd PATH    initramfs (default build/images/userland/initramfs.cpio)\n"
"  --dir DIR        where images go (default build/images)\n"
"  --force          capture again even when a matching image exists\n"
"  --quiet          no stage lines, only results\n"
"  --help           this text\n";

struct capture {
	char name[64];             /* this image's name */
	char dir[PATH_MAX];        /* its directory */
	char base[PATH_MAX];       /* images dir */
	const char *kernel, *initrd, *accel, *workload;
	char packages[4096];
	char kernel_release[96];
	uint64_t mem, seed;
	double timeout;
	bool force, quiet;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void say(const struct capture *c, double t0, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(const struct capture *c, double t0, const char *fmt, ...)
{
	char line[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* one write per line: parallel boots interleave whole lines */
	char out[700];
	int n = snprintf(out, sizeof(out), "capture %s: %6.1f s  %s\n", c->name,
			 now_s() - t0, line);
	if (write(STDERR_FILENO, out, (size_t)n) < 0)
		return;
}

/* ------------------------------------------------------------- helpers */

static bool has_hw_virt(void)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[4096];
	bool yes = false;
	if (!f)
		return false;
	while (!yes && fgets(line, sizeof(line), f))
		if (!strncmp(line, "flags", 5) &&
		    (strstr(line, " vmx") || strstr(line, " svm")))
			yes = true;
	fclose(f);
	int fd = yes ? open("/dev/kvm", O_RDWR | O_CLOEXEC) : -1;
	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

static bool find_in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];
	if (!path)
		path = "/usr/bin:/bin";
	for (const char *p = path; *p;) {
		const char *e = strchr(p, ':');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, p, prog);
		if (!access(buf, X_OK))
			return true;
		p += n + (e ? 1 : 0);
	}
	return false;
}

static void read_text(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;
	out[0] = 0;
	if (!f)
		return;
	/* one line per word: "a=1\nb=2\n" becomes "a=1 b=2" */
	int ch;
	while ((ch = fgetc(f)) != EOF && n + 1 < len)
		out[n++] = ch == '\n' ? ' ' : (char)ch;
	while (n && out[n - 1] == ' ')
		n--;
	out[n] = 0;
	fclose(f);
}

/* The matching image is already there. */
static bool cached(const struct capture *c)
{
	struct image *im;
	char err[256];
	if (image_open(c->dir, &im, err, sizeof(err)))
		return false;
	bool same = im->m.ram_bytes == c->mem && im->m.seed == c->seed &&
		    !strcmp(im->m.workload, c->workload) &&
		    !strcmp(im->m.packages, c->packages) &&
		    (!c->kernel_release[0] ||
		     !strcmp(im->m.kernel, c->kernel_release));
	if (same && !c->quiet) {
		say(c, now_s(), "cached (captured %s, %llu data pages, %s)",
		    im->m.created, (unsigned long long)im->m.data_pages,
		    im->m.checksum);
	}
	image_close(im);
	return same;
}

/* ------------------------------------------------------------ one boot */

struct boot {
	pid_t qemu;
	int out_fd, err_fd;
	char work[64];             /* scratch dir: QMP socket, FIFO */
	char qmp_path[80], fifo[80];
	FILE *log;
	char errtail[512];         /* QEMU's last stderr line */
	char stage[128];
	char line[1024];
	size_t llen;
};

static int spawn_qemu(const struct capture *c, struct boot *b, char *err,
		      size_t errlen)
{
	char mem[32], append[256], qmp[PATH_MAX + 64];
	int out[2], er[2];
	bool kvm = !strcmp(c->accel, "kvm");

	snprintf(mem, sizeof(mem), "%lluM", (unsigned long long)(c->mem >> 20));
	snprintf(append, sizeof(append), "console=ttyS0 quiet panic=-1 "
		 "densevm.workload=%s densevm.seed=%llu", c->workload,
		 (unsigned long long)c->seed);
	snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", b->qmp_path);
	char *argv[] = {
		"qemu-system-x86_64", "-accel", kvm ? "kvm" : "tcg",
		"-cpu", kvm ? "host" : "max", "-m", mem, "-smp", "1",
		"-nodefaults", "-display", "none", "-serial", "stdio",
		"-monitor", "none", "-qmp", qmp, "-no-reboot",
		"-kernel", (char *)c->kernel, "-initrd", (char *)c->initrd,
		"-append", append, NULL,
	};
	if (pipe2(out, O_CLOEXEC) || pipe2(er, O_CLOEXEC)) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -errno;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, er[1], 2);
	int rc = posix_spawnp(&b->qemu, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(er[1]);
	if (rc) {
		close(out[0]);
		close(er[0]);
		snprintf(err, errlen, "QEMU missing: cannot run qemu-system-x86_64: "
			 "%s (install qemu-system-x86; make images does)",
			 strerror(rc));
		return -rc;
	}
	b->out_fd = out[0];
	b->err_fd = er[0];
	return 0;
}

/* Handles one console line; 1 = the marker, -1 = the workload failed. */
static int console_line(const struct capture *c, struct boot *b, double t0,
			char *err, size_t errlen)
{
	char *l = b->line;
	size_t n = strlen(l);
	while (n && (l[n - 1] == '\r' || l[n - 1] == '\n'))
		l[--n] = 0;
	if (b->log)
		fprintf(b->log, "%s\n", l);
	char *m = strstr(l, "DENSEVM-IMAGE-");
	if (!m)
		return 0;
	if (!strncmp(m, "DENSEVM-IMAGE-READY", 19))
		return 1;
	if (!strncmp(m, "DENSEVM-IMAGE-FAIL", 18)) {
		snprintf(err, errlen, "the workload failed in the guest: %s",
			 m + 18 + (m[18] == ' '));
		return -1;
	}
	if (!strncmp(m, "DENSEVM-IMAGE-STAGE ", 20)) {
		snprintf(b->stage, sizeof(b->stage), "%s", m + 20);
		char *k = strstr(m, "kernel=");
		if (k && !((struct capture *)c)->kernel_release[0])
			sscanf(k + 7, "%95s", ((struct capture *)c)->kernel_release);
		if (!c->quiet)
			say(c, t0, "stage %s", m + 20);
	}
	return 0;
}

/* Reads console and stderr until the marker; 0 = seen. */
static int wait_marker(const struct capture *c, struct boot *b, double t0,
		       double deadline, char *err, size_t errlen)
{
	bool out_open = true, err_open = true, first = true;
	while (out_open) {
		struct pollfd p[2] = {
			{ .fd = b->out_fd, .events = POLLIN },
			{ .fd = err_open ? b->err_fd : -1, .events = POLLIN },
		};
		int ms = (int)((deadline - now_s()) * 1000);
		if (ms <= 0) {
			snprintf(err, errlen, "boot timeout: no DENSEVM-IMAGE-READY "
				 "marker in %.0f s (last stage: %s)", c->timeout,
				 b->stage[0] ? b->stage : "none: the kernel did not "
				 "reach /init");
			return -ETIMEDOUT;
		}
		if (poll(p, 2, ms) < 0 && errno != EINTR)
			return -errno;
		if (p[1].revents) {
			char buf[512];
			ssize_t n = read(b->err_fd, buf, sizeof(buf) - 1);
			if (n <= 0) {
				err_open = false;
			} else {
				buf[n] = 0;
				char *s = buf + strspn(buf, "\n");
				char *e = strchr(s, '\n');
				if (e)
					*e = 0;
				if (*s)
					snprintf(b->errtail, sizeof(b->errtail), "%s", s);
				if (b->log)
					fprintf(b->log, "[qemu stderr] %s\n", buf);
			}
		}
		if (!p[0].revents)
			continue;
		char ch[4096];
		ssize_t n = read(b->out_fd, ch, sizeof(ch));
		if (n <= 0) {
			out_open = false;
			break;
		}
		if (first && !c->quiet)
			say(c, t0, "guest running (first console output)");
		first = false;
		for (ssize_t i = 0; i < n; i++) {
			if (b->llen < sizeof(b->line) - 1)
				b->line[b->llen++] = ch[i];
			if (ch[i] != '\n')
				continue;
			b->line[b->llen] = 0;
			b->llen = 0;
			int r = console_line(c, b, t0, err, errlen);
			if (r)
				return r > 0 ? 0 : -EIO;
		}
	}
	int st = 0;
	waitpid(b->qemu, &st, 0);
	b->qemu = -1;
	snprintf(err, errlen, "QEMU exited (%s %d) before the marker%s%s (last "
		 "stage: %s)", WIFEXITED(st) ? "status" : "signal",
		 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
		 b->errtail[0] ? ": " : "", b->errtail,
		 b->stage[0] ? b->stage : "none");
	return -EIO;
}

/* Pauses the guest and streams its RAM through the FIFO into the image. */
static int save_memory(const struct capture *c, struct boot *b, double t0,
		       double deadline, char *err, size_t errlen)
{
	struct qmp q = { .fd = -1 };
	struct image_writer *w = NULL;
	char cmd[PATH_MAX + 200];
	int fifo = -1, rc;
	uint8_t *buf = NULL;

	if ((rc = qmp_connect(&q, b->qmp_path, deadline))) {
		textf(err, errlen, "save failed: cannot connect to QMP at %s",
			 b->qmp_path);
		return rc;
	}
	if ((rc = qmp_cmd(&q, "{\"execute\":\"qmp_capabilities\"}", deadline,
			  err, errlen)) ||
	    (rc = qmp_cmd(&q, "{\"execute\":\"stop\"}", deadline, err, errlen)))
		goto out;
	if (!c->quiet)
		say(c, t0, "marker seen: guest paused, saving %llu MiB",
		    (unsigned long long)(c->mem >> 20));
	if (mkfifo(b->fifo, 0600) ||
	    (fifo = open(b->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
		rc = -errno;
		textf(err, errlen, "save failed: fifo %s: %s", b->fifo,
			 strerror(-rc));
		goto out;
	}
	if ((rc = image_writer_open(c->dir, c->mem, &w, err, errlen)))
		goto out;
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"pmemsave\",\"arguments\":"
		 "{\"val\":0,\"size\":%llu,\"filename\":\"%s\"}}",
		 (unsigned long long)c->mem, b->fifo);
	if ((rc = qmp_send(&q, cmd, err, errlen)))
		goto out;
	buf = malloc(1 << 20);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	/* Before QEMU opens its end, poll reports nothing (no POLLHUP for
	 * a FIFO that never had a writer); EOF comes after its close. */
	while (image_writer_offset(w) < c->mem) {
		struct pollfd p = { .fd = fifo, .events = POLLIN };
		int ms = (int)((deadline - now_s()) * 1000);
		if (ms <= 0 || poll(&p, 1, ms) <= 0) {
			snprintf(err, errlen, "save failed: pmemsave sent %llu of "
				 "%llu bytes in time", (unsigned long long)
				 image_writer_offset(w), (unsigned long long)c->mem);
			rc = -ETIMEDOUT;
			goto out;
		}
		ssize_t n = read(fifo, buf, 1 << 20);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "save failed: pmemsave ended after %llu "
				 "of %llu bytes", (unsigned long long)
				 image_writer_offset(w), (unsigned long long)c->mem);
			rc = -EIO;
			goto out;
		}
		if ((rc = image_writer_write(w, buf, (size_t)n, err, errlen)))
			goto out;
	}
	json_t *r = qmp_reply(&q, deadline, err, errlen);
	if (!r || json_object_get(r, "error")) {
		if (r)
			snprintf(err, errlen, "save failed: pmemsave: %s",
				 json_string_value(json_object_get(json_object_get(
					 r, "error"), "desc")) ?: "error");
		json_decref(r);
		rc = -EIO;
		goto out;
	}
	json_decref(r);
	qmp_send(&q, "{\"execute\":\"quit\"}", err, errlen);

	struct image_manifest m = { 0 };
	snprintf(m.name, sizeof(m.name), "%s", c->name);
	snprintf(m.kernel, sizeof(m.kernel), "%s", c->kernel_release);
	snprintf(m.workload, sizeof(m.workload), "%s", c->workload);
	snprintf(m.packages, sizeof(m.packages), "%s", c->packages);
	snprintf(m.accel, sizeof(m.accel), "%s", c->accel);
	m.seed = c->seed;
	m.capture_s = now_s() - t0;
	rc = image_writer_commit(w, &m, err, errlen);
	w = NULL;
	if (!rc)
		say(c, t0, "saved %s: %llu data pages (%llu MiB), %llu zero pages, "
		    "%s", c->dir, (unsigned long long)m.data_pages,
		    (unsigned long long)(m.data_pages >> 8),
		    (unsigned long long)m.zero_pages, m.checksum);
out:
	image_writer_abort(w);
	free(buf);
	if (fifo >= 0)
		close(fifo);
	if (q.fd >= 0)
		close(q.fd);
	return rc;
}

static int capture_one(struct capture *c)
{
	struct boot b = { .qemu = -1, .out_fd = -1, .err_fd = -1 };
	char err[700], logpath[PATH_MAX + 32];
	double t0 = now_s(), deadline = t0 + c->timeout;
	int rc;

	/* the QMP socket's path must fit sun_path (108 bytes): not under
	 * the build tree */
	snprintf(b.work, sizeof(b.work), "/tmp/densevm-capture-XXXXXX");
	if (!mkdtemp(b.work)) {
		fprintf(stderr, "capture %s: failed: %s: %s\n", c->name, b.work,
			strerror(errno));
		return 1;
	}
	snprintf(b.qmp_path, sizeof(b.qmp_path), "%s/qmp", b.work);
	snprintf(b.fifo, sizeof(b.fifo), "%s/mem", b.work);
	textf(logpath, sizeof(logpath), "%s/%s.console.log", c->base, c->name);
	b.log = fopen(logpath, "w");
	if (!c->quiet)
		say(c, t0, "booting %s under QEMU (%s, %llu MiB, workload %s, "
		    "seed %llu)", c->kernel, c->accel,
		    (unsigned long long)(c->mem >> 20), c->workload,
		    (unsigned long long)c->seed);
	if (!(rc = spawn_qemu(c, &b, err, sizeof(err))) &&
	    !(rc = wait_marker(c, &b, t0, deadline, err, sizeof(err))))
		rc = save_memory(c, &b, t0, deadline, err, sizeof(err));
	if (b.qemu > 0) {
		/* quit was sent on success; give it a moment, then insist */
		int st;
		for (int i = 0; i < 50 && waitpid(b.qemu, &st, WNOHANG) == 0; i++)
			usleep(rc ? 0 : 20000);
		if (waitpid(b.qemu, &st, WNOHANG) == 0) {
			kill(b.qemu, SIGKILL);
			waitpid(b.qemu, &st, 0);
		}
	}
	if (b.out_fd >= 0)
		close(b.out_fd);
	if (b.err_fd >= 0)
		close(b.err_fd);
	if (b.log)
		fclose(b.log);
	unlink(b.fifo);
	unlink(b.qmp_path);
	rmdir(b.work);
	if (rc) {
		fprintf(stderr, "capture %s: failed after %.1f s: %s (console log: "
			"%s)\n", c->name, now_s() - t0, err, logpath);
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------- command */

/* build/ of the running binary (build/san/densevm -> build/). */
static void build_dir(char *out, size_t len)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		snprintf(out, len, "build");
		return;
	}
	exe[n] = 0;
	char *d = dirname(exe);
	size_t dl = strlen(d);
	if (dl >= 4 && !strcmp(d + dl - 4, "/san"))
		d[dl - 4] = 0;
	snprintf(out, len, "%s", d);
}

int cmd_image_capture(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "mem", required_argument, 0, 'm' },
		{ "boots", required_argument, 0, 'b' },
		{ "workload", required_argument, 0, 'w' },
		{ "seed", required_argument, 0, 's' },
		{ "jobs", required_argument, 0, 'j' },
		{ "timeout", required_argument, 0, 't' },
		{ "accel", required_argument, 0, 'a' },
		{ "kernel", required_argument, 0, 'k' },
		{ "initrd", required_argument, 0, 'i' },
		{ "dir", required_argument, 0, 'd' },
		{ "force", no_argument, 0, 'f' },
		{ "quiet", no_argument, 0, 'q' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct capture c = {
		.mem = 512ull << 20, .seed = 1, .timeout = 600, .accel = "auto",
		.workload = "mixed",
	};
	char bdir[PATH_MAX], kernel[PATH_MAX + 32], initrd[PATH_MAX + 64],
	     path[PATH_MAX + 64];
	unsigned boots = 1, jobs = 0;
	const char *dir = NULL;
	int o;

	optind = 1;
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		char *end;
		switch (o) {
		case 'm':
			if (parse_size(optarg, &c.mem) || !c.mem ||
			    c.mem % (2ull << 20) || c.mem > (3ull << 30)) {
				fprintf(stderr, "densevm image capture: --mem: '%s' must "
					"be a multiple of 2M up to 3G\n", optarg);
				return 2;
			}
			break;
		case 'b': case 'j': {
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || end == optarg || v < 1 || v > 64) {
				fprintf(stderr, "densevm image capture: --%s: '%s' must be "
					"1 to 64\n", o == 'b' ? "boots" : "jobs", optarg);
				return 2;
			}
			*(o == 'b' ? &boots : &jobs) = (unsigned)v;
			break;
		}
		case 'w':
			if (strcmp(optarg, "idle") && strcmp(optarg, "short") &&
			    strcmp(optarg, "sqlite") && strcmp(optarg, "redis") &&
			    strcmp(optarg, "mixed")) {
				fprintf(stderr, "densevm image capture: --workload: '%s' "
					"must be idle, short, sqlite, redis or mixed\n",
					optarg);
				return 2;
			}
			c.workload = optarg;
			break;
		case 's':
			c.seed = strtoull(optarg, &end, 0);
			if (*end || end == optarg) {
				fprintf(stderr, "densevm image capture: --seed: '%s' is "
					"not an integer\n", optarg);
				return 2;
			}
			break;
		case 't':
			c.timeout = strtod(optarg, &end);
			if (*end || end == optarg || c.timeout <= 0) {
				fprintf(stderr, "densevm image capture: --timeout: '%s' "
					"must be seconds > 0\n", optarg);
				return 2;
			}
			break;
		case 'a':
			if (strcmp(optarg, "auto") && strcmp(optarg, "tcg") &&
			    strcmp(optarg, "kvm")) {
				fprintf(stderr, "densevm image capture: --accel: '%s' must "
					"be auto, tcg or kvm\n", optarg);
				return 2;
			}
			c.accel = optarg;
			break;
		case 'k': c.kernel = optarg; break;
		case 'i': c.initrd = optarg; break;
		case 'd': dir = optarg; break;
		case 'f': c.force = true; break;
		case 'q': c.quiet = true; break;
		case 'h': fputs(capture_usage, stdout); return 0;
		default:
			fprintf(stderr, "densevm image capture: see --help\n");
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "densevm image capture: give one NAME (see --help)\n");
		return 2;
	}
	const char *name = argv[optind];
	if (!*name || strlen(name) > 40 ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		   "0123456789_.-") != strlen(name) || name[0] == '.') {
		fprintf(stderr, "densevm image capture: NAME '%s' must be 1-40 "
			"characters of [A-Za-z0-9_.-], not starting with '.'\n", name);
		return 2;
	}
	build_dir(bdir, sizeof(bdir));
	if (!c.kernel) {
		snprintf(kernel, sizeof(kernel), "%s/linux/vmlinuz", bdir);
		c.kernel = kernel;
	}
	if (!c.initrd) {
		snprintf(initrd, sizeof(initrd), "%s/images/userland/initramfs.cpio",
			 bdir);
		c.initrd = initrd;
	}
	if (dir)
		snprintf(c.base, sizeof(c.base), "%s", dir);
	else
		textf(c.base, sizeof(c.base), "%s/images", bdir);
	if (access(c.kernel, R_OK)) {
		fprintf(stderr, "densevm image capture: no kernel at %s: run `make "
			"guest-linux` (make images does)\n", c.kernel);
		return 1;
	}
	if (access(c.initrd, R_OK)) {
		fprintf(stderr, "densevm image capture: no initramfs at %s: run "
			"`make images-userland` (make images does)\n", c.initrd);
		return 1;
	}
	if (!find_in_path("qemu-system-x86_64")) {
		fprintf(stderr, "densevm image capture: QEMU missing: no "
			"qemu-system-x86_64 in PATH (install qemu-system-x86; "
			"make images does)\n");
		return 1;
	}
	if (!strcmp(c.accel, "auto"))
		c.accel = has_hw_virt() ? "kvm" : "tcg";
	mkdir(c.base, 0755);
	image_mark_dir(c.base);
	/* the initramfs's package list and the kernel's release go into the
	 * manifest (and decide whether the cache matches) */
	snprintf(path, sizeof(path), "%s/packages.txt", dirname(strdupa(c.initrd)));
	read_text(path, c.packages, sizeof(c.packages));
	snprintf(path, sizeof(path), "%s/kernel-release", dirname(strdupa(c.kernel)));
	read_text(path, c.kernel_release, sizeof(c.kernel_release));

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (!jobs)
		jobs = (unsigned)(ncpu > 0 ? ncpu : 1);
	if (jobs > boots)
		jobs = boots;
	double t0 = now_s();
	unsigned running = 0, failed = 0, reused = 0, done = 0;
	uint64_t seed0 = c.seed;
	fprintf(stderr, "densevm image capture: %u boot%s of %llu MiB, workload "
		"%s, %s, %u at a time, into %s\n", boots, boots > 1 ? "s" : "",
		(unsigned long long)(c.mem >> 20), c.workload, c.accel, jobs, c.base);
	for (unsigned k = 0; k < boots || running; ) {
		if (k < boots && running < jobs) {
			struct capture ck = c;
			if (boots > 1)
				snprintf(ck.name, sizeof(ck.name), "%s%u", name, k);
			else
				snprintf(ck.name, sizeof(ck.name), "%s", name);
			textf(ck.dir, sizeof(ck.dir), "%s/%s", c.base, ck.name);
			ck.seed = seed0 + k;
			k++;
			if (!c.force && cached(&ck)) {
				reused++;
				continue;
			}
			fflush(stderr);
			pid_t pid = fork();
			if (pid == 0)
				_exit(capture_one(&ck));
			if (pid < 0) {
				fprintf(stderr, "densevm image capture: fork: %s\n",
					strerror(errno));
				failed++;
				continue;
			}
			running++;
			continue;
		}
		int st;
		if (wait(&st) < 0)
			break;
		running--;
		done++;
		if (!WIFEXITED(st) || WEXITSTATUS(st))
			failed++;
	}
	fprintf(stderr, "densevm image capture: %u image%s in %.1f s: %u "
		"captured, %u from the cache, %u failed\n", boots,
		boots > 1 ? "s" : "", now_s() - t0, done - failed, reused, failed);
	return failed ? 1 : 0;
}
