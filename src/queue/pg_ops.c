/*
 * The PostgreSQL backend's inspection, operator changes, suppression
 * list, API keys, reputation, route states, export and import (pg.c has
 * the connections, schema, submission, claims and outcomes).  Semantics
 * are sqlite.c's, statement for statement; see docs/internals/queue.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/pg_int.h"

#define MSG_COLS "m.id, m.qid, m.created_ms, m.sender, m.route, m.message_id, m.envid, m.size"
#define RCPT_COLS                                                                           \
	"r.id, r.address, r.state, r.attempts, r.next_attempt_ms, r.updated_ms, r.last_code,"   \
	" r.last_enhanced, r.last_text, r.lease_owner, r.lease_expiry_ms, r.lease_epoch"
#define NMSG_COLS 8

static msv_result no_such_message(msv_error *err, const char *qid)
{
	return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "no such message %s", qid);
}

static int fill_info(const PGresult *res, int i, msv_queue_info *info, int64_t *id)
{
	*id = msv__pg_i64(res, i, 0);
	const char *q = PQgetvalue(res, i, 1);
	if (strlen(q) != MSV_QID_LEN)
		return -1;
	memcpy(info->qid, q, MSV_QID_LEN + 1);
	info->created_ms = msv__pg_i64(res, i, 2);
	info->size = (size_t)msv__pg_i64(res, i, 7);
	return msv__pg_dup(res, i, 3, 0, &info->sender) || msv__pg_dup(res, i, 4, 1, &info->route) ||
	               msv__pg_dup(res, i, 5, 1, &info->message_id) || msv__pg_dup(res, i, 6, 1, &info->envid)
	           ? -1
	           : 0;
}

static int fill_rcpt(const PGresult *res, int i, int c, msv_queue_rcpt_info *ri)
{
	ri->id = msv__pg_i64(res, i, c);
	int state = (int)msv__pg_i64(res, i, c + 2);
	ri->state = state >= 0 && state < MSV_RCPT__COUNT ? (msv_rcpt_state)state : MSV_RCPT_DEAD;
	ri->attempts = (unsigned)msv__pg_i64(res, i, c + 3);
	ri->next_attempt_ms = msv__pg_i64(res, i, c + 4);
	ri->updated_ms = msv__pg_i64(res, i, c + 5);
	ri->last_code = (int)msv__pg_i64(res, i, c + 6);
	ri->lease_expiry_ms = msv__pg_i64(res, i, c + 10);
	ri->lease_epoch = (uint64_t)msv__pg_i64(res, i, c + 11);
	return msv__pg_dup(res, i, c + 1, 0, &ri->address) || msv__pg_dup(res, i, c + 7, 0, &ri->last_enhanced) ||
	               msv__pg_dup(res, i, c + 8, 0, &ri->last_text) ||
	               msv__pg_dup(res, i, c + 9, 1, &ri->lease_owner)
	           ? -1
	           : 0;
}

/* The recipients and attempts of message msg into out, on connection c
 * (inside the caller's transaction). */
static msv_result show_rows(pg *p, pg_conn *c, int64_t msg, msv_queue_info *out,
                            msv_error *err)
{
	char b[24];
	const char *v[1] = {msv__pg_int(b, msg)};
	PGresult *res;
	msv_result r = msv__pg_exec(p, c,
	                        "SELECT " RCPT_COLS " FROM recipients r WHERE r.msg = $1 ORDER BY r.id",
	                        1, v, &res, NULL, "reading recipients", err);
	if (r)
		return r;
	int n = PQntuples(res);
	if (n && !(out->rcpt = msv_calloc((size_t)n, sizeof(*out->rcpt))))
		r = msv__pg_nomem(err);
	for (int i = 0; i < n && !r; i++, out->nrcpt++)
		if (fill_rcpt(res, i, 0, &out->rcpt[i]))
			r = msv__pg_nomem(err);
	PQclear(res);
	if (r)
		return r;
	if ((r = msv__pg_exec(p, c,
	                  "SELECT a.rcpt, a.at_ms, a.latency_ms, a.server, a.reply_code, a.enhanced,"
	                  " a.text FROM attempts a JOIN recipients r ON r.id = a.rcpt"
	                  " WHERE r.msg = $1 ORDER BY a.at_ms, a.id",
	                  1, v, &res, NULL, "reading attempts", err)))
		return r;
	n = PQntuples(res);
	if (n && !(out->attempts = msv_calloc((size_t)n, sizeof(*out->attempts))))
		r = msv__pg_nomem(err);
	for (int i = 0; i < n && !r; i++, out->nattempts++) {
		msv_queue_attempt *a = &out->attempts[i];
		a->rcpt_id = msv__pg_i64(res, i, 0);
		a->at_ms = msv__pg_i64(res, i, 1);
		a->latency_ms = msv__pg_i64(res, i, 2);
		a->reply_code = (int)msv__pg_i64(res, i, 4);
		if (msv__pg_dup(res, i, 3, 1, &a->server) || msv__pg_dup(res, i, 5, 0, &a->enhanced) ||
		    msv__pg_dup(res, i, 6, 0, &a->text))
			r = msv__pg_nomem(err);
	}
	PQclear(res);
	return r;
}

