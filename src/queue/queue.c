/*
 * The queue's front (contract in missive/queue.h, design in
 * docs/internals/queue.md): argument checks, state names, queue IDs, the
 * group-commit machinery for msv_queue_submit(), and dispatch to the
 * backend's ops table (queue_int.h).  Nothing here knows SQL.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "core/core_int.h"
#include "queue/queue_int.h"

struct msv_queue {
	const msv__queue_ops *ops;
	void *be;
	int read_only;
	size_t max_body;

	/* Group commit: gc_mu guards everything below. */
	pthread_mutex_t gc_mu;
	msv__queue_req *pending_head, *pending_tail; /* waiting for the next batch */
	int committing;                              /* a leader is writing a batch */
	msv__queue_counters counters;
	msv__qid_fn qid_fn;
	void *qid_payload;
};

/* ---- state names ---- */

static const char *const state_names[MSV_RCPT__COUNT] = {
	[MSV_RCPT_QUEUED] = "queued",   [MSV_RCPT_DEFERRED] = "deferred",
	[MSV_RCPT_SENT] = "sent",       [MSV_RCPT_BOUNCED] = "bounced",
	[MSV_RCPT_DEAD] = "dead",       [MSV_RCPT_SUPPRESSED] = "suppressed",
};

const char *msv_queue_rcpt_state_name(msv_rcpt_state s)
{
	if ((unsigned)s >= MSV_RCPT__COUNT)
		return "unknown";
	return state_names[s];
}

int msv_queue_rcpt_state_parse(const char *name, msv_rcpt_state *out)
{
	if (!name || !out)
		return -1;
	for (unsigned i = 0; i < MSV_RCPT__COUNT; i++) {
		if (strcmp(name, state_names[i]) == 0) {
			*out = (msv_rcpt_state)i;
			return 0;
		}
	}
	return -1;
}

/* ---- queue IDs ---- */

msv_result msv__queue_random_qid(void *payload, char out[MSV_QID_LEN + 1], msv_error *err)
{
	(void)payload;
	unsigned char raw[MSV_QID_LEN / 2];
	if (msv__random_bytes(raw, sizeof(raw)))
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL,
		                     "cannot make a queue ID: getrandom failed: %s", strerror(errno));
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[MSV_QID_LEN] = '\0';
	return MSV_OK;
}

/* Copies a caller's queue ID, lowercased, into out; -1 unless it is
 * MSV_QID_LEN hex digits. */
static int qid_normalize(const char *qid, char out[MSV_QID_LEN + 1])
{
	size_t i = 0;
	for (; qid[i] && i < MSV_QID_LEN; i++) {
		char c = qid[i];
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return -1;
		out[i] = c;
	}
	if (i != MSV_QID_LEN || qid[i])
		return -1;
	out[i] = '\0';
	return 0;
}

static msv_result bad_qid(msv_error *err, const char *qid)
{
	return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
	                     "no such message: \"%.40s\" is not a queue ID (%d hex digits)", qid,
	                     MSV_QID_LEN);
}

/* ---- argument checks ---- */

static int has_crlf(const char *s)
{
	return s && strpbrk(s, "\r\n") != NULL;
}

static msv_result usage(msv_error *err, const char *what)
{
	return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "queue: %s", what);
}

static msv_result writable(msv_queue *q, msv_error *err)
{
	if (q->read_only)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "the queue was opened read-only; this operation changes it");
	return MSV_OK;
}

/* Addresses, owner names and suppression keys must not smuggle line
 * breaks: they end up in SMTP commands and one-line logs. */
static msv_result check_line(msv_error *err, const char *what, const char *s, int may_be_null)
{
	if (!s) {
		if (may_be_null)
			return MSV_OK;
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "queue: %s is missing", what);
	}
	if (has_crlf(s))
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "queue: %s contains a line break", what);
	return MSV_OK;
}

static msv_result check_identity(const char *id, msv_error *err);
static int key_name_ok(const char *name);
static msv_result bad_key_name(msv_error *err, const char *name);
static msv_result check_reputations(const msv_queue_reputation *v, size_t n, msv_error *err);

static msv_result check_message(const msv_queue *q, const msv_queue_message *m, size_t i,
                                msv_error *err)
{
	msv_result r;
	if (!m->rcpt || m->nrcpt == 0)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "queue: message %zu has no recipient", i);
	if ((r = check_line(err, "the sender", m->sender, 0)))
		return r;
	for (size_t j = 0; j < m->nrcpt; j++) {
		if (!m->rcpt[j])
			return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
			                     "queue: recipient %zu of message %zu is missing", j, i);
		if (has_crlf(m->rcpt[j]))
			return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
			                     "queue: recipient %zu of message %zu contains a line break",
			                     j, i);
		if (!m->rcpt[j][0])
			return msv_error_set(err, MSV_E_BAD_ADDRESS, MSV_CLASS_USAGE,
			                     "queue: recipient %zu of message %zu is empty", j, i);
		if (m->initial && m->initial[j] != MSV_RCPT_QUEUED &&
		    m->initial[j] != MSV_RCPT_SUPPRESSED)
			return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
			                     "queue: recipient %zu of message %zu must start queued or "
			                     "suppressed, not %s",
			                     j, i, msv_queue_rcpt_state_name(m->initial[j]));
	}
	if (!m->body && m->len)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "queue: message %zu has a length but no body", i);
	if (m->len > q->max_body)
		return msv_error_set(err, MSV_E_TOO_LARGE, MSV_CLASS_PERMANENT,
		                     "queue: message %zu is %zu bytes, more than the queue stores (%zu)",
		                     i, m->len, q->max_body);
	if ((r = check_line(err, "the Message-ID", m->message_id, 1)) ||
	    (r = check_line(err, "the route", m->route, 1)) ||
	    (r = check_line(err, "the DSN NOTIFY value", m->dsn_notify, 1)) ||
	    (r = check_line(err, "the DSN RET value", m->dsn_ret, 1)) ||
	    (r = check_line(err, "the ENVID", m->envid, 1)))
		return r;
	if (m->submitter && (r = check_identity(m->submitter, err)))
		return r;
	return MSV_OK;
}

