/*
 * numa.c - NUMA placement and per-node tables (libnuma).
 *
 * With merge_across_nodes=false each domain has one stable and one
 * candidate table per node ("slot"): a page only meets pages of its own
 * node, so a frame never makes a VM read remote memory.  A new frame is
 * written with the node of its first user preferred.  The node of a page
 * comes from move_pages() (one call for a batch of pages), or from the
 * cfg.node_of hook, which lets the unit tests fake several nodes on a
 * one-node machine.
 */
#include <numa.h>
#include <numaif.h>
#include "internal.h"

unsigned knuma_slots(const struct ksm *k)
{
	unsigned n;

	if (k->cfg.merge_across_nodes)
		return 1;
	n = k->cfg.node_of ? k->cfg.nr_nodes : k->real_nodes;
	if (n < 1)
		n = 1;
	return n > KSM_MAX_NODES ? KSM_MAX_NODES : n;
}

/* Node of each page; 0 when unknown (not present, one node). */
void knuma_nodes(const struct ksm *k, const uint8_t *const *hva, unsigned n,
		 int *nodes)
{
	unsigned i;

	if (k->cfg.node_of) {
		for (i = 0; i < n; i++)
			nodes[i] = k->cfg.node_of(hva[i], k->cfg.node_arg);
		return;
	}
	if (k->real_nodes <= 1 ||
	    move_pages(0, n, (void **)(uintptr_t)hva, NULL, nodes, 0) != 0) {
		for (i = 0; i < n; i++)
			nodes[i] = 0;
		return;
	}
	for (i = 0; i < n; i++)
		if (nodes[i] < 0)
			nodes[i] = 0;
}

unsigned knuma_slot_of(const struct ksm *k, int node)
{
	unsigned slots = knuma_slots(k);

	if (slots == 1 || node < 0)
		return 0;
	return (unsigned)node % slots;
}

/* Frames are written by pwrite(), which allocates the shmem page under
 * the calling thread's policy: prefer the users' node around it. */
void knuma_prefer(const struct ksm *k, int node)
{
	if (k->cfg.node_of || k->real_nodes <= 1 || node < 0)
		return;
	numa_set_preferred(node);
}

void knuma_unprefer(const struct ksm *k, int node)
{
	if (k->cfg.node_of || k->real_nodes <= 1 || node < 0)
		return;
	numa_set_localalloc();
}