/* show, plus the dump's extra columns when d is not NULL: one snapshot. */
static msv_result show_dump(pg *p, const char *qid, msv_queue_info *out, msv_queue_dump *d,
                            msv_error *err)
{
	PGresult *res = NULL;
	int64_t msg = 0;
	msv_result r = msv__pg_lock(p, &p->r, err);
	if (r)
		return r;
	if ((r = msv__pg_begin(p, &p->r, "starting a read", err)))
		goto out;
	{
		const char *v2[2] = {qid, d ? "true" : "false"};
		r = msv__pg_exec(p, &p->r,
		             "SELECT " MSG_COLS ", m.dsn_notify, m.dsn_ret, m.body_8bit, m.smtputf8,"
		             " m.submitter, CASE WHEN $2::boolean THEN m.body END"
		             " FROM messages m WHERE m.qid = $1",
		             2, v2, &res, NULL, "reading a message", err);
	}
	if (r)
		goto end;
	if (PQntuples(res) != 1) {
		r = no_such_message(err, qid);
		goto end;
	}
	if (fill_info(res, 0, out, &msg)) {
		r = msv__pg_nomem(err);
		goto end;
	}
	if (d) {
		d->body_8bit = (int)msv__pg_i64(res, 0, NMSG_COLS + 2);
		d->smtputf8 = (int)msv__pg_i64(res, 0, NMSG_COLS + 3);
		if (msv__pg_dup(res, 0, NMSG_COLS, 1, &d->dsn_notify) ||
		    msv__pg_dup(res, 0, NMSG_COLS + 1, 1, &d->dsn_ret) ||
		    msv__pg_dup(res, 0, NMSG_COLS + 4, 1, &d->submitter) ||
		    msv__pg_bytea(res, 0, NMSG_COLS + 5, &d->body, &d->len)) {
			r = msv__pg_nomem(err);
			goto end;
		}
	}
	r = show_rows(p, &p->r, msg, out, err);
end:
	PQclear(res);
	r = msv__pg_end(p, &p->r, r, "ending a read", err);
out:
	msv__pg_unlock(&p->r);
	return r;
}

msv_result msv__pg_show(void *be, const char *qid, msv_queue_info *out, msv_error *err)
{
	msv_result r = show_dump(be, qid, out, NULL, err);
	if (r)
		msv_queue_info_free(out);
	return r;
}

msv_result msv__pg_dump(void *be, const char *qid, msv_queue_dump *out, msv_error *err)
{
	return show_dump(be, qid, &out->info, out, err);
}

msv_result msv__pg_list(void *be, unsigned mask, size_t limit, msv_queue_info **out, size_t *n,
                    msv_error *err)
{
	pg *p = be;
	PGresult *res;
	char m[24], l[24];
	const char *v[2] = {msv__pg_int(m, mask),
	                    limit == 0 || limit > (size_t)INT64_MAX ? NULL : msv__pg_int(l, (int64_t)limit)};
	msv_result r = msv__pg_lock(p, &p->r, err);
	if (r)
		return r;
	/* Newest first; the LIMIT applies to messages, then each one's
	 * matching recipients are joined in (LIMIT NULL: all). */
	r = msv__pg_exec(p, &p->r,
	             "WITH sel AS (SELECT m.id FROM messages m WHERE EXISTS"
	             "  (SELECT 1 FROM recipients r WHERE r.msg = m.id"
	             "   AND ((1 << r.state) & $1::int) <> 0)"
	             "  ORDER BY m.created_ms DESC, m.id DESC LIMIT $2::bigint)"
	             " SELECT " MSG_COLS ", " RCPT_COLS " FROM sel"
	             " JOIN messages m ON m.id = sel.id"
	             " JOIN recipients r ON r.msg = m.id AND ((1 << r.state) & $1::int) <> 0"
	             " ORDER BY m.created_ms DESC, m.id DESC, r.id",
	             2, v, &res, NULL, "listing messages", err);
	msv__pg_unlock(&p->r);
	if (r)
		return r;
	int rows = PQntuples(res);
	msv_queue_info *vv = rows ? msv_calloc((size_t)rows, sizeof(*vv)) : NULL;
	size_t nv = 0;
	int64_t cur = 0;
	if (rows && !vv)
		r = msv__pg_nomem(err);
	for (int i = 0; i < rows && !r; i++) {
		if (nv == 0 || msv__pg_i64(res, i, 0) != cur) {
			nv++;
			/* Room for every row of this message at once. */
			int k = i;
			while (k < rows && msv__pg_i64(res, k, 0) == msv__pg_i64(res, i, 0))
				k++;
			if (fill_info(res, i, &vv[nv - 1], &cur) ||
			    !(vv[nv - 1].rcpt = msv_calloc((size_t)(k - i), sizeof(*vv->rcpt)))) {
				r = msv__pg_nomem(err);
				break;
			}
		}
		msv_queue_info *info = &vv[nv - 1];
		if (fill_rcpt(res, i, NMSG_COLS, &info->rcpt[info->nrcpt++]))
			r = msv__pg_nomem(err);
	}
	PQclear(res);
	if (r) {
		msv_queue_infos_free(vv, nv);
		return r;
	}
	*out = vv;
	*n = nv;
	return MSV_OK;
}

/* ---- operator changes ---- */

/* retry and requeue: one UPDATE over one message (qid) or all of them,
 * with $1 = now and $2 = the message's row id. */
static msv_result change_rcpts(pg *p, const char *qid, const char *sql_all,
                               const char *sql_one, int64_t now_ms, size_t *changed,
                               const char *what, msv_error *err)
{
	char now[24], id[24];
	const char *v[2] = {msv__pg_int(now, now_ms), NULL};
	PGresult *res;
	msv_result r = msv__pg_lock(p, &p->w, err);
	if (r)
		return r;
	if ((r = msv__pg_begin(p, &p->w, what, err)))
		goto out;
	if (qid) {
		const char *q[1] = {qid};
		if (!(r = msv__pg_exec(p, &p->w, "SELECT id FROM messages WHERE qid = $1", 1, q, &res,
		                   NULL, "finding a message", err))) {
			if (PQntuples(res) != 1)
				r = no_such_message(err, qid);
			else
				v[1] = msv__pg_int(id, msv__pg_i64(res, 0, 0));
			PQclear(res);
		}
	}
	if (!r)
		r = msv__pg_exec(p, &p->w, qid ? sql_one : sql_all, qid ? 2 : 1, v, NULL, changed, what,
		             err);
	r = msv__pg_end(p, &p->w, r, what, err);
out:
	msv__pg_unlock(&p->w);
	return r;
}