/* ASCII lowercase copy: suppression keys.  SMTPUTF8 local parts keep their
 * non-ASCII bytes as they are. */
static char *lower_dup(const char *s)
{
	char *d = msv_strdup(s);
	if (d) {
		for (char *p = d; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	}
	return d;
}

/* ---- open and close ---- */

/* path: SQLite; url: PostgreSQL.  A postgres URI given as a path is
 * taken as a url (configurations written before url existed). */
static msv_result pick_backend(const msv_queue_options *o, const char **target,
                               const msv__queue_ops **ops, msv_error *err)
{
	const char *path = o->path && o->path[0] ? o->path : NULL;
	const char *url = o->version >= 2 && o->url && o->url[0] ? o->url : NULL;
	if (path && url)
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "queue: give a database path or a url, not both");
	if (path && (strncmp(path, "postgres://", 11) == 0 ||
	             strncmp(path, "postgresql://", 13) == 0))
		url = path, path = NULL;
	if (!path && !url)
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "queue: no database path configured");
	if (url && strncmp(url, "postgres://", 11) != 0 && strncmp(url, "postgresql://", 13) != 0)
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "queue: url \"%.60s\" is not a postgresql:// URI", url);
	*target = url ? url : path;
	*ops = url ? &msv__queue_pg_ops : &msv__queue_sqlite_ops;
	return MSV_OK;
}

/* Checks the options and makes the copy a backend gets: path holds the
 * file or the URI, url is NULL, busy_timeout_ms has its default. */
static msv_result check_opts(const msv_queue_options *opts, msv_queue_options *o,
                             const msv__queue_ops **ops, msv_error *err)
{
	msv_result r;
	if (!msv__version_ok(opts->version, MSV_QUEUE_OPTIONS_VERSION))
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "msv_queue_options: version %u is not between 1 and %u",
		                     opts->version, MSV_QUEUE_OPTIONS_VERSION);
	if (opts->busy_timeout_ms < 0)
		return usage(err, "busy_timeout_ms must not be negative");
	const char *target = NULL;
	if ((r = pick_backend(opts, &target, ops, err)))
		return r;
	memset(o, 0, sizeof(*o));
	o->version = MSV_QUEUE_OPTIONS_VERSION;
	o->path = target;
	o->busy_timeout_ms = opts->busy_timeout_ms ? opts->busy_timeout_ms : 10000;
	o->read_only = opts->read_only;
	o->verify = opts->verify;
	return MSV_OK;
}

msv_result msv_queue_migrate(const msv_queue_options *opts, int *from, int *to, msv_error *err)
{
	int f0 = 0, t0 = 0;
	msv_queue_options o;
	const msv__queue_ops *ops = NULL;
	msv_result r;
	if (!opts)
		return usage(err, "msv_queue_migrate needs options");
	if ((r = check_opts(opts, &o, &ops, err)))
		return r;
	if (o.read_only)
		return usage(err, "a migration writes: the options say read-only");
	return ops->migrate(&o, from ? from : &f0, to ? to : &t0, err);
}

const char *msv_queue_backend(const msv_queue *q)
{
	return q ? q->ops->name : "";
}

msv_result msv_queue_open(msv_queue **out, const msv_queue_options *opts, msv_error *err)
{
	if (!out || !opts)
		return usage(err, "msv_queue_open needs out and options");
	*out = NULL;
	msv_queue_options o;
	const msv__queue_ops *ops = NULL;
	msv_result r0 = check_opts(opts, &o, &ops, err);
	if (r0)
		return r0;

	msv_queue *q = msv_calloc(1, sizeof(*q));
	if (!q)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	if (pthread_mutex_init(&q->gc_mu, NULL) != 0) {
		msv_free(q);
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL,
		                     "queue: cannot create a mutex");
	}
	q->ops = ops;
	q->read_only = o.read_only != 0;
	q->qid_fn = msv__queue_random_qid;
	msv_result r = ops->open(&q->be, &o, &q->max_body, err);
	if (r) {
		pthread_mutex_destroy(&q->gc_mu);
		msv_free(q);
		return r;
	}
	*out = q;
	return MSV_OK;
}

