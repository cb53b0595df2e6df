/* libFuzzer target: the DSN reader (msv_dsn_parse) and the classifier
 * (msv_dsn_classify).  The first input byte picks the options: bit 0 a
 * VERP prefix, bit 1 a VERP domain, bit 2 a small size limit.  Checks
 * that every report is well formed: a known kind, every recipient with
 * an address, every string NUL-terminated, one line, within its limit,
 * every reason and action in range; and that errors are only the
 * documented ones. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "missive/dsn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Report strings are cut at 4096 octets (missive/dsn.h, LIMITS). */
static void check_str(const char *s, int may_be_null)
{
	if (!s) {
		if (!may_be_null)
			abort();
		return;
	}
	size_t n = strlen(s);
	if (!n || n > 4096)
		abort();
	if (strchr(s, '\r') || strchr(s, '\n'))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	unsigned flags = data[0];
	char *buf = msv_malloc(size - 1 ? size - 1 : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	size_t n = size - 1;

	msv_dsn_options o = MSV_DSN_OPTIONS_INIT;
	if (flags & 1)
		o.verp_prefix = "bounces+";
	if (flags & 2)
		o.verp_domain = "example.com";
	if (flags & 4)
		o.max_size = 4096;
	msv_dsn_report *rep = NULL;
	msv_error err;
	msv_result r = msv_dsn_parse(&rep, buf, n, &o, &err);
	if (r == MSV_OK) {
		if (!rep || (unsigned)rep->kind > MSV_DSN_FEEDBACK)
			abort();
		check_str(rep->format, 1);
		check_str(rep->envelope_id, 1);
		check_str(rep->original_message_id, 1);
		check_str(rep->queue_id, 1);
		check_str(rep->reporting_mta, 1);
		check_str(rep->feedback_type, 1);
		if (rep->nrecipients > 1000)
			abort();
		if (rep->kind == MSV_DSN_UNKNOWN && rep->nrecipients)
			abort();
		for (size_t i = 0; i < rep->nrecipients; i++) {
			const msv_dsn_recipient *x = &rep->recipients[i];
			check_str(x->address, 0);
			check_str(x->original_recipient, 1);
			check_str(x->diagnostic, 1);
			check_str(x->diagnostic_type, 1);
			check_str(x->remote_mta, 1);
			check_str(x->command, 1);
			check_str(x->rule, 0);
			if ((unsigned)x->reason >= MSV__DSN_REASON_COUNT ||
			    (unsigned)x->action > MSV_DSN_ACTION_EXPANDED ||
			    (unsigned)x->status_source > MSV_DSN_SRC_INFERRED)
				abort();
			if (!memchr(x->status, '\0', sizeof(x->status)))
				abort();
			/* Hard only for failures. */
			if (x->hard && x->action != MSV_DSN_ACTION_FAILED)
				abort();
		}
		msv_dsn_report_free(rep);
	} else {
		if (rep)
			abort();
		if (r != MSV_E_BAD_MESSAGE && r != MSV_E_TOO_LARGE)
			abort();
	}

	/* The classifier on the same bytes as a server reply (NUL-terminated,
	 * at most a reply's worth). */
	size_t tl = n < 2048 ? n : 2048;
	char text[2049];
	memcpy(text, buf, tl);
	text[tl] = '\0';
	msv_dsn_verdict v;
	msv_dsn_classify(&v, (flags & 8) ? text : NULL, (int)(flags >> 4) * 37, text,
	                 (flags & 16) ? "DATA" : NULL);
	if ((unsigned)v.reason >= MSV__DSN_REASON_COUNT || !memchr(v.status, '\0', sizeof(v.status)) ||
	    !memchr(v.rule, '\0', sizeof(v.rule)))
		abort();
	msv_free(buf);
	return 0;
}