msv_result msv__pg_retry(void *be, const char *qid, int64_t now_ms, size_t *changed,
                     msv_error *err)
{
#define RETRY_SQL                                                                           \
	"UPDATE recipients SET next_attempt_ms = $1 WHERE state IN (0, 1) AND next_attempt_ms > $1"
	return change_rcpts(be, qid, RETRY_SQL, RETRY_SQL " AND msg = $2", now_ms, changed,
	                    "scheduling a retry", err);
#undef RETRY_SQL
}

msv_result msv__pg_requeue(void *be, const char *qid, int64_t now_ms, size_t *changed,
                       msv_error *err)
{
#define REQUEUE_SQL                                                                         \
	"UPDATE recipients SET state = 0, next_attempt_ms = $1, updated_ms = $1,"               \
	" lease_owner = NULL, lease_expiry_ms = 0 WHERE state IN (3, 4)"
	return change_rcpts(be, qid, REQUEUE_SQL, REQUEUE_SQL " AND msg = $2", now_ms, changed,
	                    "requeueing dead letters", err);
#undef REQUEUE_SQL
}

msv_result msv__pg_purge(void *be, unsigned mask, int64_t before_ms, size_t *removed,
                     msv_error *err)
{
	pg *p = be;
	char m[24], b[24];
	const char *v[2] = {msv__pg_int(m, mask), msv__pg_int(b, before_ms)};
	msv_result r = msv__pg_lock(p, &p->w, err);
	if (r)
		return r;
	/* The count is of messages: cascaded rows are not in it. */
	r = msv__pg_exec(p, &p->w,
	             "DELETE FROM messages WHERE id IN (SELECT msg FROM recipients GROUP BY msg"
	             " HAVING bool_and(((1 << state) & $1::int) <> 0) AND max(updated_ms) <= $2)",
	             2, v, NULL, removed, "purging messages", err);
	msv__pg_unlock(&p->w);
	return r;
}

msv_result msv__pg_stats(void *be, int64_t now_ms, msv_queue_stats *out, msv_error *err)
{
	pg *p = be;
	PGresult *res;
	char now[24];
	const char *v[1] = {msv__pg_int(now, now_ms)};
	msv_result r = msv__pg_lock(p, &p->r, err);
	if (r)
		return r;
	if ((r = msv__pg_begin(p, &p->r, "starting a read", err)))
		goto out;
	if (!(r = msv__pg_exec(p, &p->r, "SELECT state, count(*) FROM recipients GROUP BY state", 0,
	                   NULL, &res, NULL, "counting recipients", err))) {
		for (int i = 0; i < PQntuples(res); i++) {
			int64_t state = msv__pg_i64(res, i, 0);
			if (state >= 0 && state < MSV_RCPT__COUNT)
				out->rcpt[state] = (uint64_t)msv__pg_i64(res, i, 1);
		}
		PQclear(res);
	}
	if (!r &&
	    !(r = msv__pg_exec(p, &p->r,
	                   "SELECT (SELECT count(*) FROM messages),"
	                   " (SELECT count(*) FROM recipients WHERE lease_owner IS NOT NULL"
	                   "   AND lease_expiry_ms > $1),"
	                   " (SELECT m.created_ms FROM messages m WHERE EXISTS"
	                   "   (SELECT 1 FROM recipients r WHERE r.msg = m.id AND r.state IN (0, 1))"
	                   "   ORDER BY m.created_ms LIMIT 1)",
	                   1, v, &res, NULL, "reading queue statistics", err))) {
		out->messages = (uint64_t)msv__pg_i64(res, 0, 0);
		out->leased = (uint64_t)msv__pg_i64(res, 0, 1);
		out->oldest_pending_ms = PQgetisnull(res, 0, 2) ? -1 : msv__pg_i64(res, 0, 2);
		PQclear(res);
	}
	r = msv__pg_end(p, &p->r, r, "ending a read", err);
out:
	msv__pg_unlock(&p->r);
	return r;
}

/* ---- bounces and suppression ---- */

msv_result msv__pg_mark_bounced(void *be, const char *qid, const char *address, const char *status,
                            const char *text, int64_t now_ms, size_t *changed, msv_error *err)
{
	pg *p = be;
	char now[24];
	const char *v[5] = {qid, address, msv__pg_int(now, now_ms), status, text};
	msv_result r = msv__pg_lock(p, &p->w, err);
	if (r)
		return r;
	/* The report into the history, then the state; addresses compare
	 * without regard to ASCII case (SQLite's COLLATE NOCASE). */
	if (!(r = msv__pg_begin(p, &p->w, "marking a bounce", err))) {
		r = msv__pg_exec(p, &p->w,
		             "INSERT INTO attempts (rcpt, at_ms, latency_ms, server, reply_code,"
		             " enhanced, text) SELECT r.id, $3, 0, NULL, 0, $4, $5 FROM recipients r"
		             " JOIN messages m ON m.id = r.msg WHERE m.qid = $1"
		             " AND lower(r.address) = lower($2)",
		             5, v, NULL, NULL, "marking a bounce", err);
		if (!r)
			r = msv__pg_exec(p, &p->w,
			             "UPDATE recipients r SET state = 3, last_code = 0, last_enhanced = $4,"
			             " last_text = $5, updated_ms = $3, lease_owner = NULL,"
			             " lease_expiry_ms = 0 FROM messages m WHERE m.id = r.msg"
			             " AND m.qid = $1 AND lower(r.address) = lower($2)",
			             5, v, NULL, changed, "marking a bounce", err);
		r = msv__pg_end(p, &p->w, r, "marking a bounce", err);
	}
	msv__pg_unlock(&p->w);
	return r;
}

