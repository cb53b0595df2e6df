/* Counters and the /metrics page in Prometheus text format 0.0.4. */
#include <stdio.h>
#include <string.h>

#include "audit_export.h"
#include "audit_trail.h"
#include "daemon.h"
#include "shaping.h"
#include "gateway.h"

static const double bounds[METRIC_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                              0.5,   1,    2.5,   5,    10,  30};

void metrics_init(metrics *m)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->mu, NULL);
}

void metrics_attempt(metrics *m, int64_t latency_ms)
{
	double s = (double)latency_ms / 1000.0;
	size_t b = 0;
	while (b < METRIC_BUCKETS && s > bounds[b])
		b++;
	pthread_mutex_lock(&m->mu);
	m->attempts++;
	m->bucket[b]++;
	m->latency_sum += s;
	pthread_mutex_unlock(&m->mu);
}

void metrics_outcomes(metrics *m, unsigned delivered, unsigned deferred, unsigned bounced,
                      unsigned dead)
{
	pthread_mutex_lock(&m->mu);
	m->delivered += delivered;
	m->deferred += deferred;
	m->bounced += bounced;
	m->dead += dead;
	pthread_mutex_unlock(&m->mu);
}

void metrics_submitted(metrics *m, unsigned n)
{
	pthread_mutex_lock(&m->mu);
	m->submitted += n;
	pthread_mutex_unlock(&m->mu);
}

void metrics_http(metrics *m, unsigned status)
{
	pthread_mutex_lock(&m->mu);
	m->http[status / 100 < 6 ? status / 100 : 5]++;
	pthread_mutex_unlock(&m->mu);
}

static int counter(msv_buf *o, const char *name, const char *help, uint64_t v)
{
	return msv_buf_addf(o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
	                    (unsigned long long)v);
}

