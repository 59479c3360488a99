/*
 * bh_stats.c - the balloon device's control side: setters, stats, JSON and
 * rate-limited logging.
 *
 * Owns: publishing the host half of the config page (a seqlock the guest
 * reads), the target-to-reached latency, the stats snapshot (its JSON form
 * is bh_json.c's), and bh_log(), which lets at most
 * cfg.log_lines_per_sec lines per second per VM through and counts the
 * rest, so a guest that floods bad requests cannot flood the host's log.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "bh_internal.h"

#define NS_PER_SEC 1000000000ULL

const char *balloon_host_reject_name(enum balloon_host_reject r)
{
	static const char *const names[BH_REJ_NR] = {
		[BH_REJ_OP] = "op", [BH_REJ_ARGS] = "args",
		[BH_REJ_UNREG] = "unregistered", [BH_REJ_COUNT] = "count",
		[BH_REJ_REGISTER] = "register", [BH_REJ_INVALID] = "invalid",
		[BH_REJ_RANGE] = "range", [BH_REJ_ALIGN] = "align",
		[BH_REJ_STATE] = "state", [BH_REJ_DEVICE] = "device",
	};
	return (unsigned)r < BH_REJ_NR ? names[r] : "?";
}

/* ------------------------------------------------------------- logging */

static void emit(struct balloon_host *dev, const char *line)
{
	if (dev->cfg.log)
		dev->cfg.log(dev->cfg.log_ctx, line);
	else
		fprintf(stderr, "balloon[%s]: %s\n",
			dev->be.name ? dev->be.name : "?", line);
}

/* The rate limit: true when a line may go out now.  Formatting is left to
 * the caller so that suppressed lines cost a counter bump, not a printf. */
bool bh_log_admit(struct balloon_host *dev)
{
	uint64_t now = dev->be.now_ns(dev->be.ctx);
	if (now - dev->log_window_ns >= NS_PER_SEC || now < dev->log_window_ns) {
		if (dev->log_suppressed_window) {
			char line[64];
			snprintf(line, sizeof(line), "%" PRIu64 " more lines suppressed",
				 dev->log_suppressed_window);
			emit(dev, line);
		}
		dev->log_window_ns = now;
		dev->log_lines = 0;
		dev->log_suppressed_window = 0;
	}
	if (dev->log_lines >= dev->cfg.log_lines_per_sec) {
		dev->log_suppressed++;
		dev->log_suppressed_window++;
		return false;
	}
	dev->log_lines++;
	return true;
}

void bh_vlog(struct balloon_host *dev, const char *fmt, va_list ap)
{
	char line[256];
	vsnprintf(line, sizeof(line), fmt, ap);
	emit(dev, line);
}

void bh_log(struct balloon_host *dev, const char *fmt, ...)
{
	va_list ap;
	if (!bh_log_admit(dev))
		return;
	va_start(ap, fmt);
	bh_vlog(dev, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------- config page */

/* Writes the host half as a seqlock: odd seq, fields, even seq.  The host
 * never reads this half back: its truth lives in dev. */
void bh_publish_config(struct balloon_host *dev)
{
	volatile struct balloon_cfg_host *h = dev->cfg_h;
	if (!dev->registered || !h)
		return;
	__atomic_store_n(&h->seq, dev->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	h->magic = BALLOON_CFG_MAGIC;
	h->version = BALLOON_PROTO_VERSION;
	h->target_pages = dev->target_pages;
	h->host_pages = dev->host_pages;
	h->flags = dev->flags;
	h->stats_period_ms = dev->stats_period_ms;
	h->stats_request = dev->stats_request;
	h->ring_capacity = dev->ring_cap;
	for (unsigned i = 0; i < sizeof(h->reserved) / sizeof(h->reserved[0]); i++)
		h->reserved[i] = 0;
	dev->seq += 2;
	__atomic_store_n(&h->seq, dev->seq, __ATOMIC_RELEASE);
}

void bh_check_reached(struct balloon_host *dev)
{
	if (!dev->reached && dev->host_pages == dev->target_pages) {
		dev->reached = true;
		dev->reach_ns = (int64_t)(dev->be.now_ns(dev->be.ctx) - dev->target_set_ns);
	}
}

/* Applies a change under the lock, publishes it and wakes the guest. */
static void changed(struct balloon_host *dev)
{
	bh_publish_config(dev);
	pthread_mutex_unlock(&dev->lock);
	if (dev->be.notify)
		dev->be.notify(dev->be.ctx);
}

int balloon_host_set_target(struct balloon_host *dev, uint64_t bytes)
{
	if (bytes > dev->be.mem_bytes)
		return -BALLOON_ERANGE;
	pthread_mutex_lock(&dev->lock);
	dev->target_pages = bytes / BALLOON_PAGE_SIZE;
	dev->target_set_ns = dev->be.now_ns(dev->be.ctx);
	dev->reached = false;
	dev->reach_ns = -1;
	bh_check_reached(dev);
	changed(dev);
	return 0;
}

int balloon_host_set_guest_size(struct balloon_host *dev, uint64_t bytes)
{
	if (bytes > dev->be.mem_bytes)
		return -BALLOON_ERANGE;
	return balloon_host_set_target(dev, dev->be.mem_bytes - bytes);
}

int balloon_host_set_stats_period(struct balloon_host *dev, uint32_t ms)
{
	pthread_mutex_lock(&dev->lock);
	dev->stats_period_ms = ms;
	changed(dev);
	return 0;
}

int balloon_host_set_reporting(struct balloon_host *dev, bool on)
{
	pthread_mutex_lock(&dev->lock);
	if (on)
		dev->flags |= BALLOON_CFG_F_REPORTING;
	else
		dev->flags &= ~BALLOON_CFG_F_REPORTING;
	changed(dev);
	return 0;
}

int balloon_host_request_stats(struct balloon_host *dev)
{
	pthread_mutex_lock(&dev->lock);
	dev->stats_request++;
	changed(dev);
	return 0;
}

/* --------------------------------------------------------------- stats */

void balloon_host_stats(struct balloon_host *dev, struct balloon_host_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&dev->lock);
	/* the guest's own count as of now, not as of its last doorbell */
	if (dev->registered)
		bh_read_guest_half(dev, false);
	out->registered = dev->registered;
	out->reporting = (dev->flags & BALLOON_CFG_F_REPORTING) != 0;
	out->stats_period_ms = dev->stats_period_ms;
	out->mem_bytes = dev->be.mem_bytes;
	out->size_bytes = dev->host_pages * BALLOON_PAGE_SIZE;
	out->target_bytes = dev->target_pages * BALLOON_PAGE_SIZE;
	out->guest_balloon_bytes = dev->guest_balloon_pages * BALLOON_PAGE_SIZE;
	out->guest_status = dev->guest_status;
	out->ring_capacity = dev->ring_cap;
	out->requests = dev->requests;
	out->inflated_pages = dev->inflated;
	out->deflated_pages = dev->deflated;
	out->reported_pages = dev->reported;
	for (int i = 0; i < BH_REJ_NR; i++) {
		out->reject[i] = dev->reject[i];
		out->rejected += dev->reject[i];
	}
	out->busy = dev->busy;
	out->io_errors = dev->io_errors;
	out->discards = dev->discards;
	out->log_suppressed = dev->log_suppressed;
	out->target_reached = dev->reached;
	out->reach_ns = dev->reach_ns;
	out->stats_updates = dev->stats_updates;
	out->guest_rejected = dev->guest_rejected;
	out->guest = dev->guest;
	pthread_mutex_unlock(&dev->lock);
}