msv_result msv__pg_find_message_id(void *be, const char *message_id, const char *address,
                               char qid[MSV_QID_LEN + 1], int *found, msv_error *err)
{
	pg *p = be;
	PGresult *res;
	const char *v[2] = {message_id, address};
	msv_result r = msv__pg_lock(p, &p->r, err);
	if (r)
		return r;
	r = msv__pg_exec(p, &p->r,
	             "SELECT m.qid FROM messages m WHERE m.message_id = $1 AND EXISTS"
	             " (SELECT 1 FROM recipients r WHERE r.msg = m.id"
	             " AND lower(r.address) = lower($2)) ORDER BY m.id DESC LIMIT 1",
	             2, v, &res, NULL, "finding a message by Message-ID", err);
	msv__pg_unlock(&p->r);
	if (r)
		return r;
	if (PQntuples(res) == 1) {
		snprintf(qid, MSV_QID_LEN + 1, "%s", PQgetvalue(res, 0, 0));
		*found = 1;
	}
	PQclear(res);
	return MSV_OK;
}

/* One statement on w in its own transaction. */
static msv_result w1(pg *p, const char *sql, int n, const char *const *v, size_t *changed,
                     const char *what, msv_error *err)
{
	msv_result r = msv__pg_lock(p, &p->w, err);
	if (r)
		return r;
	r = msv__pg_exec(p, &p->w, sql, n, v, NULL, changed, what, err);
	msv__pg_unlock(&p->w);
	return r;
}

/* One query on r. */
static msv_result r1(pg *p, const char *sql, int n, const char *const *v, PGresult **res,
                     const char *what, msv_error *err)
{
	msv_result r = msv__pg_lock(p, &p->r, err);
	if (r)
		return r;
	r = msv__pg_exec(p, &p->r, sql, n, v, res, NULL, what, err);
	msv__pg_unlock(&p->r);
	return r;
}

#define SQL_SUP_PUT                                                                         \
	"INSERT INTO suppression (address, reason, source, created_ms) VALUES ($1, $2, $3, $4)" \
	" ON CONFLICT (address) DO UPDATE SET reason = excluded.reason,"                        \
	" source = excluded.source, created_ms = excluded.created_ms"

msv_result msv__pg_suppress_add(void *be, const char *address, const char *reason,
                            const char *source, int64_t now_ms, msv_error *err)
{
	char now[24];
	const char *v[4] = {address, reason, source, msv__pg_int(now, now_ms)};
	return w1(be, SQL_SUP_PUT, 4, v, NULL, "adding a suppression", err);
}

msv_result msv__pg_suppress_rm(void *be, const char *address, int *removed, msv_error *err)
{
	size_t n = 0;
	const char *v[1] = {address};
	msv_result r = w1(be, "DELETE FROM suppression WHERE address = $1", 1, v, &n,
	                  "removing a suppression", err);
	if (!r)
		*removed = n > 0;
	return r;
}

msv_result msv__pg_suppress_check(void *be, const char *address, int *found, char **reason,
                              msv_error *err)
{
	PGresult *res;
	const char *v[1] = {address};
	msv_result r = r1(be, "SELECT reason FROM suppression WHERE address = $1", 1, v, &res,
	                  "checking the suppression list", err);
	if (r)
		return r;
	if (PQntuples(res) == 1) {
		if (reason && msv__pg_dup(res, 0, 0, 0, reason))
			r = msv__pg_nomem(err);
		else
			*found = 1;
	}
	PQclear(res);
	return r;
}

/* Runs a listing query on r and turns each row into an element of size
 * bytes with fill; on failure nothing is returned. */
typedef int row_fn(const PGresult *res, int i, void *row);
typedef void rows_free_fn(void *rows, size_t n);

static msv_result list_rows(pg *p, const char *sql, size_t size, row_fn *fill,
                            rows_free_fn *free_rows, void **out, size_t *n, const char *what,
                            msv_error *err)
{
	PGresult *res;
	msv_result r = r1(p, sql, 0, NULL, &res, what, err);
	if (r)
		return r;
	size_t nv = (size_t)PQntuples(res), done = 0;
	char *v = nv ? msv_calloc(nv, size) : NULL;
	if (nv && !v)
		r = msv__pg_nomem(err);
	for (; done < nv && !r; done++)
		if (fill(res, (int)done, v + done * size))
			r = msv__pg_nomem(err);
	PQclear(res);
	if (r) {
		free_rows(v, done);
		return r;
	}
	*out = v;
	*n = nv;
	return MSV_OK;
}

static int suppression_row(const PGresult *res, int i, void *row)
{
	msv_suppression *x = row;
	x->created_ms = msv__pg_i64(res, i, 3);
	return msv__pg_dup(res, i, 0, 0, &x->address) || msv__pg_dup(res, i, 1, 0, &x->reason) ||
	       msv__pg_dup(res, i, 2, 0, &x->source);
}

static void suppressions_free(void *v, size_t n)
{
	msv_queue_suppressions_free(v, n);
}

msv_result msv__pg_suppress_list(void *be, msv_suppression **out, size_t *n, msv_error *err)
{
	void *v;
	msv_result r = list_rows(be,
	                         "SELECT address, reason, source, created_ms FROM suppression"
	                         " ORDER BY address COLLATE \"C\"",
	                         sizeof(**out), suppression_row, suppressions_free, &v, n,
	                         "listing the suppression list", err);
	if (!r)
		*out = v;
	return r;
}

