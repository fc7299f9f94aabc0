/* kc_compact_txn.h - what the cleaner knows about transactions while it
 * rewrites a log (Kafka's CleanedTransactionMetadata), internal to
 * kc_compact.c.
 *
 * A pass reads the log from its start in offset order; the aborted
 * transactions it is given (the broker's .txnindex entries) are taken up
 * in order of first offset as the pass reaches them.  For each producer it
 * then remembers whether a transaction of its is open in the range read
 * (aborted or committed) and whether any batch of it with records was
 * seen.  At the marker:
 *  - ABORT: the marker is kept, and its index entry goes into the cleaned
 *    segment's .txnindex, while the pass saw records of the transaction
 *    (they are removed in this very pass; the next pass finds none);
 *  - COMMIT: kept while the pass saw records of the transaction (the
 *    compaction of their keys may still leave some);
 *  - otherwise the marker may go: the cleaner first stamps a delete
 *    horizon (now + delete.retention.ms) into the batch (KIP-534: the base
 *    timestamp, attribute bit 0x40) and drops it in a pass after that
 *    horizon, so a consumer that read the transaction's records within
 *    delete.retention.ms still sees its marker.
 * Divergence from Kafka, on purpose: a batch left without records (an
 * aborted batch a previous pass emptied, or a committed one whose every key
 * was superseded) is not "data of the transaction": it holds no record a
 * marker must settle.  Kafka deletes such batches outright unless they are
 * their producer's last; kc_compact keeps them empty (producer state), so
 * counting them would keep markers forever.
 */
#ifndef KC_COMPACT_TXN_H
#define KC_COMPACT_TXN_H

#include <stddef.h>
#include <stdint.h>

#include "kc_batch.h"
#include "kc_compact.h"

typedef struct kc_txn_open {
    int64_t producer_id;
    const kc_aborted_txn_t *aborted; /* NULL: a committed (not aborted) transaction */
    int observed;                    /* records of it were seen in this pass */
} kc_txn_open_t;

typedef struct kc_txn_meta {
    const kc_aborted_txn_t *aborted;
    size_t n_aborted;
    size_t *by_first;  /* indexes into aborted, by first offset */
    size_t next;       /* by_first[next] is the next aborted transaction to take up */
    kc_txn_open_t *open;
    size_t n_open, cap_open;
} kc_txn_meta_t;

int kc_txn_meta_init(kc_txn_meta_t *m, const kc_aborted_txn_t *aborted, size_t n);
void kc_txn_meta_free(kc_txn_meta_t *m);
/* A data batch at its place in the log; discarded: its records go (an
 * aborted transaction's).  KC_OK or KC_ERR_NOMEM. */
int kc_txn_meta_on_batch(kc_txn_meta_t *m, const kc_batch_info_t *bi);
/* A control batch b of type kind (0 ABORT, 1 COMMIT, -1 none/unknown):
 * *discardable = 1 when the marker may go (after its delete horizon);
 * *entry = the aborted transaction whose index entry the cleaned segment
 * keeps (NULL: none). */
void kc_txn_meta_on_control(kc_txn_meta_t *m, const kc_batch_info_t *bi, int kind, int *discardable,
                            const kc_aborted_txn_t **entry);
/* The type of the control batch b (checked, uncompressed): 0 ABORT,
 * 1 COMMIT, -1 when it has no record or one this code does not know. */
int kc_control_type(const uint8_t *b, const kc_batch_info_t *bi);
/* Write into out (cap >= bi->size + 16) the control batch b with its delete
 * horizon set to horizon_ms: attribute 0x40, baseTimestamp = horizon, each
 * record's timestampDelta re-encoded so its timestamp is unchanged (as
 * Kafka's MemoryRecordsBuilder does).  Returns the new size, 0 on a record
 * that does not decode. */
size_t kc_control_set_horizon(uint8_t *out, size_t cap, const uint8_t *b, const kc_batch_info_t *bi,
                              int64_t horizon_ms);

#endif
