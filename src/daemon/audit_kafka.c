/* The Kafka sink of the audit export (docs/audit.md): an
 * idempotent librdkafka producer (acks=all, no message timeout), one
 * message per event, keyed by the qid so that a message's events keep
 * their order in one partition; events without a qid go unkeyed, to the
 * partitioner.  Delivery reports tell the engine which events were
 * taken.  Everything runs on the exporter's thread: delivery reports and
 * errors are served by rd_kafka_poll() there. */
#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <syslog.h>

#include "audit_export.h"

#define DEFAULT_TOPIC "missive-audit"

typedef struct kafka_sink {
	const app_config *cfg;
	exporter *e;
	rd_kafka_t *rk;
	atomic_int fatal;              /* the producer must be made again */
	rd_kafka_resp_err_t dr_err;    /* a delivery failed since the last poll */
	rd_kafka_resp_err_t last_err;  /* the last error_cb code logged */
} kafka_sink;

/* librdkafka's own log (from its threads): warnings and worse, but for
 * connection failures, which error_cb reports once. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	(void)rk;
	if (level <= LOG_WARNING && strcmp(fac, "FAIL"))
		dlog("audit export to kafka: librdkafka %s: %s", fac, buf);
}

static void error_cb(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
	kafka_sink *ks = opaque;
	(void)rk;
	if (code == RD_KAFKA_RESP_ERR__FATAL)
		atomic_store(&ks->fatal, 1);
	/* A broker down repeats its error every reconnect: once per change. */
	if ((rd_kafka_resp_err_t)code != ks->last_err)
		dlog("audit export to kafka: %s", reason);
	ks->last_err = (rd_kafka_resp_err_t)code;
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	kafka_sink *ks = opaque;
	(void)rk;
	if (m->err)
		ks->dr_err = m->err;
	else
		ks->last_err = RD_KAFKA_RESP_ERR_NO_ERROR;
	audit_export_done(ks->e, (uint64_t)(uintptr_t)m->_private, !m->err);
}

/* One property: 0, or -1 with err naming it (never its value: it may be
 * sasl.password). */
static int set(rd_kafka_conf_t *conf, const app_config *c, const char *name, const char *value,
               msv_error *err)
{
	char errstr[512];
	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) == RD_KAFKA_CONF_OK)
		return 0;
	msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "%s: [audit] kafka.%s: %s", c->path,
	              name, errstr);
	return -1;
}

/* Our defaults first, then the kafka.* properties, which may override
 * them (docs/audit.md says which must stay). */
static msv_result make_conf(rd_kafka_conf_t **out, const app_config *c, msv_error *err)
{
	static const char *const defaults[][2] = {
		{"enable.idempotence", "true"},
		{"acks", "all"},
		/* Never give up on an event: a broker down for a day is waited
		 * for, the trail keeps the rest meanwhile. */
		{"message.timeout.ms", "0"},
		{"client.id", "missived"},
	};
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	int bad = set(conf, c, "bootstrap.servers", c->audit_kafka_brokers, err);
	for (size_t i = 0; !bad && i < sizeof(defaults) / sizeof(defaults[0]); i++)
		bad = set(conf, c, defaults[i][0], defaults[i][1], err);
	for (size_t i = 0; !bad && i < c->naudit_kafka_props; i++) {
		const char *kv = c->audit_kafka_props[i], *eq = strchr(kv, '=');
		char name[256];
		snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - kv) : 0, kv);
		bad = set(conf, c, name, eq ? eq + 1 : "", err);
	}
	if (bad) {
		rd_kafka_conf_destroy(conf);
		return err->code;
	}
	rd_kafka_conf_set_log_cb(conf, log_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	*out = conf;
	return MSV_OK;
}

static msv_result make_producer(kafka_sink *ks, msv_error *err)
{
	rd_kafka_conf_t *conf = NULL;
	char errstr[512];
	if (make_conf(&conf, ks->cfg, err))
		return err->code;
	rd_kafka_conf_set_opaque(conf, ks);
	ks->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!ks->rk) {
		rd_kafka_conf_destroy(conf);
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "%s: [audit] kafka settings: %s", ks->cfg->path, errstr);
	}
	atomic_store(&ks->fatal, 0);
	return MSV_OK;
}

static void drop_producer(kafka_sink *ks)
{
	if (!ks->rk)
		return;
	/* Unsent events stay in the trail: nothing to wait for. */
	rd_kafka_purge(ks->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
	rd_kafka_poll(ks->rk, 0);
	rd_kafka_destroy(ks->rk);
	ks->rk = NULL;
}

msv_result audit_kafka_check(const app_config *c, msv_error *err)
{
	kafka_sink ks = {.cfg = c};
	if (make_producer(&ks, err))
		return err->code;
	rd_kafka_destroy(ks.rk);
	return MSV_OK;
}

static msv_result kafka_create(void **out, const app_config *c, exporter *e, msv_error *err)
{
	kafka_sink *ks = msv_calloc(1, sizeof(*ks));
	if (!ks)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "audit export: out of memory");
	ks->cfg = c;
	ks->e = e;
	if (make_producer(ks, err)) {
		msv_free(ks);
		return err->code;
	}
	*out = ks;
	return MSV_OK;
}