/* ---- API keys ---- */

msv_result msv__pg_key_add(void *be, const msv_queue_key *k, msv_error *err)
{
	pg *p = be;
	char rate[40], burst[24], created[24];
	snprintf(rate, sizeof(rate), "%.17g", k->rate);
	const char *v[6] = {k->name, (const char *)k->hash,
	                    k->sender_domains ? k->sender_domains : "", rate,
	                    msv__pg_int(burst, k->burst), msv__pg_int(created, k->created_ms)};
	int lens[6] = {0, 32, 0, 0, 0, 0}, fmts[6] = {0, 1, 0, 0, 0, 0};
	msv_result r = msv__pg_lock(p, &p->w, err);
	if (r)
		return r;
	/* ON CONFLICT DO NOTHING: a taken name is our error, not the server's. */
	PGresult *res = PQexecParams(p->w.c,
	                             "INSERT INTO api_keys (name, hash, sender_domains, rate, burst,"
	                             " created_ms, rotated_ms) VALUES ($1, $2, $3, $4, $5, $6, 0)"
	                             " ON CONFLICT (name) DO NOTHING",
	                             6, NULL, v, lens, fmts, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		r = res ? msv__pg_fail(err, p, p->w.c, res, "adding a key") : msv__pg_nomem(err);
	else if (strcmp(PQcmdTuples(res), "0") == 0)
		r = msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "key %s exists", k->name);
	PQclear(res);
	msv__pg_unlock(&p->w);
	return r;
}

