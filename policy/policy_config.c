/*
 * policy_config.c - the policy's configuration: defaults, the [policy]
 * keys, the per-VM keys (shares, min, max) and their checks.
 *
 * Owns parsing only; what the keys mean is documented in policy.h.  Every
 * error is one line that starts with the key and quotes the value, so the
 * caller only adds FILE:LINE or the --vm origin.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "policy.h"
#include "util/size.h"

void policy_config_default(struct policy_config *c)
{
	memset(c, 0, sizeof(*c));
	c->mode = POLICY_MODE_ON;
	c->strategy = POLICY_STRATEGY_SHARES;
	c->period_ms = 0;
	c->host_budget = 0;
	c->reserve = 512ull << 20;
	c->high = 0.06;
	c->soft = 0.04;
	c->hard = 0.02;
	c->low = 0.01;
	c->idle_tax = 0.75;
	c->min_guest_free = 0.20;
	c->max_step = 0.25;
	c->scan_min = 200;
	c->scan_max = 20000;
	c->merge_yield_min = 64ull << 20;
	c->settle_ticks = 3;
	c->wss_sample_ms = 10000;
}

unsigned policy_period_ms(const struct policy_config *c)
{
	if (c->period_ms)
		return c->period_ms;
	return c->strategy == POLICY_STRATEGY_MOM ? 10000 : 1000;
}

uint64_t policy_budget(const struct policy_config *c, uint64_t mem_total,
		       uint64_t cgroup_limit)
{
	if (c->host_budget)
		return c->host_budget;
	if (cgroup_limit)
		return cgroup_limit < mem_total ? cgroup_limit : mem_total;
	return mem_total > c->reserve ? mem_total - c->reserve : 0;
}

void policy_vm_config_default(struct policy_vm_config *v)
{
	v->shares = 1000;
	v->min = 0;
	v->max = 0;
}

/* ------------------------------------------------------------- values */

/* A fraction "0.06" or a percentage "6%"; finite. */
static int parse_fraction(const char *s, double *out)
{
	char *end;
	double v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v))
		return -EINVAL;
	if (*end == '%') {
		v /= 100.0;
		end++;
	}
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

/* --------------------------------------------------------- thresholds */

struct thr {
	const char *key;
	unsigned bit;
	size_t off;
};

static const struct thr thrs[4] = {
	{ "high", POLICY_SET_HIGH, offsetof(struct policy_config, high) },
	{ "soft", POLICY_SET_SOFT, offsetof(struct policy_config, soft) },
	{ "hard", POLICY_SET_HARD, offsetof(struct policy_config, hard) },
	{ "low",  POLICY_SET_LOW,  offsetof(struct policy_config, low) },
};

static double thr_val(const struct policy_config *c, int i)
{
	return *(const double *)((const char *)c + thrs[i].off);
}

/*
 * Thresholds i < j must satisfy t[i] > t[j].  With only_set, pairs where
 * either one is still its default are skipped: a file may lower all four
 * in any order, and only the final check sees the defaults.
 */
static int check_thresholds(const struct policy_config *c, bool only_set,
			    char *err, size_t errlen)
{
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++) {
			if (only_set && (!(c->set & thrs[i].bit) ||
					 !(c->set & thrs[j].bit)))
				continue;
			if (thr_val(c, i) > thr_val(c, j))
				continue;
			snprintf(err, errlen, "%s: %g%% must be above %s %g%%%s "
				 "(thresholds must be strictly decreasing: "
				 "high > soft > hard > low)", thrs[i].key,
				 thr_val(c, i) * 100, thrs[j].key,
				 thr_val(c, j) * 100,
				 (c->set & thrs[j].bit) ? "" : " (its default)");
			return -EINVAL;
		}
	return 0;
}