void msv_queue_close(msv_queue *q)
{
	if (!q)
		return;
	q->ops->close(q->be);
	pthread_mutex_destroy(&q->gc_mu);
	msv_free(q);
}

/* ---- submission: group commit ----
 *
 * Leader/follower batching.  Each caller appends its request (on its own
 * stack) to the pending list.  If no batch is being written, the caller
 * becomes the leader: it takes the whole pending list, writes it in one
 * transaction with the mutex released, then marks every member done and
 * wakes it.  Callers arriving meanwhile queue up and the first of them
 * leads the next batch, so under load each fsync covers everything that
 * arrived during the previous one.  A caller returns only once the batch
 * holding its messages has committed (or failed).
 */
msv_result msv_queue_submit(msv_queue *q, const msv_queue_message *msgs, size_t n,
                            int64_t now_ms, char (*ids)[MSV_QID_LEN + 1], msv_error *err)
{
	msv_result r;
	if (!q || (n && (!msgs || !ids)))
		return usage(err, "msv_queue_submit needs a queue, messages and room for their IDs");
	if ((r = writable(q, err)))
		return r;
	if (n == 0)
		return MSV_OK;
	/* Validate before joining a batch: a bad request must not cost the
	 * others their commit. */
	for (size_t i = 0; i < n; i++)
		if ((r = check_message(q, &msgs[i], i, err)))
			return r;

	msv__queue_req req;
	memset(&req, 0, sizeof(req));
	req.msgs = msgs;
	req.n = n;
	req.now_ms = now_ms;
	req.ids = ids;
	req.result = MSV_OK;
	if (pthread_cond_init(&req.wake, NULL) != 0)
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL,
		                     "queue: cannot create a condition variable");

	pthread_mutex_lock(&q->gc_mu);
	if (q->pending_tail)
		q->pending_tail->next = &req;
	else
		q->pending_head = &req;
	q->pending_tail = &req;
	q->counters.requests++;
	q->counters.messages += n;
	while (!req.done) {
		if (q->committing) {
			pthread_cond_wait(&req.wake, &q->gc_mu);
			continue;
		}
		/* Lead: take everything pending, our own request included. */
		msv__queue_req *batch = q->pending_head;
		q->pending_head = q->pending_tail = NULL;
		q->committing = 1;
		q->counters.commits++;
		uint64_t size = 0;
		for (msv__queue_req *m = batch; m; m = m->next)
			size++;
		if (size > q->counters.max_batch)
			q->counters.max_batch = size;
		msv__qid_fn fn = q->qid_fn;
		void *payload = q->qid_payload;
		pthread_mutex_unlock(&q->gc_mu);

		msv_error terr;
		msv_error_clear(&terr);
		msv_result tr = q->ops->submit(q->be, batch, fn, payload, &terr);

		pthread_mutex_lock(&q->gc_mu);
		for (msv__queue_req *m = batch, *next; m; m = next) {
			/* Read next first: once done is set and the mutex dropped,
			 * the member's owner returns and its stack frame is gone. */
			next = m->next;
			if (tr) {
				m->result = tr;
				m->err = terr;
			}
			m->done = 1;
			if (m != &req)
				pthread_cond_signal(&m->wake);
		}
		q->committing = 0;
		/* Whoever queued up during this batch: its first member leads next. */
		if (q->pending_head)
			pthread_cond_signal(&q->pending_head->wake);
	}
	pthread_mutex_unlock(&q->gc_mu);
	pthread_cond_destroy(&req.wake);

	if (req.result) {
		if (err)
			*err = req.err;
		memset(ids, 0, n * sizeof(*ids));
	}
	return req.result;
}

void msv__queue_get_counters(msv_queue *q, msv__queue_counters *out)
{
	pthread_mutex_lock(&q->gc_mu);
	*out = q->counters;
	pthread_mutex_unlock(&q->gc_mu);
}

void msv__queue_set_qid_source(msv_queue *q, msv__qid_fn fn, void *payload)
{
	pthread_mutex_lock(&q->gc_mu);
	q->qid_fn = fn ? fn : msv__queue_random_qid;
	q->qid_payload = fn ? payload : NULL;
	pthread_mutex_unlock(&q->gc_mu);
}

/* ---- delivery ---- */

msv_result msv_queue_claim(msv_queue *q, const char *owner, int64_t now_ms, int64_t lease_ms,
                           size_t max_rcpt, msv_queue_job **jobs, size_t *njobs, msv_error *err)
{
	msv_result r;
	if (!q || !jobs || !njobs)
		return usage(err, "msv_queue_claim needs a queue and somewhere to put the jobs");
	*jobs = NULL;
	*njobs = 0;
	if ((r = writable(q, err)))
		return r;
	if ((r = check_line(err, "the lease owner", owner, 0)))
		return r;
	if (!owner[0])
		return usage(err, "the lease owner is empty");
	int64_t expiry;
	if (lease_ms <= 0 || __builtin_add_overflow(now_ms, lease_ms, &expiry))
		return usage(err, "the lease length must be positive and end in range");
	if (max_rcpt == 0)
		return MSV_OK;
	return q->ops->claim(q->be, owner, now_ms, expiry, max_rcpt, jobs, njobs, err);
}

