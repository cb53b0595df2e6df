/* DKIM signing rate of OpenDKIM's library (libopendkim, in-process): one
 * dkim_sign handle per message, as the milter does.
 *   opendkim_bench rsa|ed25519 KEY MESSAGE SECONDS
 * KEY is what dkim_sign takes: a PEM private key file.  Prints
 * "<signatures/s>" on stdout. */
#include <sys/types.h>

#include <opendkim/dkim.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	unsigned char *b = malloc(1 << 20);
	*len = fread(b, 1, (1 << 20) - 1, f);
	b[*len] = 0;
	fclose(f);
	return b;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: opendkim_bench rsa|ed25519 KEY MESSAGE SECONDS\n");
		return 64;
	}
	dkim_alg_t alg = strcmp(argv[1], "ed25519") ? DKIM_SIGN_RSASHA256 : DKIM_SIGN_ED25519SHA256;
	size_t klen, mlen;
	unsigned char *key = slurp(argv[2], &klen), *msg = slurp(argv[3], &mlen);
	if (!key || !msg)
		return 66;
	double secs = atof(argv[4]);
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	uint64_t fixed = 1700000000;
	dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FIXEDTIME, &fixed, sizeof(fixed));
	long n = 0;
	double start = now_s(), t = start;
	unsigned char hdr[8192];
	while (t - start < secs) {
		for (int i = 0; i < 16; i++, n++) {
			DKIM_STAT st;
			DKIM *d = dkim_sign(lib, (const unsigned char *)"bench", NULL, (dkim_sigkey_t)key,
			                    (const unsigned char *)"bench", (const unsigned char *)"example.org",
			                    DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, alg, -1, &st);
			if (!d) {
				fprintf(stderr, "opendkim_bench: dkim_sign: %s\n", dkim_getresultstr(st));
				return 70;
			}
			if (dkim_chunk(d, msg, mlen) != DKIM_STAT_OK || dkim_chunk(d, NULL, 0) != DKIM_STAT_OK ||
			    dkim_eom(d, NULL) != DKIM_STAT_OK ||
			    dkim_getsighdr(d, hdr, sizeof(hdr), strlen("DKIM-Signature: ")) != DKIM_STAT_OK) {
				fprintf(stderr, "opendkim_bench: signing failed: %s\n", dkim_geterror(d));
				return 70;
			}
			dkim_free(d);
		}
		t = now_s();
	}
	printf("%.1f\n", (double)n / (t - start));
	dkim_close(lib);
	free(key);
	free(msg);
	return 0;
}
