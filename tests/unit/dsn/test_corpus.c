/*
 * The bounce corpus (tests/data/bounces, from Sisimai's set-of-emails)
 * as a ratchet: every message is parsed, every expected row compared on
 * status code and on reason, the agreement printed, and the test fails
 * when it drops below the counts in tests/unit/dsn/ratchet.txt.  Raise
 * the counts there when the classifier gets better; never lower them
 * without saying why in the commit.
 *
 * Comparison rules (docs/dsn.md, "Agreement with Sisimai"):
 *   - status: exact string, except Sisimai's own codes X.0.9xx ("the
 *     message carried no usable status"), which agree when the class
 *     digit does: we infer an RFC 3463 code instead;
 *   - reason: our name mapped to Sisimai's (msv_dsn_reason_sisimai);
 *   - a row whose recipient we did not report disagrees on both.
 *
 * Also: each CRLF/CR variant that index.tsv says is the same message
 * must give the same report as its LF original; the not-bounce messages
 * must not be reported as bounces; every file must parse.
 *
 * MSV_DSN_CORPUS_VERBOSE=1 prints every disagreeing row.
 */
/* Corpus names and fields are short; a truncated one would fail its
 * open or comparison loudly, so gcc's truncation warning adds nothing. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "missive/dsn.h"

#define BOUNCES MSV_CORPUS_DIR "/bounces"
#define RATCHET MSV_TEST_UNIT_DIR "/dsn/ratchet.txt"

typedef struct row {
	char file[128];
	int idx;
	char status[16];
	char reason[32];
	char hard[8];
	char mta[48];
} row;

static row *rows;
static size_t nrows;

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 65536, n = 0;
	char *b = malloc(cap);
	size_t k;
	while (b && (k = fread(b + n, 1, cap - n, f)) > 0) {
		n += k;
		if (n == cap) {
			char *p = realloc(b, cap *= 2);
			if (!p) {
				free(b);
				b = NULL;
			}
			b = p;
		}
	}
	fclose(f);
	*len = n;
	return b;
}

/* Splits a TSV line in place; returns the number of fields. */
static int split(char *line, char **f, int max)
{
	int n = 0;
	char *p = line;
	while (n < max) {
		f[n++] = p;
		char *t = strchr(p, '\t');
		if (!t)
			break;
		*t = '\0';
		p = t + 1;
	}
	char *nl = strpbrk(f[n - 1], "\r\n");
	if (nl)
		*nl = '\0';
	return n;
}

static void load_expected(void)
{
	FILE *f = fopen(BOUNCES "/expected.tsv", "r");
	assert_non_null(f);
	char line[1024];
	size_t cap = 1024;
	rows = calloc(cap, sizeof(row));
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#')
			continue;
		char *fl[10];
		int n = split(line, fl, 10);
		if (n < 7)
			continue;
		if (nrows == cap)
			rows = realloc(rows, (cap *= 2) * sizeof(row));
		row *r = &rows[nrows++];
		memset(r, 0, sizeof(*r));
		snprintf(r->file, sizeof(r->file), "%s", fl[0]);
		r->idx = (int)strtol(fl[1], NULL, 10);
		snprintf(r->status, sizeof(r->status), "%s", fl[2]);
		snprintf(r->reason, sizeof(r->reason), "%s", fl[4]);
		snprintf(r->hard, sizeof(r->hard), "%s", fl[5]);
		snprintf(r->mta, sizeof(r->mta), "%s", fl[6]);
	}
	fclose(f);
}

static msv_dsn_report *parse_file(const char *path)
{
	size_t len;
	char *b = slurp(path, &len);
	if (!b) {
		print_error("cannot read %s\n", path);
		return NULL;
	}
	msv_dsn_report *rep = NULL;
	msv_error err;
	msv_result r = msv_dsn_parse(&rep, b, len, NULL, &err);
	free(b);
	if (r) {
		print_error("%s: %s\n", path, err.message);
		return NULL;
	}
	return rep;
}

static int status_agrees(const char *exp, const msv_dsn_recipient *got)
{
	if (!*exp)
		return !got->status[0];
	size_t n = strlen(exp);
	/* Sisimai's internal codes: X.0.9NN. */
	if (n == 7 && exp[1] == '.' && exp[2] == '0' && exp[3] == '.' && exp[4] == '9')
		return got->status[0] == exp[0];
	return !strcmp(exp, got->status);
}