msv_result msv__pg_key_rotate(void *be, const char *name, const unsigned char hash[32],
                          int64_t now_ms, int *found, msv_error *err)
{
	pg *p = be;
	char now[24];
	const char *v[3] = {name, (const char *)hash, msv__pg_int(now, now_ms)};
	int lens[3] = {0, 32, 0}, fmts[3] = {0, 1, 0};
	msv_result r = msv__pg_lock(p, &p->w, err);
	if (r)
		return r;
	PGresult *res = PQexecParams(p->w.c,
	                             "UPDATE api_keys SET hash = $2, rotated_ms = $3 WHERE name = $1",
	                             3, NULL, v, lens, fmts, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		r = res ? msv__pg_fail(err, p, p->w.c, res, "rotating a key") : msv__pg_nomem(err);
	else
		*found = strcmp(PQcmdTuples(res), "0") != 0;
	PQclear(res);
	msv__pg_unlock(&p->w);
	return r;
}

msv_result msv__pg_key_rm(void *be, const char *name, int *removed, msv_error *err)
{
	size_t n = 0;
	const char *v[1] = {name};
	msv_result r = w1(be, "DELETE FROM api_keys WHERE name = $1", 1, v, &n, "removing a key",
	                  err);
	if (!r)
		*removed = n > 0;
	return r;
}

static int key_row(const PGresult *res, int i, void *row)
{
	msv_queue_key *k = row;
	char *h;
	size_t len;
	if (msv__pg_bytea(res, i, 1, &h, &len))
		return -1;
	if (len == 32)
		memcpy(k->hash, h, 32);
	msv_free(h);
	k->rate = strtod(PQgetvalue(res, i, 3), NULL);
	int64_t burst = msv__pg_i64(res, i, 4);
	k->burst = burst > 0 && burst <= UINT32_MAX ? (unsigned)burst : 0;
	k->created_ms = msv__pg_i64(res, i, 5);
	k->rotated_ms = msv__pg_i64(res, i, 6);
	return msv__pg_dup(res, i, 0, 0, &k->name) || msv__pg_dup(res, i, 2, 0, &k->sender_domains);
}

static void keys_free(void *v, size_t n)
{
	msv_queue_keys_free(v, n);
}

msv_result msv__pg_key_list(void *be, msv_queue_key **out, size_t *n, msv_error *err)
{
	void *v;
	msv_result r = list_rows(be,
	                         "SELECT name, hash, sender_domains, rate, burst, created_ms,"
	                         " rotated_ms FROM api_keys ORDER BY name COLLATE \"C\"",
	                         sizeof(**out), key_row, keys_free, &v, n, "listing keys", err);
	if (!r)
		*out = v;
	return r;
}

/* ---- reputation ---- */

#define SQL_REP_PUT                                                                         \
	"INSERT INTO reputation (identity, score, stamp_ms, rejections, open_until_ms,"         \
	" changed_ms, why) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (identity) DO UPDATE" \
	" SET score = excluded.score, stamp_ms = excluded.stamp_ms,"                            \
	" rejections = excluded.rejections, open_until_ms = excluded.open_until_ms,"            \
	" changed_ms = excluded.changed_ms, why = excluded.why"

static msv_result rep_put_one(pg *p, const msv_queue_reputation *x, msv_error *err)
{
	char score[40], st[24], rej[24], open[24], ch[24];
	snprintf(score, sizeof(score), "%.17g", x->score);
	const char *v[7] = {x->identity,
	                    score,
	                    msv__pg_int(st, x->stamp_ms),
	                    msv__pg_int(rej, x->rejections),
	                    msv__pg_int(open, x->open_until_ms),
	                    msv__pg_int(ch, x->changed_ms),
	                    x->why ? x->why : ""};
	return msv__pg_exec(p, &p->w, SQL_REP_PUT, 7, v, NULL, NULL, "storing a reputation", err);
}

/* In the caller's transaction on w (locked). */
msv_result msv__pg_rep_put_rows(pg *p, const msv_queue_reputation *v, size_t n, msv_error *err)
{
	msv_result r = MSV_OK;
	for (size_t i = 0; i < n && !r; i++)
		r = rep_put_one(p, &v[i], err);
	return r;
}

msv_result msv__pg_reputation_put(void *be, const msv_queue_reputation *v, size_t n,
                              msv_error *err)
{
	pg *p = be;
	msv_result r = msv__pg_lock(p, &p->w, err);
	if (r)
		return r;
	if (!(r = msv__pg_begin(p, &p->w, "storing reputations", err)))
		r = msv__pg_end(p, &p->w, msv__pg_rep_put_rows(p, v, n, err), "storing reputations", err);
	msv__pg_unlock(&p->w);
	return r;
}

static int rep_row(const PGresult *res, int i, void *row)
{
	msv_queue_reputation *x = row;
	x->score = strtod(PQgetvalue(res, i, 1), NULL);
	x->stamp_ms = msv__pg_i64(res, i, 2);
	int64_t rej = msv__pg_i64(res, i, 3);
	x->rejections = rej > 0 && rej <= UINT32_MAX ? (unsigned)rej : 0;
	x->open_until_ms = msv__pg_i64(res, i, 4);
	x->changed_ms = msv__pg_i64(res, i, 5);
	return msv__pg_dup(res, i, 0, 0, &x->identity) || msv__pg_dup(res, i, 6, 1, &x->why);
}

static void reps_free(void *v, size_t n)
{
	msv_queue_reputations_free(v, n);
}

msv_result msv__pg_reputation_list(void *be, msv_queue_reputation **out, size_t *n,
                               msv_error *err)
{
	void *v;
	msv_result r = list_rows(be,
	                         "SELECT identity, score, stamp_ms, rejections, open_until_ms,"
	                         " changed_ms, why FROM reputation ORDER BY identity COLLATE \"C\"",
	                         sizeof(**out), rep_row, reps_free, &v, n, "listing reputations",
	                         err);
	if (!r)
		*out = v;
	return r;
}

msv_result msv__pg_reputation_override(void *be, const char *identity, double score,
                                   int64_t now_ms, msv_error *err)
{
	pg *p = be;
	char sc[40], now[24];
	snprintf(sc, sizeof(sc), "%.17g", score);
	const char *v[3] = {identity, sc, msv__pg_int(now, now_ms)};
	msv_result r = msv__pg_lock(p, &p->w, err);
	if (r)
		return r;
	if (!(r = msv__pg_begin(p, &p->w, "overriding a reputation", err))) {
		r = msv__pg_exec(p, &p->w,
		             "INSERT INTO reputation_overrides (identity, score, at_ms)"
		             " VALUES ($1, $2, $3) ON CONFLICT (identity) DO UPDATE"
		             " SET score = excluded.score, at_ms = excluded.at_ms",
		             3, v, NULL, NULL, "overriding a reputation", err);
		/* The row too, so that `ls` shows it before the daemon takes it. */
		msv_queue_reputation x = {.identity = (char *)identity, .score = score,
		                          .stamp_ms = now_ms, .changed_ms = now_ms,
		                          .why = (char *)"operator"};
		if (!r)
			r = rep_put_one(p, &x, err);
		r = msv__pg_end(p, &p->w, r, "overriding a reputation", err);
	}
	msv__pg_unlock(&p->w);
	return r;
}

msv_result msv__pg_reputation_take_overrides(void *be, msv_queue_reputation **out, size_t *n,
                                         msv_error *err)
{
	pg *p = be;
	PGresult *res;
	/* DELETE ... RETURNING reads and empties in one statement: an override
	 * written meanwhile waits for the next take, never vanishes. */
	msv_result r = msv__pg_lock(p, &p->w, err);
	if (r)
		return r;
	r = msv__pg_exec(p, &p->w,
	             "WITH d AS (DELETE FROM reputation_overrides RETURNING identity, score, at_ms)"
	             " SELECT identity, score, at_ms, 0, 0, 0, NULL FROM d"
	             " ORDER BY at_ms, identity COLLATE \"C\"",
	             0, NULL, &res, NULL, "taking reputation overrides", err);
	msv__pg_unlock(&p->w);
	if (r)
		return r;
	size_t nv = (size_t)PQntuples(res), done = 0;
	msv_queue_reputation *v = nv ? msv_calloc(nv, sizeof(*v)) : NULL;
	if (nv && !v)
		r = msv__pg_nomem(err);
	for (; done < nv && !r; done++)
		if (rep_row(res, (int)done, &v[done]))
			r = msv__pg_nomem(err);
	PQclear(res);
	if (r) {
		msv_queue_reputations_free(v, done);
		return r;
	}
	*out = v;
	*n = nv;
	return MSV_OK;
}

/* ---- outbound shaping ---- */

msv_result msv__pg_postpone(void *be, const int64_t *ids, size_t n, int64_t until_ms,
                        size_t *changed, msv_error *err)
{
	pg *p = be;
	char id[24], until[24];
	size_t total = 0;
	msv_result r = msv__pg_lock(p, &p->w, err);
	if (r)
		return r;
	if (!(r = msv__pg_begin(p, &p->w, "postponing recipients", err))) {
		for (size_t i = 0; i < n && !r; i++) {
			const char *v[2] = {msv__pg_int(id, ids[i]), msv__pg_int(until, until_ms)};
			size_t c = 0;
			r = msv__pg_exec(p, &p->w,
			             "UPDATE recipients SET next_attempt_ms = $2, lease_owner = NULL,"
			             " lease_expiry_ms = 0 WHERE id = $1 AND state IN (0, 1)",
			             2, v, NULL, &c, "postponing recipients", err);
			total += c;
		}
		r = msv__pg_end(p, &p->w, r, "postponing recipients", err);
	}
	msv__pg_unlock(&p->w);
	if (!r)
		*changed = total;
	return r;
}

static msv_result route_put_one(pg *p, const msv_queue_route_state *x, msv_error *err)
{
	char open[24], trips[24], ch[24];
	const char *v[5] = {x->route, x->circuit, msv__pg_int(open, x->open_until_ms),
	                    msv__pg_int(trips, x->trips > INT64_MAX ? INT64_MAX : (int64_t)x->trips),
	                    msv__pg_int(ch, x->changed_ms)};
	return msv__pg_exec(p, &p->w,
	                "INSERT INTO route_state (route, circuit, open_until_ms, trips, changed_ms)"
	                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (route) DO UPDATE SET"
	                " circuit = excluded.circuit, open_until_ms = excluded.open_until_ms,"
	                " trips = excluded.trips, changed_ms = excluded.changed_ms",
	                5, v, NULL, NULL, "storing a route state", err);
}

msv_result msv__pg_route_state_put(void *be, const msv_queue_route_state *v, size_t n,
                               msv_error *err)
{
	pg *p = be;
	msv_result r = msv__pg_lock(p, &p->w, err);
	if (r)
		return r;
	if (!(r = msv__pg_begin(p, &p->w, "storing route states", err))) {
		for (size_t i = 0; i < n && !r; i++)
			r = route_put_one(p, &v[i], err);
		r = msv__pg_end(p, &p->w, r, "storing route states", err);
	}
	msv__pg_unlock(&p->w);
	return r;
}

static int route_state_row(const PGresult *res, int i, void *row)
{
	msv_queue_route_state *x = row;
	x->open_until_ms = msv__pg_i64(res, i, 2);
	int64_t trips = msv__pg_i64(res, i, 3);
	x->trips = trips > 0 ? (uint64_t)trips : 0;
	x->changed_ms = msv__pg_i64(res, i, 4);
	return msv__pg_dup(res, i, 0, 0, &x->route) || msv__pg_dup(res, i, 1, 0, &x->circuit);
}

static void route_states_free(void *v, size_t n)
{
	msv_queue_route_states_free(v, n);
}

msv_result msv__pg_route_state_list(void *be, msv_queue_route_state **out, size_t *n,
                                msv_error *err)
{
	void *v;
	msv_result r = list_rows(be,
	                         "SELECT route, circuit, open_until_ms, trips, changed_ms"
	                         " FROM route_state ORDER BY route COLLATE \"C\"",
	                         sizeof(**out), route_state_row, route_states_free, &v, n,
	                         "listing route states", err);
	if (!r)
		*out = v;
	return r;
}

/* ---- export and import ---- */

static int qid_row(const PGresult *res, int i, void *row)
{
	return msv__pg_dup(res, i, 0, 0, (char **)row);
}

static void qids_free(void *v, size_t n)
{
	msv_queue_strings_free(v, n);
}

msv_result msv__pg_qids(void *be, char ***qids, size_t *n, msv_error *err)
{
	void *v;
	msv_result r = list_rows(be, "SELECT qid FROM messages ORDER BY created_ms, id",
	                         sizeof(char *), qid_row, qids_free, &v, n, "listing messages", err);
	if (!r)
		*qids = v;
	return r;
}

/* One message with its recipients and history, ids renumbered. */
static msv_result import_msg(pg *p, const msv_queue_dump *d, msv_error *err)
{
	const msv_queue_info *in = &d->info;
	char c1[24], c2[24], c3[24], b[24];
	char b8[2] = {d->body_8bit ? '1' : '0', 0}, u8[2] = {d->smtputf8 ? '1' : '0', 0};
	const char *v[13] = {in->qid, msv__pg_int(c1, in->created_ms), in->sender, in->route,
	                     in->message_id, d->dsn_notify, d->dsn_ret, in->envid, b8, u8,
	                     msv__pg_int(c2, (int64_t)d->len), d->len ? d->body : "", d->submitter};
	int lens[13] = {0}, fmts[13] = {0};
	lens[11] = (int)d->len;
	fmts[11] = 1;
	PGresult *res = PQexecParams(p->w.c,
	                             "INSERT INTO messages (qid, created_ms, sender, route, message_id,"
	                             " dsn_notify, dsn_ret, envid, body_8bit, smtputf8, size, body,"
	                             " submitter) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
	                             " $11, $12, $13) RETURNING id",
	                             13, NULL, v, lens, fmts, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		msv_result r = res ? msv__pg_fail(err, p, p->w.c, res, "importing a message") : msv__pg_nomem(err);
		PQclear(res);
		return r;
	}
	const char *msg = msv__pg_int(c3, msv__pg_i64(res, 0, 0));
	PQclear(res);
	int64_t *ids = msv_calloc(in->nrcpt, sizeof(*ids));
	if (!ids)
		return msv__pg_nomem(err);
	msv_result r = MSV_OK;
	for (size_t j = 0; j < in->nrcpt && !r; j++) {
		const msv_queue_rcpt_info *ri = &in->rcpt[j];
		char s[8], a[24], n1[24], n2[24], lc[16], le[24], ep[24];
		snprintf(s, sizeof(s), "%d", (int)ri->state);
		snprintf(lc, sizeof(lc), "%d", ri->last_code);
		const char *rv[12] = {msg, ri->address, s, msv__pg_int(a, ri->attempts),
		                      msv__pg_int(n1, ri->next_attempt_ms), msv__pg_int(n2, ri->updated_ms), lc,
		                      ri->last_enhanced ? ri->last_enhanced : "",
		                      ri->last_text ? ri->last_text : "", ri->lease_owner,
		                      msv__pg_int(le, ri->lease_expiry_ms),
		                      msv__pg_int(ep, (int64_t)ri->lease_epoch)};
		if (!(r = msv__pg_exec(p, &p->w,
		                   "INSERT INTO recipients (msg, address, state, attempts,"
		                   " next_attempt_ms, updated_ms, last_code, last_enhanced, last_text,"
		                   " lease_owner, lease_expiry_ms, lease_epoch) VALUES ($1, $2, $3, $4,"
		                   " $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
		                   12, rv, &res, NULL, "importing a recipient", err))) {
			ids[j] = msv__pg_i64(res, 0, 0);
			PQclear(res);
		}
	}
	for (size_t k = 0; k < in->nattempts && !r; k++) {
		const msv_queue_attempt *at = &in->attempts[k];
		size_t j = 0;
		while (j < in->nrcpt && in->rcpt[j].id != at->rcpt_id)
			j++;
		if (j == in->nrcpt) {
			r = msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
			                  "queue: message %s has an attempt for no recipient of it", in->qid);
			break;
		}
		char t1[24], t2[24], rc[16];
		snprintf(rc, sizeof(rc), "%d", at->reply_code);
		const char *av[7] = {msv__pg_int(b, ids[j]), msv__pg_int(t1, at->at_ms),
		                     msv__pg_int(t2, at->latency_ms), at->server, rc,
		                     at->enhanced ? at->enhanced : "", at->text ? at->text : ""};
		r = msv__pg_exec(p, &p->w,
		             "INSERT INTO attempts (rcpt, at_ms, latency_ms, server, reply_code,"
		             " enhanced, text) VALUES ($1, $2, $3, $4, $5, $6, $7)",
		             7, av, NULL, NULL, "importing an attempt", err);
	}
	msv_free(ids);
	return r;
}