void msv_queue_jobs_free(msv_queue_job *jobs, size_t n)
{
	if (!jobs)
		return;
	for (size_t i = 0; i < n; i++) {
		msv_queue_job *j = &jobs[i];
		msv_free(j->sender);
		msv_free(j->route);
		msv_free(j->message_id);
		msv_free(j->dsn_notify);
		msv_free(j->dsn_ret);
		msv_free(j->envid);
		msv_free(j->body);
		msv_free(j->submitter);
		for (size_t k = 0; k < j->nrcpt; k++)
			msv_free(j->rcpt[k].address);
		msv_free(j->rcpt);
	}
	msv_free(jobs);
}

msv_result msv_queue_record(msv_queue *q, const msv_queue_outcome *o, size_t n, int64_t now_ms,
                            msv_error *err)
{
	return msv_queue_record_with(q, o, n, NULL, 0, now_ms, err);
}

static msv_result check_reputations(const msv_queue_reputation *v, size_t n, msv_error *err);

msv_result msv_queue_record_with(msv_queue *q, const msv_queue_outcome *o, size_t n,
                                 const msv_queue_reputation *rep, size_t nrep, int64_t now_ms,
                                 msv_error *err)
{
	return msv_queue_record_fenced(q, o, n, rep, nrep, now_ms, NULL, err);
}

msv_result msv_queue_record_fenced(msv_queue *q, const msv_queue_outcome *o, size_t n,
                                   const msv_queue_reputation *rep, size_t nrep, int64_t now_ms,
                                   size_t *refused, msv_error *err)
{
	msv_result r;
	size_t dummy;
	if (!refused)
		refused = &dummy;
	*refused = 0;
	if (!q || (n && !o) || (nrep && !rep))
		return usage(err, "msv_queue_record needs a queue and outcomes");
	if ((r = check_reputations(rep, nrep, err)))
		return r;
	if ((r = writable(q, err)))
		return r;
	for (size_t i = 0; i < n; i++) {
		switch (o[i].state) {
		case MSV_RCPT_SENT:
		case MSV_RCPT_DEFERRED:
		case MSV_RCPT_BOUNCED:
		case MSV_RCPT_DEAD:
		case MSV_RCPT_SUPPRESSED:
			break;
		default:
			return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
			                     "queue: outcome %zu has state %s, which is not an outcome", i,
			                     msv_queue_rcpt_state_name(o[i].state));
		}
		if (o[i].rcpt_id <= 0)
			return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
			                     "queue: outcome %zu has no recipient id", i);
	}
	if (n == 0 && nrep == 0)
		return MSV_OK;
	return q->ops->record(q->be, o, n, rep, nrep, now_ms, refused, err);
}

msv_result msv_queue_release(msv_queue *q, const char *owner, size_t *released, msv_error *err)
{
	msv_result r;
	size_t dummy;
	if (!released)
		released = &dummy;
	*released = 0;
	if (!q)
		return usage(err, "msv_queue_release needs a queue");
	if ((r = writable(q, err)))
		return r;
	if ((r = check_line(err, "the lease owner", owner, 0)))
		return r;
	return q->ops->release(q->be, owner, released, err);
}

msv_result msv_queue_renew(msv_queue *q, const char *owner, int64_t until_ms, size_t *renewed,
                           msv_error *err)
{
	msv_result r;
	size_t dummy;
	if (!renewed)
		renewed = &dummy;
	*renewed = 0;
	if (!q)
		return usage(err, "msv_queue_renew needs a queue");
	if ((r = writable(q, err)))
		return r;
	if ((r = check_line(err, "the lease owner", owner, 0)))
		return r;
	return q->ops->renew(q->be, owner, until_ms, renewed, err);
}

msv_result msv_queue_lease_owners(msv_queue *q, char ***owners, size_t *n, msv_error *err)
{
	if (!q || !owners || !n)
		return usage(err, "msv_queue_lease_owners needs a queue and out parameters");
	*owners = NULL;
	*n = 0;
	return q->ops->lease_owners(q->be, owners, n, err);
}

void msv_queue_strings_free(char **s, size_t n)
{
	if (!s)
		return;
	for (size_t i = 0; i < n; i++)
		msv_free(s[i]);
	msv_free(s);
}

msv_result msv_queue_next_due(msv_queue *q, int64_t *when_ms, msv_error *err)
{
	if (!q || !when_ms)
		return usage(err, "msv_queue_next_due needs a queue and an out parameter");
	*when_ms = -1;
	return q->ops->next_due(q->be, when_ms, err);
}

/* ---- inspection and operation ---- */

msv_result msv_queue_show(msv_queue *q, const char *qid, msv_queue_info *out, msv_error *err)
{
	if (!q || !qid || !out)
		return usage(err, "msv_queue_show needs a queue, a queue ID and an out parameter");
	memset(out, 0, sizeof(*out));
	char id[MSV_QID_LEN + 1];
	if (qid_normalize(qid, id))
		return bad_qid(err, qid);
	return q->ops->show(q->be, id, out, err);
}

