/* audit_write: appends events to an audit trail through the library, for
 * tests/integration/test_audit_verify.py (an intact chain to tamper with).
 * usage: audit_write PATH N [KEY-FILE [ROTATE-SIZE]]
 * KEY-FILE "-" for none; ROTATE-SIZE in bytes (0: none). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "missive/audit.h"

static int fail(const char *what, const msv_error *err)
{
	fprintf(stderr, "audit_write: %s: %s\n", what, err->message);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fputs("usage: audit_write PATH N [KEY-FILE [ROTATE-SIZE]]\n", stderr);
		return 64;
	}
	app_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.audit_key_file = argc > 3 && strcmp(argv[3], "-") ? argv[3] : NULL;
	char *key = NULL;
	size_t keylen = 0;
	msv_error err;
	msv_masker *m;
	if (app_audit_hmac_key(&cfg, &key, &keylen, &err))
		return fail("key", &err);
	if (msv_masker_new(&m, NULL, &err))
		return fail("masker", &err);
	msv_audit_log_options o = {
		.path = argv[1],
		.hmac_key = (const unsigned char *)key,
		.hmac_key_len = keylen,
		.masker = m,
		.rotate_size = argc > 4 ? strtoull(argv[4], NULL, 10) : 0,
		.fsync_ms = 1000,
		.node = "test-node",
	};
	msv_audit_log *l;
	if (msv_audit_log_open(&l, &o, &err))
		return fail("open", &err);
	long n = strtol(argv[2], NULL, 10);
	for (long i = 0; i < n; i++) {
		char qid[32];
		snprintf(qid, sizeof(qid), "Q%08ld", i);
		/* Strings a JSON writer gets wrong: quotes, controls, bytes that
		 * are not UTF-8, and an address the masker must hide. */
		msv_audit_field f[] = {
			MSV_AUDIT_S("rcpt", "carol.test@example.org"),
			MSV_AUDIT_S("reply", "250 \"ok\" \\ tab\there\x01 bad:\xff\xfe é"),
			MSV_AUDIT_I("attempt", i),
			MSV_AUDIT_B("tls", i % 2),
		};
		msv_audit_event ev = {.type = "recipient.sent", .actor = MSV_AUDIT_KEY,
		                      .actor_id = "web", .actor_ip = "192.0.2.1", .qid = qid,
		                      .fields = f, .nfields = 4};
		if (msv_audit_append(l, &ev, &err))
			return fail("append", &err);
	}
	msv_audit_log_close(l);
	msv_masker_free(m);
	if (key)
		msv_free_secret(key);
	return 0;
}
