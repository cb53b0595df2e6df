/* DKIM signing rate of libmissive: signatures per second on one message,
 * with one reusable signer (the intended use: parse the key once, then
 * per message only hashing and one private-key operation).
 *   dkim_bench KEY.pem MESSAGE SECONDS
 * Prints "<missive signatures/s> <raw signatures/s>" on stdout: the raw
 * rate is OpenSSL's private-key operation alone on a SHA-256 digest with
 * the same key (what `openssl speed` measures), timed in alternating
 * slices in this process, so machine noise hits both the same way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "missive/dkim.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: dkim_bench KEY.pem MESSAGE SECONDS\n");
		return 64;
	}
	FILE *f = fopen(argv[2], "rb");
	if (!f) {
		perror(argv[2]);
		return 66;
	}
	static char msg[1 << 20];
	size_t len = fread(msg, 1, sizeof(msg), f);
	fclose(f);
	double secs = atof(argv[3]);

	msv_dkim_options o = MSV_DKIM_OPTIONS_INIT;
	o.domain = "example.org";
	o.selector = "bench";
	msv_dkim_signer *s;
	msv_error err;
	if (msv_dkim_signer_load(&s, &o, argv[1], &err)) {
		fprintf(stderr, "dkim_bench: %s\n", err.message);
		return 78;
	}
	msv_buf out;
	msv_buf_init(&out, MSV_DKIM_HEADER_MAX);

	FILE *kf = fopen(argv[1], "r");
	EVP_PKEY *pk = kf ? PEM_read_PrivateKey(kf, NULL, NULL, NULL) : NULL;
	if (kf)
		fclose(kf);
	if (!pk)
		return 78;
	int rsa = EVP_PKEY_is_a(pk, "RSA");
	EVP_PKEY_CTX *pc = NULL;
	EVP_MD_CTX *mc = NULL;
	if (rsa) {
		pc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
		EVP_PKEY_sign_init(pc);
		EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING);
		EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256());
	} else {
		mc = EVP_MD_CTX_new();
		EVP_DigestSignInit_ex(mc, NULL, NULL, NULL, NULL, pk, NULL);
	}
	unsigned char dg[32], sig[1024];
	memset(dg, 7, sizeof(dg));

	/* alternate 0.25 s slices of each */
	long n = 0, nraw = 0;
	double tm = 0, traw = 0;
	while (tm + traw < secs) {
		double a = now_s(), t = a;
		while (t - a < 0.25) {
			for (int i = 0; i < 16; i++, n++) {
				msv_buf_reset(&out);
				if (msv_dkim_sign(s, msg, len, 1700000000, &out, &err)) {
					fprintf(stderr, "dkim_bench: %s\n", err.message);
					return 70;
				}
			}
			t = now_s();
		}
		tm += t - a;
		a = t = now_s();
		while (t - a < 0.25) {
			for (int i = 0; i < 16; i++, nraw++) {
				size_t sl = sizeof(sig);
				int ok = rsa ? EVP_PKEY_sign(pc, sig, &sl, dg, 32) : EVP_DigestSign(mc, sig, &sl, dg, 32);
				if (ok != 1)
					return 70;
			}
			t = now_s();
		}
		traw += t - a;
	}
	printf("%.1f %.1f\n", (double)n / tm, (double)nraw / traw);
	EVP_PKEY_CTX_free(pc);
	EVP_MD_CTX_free(mc);
	EVP_PKEY_free(pk);
	msv_buf_free(&out);
	msv_dkim_signer_free(s);
	return 0;
}