static int verbose(void)
{
	const char *v = getenv("MSV_DSN_CORPUS_VERBOSE");
	return v && *v && strcmp(v, "0");
}

/* Reads "name count" lines. */
static long ratchet_value(const char *name)
{
	FILE *f = fopen(RATCHET, "r");
	if (!f)
		return -1;
	char line[256];
	long v = -1;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#')
			continue;
		char key[64];
		long val;
		char *sp = strchr(line, ' ');
		if (!sp || (size_t)(sp - line) >= sizeof(key))
			continue;
		memcpy(key, line, (size_t)(sp - line));
		key[sp - line] = '\0';
		val = strtol(sp + 1, NULL, 10);
		if (!strcmp(key, name))
			v = val;
	}
	fclose(f);
	return v;
}

static void test_corpus_agreement(void **state)
{
	(void)state;
	load_expected();
	assert_true(nrows > 600);
	size_t st_ok = 0, rs_ok = 0, hd_ok = 0, strict_ok = 0, strict_n = 0, missing = 0;
	size_t i = 0;
	while (i < nrows) {
		size_t j = i;
		while (j < nrows && !strcmp(rows[j].file, rows[i].file))
			j++;
		char path[512];
		snprintf(path, sizeof(path), BOUNCES "/eml/%s", rows[i].file);
		msv_dsn_report *rep = parse_file(path);
		assert_non_null(rep);
		for (size_t k = i; k < j; k++) {
			const row *e = &rows[k];
			const msv_dsn_recipient *g =
				e->idx >= 1 && (size_t)e->idx <= rep->nrecipients ? &rep->recipients[e->idx - 1]
				                                                   : NULL;
			int sok = g && status_agrees(e->status, g);
			int rok = g && !strcmp(e->reason, msv_dsn_reason_sisimai(g->reason));
			int hok = g && ((!strcmp(e->hard, "hard")) == (g->hard != 0));
			int is_internal = strlen(e->status) == 7 && e->status[4] == '9';
			if (*e->status && !is_internal) {
				strict_n++;
				strict_ok += sok;
			}
			st_ok += sok;
			rs_ok += rok;
			hd_ok += hok;
			missing += !g;
			if (verbose() && (!sok || !rok))
				printf("MISS %s#%d [%s] exp %s %s got %s %s (%s) %s | %.160s\n", e->file,
				       e->idx, e->mta, *e->status ? e->status : "-", e->reason,
				       g ? (g->status[0] ? g->status : "-") : "NONE",
				       g ? msv_dsn_reason_sisimai(g->reason) : "NONE",
				       g && g->rule ? g->rule : "", rep->format ? rep->format : "-",
				       g && g->diagnostic ? g->diagnostic : "");
		}
		if (verbose() && rep->nrecipients != j - i)
			printf("COUNT %s exp %zu got %zu\n", rows[i].file, j - i, rep->nrecipients);
		msv_dsn_report_free(rep);
		i = j;
	}
	printf("dsn corpus: %zu rows\n", nrows);
	printf("  status agreement: %5.1f%% (%zu/%zu); exact on codes found in the message: "
	       "%zu/%zu\n",
	       100.0 * (double)st_ok / (double)nrows, st_ok, nrows, strict_ok, strict_n);
	printf("  reason agreement: %5.1f%% (%zu/%zu)\n", 100.0 * (double)rs_ok / (double)nrows, rs_ok,
	       nrows);
	printf("  hard/soft agreement: %5.1f%% (%zu/%zu)\n", 100.0 * (double)hd_ok / (double)nrows,
	       hd_ok, nrows);
	printf("  rows without a recipient at that index: %zu\n", missing);
	long min_st = ratchet_value("status"), min_rs = ratchet_value("reason"),
	     min_hd = ratchet_value("hard");
	assert_true(min_st > 0 && min_rs > 0 && min_hd > 0);
	if ((long)st_ok < min_st || (long)rs_ok < min_rs || (long)hd_ok < min_hd)
		print_error("below the ratchet (%s): status %zu < %ld or reason %zu < %ld or hard %zu < "
		            "%ld\n",
		            RATCHET, st_ok, min_st, rs_ok, min_rs, hd_ok, min_hd);
	assert_true((long)st_ok >= min_st);
	assert_true((long)rs_ok >= min_rs);
	assert_true((long)hd_ok >= min_hd);
	if ((long)st_ok > min_st || (long)rs_ok > min_rs || (long)hd_ok > min_hd)
		printf("  (above the ratchet: raise %s to status %zu, reason %zu, hard %zu)\n", RATCHET,
		       st_ok, rs_ok, hd_ok);
	free(rows);
	rows = NULL;
	nrows = 0;
}