msv_result msv_queue_list(msv_queue *q, unsigned state_mask, size_t limit, msv_queue_info **out,
                          size_t *n, msv_error *err)
{
	if (!q || !out || !n)
		return usage(err, "msv_queue_list needs a queue and out parameters");
	*out = NULL;
	*n = 0;
	state_mask &= MSV__RCPT_ALL_MASK;
	if (!state_mask)
		return MSV_OK;
	return q->ops->list(q->be, state_mask, limit, out, n, err);
}

void msv_queue_info_free(msv_queue_info *info)
{
	if (!info)
		return;
	msv_free(info->sender);
	msv_free(info->route);
	msv_free(info->message_id);
	msv_free(info->envid);
	for (size_t i = 0; i < info->nrcpt; i++) {
		msv_queue_rcpt_info *r = &info->rcpt[i];
		msv_free(r->address);
		msv_free(r->last_enhanced);
		msv_free(r->last_text);
		msv_free(r->lease_owner);
	}
	msv_free(info->rcpt);
	for (size_t i = 0; i < info->nattempts; i++) {
		msv_queue_attempt *a = &info->attempts[i];
		msv_free(a->server);
		msv_free(a->enhanced);
		msv_free(a->text);
	}
	msv_free(info->attempts);
	memset(info, 0, sizeof(*info));
}

void msv_queue_infos_free(msv_queue_info *infos, size_t n)
{
	if (!infos)
		return;
	for (size_t i = 0; i < n; i++)
		msv_queue_info_free(&infos[i]);
	msv_free(infos);
}

static msv_result retry_or_requeue(msv_queue *q, const char *qid, int64_t now_ms,
                                   size_t *changed, msv_error *err, int requeue)
{
	msv_result r;
	size_t dummy;
	if (!changed)
		changed = &dummy;
	*changed = 0;
	if (!q)
		return usage(err, "a queue handle is needed");
	if ((r = writable(q, err)))
		return r;
	char id[MSV_QID_LEN + 1];
	if (qid && qid_normalize(qid, id))
		return bad_qid(err, qid);
	const char *p = qid ? id : NULL;
	return requeue ? q->ops->requeue(q->be, p, now_ms, changed, err)
	               : q->ops->retry(q->be, p, now_ms, changed, err);
}

msv_result msv_queue_retry(msv_queue *q, const char *qid, int64_t now_ms, size_t *changed,
                           msv_error *err)
{
	return retry_or_requeue(q, qid, now_ms, changed, err, 0);
}

msv_result msv_queue_requeue(msv_queue *q, const char *qid, int64_t now_ms, size_t *changed,
                             msv_error *err)
{
	return retry_or_requeue(q, qid, now_ms, changed, err, 1);
}

msv_result msv_queue_purge(msv_queue *q, unsigned state_mask, int64_t before_ms,
                           size_t *removed, msv_error *err)
{
	msv_result r;
	size_t dummy;
	if (!removed)
		removed = &dummy;
	*removed = 0;
	if (!q)
		return usage(err, "msv_queue_purge needs a queue");
	if ((r = writable(q, err)))
		return r;
	state_mask &= MSV__RCPT_ALL_MASK;
	if (!state_mask)
		return MSV_OK;
	return q->ops->purge(q->be, state_mask, before_ms, removed, err);
}

msv_result msv_queue_stats_get(msv_queue *q, int64_t now_ms, msv_queue_stats *out,
                               msv_error *err)
{
	if (!q || !out)
		return usage(err, "msv_queue_stats_get needs a queue and an out parameter");
	memset(out, 0, sizeof(*out));
	out->oldest_pending_ms = -1;
	return q->ops->stats(q->be, now_ms, out, err);
}

/* ---- bounces and suppression ---- */

msv_result msv_queue_mark_bounced(msv_queue *q, const char *qid, const char *address,
                                  const char *status, const char *text, int64_t now_ms,
                                  size_t *changed, msv_error *err)
{
	msv_result r;
	size_t dummy;
	if (!changed)
		changed = &dummy;
	*changed = 0;
	if (!q || !qid)
		return usage(err, "msv_queue_mark_bounced needs a queue and a queue ID");
	if ((r = writable(q, err)))
		return r;
	if ((r = check_line(err, "the bounced address", address, 0)))
		return r;
	char id[MSV_QID_LEN + 1];
	if (qid_normalize(qid, id))
		return bad_qid(err, qid);
	return q->ops->mark_bounced(q->be, id, address, status ? status : "", text ? text : "",
	                            now_ms, changed, err);
}

msv_result msv_queue_find_message_id(msv_queue *q, const char *message_id, const char *address,
                                     char qid[MSV_QID_LEN + 1], int *found, msv_error *err)
{
	msv_result r;
	if (!q || !message_id || !address || !qid || !found)
		return usage(err, "msv_queue_find_message_id needs a queue, a Message-ID, an address "
		                  "and out parameters");
	*found = 0;
	qid[0] = '\0';
	if ((r = check_line(err, "the Message-ID", message_id, 0)) ||
	    (r = check_line(err, "the bounced address", address, 0)))
		return r;
	return q->ops->find_message_id(q->be, message_id, address, qid, found, err);
}

