/* What both backends do with the recipients a claim leased: order them as
 * the queue promises (queue_int.h, msv__queue_claims_to_jobs). */
#include <stdlib.h>

#include "queue/queue_int.h"

typedef struct claim_group {
	size_t key;   /* rank of the message's earliest due recipient */
	size_t start; /* first row in the by-message order */
	size_t count;
} claim_group;

static int cmp_due(const void *a, const void *b)
{
	const msv__claimed *x = a, *y = b;
	if (x->next != y->next)
		return x->next < y->next ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

static int cmp_msg(const void *a, const void *b)
{
	const msv__claimed *x = a, *y = b;
	if (x->msg != y->msg)
		return x->msg < y->msg ? -1 : 1;
	return (x->rank > y->rank) - (x->rank < y->rank);
}

static int cmp_group(const void *a, const void *b)
{
	const claim_group *x = a, *y = b;
	return (x->key > y->key) - (x->key < y->key);
}

msv_result msv__queue_claims_to_jobs(msv__claimed *rows, size_t nrows, msv_queue_job **jobs_out,
                                     int64_t **msgs_out, size_t *njobs)
{
	size_t ngroups = 0;
	*jobs_out = NULL;
	*msgs_out = NULL;
	*njobs = 0;
	if (!nrows)
		return MSV_OK;
	/* Claims come back in no order: by due time first, then grouped by
	 * message, each message where its earliest due recipient ranks. */
	qsort(rows, nrows, sizeof(*rows), cmp_due);
	for (size_t i = 0; i < nrows; i++)
		rows[i].rank = i;
	qsort(rows, nrows, sizeof(*rows), cmp_msg);
	claim_group *groups = msv_calloc(nrows, sizeof(*groups));
	if (!groups)
		return MSV_E_NOMEM;
	for (size_t i = 0; i < nrows; i++) {
		if (i == 0 || rows[i].msg != rows[i - 1].msg) {
			groups[ngroups].key = rows[i].rank;
			groups[ngroups].start = i;
			ngroups++;
		}
		groups[ngroups - 1].count++;
	}
	qsort(groups, ngroups, sizeof(*groups), cmp_group);
	msv_queue_job *jobs = msv_calloc(ngroups, sizeof(*jobs));
	int64_t *msgs = msv_calloc(ngroups, sizeof(*msgs));
	for (size_t g = 0; jobs && msgs && g < ngroups; g++) {
		msv_queue_job *j = &jobs[g];
		const claim_group *gr = &groups[g];
		if (!(j->rcpt = msv_calloc(gr->count, sizeof(*j->rcpt)))) {
			msv_queue_jobs_free(jobs, ngroups);
			jobs = NULL;
			break;
		}
		for (size_t k = 0; k < gr->count; k++) {
			msv__claimed *c = &rows[gr->start + k];
			j->rcpt[k].id = c->id;
			j->rcpt[k].address = c->address;
			j->rcpt[k].attempts = c->attempts;
			j->rcpt[k].epoch = c->epoch;
			c->address = NULL; /* moved into the job */
		}
		j->nrcpt = gr->count;
		msgs[g] = rows[gr->start].msg;
	}
	msv_free(groups);
	if (!jobs || !msgs) {
		msv_queue_jobs_free(jobs, ngroups);
		msv_free(msgs);
		return MSV_E_NOMEM;
	}
	*jobs_out = jobs;
	*msgs_out = msgs;
	*njobs = ngroups;
	return MSV_OK;
}
