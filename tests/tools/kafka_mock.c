/* kafka_mock: librdkafka's mock cluster on 127.0.0.1 for the integration
 * tests (tests/integration/test_audit_export.py), as librdkafka's own test
 * suite uses it: Debian packages no Kafka broker.
 *
 *   kafka_mock [BROKERS [TOPIC PARTITIONS]]
 *
 * Prints the bootstrap list ("127.0.0.1:P1,127.0.0.1:P2,...") on one line
 * of stdout, then reads commands on stdin, one a line:
 *   down ID   broker ID (1..BROKERS) refuses connections and drops its own
 *   up ID     and takes them again
 *   fail N CODE  the next N produce requests fail with Kafka error CODE
 *             (e.g. 29, TOPIC_AUTHORIZATION_FAILED: not retried by the client)
 *   quit      (or end of input) stops the cluster
 * Each command is answered "ok" or "error: ..." on stdout. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rd_kafka_t *make_handle(void)
{
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	/* The handle only anchors the cluster; keep its log quiet. */
	if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		fprintf(stderr, "kafka_mock: %s\n", errstr);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (!rk) {
		fprintf(stderr, "kafka_mock: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
	}
	return rk;
}

/* fail N CODE: ProduceRequest is Kafka API key 0. */
static void fail_produce(rd_kafka_mock_cluster_t *mc, const char *line)
{
	int n = 0, code = 0;
	rd_kafka_resp_err_t errs[64];
	if (sscanf(line, "fail %d %d", &n, &code) != 2 || n < 1 || n > 64) {
		printf("error: expected 'fail N CODE' with N from 1 to 64\n");
		return;
	}
	for (int i = 0; i < n; i++)
		errs[i] = (rd_kafka_resp_err_t)code;
	rd_kafka_mock_push_request_errors_array(mc, 0, (size_t)n, errs);
	printf("ok\n");
}

static void command(rd_kafka_mock_cluster_t *mc, int nbrokers, const char *line)
{
	char verb[16];
	int id = 0;
	if (!strncmp(line, "fail ", 5)) {
		fail_produce(mc, line);
		return;
	}
	if (sscanf(line, "%15s %d", verb, &id) != 2 || id < 1 || id > nbrokers ||
	    (strcmp(verb, "down") && strcmp(verb, "up"))) {
		printf("error: expected 'down ID', 'up ID' or 'quit'\n");
		return;
	}
	rd_kafka_resp_err_t e = strcmp(verb, "down") ? rd_kafka_mock_broker_set_up(mc, id)
	                                              : rd_kafka_mock_broker_set_down(mc, id);
	if (e)
		printf("error: %s\n", rd_kafka_err2str(e));
	else
		printf("ok\n");
}

int main(int argc, char **argv)
{
	int nbrokers = argc > 1 ? atoi(argv[1]) : 3;
	const char *topic = argc > 2 ? argv[2] : "missive-audit";
	int partitions = argc > 3 ? atoi(argv[3]) : 3;
	if (nbrokers < 1 || nbrokers > 16 || partitions < 1) {
		fprintf(stderr, "usage: kafka_mock [BROKERS [TOPIC PARTITIONS]]\n");
		return 64;
	}
	rd_kafka_t *rk = make_handle();
	if (!rk)
		return 70;
	rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, nbrokers);
	if (!mc) {
		fprintf(stderr, "kafka_mock: cannot start the mock cluster\n");
		rd_kafka_destroy(rk);
		return 70;
	}
	/* Created here with several partitions, so that the key (the qid)
	 * decides the partition and order per key is what is tested. */
	rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, topic, partitions,
	                                                   nbrokers < 3 ? nbrokers : 3);
	if (e)
		fprintf(stderr, "kafka_mock: topic %s: %s\n", topic, rd_kafka_err2str(e));
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
	char line[256];
	while (fgets(line, sizeof(line), stdin) && strncmp(line, "quit", 4))
		command(mc, nbrokers, line);
	rd_kafka_mock_cluster_destroy(mc);
	rd_kafka_destroy(rk);
	return 0;
}