/* Checks a suppression address and returns its lowercased copy in *out. */
static msv_result suppress_key(const char *address, char **out, msv_error *err)
{
	msv_result r;
	*out = NULL;
	if ((r = check_line(err, "the suppressed address", address, 0)))
		return r;
	if (!address[0])
		return msv_error_set(err, MSV_E_BAD_ADDRESS, MSV_CLASS_USAGE,
		                     "queue: the suppressed address is empty");
	if (!(*out = lower_dup(address)))
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	return MSV_OK;
}

msv_result msv_queue_suppress_add(msv_queue *q, const char *address, const char *reason,
                                  const char *source, int64_t now_ms, msv_error *err)
{
	msv_result r;
	char *key;
	if (!q)
		return usage(err, "msv_queue_suppress_add needs a queue");
	if ((r = writable(q, err)) || (r = suppress_key(address, &key, err)))
		return r;
	r = q->ops->suppress_add(q->be, key, reason ? reason : "", source ? source : "", now_ms,
	                         err);
	msv_free(key);
	return r;
}

msv_result msv_queue_suppress_rm(msv_queue *q, const char *address, int *removed,
                                 msv_error *err)
{
	msv_result r;
	char *key;
	int dummy;
	if (!removed)
		removed = &dummy;
	*removed = 0;
	if (!q)
		return usage(err, "msv_queue_suppress_rm needs a queue");
	if ((r = writable(q, err)) || (r = suppress_key(address, &key, err)))
		return r;
	r = q->ops->suppress_rm(q->be, key, removed, err);
	msv_free(key);
	return r;
}

msv_result msv_queue_suppress_check(msv_queue *q, const char *address, int *found,
                                    char **reason, msv_error *err)
{
	msv_result r;
	char *key;
	if (!q || !found)
		return usage(err, "msv_queue_suppress_check needs a queue and an out parameter");
	*found = 0;
	if (reason)
		*reason = NULL;
	if ((r = suppress_key(address, &key, err)))
		return r;
	r = q->ops->suppress_check(q->be, key, found, reason, err);
	msv_free(key);
	return r;
}

msv_result msv_queue_suppress_list(msv_queue *q, msv_suppression **out, size_t *n,
                                   msv_error *err)
{
	if (!q || !out || !n)
		return usage(err, "msv_queue_suppress_list needs a queue and out parameters");
	*out = NULL;
	*n = 0;
	return q->ops->suppress_list(q->be, out, n, err);
}

msv_result msv_queue_probe_write(msv_queue *q, msv_error *err)
{
	if (!q)
		return usage(err, "msv_queue_probe_write needs a queue");
	if (q->read_only)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "the queue was opened read-only");
	return q->ops->probe_write(q->be, err);
}

void msv_queue_suppressions_free(msv_suppression *s, size_t n)
{
	if (!s)
		return;
	for (size_t i = 0; i < n; i++) {
		msv_free(s[i].address);
		msv_free(s[i].reason);
		msv_free(s[i].source);
	}
	msv_free(s);
}

/* ---- API keys ---- */

/* Key names end up in identities ("key:NAME"), logs and metrics labels:
 * a small charset keeps them safe in all three. */
static int key_name_ok(const char *name)
{
	if (!name)
		return 0;
	size_t n = strlen(name);
	if (n == 0 || n > MSV_KEY_NAME_MAX)
		return 0;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

static msv_result bad_key_name(msv_error *err, const char *name)
{
	if (!name)
		return usage(err, "the key name is missing");
	return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
	                     "queue: key name \"%.80s\" is not 1 to %d of A-Z a-z 0-9 . _ -", name,
	                     MSV_KEY_NAME_MAX);
}

msv_result msv_queue_key_add(msv_queue *q, const msv_queue_key *k, msv_error *err)
{
	msv_result r;
	if (!q || !k)
		return usage(err, "msv_queue_key_add needs a queue and a key");
	if ((r = writable(q, err)))
		return r;
	if (!key_name_ok(k->name))
		return bad_key_name(err, k->name);
	if ((r = check_line(err, "the sender domains", k->sender_domains, 1)))
		return r;
	if (!(k->rate >= 0 && k->rate <= 1e9)) /* also refuses NaN */
		return usage(err, "the key's rate must be between 0 and 1e9 per second");
	msv_queue_key c = *k;
	char *domains = lower_dup(k->sender_domains ? k->sender_domains : "");
	if (!domains)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	c.sender_domains = domains;
	r = q->ops->key_add(q->be, &c, err);
	msv_free(domains);
	return r;
}

msv_result msv_queue_key_rotate(msv_queue *q, const char *name, const unsigned char hash[32],
                                int64_t now_ms, int *found, msv_error *err)
{
	msv_result r;
	int dummy;
	if (!found)
		found = &dummy;
	*found = 0;
	if (!q || !hash)
		return usage(err, "msv_queue_key_rotate needs a queue and a hash");
	if ((r = writable(q, err)))
		return r;
	if (!key_name_ok(name))
		return bad_key_name(err, name);
	return q->ops->key_rotate(q->be, name, hash, now_ms, found, err);
}

msv_result msv_queue_key_rm(msv_queue *q, const char *name, int *removed, msv_error *err)
{
	msv_result r;
	int dummy;
	if (!removed)
		removed = &dummy;
	*removed = 0;
	if (!q)
		return usage(err, "msv_queue_key_rm needs a queue");
	if ((r = writable(q, err)))
		return r;
	if (!key_name_ok(name))
		return bad_key_name(err, name);
	return q->ops->key_rm(q->be, name, removed, err);
}

