/* Masking rate of libmissive: msv_mask_stream over a log held in memory,
 * fed in 64 KiB chunks as a log shipper would, output counted and dropped.
 *   mask_bench gen FILE MB      writes a mixed log of MB megabytes to FILE
 *   mask_bench run FILE KEYFILE [RULE...]
 * "run" prints "<MB/s> <bytes in> <bytes out> <seconds>" on stdout, best
 * of three passes.  KEYFILE is created when missing (real pseudonym keys,
 * not the in-memory test keys); each RULE is an [audit] mask rule. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "missive/audit.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long long rng = 88172645463325252ull;

static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static void digits(char *d, int n)
{
	for (int i = 0; i < n; i++)
		d[i] = (char)('0' + rnd(10));
	d[n] = '\0';
}

/* A Luhn-valid 16-digit card, as four groups when spaced. */
static void card(char *out, int spaced)
{
	char d[17];
	digits(d, 15);
	d[0] = '4';
	unsigned sum = 0;
	for (int i = 0; i < 15; i++) {
		unsigned v = (unsigned)(d[14 - i] - '0');
		if (!(i & 1))
			v = v * 2 > 9 ? v * 2 - 9 : v * 2;
		sum += v;
	}
	d[15] = (char)('0' + (10 - sum % 10) % 10);
	d[16] = '\0';
	if (spaced)
		sprintf(out, "%.4s %.4s %.4s %.4s", d, d + 4, d + 8, d + 12);
	else
		strcpy(out, d);
}

/* A valid 18-character resident ID number. */
static void resident_id(char *out)
{
	static const unsigned w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
	digits(out, 17);
	memcpy(out, "110105", 6);
	unsigned sum = 0;
	for (int i = 0; i < 17; i++)
		sum += (unsigned)(out[i] - '0') * w[i];
	out[17] = "10X98765432"[sum % 11];
	out[18] = '\0';
}

static void address(char *out)
{
	static const char *const users[] = {"bob", "alice.smith", "carol+news", "dave_99", "Eve.Q"};
	static const char *const doms[] = {"example.org", "mail.example.com", "x.co.uk", "corp.cn"};
	sprintf(out, "%s%u@%s", users[rnd(5)], rnd(100000), doms[rnd(4)]);
}

static int gen(const char *path, long mb)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		return 66;
	}
	long long want = mb * 1000000LL, done = 0;
	char a[128], b[128], c[64], line[1024];
	while (done < want) {
		unsigned q = rnd(0xfffff), s = rnd(60), kind = rnd(8);
		address(a);
		switch (kind) {
		case 0:
		case 1:
			sprintf(line, "Dec  5 15:25:%02u mx postfix/smtp[%u]: %05X: to=<%s>, relay="
			        "mx.example.org[192.0.2.%u]:25, delay=0.%u, dsn=2.0.0, status=sent (250 "
			        "2.0.0 Ok: queued as %05X)\n", s, q & 0xffff, q, a, q & 255, q % 100, q ^ 0x5a5a);
			break;
		case 2:
			sprintf(line, "Dec  5 15:25:%02u mx postfix/smtp[%u]: %05X: to=<%s>, status=bounced "
			        "(host mx.example.org said: 550 5.1.1 <%s>: Recipient address rejected: "
			        "User unknown)\n", s, q & 0xffff, q, a, a);
			break;
		case 3:
			digits(c, 9);
			sprintf(line, "Dec  5 15:25:%02u api missived[812]: POST /v1/messages from 10.0.%u.%u "
			        "key=web phone=1%u%s sender=%s\n", s, q & 255, s, 3 + rnd(7), c, a);
			break;
		case 4:
			resident_id(b);
			sprintf(line, "Dec  5 15:25:%02u shop app[77]: customer id=%s verified, order "
			        "ORD-%u\n", s, b, q);
			break;
		case 5:
			card(b, (int)rnd(2));
			sprintf(line, "Dec  5 15:25:%02u shop app[77]: order %u paid with card %s, amount "
			        "%u.%02u\n", s, q, b, q % 1000, s);
			break;
		default:
			sprintf(line, "Dec  5 15:25:%02u mx postfix/qmgr[%u]: %05X: removed; "
			        "nrcpt=%u (queue active) size=%u\n", s, q & 0xffff, q, s % 4 + 1, q * 3);
			break;
		}
		size_t n = strlen(line);
		if (fwrite(line, 1, n, f) != n) {
			perror(path);
			return 74;
		}
		done += (long long)n;
	}
	return fclose(f) ? 74 : 0;
}

static int run(const char *path, const char *keyfile, int nrules, char **rules)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return 66;
	}
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *data = malloc(sz > 0 ? (size_t)sz : 1);
	size_t len = fread(data, 1, sz > 0 ? (size_t)sz : 0, f);
	fclose(f);
	msv_audit_keys *k;
	msv_masker *m;
	msv_error err;
	if (msv_audit_keys_open(&k, keyfile, &err) || msv_masker_new(&m, k, &err)) {
		fprintf(stderr, "mask_bench: %s\n", err.message);
		return 1;
	}
	for (int i = 0; i < nrules; i++)
		if (msv_masker_add_rule(m, rules[i], &err)) {
			fprintf(stderr, "mask_bench: %s\n", err.message);
			return 1;
		}
	double best = 1e30;
	size_t outbytes = 0;
	for (int pass = 0; pass < 3; pass++) {
		msv_mask_stream *st;
		msv_buf out;
		msv_buf_init(&out, 64u << 20);
		outbytes = 0;
		double t0 = now_s();
		if (msv_mask_stream_new(&st, m))
			return 1;
		for (size_t p = 0; p < len; p += 65536) {
			size_t c = len - p < 65536 ? len - p : 65536;
			if (msv_mask_stream_feed(st, data + p, c, &out))
				return 1;
			outbytes += out.len;
			msv_buf_reset(&out);
		}
		if (msv_mask_stream_finish(st, &out))
			return 1;
		outbytes += out.len;
		msv_mask_stream_free(st);
		double el = now_s() - t0;
		if (el < best)
			best = el;
		msv_buf_free(&out);
	}
	printf("%.1f %zu %zu %.3f\n", (double)len / best / 1e6, len, outbytes, best);
	msv_masker_free(m);
	msv_audit_keys_close(k);
	free(data);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "gen"))
		return gen(argv[2], strtol(argv[3], NULL, 10));
	if (argc >= 4 && !strcmp(argv[1], "run"))
		return run(argv[2], argv[3], argc - 4, argv + 4);
	fprintf(stderr, "usage: mask_bench gen FILE MB | mask_bench run FILE KEYFILE [RULE...]\n");
	return 64;
}
