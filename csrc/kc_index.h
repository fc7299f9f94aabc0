/* kc_index.h - Kafka's sparse, memory-mapped segment indexes.
 *
 * Offset index (<base>.index): 8-byte entries {i32 relativeOffset,
 * i32 position}, big-endian.  An entry maps the LAST offset of a batch
 * (relative to the segment base) to the byte position where that batch
 * starts (Kafka's LogSegment.append), so the batch holding offset o starts
 * at or after the position of the largest entry whose offset is <= o.
 *
 * Time index (<base>.timeindex): 12-byte entries {i64 timestamp,
 * i32 relativeOffset}: the largest timestamp seen so far in the segment and
 * the offset of the batch that carried it.  An entry is appended only when
 * the timestamp grew, so timestamps are strictly increasing.
 *
 * Neither file has a checksum: both are rebuilt from the log when their
 * sanity check fails or after an unclean shutdown.  A file is preallocated
 * (ftruncate) to max_index_bytes while its segment is active, so appending
 * an entry is a store into the mapping, and trimmed to its entries when the
 * segment rolls; the number of entries of an existing file is its length
 * divided by the entry size.
 *
 * A preallocated file is sparse, and a store into a page the file system has
 * no block for makes the kernel allocate one; on a full disk (or tmpfs) that
 * fault is SIGBUS, which kills the whole broker instead of failing one
 * append.  So the pages an entry will land in are reserved with fallocate
 * before the store, KC_INDEX_RESERVE bytes at a time (one open + fallocate per
 * 8192 offset entries, about 32 MiB of log at Kafka's index interval); when
 * that fails the entry is refused (KC_ERR_IO) and the caller skips it, as it
 * skips an entry of a full index: the index is sparse, and the log's next
 * write meets the same full disk and reports it.  A file system without
 * fallocate (EOPNOTSUPP) keeps the old behaviour.
 *
 * No file descriptor is kept: the file is opened to size and map it and
 * closed again (Kafka's AbstractIndex keeps only its MappedByteBuffer), and
 * resize/sync open it by path for the one ftruncate or fsync.  A partition
 * then costs one fd (its active .log) instead of three, and an index that is
 * never opened (kc_segment.c loads them lazily, as Kafka's LazyIndex) costs
 * neither an fd nor a mapping.
 */
#ifndef KC_INDEX_H
#define KC_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define KC_INDEX_OFFSET_ENTRY 8
#define KC_INDEX_TIME_ENTRY 12
#define KC_INDEX_RESERVE (64 * 1024) /* bytes of the file reserved at a time (fallocate) */

typedef struct kc_index {
    char *path;            /* NULL while not open (kc_index_close, or never opened) */
    uint8_t *map;          /* MAP_SHARED over [0, map_len) of the file */
    size_t map_len;        /* = file length */
    int64_t entries;
    int64_t max_entries;   /* map_len / entry_size */
    int entry_size;        /* KC_INDEX_OFFSET_ENTRY or KC_INDEX_TIME_ENTRY */
    int64_t base_offset;   /* segment base: entries store offset - base_offset */
    int64_t reserved;      /* [0, reserved) of the file has blocks: stores there cannot fault */
} kc_index_t;

/* Open or create path.  fresh = 1 discards any existing content.
 * Existing entries = file length / entry_size (a trailing partial entry is
 * dropped).  The file is then resized to max(bytes, entries * entry_size)
 * rounded down to whole entries; bytes = 0 keeps just the entries. */
int kc_index_open(kc_index_t *ix, const char *path, int entry_size, int64_t base_offset,
                  int64_t bytes, int fresh);
/* Unmap (no trimming).  Safe on a zeroed or closed index.  Keeps
 * entry_size and base_offset; entries and max_entries become 0. */
void kc_index_close(kc_index_t *ix);
/* Resize the file to bytes (rounded down to whole entries, never below
 * the entries held; 0 = trim to the entries) and remap. */
int kc_index_resize(kc_index_t *ix, int64_t bytes);
/* msync + fsync (by path: a no-op on an index that is not open). */
int kc_index_sync(kc_index_t *ix);
static inline int kc_index_full(const kc_index_t *ix) { return ix->entries >= ix->max_entries; }
static inline int kc_index_is_open(const kc_index_t *ix) { return ix->path != NULL; }

/* Offset index. Append: KC_ERR_TOO_LARGE when full, KC_ERR_ARG when the
 * relative offset does not fit an i32 or does not grow. */
int kc_index_append_offset(kc_index_t *ix, int64_t offset, int64_t position);
/* Entry i: absolute offset and position. */
void kc_index_offset_entry(const kc_index_t *ix, int64_t i, int64_t *offset, int64_t *position);
/* Largest entry with offset <= target, or {base_offset, 0} when none. */
void kc_index_lookup_offset(const kc_index_t *ix, int64_t target, int64_t *offset, int64_t *position);
/* Largest entry with position <= pos, or {base_offset, 0} when none. */
void kc_index_lookup_position(const kc_index_t *ix, int64_t pos, int64_t *offset, int64_t *position);
/* Drop entries whose position >= pos (log truncation). */
void kc_index_truncate_position(kc_index_t *ix, int64_t pos);
/* Sanity check: positions strictly increasing and in (0, log_size),
 * offsets strictly increasing and below next_offset.  KC_ERR_CORRUPT_INDEX if not. */
int kc_index_check_offset(const kc_index_t *ix, int64_t log_size, int64_t next_offset);

/* Time index. Append only if ts is larger than the last entry's (returns
 * KC_OK either way); KC_ERR_TOO_LARGE when full. */
int kc_index_append_time(kc_index_t *ix, int64_t ts, int64_t offset);
void kc_index_time_entry(const kc_index_t *ix, int64_t i, int64_t *ts, int64_t *offset);
/* Largest entry with timestamp < ts (strictly): every record at or before
 * its offset is older than ts.  Returns 0 and {-1, base_offset} if none. */
int kc_index_lookup_time(const kc_index_t *ix, int64_t ts, int64_t *found_ts, int64_t *offset);
/* Drop entries whose offset >= offset. */
void kc_index_truncate_time(kc_index_t *ix, int64_t offset);
/* Timestamps strictly increasing, offsets non-decreasing and below next_offset. */
int kc_index_check_time(const kc_index_t *ix, int64_t next_offset);

#endif