msv_result msv_queue_key_list(msv_queue *q, msv_queue_key **out, size_t *n, msv_error *err)
{
	if (!q || !out || !n)
		return usage(err, "msv_queue_key_list needs a queue and out parameters");
	*out = NULL;
	*n = 0;
	return q->ops->key_list(q->be, out, n, err);
}

void msv_queue_keys_free(msv_queue_key *k, size_t n)
{
	if (!k)
		return;
	for (size_t i = 0; i < n; i++) {
		msv_free(k[i].name);
		msv_free(k[i].sender_domains);
	}
	msv_wipe(k, n * sizeof(*k)); /* the hashes: not secrets, but no use lying around */
	msv_free(k);
}

/* ---- reputation ---- */

/* "key:NAME", "uid:1000", "ip:2001:db8::1": printable ASCII without
 * spaces, at most 300 octets (an IPv6 address with a zone fits easily). */
#define IDENTITY_MAX 300

static msv_result check_identity(const char *id, msv_error *err)
{
	if (!id)
		return usage(err, "the identity is missing");
	size_t n = strlen(id);
	if (n == 0 || n > IDENTITY_MAX)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "queue: an identity must be 1 to %d octets", IDENTITY_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)id[i] <= 0x20 || (unsigned char)id[i] >= 0x7f)
			return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
			                     "queue: identity \"%.80s\" has a space or a character that "
			                     "is not printable ASCII",
			                     id);
	return MSV_OK;
}

static msv_result check_score(double score, msv_error *err)
{
	if (!(score >= 0 && score <= 100)) /* also refuses NaN */
		return usage(err, "a reputation score must be a number from 0 to 100");
	return MSV_OK;
}

msv_result msv_queue_reputation_put(msv_queue *q, const msv_queue_reputation *v, size_t n,
                                    msv_error *err)
{
	msv_result r;
	if (!q || (n && !v))
		return usage(err, "msv_queue_reputation_put needs a queue and rows");
	if ((r = writable(q, err)) || (r = check_reputations(v, n, err)))
		return r;
	if (n == 0)
		return MSV_OK;
	return q->ops->reputation_put(q->be, v, n, err);
}

static msv_result check_reputations(const msv_queue_reputation *v, size_t n, msv_error *err)
{
	msv_result r;
	for (size_t i = 0; i < n; i++)
		if ((r = check_identity(v[i].identity, err)) || (r = check_score(v[i].score, err)) ||
		    (r = check_line(err, "the reason", v[i].why, 1)))
			return r;
	return MSV_OK;
}

msv_result msv_queue_reputation_list(msv_queue *q, msv_queue_reputation **out, size_t *n,
                                     msv_error *err)
{
	if (!q || !out || !n)
		return usage(err, "msv_queue_reputation_list needs a queue and out parameters");
	*out = NULL;
	*n = 0;
	return q->ops->reputation_list(q->be, out, n, err);
}

void msv_queue_reputations_free(msv_queue_reputation *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		msv_free(v[i].identity);
		msv_free(v[i].why);
	}
	msv_free(v);
}

msv_result msv_queue_reputation_override(msv_queue *q, const char *identity, double score,
                                         int64_t now_ms, msv_error *err)
{
	msv_result r;
	if (!q)
		return usage(err, "msv_queue_reputation_override needs a queue");
	if ((r = writable(q, err)) || (r = check_identity(identity, err)) ||
	    (r = check_score(score, err)))
		return r;
	return q->ops->reputation_override(q->be, identity, score, now_ms, err);
}

msv_result msv_queue_reputation_take_overrides(msv_queue *q, msv_queue_reputation **out,
                                               size_t *n, msv_error *err)
{
	msv_result r;
	if (!q || !out || !n)
		return usage(err, "msv_queue_reputation_take_overrides needs a queue and out "
		                  "parameters");
	*out = NULL;
	*n = 0;
	if ((r = writable(q, err)))
		return r;
	return q->ops->reputation_take_overrides(q->be, out, n, err);
}

/* ---- outbound shaping ---- */

msv_result msv_queue_postpone(msv_queue *q, const int64_t *rcpt_ids, size_t n, int64_t until_ms,
                              size_t *changed, msv_error *err)
{
	msv_result r;
	size_t dummy;
	if (!changed)
		changed = &dummy;
	*changed = 0;
	if (!q || (n && !rcpt_ids))
		return usage(err, "msv_queue_postpone needs a queue and recipient ids");
	if ((r = writable(q, err)))
		return r;
	for (size_t i = 0; i < n; i++)
		if (rcpt_ids[i] <= 0)
			return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
			                     "queue: recipient id %zu is not a recipient's id", i);
	if (n == 0)
		return MSV_OK;
	return q->ops->postpone(q->be, rcpt_ids, n, until_ms, changed, err);
}

