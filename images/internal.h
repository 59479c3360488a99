/*
 * internal.h - what the images library's files share and nothing else
 * sees: the checksum's steps and the manifest file.
 */
#ifndef DENSEVM_IMAGES_INTERNAL_H
#define DENSEVM_IMAGES_INTERNAL_H

#include <xxhash.h>
#include "images.h"

/* Adds one nonzero page to a checksum (see images.h: pfn, then bytes). */
void img_checksum_page(XXH3_state_t *st, uint64_t pfn, const void *page);
void img_checksum_text(const XXH128_hash_t *h, char *out, size_t len);

int img_manifest_write(const char *path, const struct image_manifest *m,
		       char *err, size_t errlen);
int img_manifest_read(const char *path, struct image_manifest *m, char *err,
		      size_t errlen);
void img_now_utc(char *out, size_t len);

/* Removes a flat directory and its files; ignores what is not there. */
void img_remove_dir(const char *dir);

#endif