int policy_config_check(const struct policy_config *c, char *err,
			size_t errlen)
{
	if (check_thresholds(c, false, err, errlen))
		return -EINVAL;
	if (c->scan_min > c->scan_max) {
		snprintf(err, errlen, "scan_min: %llu must not be above scan_max "
			 "%llu", (unsigned long long)c->scan_min,
			 (unsigned long long)c->scan_max);
		return -EINVAL;
	}
	return 0;
}

/* --------------------------------------------------------------- keys */

static const char known_keys[] =
	"mode strategy period_ms host_budget reserve high soft hard low "
	"idle_tax min_guest_free max_step scan_min scan_max merge_yield_min "
	"settle_ticks wss_sample_ms log";

static int frac_key(const char *key, const char *val, double lo, bool lo_open,
		    double hi, bool hi_open, double *out, char *err,
		    size_t errlen)
{
	double v;

	if (parse_fraction(val, &v) || v < lo || (lo_open && v == lo) ||
	    v > hi || (hi_open && v == hi)) {
		snprintf(err, errlen, "%s: '%s' must be a fraction in %c%g, %g%c "
			 "(0.2 or 20%%)", key, val, lo_open ? '(' : '[', lo, hi,
			 hi_open ? ')' : ']');
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int size_key(const char *key, const char *val, uint64_t *out,
		    char *err, size_t errlen)
{
	if (parse_size(val, out)) {
		snprintf(err, errlen, "%s: '%s' must be a size like 512M", key,
			 val);
		return -EINVAL;
	}
	return 0;
}

int policy_config_set(struct policy_config *c, const char *key,
		      const char *val, char *err, size_t errlen)
{
	uint64_t u;

	if (!val)
		val = "";
	for (int i = 0; i < 4; i++) {
		if (strcmp(key, thrs[i].key))
			continue;
		double *t = (double *)((char *)c + thrs[i].off);
		double old = *t;
		unsigned oldset = c->set;
		if (frac_key(key, val, 0, true, 1, true, t, err, errlen))
			return -EINVAL;
		c->set |= thrs[i].bit;
		if (check_thresholds(c, true, err, errlen)) {
			*t = old;
			c->set = oldset;
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "mode")) {
		if (!strcmp(val, "on"))
			c->mode = POLICY_MODE_ON;
		else if (!strcmp(val, "advise"))
			c->mode = POLICY_MODE_ADVISE;
		else if (!strcmp(val, "off"))
			c->mode = POLICY_MODE_OFF;
		else
			goto bad_enum;
	} else if (!strcmp(key, "strategy")) {
		if (!strcmp(val, "shares"))
			c->strategy = POLICY_STRATEGY_SHARES;
		else if (!strcmp(val, "mom"))
			c->strategy = POLICY_STRATEGY_MOM;
		else
			goto bad_enum;
	} else if (!strcmp(key, "period_ms")) {
		if (parse_u64(val, 10, 3600000, &u)) {
			snprintf(err, errlen, "period_ms: '%s' must be 10 to 3600000 "
				 "(ms)", val);
			return -EINVAL;
		}
		c->period_ms = (unsigned)u;
		c->set |= POLICY_SET_PERIOD;
	} else if (!strcmp(key, "host_budget")) {
		if (!strcmp(val, "auto")) {
			c->host_budget = 0;
		} else if (parse_size(val, &u) || !u) {
			snprintf(err, errlen, "host_budget: '%s' must be auto or a "
				 "size like 12G", val);
			return -EINVAL;
		} else {
			c->host_budget = u;
		}
	} else if (!strcmp(key, "reserve")) {
		return size_key(key, val, &c->reserve, err, errlen);
	} else if (!strcmp(key, "idle_tax")) {
		return frac_key(key, val, 0, false, 1, true, &c->idle_tax, err,
				errlen);
	} else if (!strcmp(key, "min_guest_free")) {
		return frac_key(key, val, 0, false, 1, true, &c->min_guest_free,
				err, errlen);
	} else if (!strcmp(key, "max_step")) {
		return frac_key(key, val, 0, true, 1, false, &c->max_step, err,
				errlen);
	} else if (!strcmp(key, "scan_min") || !strcmp(key, "scan_max")) {
		if (parse_u64(val, 1, 100000000, &u)) {
			snprintf(err, errlen, "%s: '%s' must be pages/s, 1 to "
				 "100000000", key, val);
			return -EINVAL;
		}
		*(!strcmp(key, "scan_min") ? &c->scan_min : &c->scan_max) = u;
	} else if (!strcmp(key, "merge_yield_min")) {
		return size_key(key, val, &c->merge_yield_min, err, errlen);
	} else if (!strcmp(key, "settle_ticks")) {
		if (parse_u64(val, 0, 1000, &u)) {
			snprintf(err, errlen, "settle_ticks: '%s' must be 0 to 1000",
				 val);
			return -EINVAL;
		}
		c->settle_ticks = (unsigned)u;
	} else if (!strcmp(key, "wss_sample_ms")) {
		if (parse_u64(val, 100, 10000, &u)) {
			snprintf(err, errlen, "wss_sample_ms: '%s' must be 100 to "
				 "10000 (ms; the window is 10 s)", val);
			return -EINVAL;
		}
		c->wss_sample_ms = (unsigned)u;
	} else if (!strcmp(key, "log")) {
		if (strlen(val) >= sizeof(c->log)) {
			snprintf(err, errlen, "log: path longer than %zu bytes",
				 sizeof(c->log) - 1);
			return -EINVAL;
		}
		snprintf(c->log, sizeof(c->log), "%s", val);
	} else {
		snprintf(err, errlen, "unknown key '%s' (known: %s)", key,
			 known_keys);
		return -EINVAL;
	}
	return 0;
bad_enum:
	snprintf(err, errlen, "%s: '%s' must be %s", key, val,
		 !strcmp(key, "mode") ? "on, advise or off" : "shares or mom");
	return -EINVAL;
}

/* ---------------------------------------------------------- per VM */

unsigned policy_vm_key_bit(const char *key)
{
	if (!strcmp(key, "shares"))
		return POLICY_VM_SET_SHARES;
	if (!strcmp(key, "min"))
		return POLICY_VM_SET_MIN;
	if (!strcmp(key, "max"))
		return POLICY_VM_SET_MAX;
	return 0;
}

int policy_vm_key(struct policy_vm_config *v, const char *key,
		  const char *val, char *err, size_t errlen)
{
	unsigned bit = policy_vm_key_bit(key);

	if (!val)
		val = "";
	if (bit == POLICY_VM_SET_SHARES) {
		if (parse_u64(val, 1, 1000000, &v->shares)) {
			snprintf(err, errlen, "shares: '%s' must be 1 to 1000000",
				 val);
			return -EINVAL;
		}
	} else if (bit == POLICY_VM_SET_MIN || bit == POLICY_VM_SET_MAX) {
		uint64_t *p = bit == POLICY_VM_SET_MIN ? &v->min : &v->max;
		if (parse_size(val, p)) {
			snprintf(err, errlen, "%s: '%s' must be a size like 1G%s", key,
				 val, bit == POLICY_VM_SET_MAX ? " (0 = unlimited)" : "");
			return -EINVAL;
		}
	} else {
		return -ENOENT;
	}
	return 0;
}

int policy_vm_check(const struct policy_vm_config *v, uint64_t ram,
		    char *err, size_t errlen)
{
	if (v->max && v->min > v->max) {
		snprintf(err, errlen, "min: %llu bytes is above max %llu",
			 (unsigned long long)v->min, (unsigned long long)v->max);
		return -EINVAL;
	}
	if (v->min > ram) {
		snprintf(err, errlen, "min: %llu bytes is above the VM's RAM %llu",
			 (unsigned long long)v->min, (unsigned long long)ram);
		return -EINVAL;
	}
	return 0;
}