static msv_result import_rest(pg *p, const msv_queue_import_set *set, msv_error *err)
{
	msv_result r = MSV_OK;
	for (size_t i = 0; i < set->nsup && !r; i++) {
		char c[24];
		const msv_suppression *x = &set->sup[i];
		const char *v[4] = {x->address, x->reason ? x->reason : "",
		                    x->source ? x->source : "", msv__pg_int(c, x->created_ms)};
		r = msv__pg_exec(p, &p->w, SQL_SUP_PUT, 4, v, NULL, NULL, "importing a suppression", err);
	}
	for (size_t i = 0; i < set->nkeys && !r; i++) {
		const msv_queue_key *k = &set->keys[i];
		char rate[40], burst[24], cr[24], rot[24];
		snprintf(rate, sizeof(rate), "%.17g", k->rate);
		const char *v[7] = {k->name, (const char *)k->hash,
		                    k->sender_domains ? k->sender_domains : "", rate,
		                    msv__pg_int(burst, k->burst), msv__pg_int(cr, k->created_ms),
		                    msv__pg_int(rot, k->rotated_ms)};
		int lens[7] = {0, 32, 0, 0, 0, 0, 0}, fmts[7] = {0, 1, 0, 0, 0, 0, 0};
		PGresult *res = PQexecParams(p->w.c,
		                             "INSERT INTO api_keys (name, hash, sender_domains, rate,"
		                             " burst, created_ms, rotated_ms) VALUES ($1, $2, $3, $4,"
		                             " $5, $6, $7) ON CONFLICT (name) DO UPDATE SET"
		                             " hash = excluded.hash,"
		                             " sender_domains = excluded.sender_domains,"
		                             " rate = excluded.rate, burst = excluded.burst,"
		                             " created_ms = excluded.created_ms,"
		                             " rotated_ms = excluded.rotated_ms",
		                             7, NULL, v, lens, fmts, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			r = res ? msv__pg_fail(err, p, p->w.c, res, "importing a key") : msv__pg_nomem(err);
		PQclear(res);
	}
	if (!r)
		r = msv__pg_rep_put_rows(p, set->reps, set->nreps, err);
	for (size_t i = 0; i < set->nroutes && !r; i++)
		r = route_put_one(p, &set->routes[i], err);
	return r;
}

msv_result msv__pg_import(void *be, const msv_queue_import_set *set, int force, msv_error *err)
{
	pg *p = be;
	PGresult *res;
	msv_result r = msv__pg_lock(p, &p->w, err);
	if (r)
		return r;
	if ((r = msv__pg_begin(p, &p->w, "importing", err)))
		goto out;
	if (!force &&
	    !(r = msv__pg_exec(p, &p->w,
	                   "SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM"
	                   " suppression) + (SELECT count(*) FROM api_keys)",
	                   0, NULL, &res, NULL, "checking the target is empty", err))) {
		if (msv__pg_i64(res, 0, 0) > 0)
			r = msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
			                  "queue %s is not empty (messages, suppressions or keys): "
			                  "refusing to import into it without --force",
			                  p->name);
		PQclear(res);
	}
	for (size_t i = 0; i < set->nmsgs && !r; i++) {
		const char *v[1] = {set->msgs[i].info.qid};
		if (force && (r = msv__pg_exec(p, &p->w, "DELETE FROM messages WHERE qid = $1", 1, v, NULL,
		                           NULL, "replacing a message", err)))
			break;
		r = import_msg(p, &set->msgs[i], err);
	}
	if (!r)
		r = import_rest(p, set, err);
	if (!r && set->nmsgs)
		r = msv__pg_exec(p, &p->w, "NOTIFY " PG_CHANNEL, 0, NULL, NULL, NULL, "notifying", err);
	r = msv__pg_end(p, &p->w, r, "committing the import", err);
out:
	msv__pg_unlock(&p->w);
	return r;
}