int metrics_render(daemon_ctx *d, msv_buf *o)
{
	msv_queue_stats qs;
	msv_error err;
	int rc = 0;
	/* Which node answers, so that one scrape config serves them all. */
	if (d->node)
		rc |= msv_buf_addf(o, "# HELP missive_node_info This missived's node name ([daemon] "
		                      "node).\n# TYPE missive_node_info gauge\n"
		                      "missive_node_info{node=\"%s\"} 1\n", d->node);
	if (msv_queue_stats_get(d->q, msv_wall_ms(), &qs, &err) == MSV_OK) {
		rc |= msv_buf_addstr(o, "# HELP missive_queue_recipients Recipients in the queue by state.\n"
		                        "# TYPE missive_queue_recipients gauge\n");
		for (int s = 0; s < MSV_RCPT__COUNT; s++)
			rc |= msv_buf_addf(o, "missive_queue_recipients{state=\"%s\"} %llu\n",
			                   msv_queue_rcpt_state_name((msv_rcpt_state)s),
			                   (unsigned long long)qs.rcpt[s]);
		rc |= msv_buf_addf(o, "# HELP missive_queue_messages Messages in the queue.\n"
		                      "# TYPE missive_queue_messages gauge\nmissive_queue_messages %llu\n"
		                      "# HELP missive_queue_leased Recipients claimed by a worker now.\n"
		                      "# TYPE missive_queue_leased gauge\nmissive_queue_leased %llu\n"
		                      "# HELP missive_queue_oldest_pending_age_seconds Age of the oldest "
		                      "undelivered message.\n"
		                      "# TYPE missive_queue_oldest_pending_age_seconds gauge\n"
		                      "missive_queue_oldest_pending_age_seconds %.3f\n",
		                   (unsigned long long)qs.messages, (unsigned long long)qs.leased,
		                   qs.oldest_pending_ms < 0 ? 0.0
		                       : (double)(msv_wall_ms() - qs.oldest_pending_ms) / 1000.0);
	}
	pthread_mutex_lock(&d->m.mu);
	metrics m = d->m;
	pthread_mutex_unlock(&d->m.mu);
	rc |= counter(o, "missive_submitted_total", "Messages accepted into the queue by this process.",
	              m.submitted);
	rc |= counter(o, "missive_delivered_total", "Recipients the server accepted.", m.delivered);
	rc |= counter(o, "missive_deferred_total", "Recipient attempts that failed temporarily.",
	              m.deferred);
	rc |= counter(o, "missive_bounced_total", "Recipients refused permanently (dead letters).",
	              m.bounced);
	rc |= counter(o, "missive_dead_total", "Recipients given up at the maximum age.", m.dead);
	rc |= msv_buf_addstr(o, "# HELP missive_attempt_duration_seconds Time from starting a "
	                        "message's attempt to the server's final reply.\n"
	                        "# TYPE missive_attempt_duration_seconds histogram\n");
	uint64_t cum = 0;
	for (size_t b = 0; b <= METRIC_BUCKETS; b++) {
		cum += m.bucket[b];
		if (b < METRIC_BUCKETS)
			rc |= msv_buf_addf(o, "missive_attempt_duration_seconds_bucket{le=\"%g\"} %llu\n",
			                   bounds[b], (unsigned long long)cum);
		else
			rc |= msv_buf_addf(o, "missive_attempt_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
			                   (unsigned long long)cum);
	}
	rc |= msv_buf_addf(o, "missive_attempt_duration_seconds_sum %.6f\n"
	                      "missive_attempt_duration_seconds_count %llu\n",
	                   m.latency_sum, (unsigned long long)m.attempts);
	unsigned open = 0, idle = 0;
	uint64_t opened = 0;
	for (size_t i = 0; i < d->cfg->nroutes; i++) {
		msv_pool_stats ps;
		msv_pool_stats_get(d->pools[i], &ps);
		open += ps.open;
		idle += ps.idle;
		opened += ps.connections_opened;
	}
	rc |= msv_buf_addf(o, "# HELP missive_smtp_connections_open SMTP connections open now.\n"
	                      "# TYPE missive_smtp_connections_open gauge\n"
	                      "missive_smtp_connections_open %u\n"
	                      "# HELP missive_smtp_connections_idle Open SMTP connections not in use.\n"
	                      "# TYPE missive_smtp_connections_idle gauge\n"
	                      "missive_smtp_connections_idle %u\n",
	                   open, idle);
	rc |= counter(o, "missive_smtp_connections_opened_total", "SMTP connections opened.", opened);
	rc |= msv_buf_addstr(o, "# HELP missive_http_responses_total HTTP API responses by class.\n"
	                        "# TYPE missive_http_responses_total counter\n");
	for (int c = 1; c <= 5; c++)
		rc |= msv_buf_addf(o, "missive_http_responses_total{code=\"%dxx\"} %llu\n", c,
		                   (unsigned long long)m.http[c]);
	rc |= shaping_metrics(d, o);
	if (d->gw)
		rc |= gateway_metrics(d->gw, o);
	if (d->ax)
		rc |= audit_export_metrics(d->ax, o);
	if (d->audit)
		rc |= counter(o, "missive_audit_write_failures_total",
		              "Audit events that could not be written to the trail.",
		              daemon_audit_failures(d));
	return rc;
}

void health_write_result(daemon_ctx *d, const msv_error *err)
{
	pthread_mutex_lock(&d->health_mu);
	d->health_bad = err != NULL;
	if (err)
		snprintf(d->health_why, sizeof(d->health_why), "%s", err->message);
	pthread_mutex_unlock(&d->health_mu);
}

int health_check(daemon_ctx *d, char *why, size_t whysz)
{
	int64_t now = msv_wall_ms();
	msv_error err;
	pthread_mutex_lock(&d->health_mu);
	/* A probe costs an fsync: once a second at most, however often a load
	 * balancer asks.  The lock also keeps probes from piling up. */
	if (now - d->health_probe_ms >= 1000 || now < d->health_probe_ms) {
		d->health_probe_ms = now;
		int was = d->health_bad;
		d->health_bad = msv_queue_probe_write(d->q, &err) != MSV_OK;
		if (d->health_bad)
			snprintf(d->health_why, sizeof(d->health_why), "%s", err.message);
		if (d->health_bad != was)
			dlog(d->health_bad ? "health: the queue cannot be written: %s"
			                   : "health: the queue takes writes again%s",
			     d->health_bad ? err.message : "");
	}
	int bad = d->health_bad;
	if (bad)
		snprintf(why, whysz, "the queue cannot be written: %s", d->health_why);
	pthread_mutex_unlock(&d->health_mu);
	return bad ? -1 : 0;
}
