/* The outcome recorder (recorder.c): delivery workers hand it each
 * message's outcomes as soon as the server's reply is read; one thread
 * writes whatever has gathered in one queue transaction (group commit), so
 * a kill -9 re-sends only what was truly unanswered or not yet committed.
 * Design and crash semantics: docs/internals/daemon.md. */
#ifndef MSV_RECORDER_H
#define MSV_RECORDER_H

#include <stdint.h>

#include "missive/queue.h"

struct daemon_ctx;
typedef struct recorder recorder;

/* Starts the recording thread: 0, or -1 after logging why. */
int recorder_start(struct daemon_ctx *d, recorder **out);

/* Hands over the outcomes of one message's recipients (copied: o and its
 * strings may go away on return).  suppress[i], when suppress and it are
 * not NULL, is the reason to put recipient i's address (addr[i]) on the
 * suppression list once its outcome is committed (a hard bounce).
 * Returns the message's ticket for recorder_wait(), or 0 when the
 * recorder could not take them (stopped, out of memory): then nothing was
 * recorded and the caller must record them itself or leave them leased. */
uint64_t recorder_add(recorder *r, const char *qid, const msv_queue_outcome *o, size_t n,
                      const char *const *addr, const char *const *suppress);

/* The same for a message whose submitter ("key:NAME", "uid:N", "ip:ADDR";
 * NULL: none) is judged by these outcomes once they are committed: its
 * reputation moves (gateway_outcome) and the changed scores are written
 * right after the commit (gateway_flush). */
uint64_t recorder_add_from(recorder *r, const char *submitter, const char *qid,
                           const msv_queue_outcome *o, size_t n, const char *const *addr,
                           const char *const *suppress);

/* Waits until the outcomes of ticket (and of every earlier one) are
 * durable.  Returns 1 when they are (ticket 0: at once), 0 when the
 * recorder stopped without recording them: their recipients stay leased
 * until missived releases its leases, and are sent again later. */
int recorder_wait(recorder *r, uint64_t ticket);

/* Records what is pending (a last try when the queue refuses), then ends
 * the thread.  Later recorder_add() calls return 0. */
void recorder_stop(recorder *r);
void recorder_free(recorder *r);

#endif