/* rd_kafka_produceva, not producev: its macros are GNU statement
 * expressions, which -Wpedantic refuses. */
static rd_kafka_resp_err_t produce(kafka_sink *ks, const char *topic, uint64_t id,
                                   const char *line, size_t len, const char *key)
{
	rd_kafka_vu_t vu[5] = {
		{.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = topic},
		{.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY},
		{.vtype = RD_KAFKA_VTYPE_VALUE, .u.mem = {(void *)line, len}},
		{.vtype = RD_KAFKA_VTYPE_KEY, .u.mem = {(void *)key, key ? strlen(key) : 0}},
		{.vtype = RD_KAFKA_VTYPE_OPAQUE, .u.ptr = (void *)(uintptr_t)id},
	};
	rd_kafka_error_t *e = rd_kafka_produceva(ks->rk, vu, 5);
	rd_kafka_resp_err_t r = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
	if (e)
		rd_kafka_error_destroy(e);
	return r;
}

static int kafka_send(void *s, uint64_t id, const char *line, size_t len,
                      const audit_event_meta *m, msv_error *err)
{
	kafka_sink *ks = s;
	const char *topic = ks->cfg->audit_kafka_topic ? ks->cfg->audit_kafka_topic : DEFAULT_TOPIC;
	rd_kafka_resp_err_t r = RD_KAFKA_RESP_ERR__QUEUE_FULL;
	if (!ks->rk && make_producer(ks, err))
		return -1;
	/* The engine keeps fewer events in flight than librdkafka's queue
	 * holds; a full queue is waited out briefly all the same. */
	for (int tries = 0; r == RD_KAFKA_RESP_ERR__QUEUE_FULL && tries < 50; tries++) {
		r = produce(ks, topic, id, line, len, m->qid);
		if (r == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(ks->rk, 100);
	}
	if (!r)
		return 0;
	msv_error_set(err, MSV_E_IO, MSV_CLASS_TEMPORARY, "cannot queue event %llu: %s",
	              (unsigned long long)m->seq, rd_kafka_err2str(r));
	return -1;
}

static int kafka_poll(void *s, int ms, msv_error *err)
{
	kafka_sink *ks = s;
	char why[512];
	if (!ks->rk)
		return 0;
	rd_kafka_poll(ks->rk, ms);
	if (atomic_load(&ks->fatal)) {
		rd_kafka_resp_err_t code = rd_kafka_fatal_error(ks->rk, why, sizeof(why));
		msv_error_set(err, MSV_E_IO, MSV_CLASS_TEMPORARY, "fatal producer error: %s (%s)",
		              why, rd_kafka_err2name(code));
		return -1;
	}
	if (ks->dr_err) {
		msv_error_set(err, MSV_E_IO, MSV_CLASS_TEMPORARY, "delivery failed: %s",
		              rd_kafka_err2str(ks->dr_err));
		ks->dr_err = RD_KAFKA_RESP_ERR_NO_ERROR;
		return -1;
	}
	return 0;
}

/* After a failed delivery: the rest in flight is purged (its reports
 * come back now, as failures, or as successes already on their way); a
 * producer with a fatal error is made again. */
static void kafka_reset(void *s)
{
	kafka_sink *ks = s;
	msv_error err;
	if (ks->rk && !atomic_load(&ks->fatal)) {
		rd_kafka_purge(ks->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		int64_t until = msv_now_ms() + 2000;
		while (rd_kafka_outq_len(ks->rk) > 0 && msv_now_ms() < until)
			rd_kafka_poll(ks->rk, 50);
		rd_kafka_poll(ks->rk, 0);
		ks->dr_err = RD_KAFKA_RESP_ERR_NO_ERROR;
		return;
	}
	drop_producer(ks);
	if (make_producer(ks, &err))
		dlog("audit export to kafka: %s", err.message);
}

static void kafka_flush(void *s, int ms)
{
	kafka_sink *ks = s;
	if (ks->rk)
		rd_kafka_flush(ks->rk, ms);
}

static void kafka_destroy(void *s)
{
	kafka_sink *ks = s;
	drop_producer(ks);
	msv_free(ks);
}

const audit_sink_ops audit_kafka_ops = {
	"kafka", kafka_create, kafka_send, kafka_poll, kafka_reset, kafka_flush, kafka_destroy,
};