msv_result msv_queue_route_state_put(msv_queue *q, const msv_queue_route_state *s, size_t n,
                                     msv_error *err)
{
	msv_result r;
	if (!q || (n && !s))
		return usage(err, "msv_queue_route_state_put needs a queue and rows");
	if ((r = writable(q, err)))
		return r;
	for (size_t i = 0; i < n; i++) {
		if ((r = check_line(err, "the route name", s[i].route, 0)))
			return r;
		if (!*s[i].route)
			return usage(err, "the route name is empty");
		const char *c = s[i].circuit;
		if (!c || (strcmp(c, "closed") && strcmp(c, "open") && strcmp(c, "half-open")))
			return usage(err, "a route's circuit is closed, open or half-open");
	}
	if (n == 0)
		return MSV_OK;
	return q->ops->route_state_put(q->be, s, n, err);
}

msv_result msv_queue_route_state_list(msv_queue *q, msv_queue_route_state **out, size_t *n,
                                      msv_error *err)
{
	if (!q || !out || !n)
		return usage(err, "msv_queue_route_state_list needs a queue and out parameters");
	*out = NULL;
	*n = 0;
	return q->ops->route_state_list(q->be, out, n, err);
}

void msv_queue_route_states_free(msv_queue_route_state *s, size_t n)
{
	if (!s)
		return;
	for (size_t i = 0; i < n; i++) {
		msv_free(s[i].route);
		msv_free(s[i].circuit);
	}
	msv_free(s);
}

/* ---- notifications ---- */

int msv_queue_can_notify(msv_queue *q)
{
	return q && q->ops->wait_notify != NULL;
}

msv_result msv_queue_wait_notify(msv_queue *q, int timeout_ms, int *woken, msv_error *err)
{
	int dummy;
	if (!woken)
		woken = &dummy;
	*woken = 0;
	if (!q || timeout_ms < 0)
		return usage(err, "msv_queue_wait_notify needs a queue and a timeout >= 0");
	if (q->ops->wait_notify)
		return q->ops->wait_notify(q->be, timeout_ms, woken, err);
	/* No cross-process signal (SQLite): a plain sleep. */
	struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	return MSV_OK;
}

/* ---- export and import ---- */

msv_result msv_queue_qids(msv_queue *q, char ***qids, size_t *n, msv_error *err)
{
	if (!q || !qids || !n)
		return usage(err, "msv_queue_qids needs a queue and out parameters");
	*qids = NULL;
	*n = 0;
	return q->ops->qids(q->be, qids, n, err);
}

msv_result msv_queue_dump_message(msv_queue *q, const char *qid, msv_queue_dump *out,
                                  msv_error *err)
{
	if (!q || !qid || !out)
		return usage(err, "msv_queue_dump_message needs a queue, a queue ID and an out "
		                  "parameter");
	memset(out, 0, sizeof(*out));
	char id[MSV_QID_LEN + 1];
	if (qid_normalize(qid, id))
		return bad_qid(err, qid);
	msv_result r = q->ops->dump(q->be, id, out, err);
	if (r)
		msv_queue_dump_free(out);
	return r;
}

void msv_queue_dump_free(msv_queue_dump *d)
{
	if (!d)
		return;
	msv_queue_info_free(&d->info);
	msv_free(d->dsn_notify);
	msv_free(d->dsn_ret);
	msv_free(d->submitter);
	msv_free(d->body);
	memset(d, 0, sizeof(*d));
}

/* An imported message must be one the queue could have written itself. */
static msv_result check_dump(const msv_queue *q, const msv_queue_dump *d, size_t i,
                             msv_error *err)
{
	msv_result r;
	char id[MSV_QID_LEN + 1];
	if (qid_normalize(d->info.qid, id) || strcmp(id, d->info.qid))
		return bad_qid(err, d->info.qid);
	if (!d->info.rcpt || d->info.nrcpt == 0)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "queue: imported message %zu has no recipient", i);
	if (d->len > q->max_body || (d->len && !d->body))
		return msv_error_set(err, MSV_E_TOO_LARGE, MSV_CLASS_PERMANENT,
		                     "queue: imported message %zu has no body or one too large", i);
	if ((r = check_line(err, "the sender", d->info.sender, 0)))
		return r;
	for (size_t j = 0; j < d->info.nrcpt; j++) {
		const msv_queue_rcpt_info *ri = &d->info.rcpt[j];
		if ((r = check_line(err, "an imported recipient", ri->address, 0)))
			return r;
		if ((unsigned)ri->state >= MSV_RCPT__COUNT)
			return usage(err, "an imported recipient has an unknown state");
	}
	return MSV_OK;
}

msv_result msv_queue_import(msv_queue *q, const msv_queue_import_set *set, int force,
                            msv_error *err)
{
	msv_result r;
	if (!q || !set)
		return usage(err, "msv_queue_import needs a queue and a set");
	if ((r = writable(q, err)))
		return r;
	for (size_t i = 0; i < set->nmsgs; i++)
		if ((r = check_dump(q, &set->msgs[i], i, err)))
			return r;
	for (size_t i = 0; i < set->nkeys; i++)
		if (!key_name_ok(set->keys[i].name))
			return bad_key_name(err, set->keys[i].name);
	if ((r = check_reputations(set->reps, set->nreps, err)))
		return r;
	return q->ops->import(q->be, set, force, err);
}
