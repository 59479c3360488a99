/*
 * replay_main.c - runs a libFuzzer harness without libFuzzer.
 *
 * Owns: a plain main() for the harnesses (fuzz_balloon_host.c,
 * fuzz_console.c) so that `make test` covers them with any compiler: it
 * replays every file of the seed corpus (arguments: files or directories;
 * default tests/fuzz/corpus_NAME for a binary named fuzz_NAME_replay),
 * then runs a fixed number of deterministic mutations of them (xorshift,
 * fixed seed: byte flips, inserts, splices), so the same inputs run on
 * every machine.  A crash or an abort() in the harness fails the test.
 * Set NAME_REPLAY_MUTATIONS (BALLOON_REPLAY_MUTATIONS, ...) to change the
 * count (default 3000).
 */
#include <ctype.h>
#include <dirent.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SEEDS 256
#define MAX_LEN   4096

static uint8_t *seeds[MAX_SEEDS];
static size_t seed_len[MAX_SEEDS];
static unsigned nseeds;

static int load(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	size_t n;
	if (!f)
		return -1;
	buf = malloc(MAX_LEN);
	if (!buf) {
		fclose(f);
		return -1;
	}
	n = fread(buf, 1, MAX_LEN, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	if (nseeds < MAX_SEEDS) {
		seeds[nseeds] = buf;
		seed_len[nseeds++] = n;
	} else {
		free(buf);
	}
	return 0;
}

static int load_path(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int count = 0;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: %s: not found\n", path);
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return load(path) == 0 ? 1 : -1;
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char p[4096];
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		if (load(p) == 0)
			count++;
	}
	closedir(d);
	return count;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int main(int argc, char **argv)
{
	/* NAME from fuzz_NAME_replay */
	char name[64], def[128], var[96];
	snprintf(name, sizeof(name), "%s", basename(argv[0]));
	char *tail = strstr(name, "_replay");
	if (tail)
		*tail = 0;
	const char *n = strncmp(name, "fuzz_", 5) ? name : name + 5;
	snprintf(def, sizeof(def), "tests/fuzz/corpus_%s", n);
	snprintf(var, sizeof(var), "%s_REPLAY_MUTATIONS", n);
	for (char *c = var; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	const char *env = getenv(var);
	unsigned long muts = env ? strtoul(env, NULL, 0) : 3000;
	int files = 0;
	uint8_t *buf = malloc(MAX_LEN);
	if (!buf)
		return 1;
	for (int i = 1; i < argc || (i == 1 && argc == 1); i++) {
		int n = load_path(argc == 1 ? def : argv[i]);
		if (n < 0)
			return 1;
		files += n;
	}
	if (nseeds == 0) {
		fprintf(stderr, "replay: no corpus files\n");
		return 1;
	}
	for (unsigned long m = 0; m < muts; m++) {
		unsigned s = (unsigned)(next() % nseeds);
		size_t len = seed_len[s];
		memcpy(buf, seeds[s], len);
		for (int k = 0, nk = 1 + (int)(next() % 8); k < nk; k++) {
			uint64_t r = next();
			switch (r % 4) {
			case 0:
				if (len)
					buf[(r >> 8) % len] ^= (uint8_t)(1u << ((r >> 40) % 8));
				break;
			case 1:
				if (len)
					buf[(r >> 8) % len] = (uint8_t)(r >> 32);
				break;
			case 2:
				if (len < MAX_LEN)
					buf[len++] = (uint8_t)(r >> 16);
				break;
			default: {
				/* splice the tail of another seed in */
				unsigned o = (unsigned)((r >> 8) % nseeds);
				size_t at = len ? (r >> 24) % len : 0, take = seed_len[o] / 2;
				if (at + take > MAX_LEN)
					take = MAX_LEN - at;
				memcpy(buf + at, seeds[o] + seed_len[o] - take, take);
				if (at + take > len)
					len = at + take;
				break;
			}
			}
		}
		LLVMFuzzerTestOneInput(buf, len);
	}
	printf("fuzz_%s_replay: %d corpus files, %lu mutations: ok\n", n, files,
	       muts);
	for (unsigned i = 0; i < nseeds; i++)
		free(seeds[i]);
	free(buf);
	return 0;
}