static int same_report(const msv_dsn_report *a, const msv_dsn_report *b)
{
	if (a->kind != b->kind || a->nrecipients != b->nrecipients)
		return 0;
	for (size_t i = 0; i < a->nrecipients; i++) {
		const msv_dsn_recipient *x = &a->recipients[i], *y = &b->recipients[i];
		if (strcmp(x->address, y->address) || strcmp(x->status, y->status) ||
		    x->reason != y->reason || x->hard != y->hard || x->action != y->action)
			return 0;
		if ((x->diagnostic == NULL) != (y->diagnostic == NULL) ||
		    (x->diagnostic && strcmp(x->diagnostic, y->diagnostic)))
			return 0;
	}
	const char *ma = a->original_message_id ? a->original_message_id : "";
	const char *mb = b->original_message_id ? b->original_message_id : "";
	return !strcmp(ma, mb);
}

static void test_newline_variants(void **state)
{
	(void)state;
	FILE *f = fopen(BOUNCES "/newline-variants/index.tsv", "r");
	assert_non_null(f);
	char line[1024];
	size_t same = 0, checked = 0, parsed = 0;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#')
			continue;
		char *fl[4];
		if (split(line, fl, 4) < 3)
			continue;
		char vpath[512], opath[512];
		snprintf(vpath, sizeof(vpath), BOUNCES "/newline-variants/%s", fl[0]);
		msv_dsn_report *v = parse_file(vpath);
		assert_non_null(v);
		parsed++;
		if (strcmp(fl[2], "-")) {
			snprintf(opath, sizeof(opath), BOUNCES "/%s", fl[2]);
			msv_dsn_report *o = parse_file(opath);
			assert_non_null(o);
			checked++;
			if (same_report(v, o))
				same++;
			else
				print_error("%s reads differently from %s\n", fl[0], fl[2]);
			msv_dsn_report_free(o);
		} else if (v->kind == MSV_DSN_UNKNOWN) {
			print_error("%s: not recognized as a report\n", fl[0]);
		}
		msv_dsn_report_free(v);
	}
	fclose(f);
	printf("newline variants: %zu parsed, %zu/%zu read the same as their LF original\n", parsed,
	       same, checked);
	assert_true(parsed >= 129);
	assert_int_equal(same, checked);
}

static void test_not_bounces(void **state)
{
	(void)state;
	DIR *d = opendir(BOUNCES "/not-bounce");
	assert_non_null(d);
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[512];
		snprintf(path, sizeof(path), BOUNCES "/not-bounce/%s", e->d_name);
		msv_dsn_report *r = parse_file(path);
		assert_non_null(r);
		if (r->kind != MSV_DSN_UNKNOWN)
			print_error("%s: read as %s\n", e->d_name, msv_dsn_kind_name(r->kind));
		assert_int_equal(r->kind, MSV_DSN_UNKNOWN);
		assert_int_equal(r->nrecipients, 0);
		msv_dsn_report_free(r);
		n++;
	}
	closedir(d);
	assert_true(n >= 2);
}

/* Every message in eml/ parses and is recognized as some kind of report. */
static void test_every_file(void **state)
{
	(void)state;
	DIR *d = opendir(BOUNCES "/eml");
	assert_non_null(d);
	struct dirent *e;
	int n = 0, unknown = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[512];
		snprintf(path, sizeof(path), BOUNCES "/eml/%s", e->d_name);
		msv_dsn_report *r = parse_file(path);
		assert_non_null(r);
		if (r->kind == MSV_DSN_UNKNOWN) {
			unknown++;
			if (verbose())
				printf("UNKNOWN %s\n", e->d_name);
		}
		msv_dsn_report_free(r);
		n++;
	}
	closedir(d);
	printf("eml: %d messages, %d not recognized as a report\n", n, unknown);
	assert_true(n >= 600);
	assert_true(unknown <= 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus_agreement),
		cmocka_unit_test(test_newline_variants),
		cmocka_unit_test(test_not_bounces),
		cmocka_unit_test(test_every_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
