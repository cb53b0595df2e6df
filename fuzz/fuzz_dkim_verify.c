/* libFuzzer target: DKIM verification (src/dkim/verify.c) and key
 * records (src/dkim/key.c): the tag-list parser, the DKIM-Signature
 * field, header selection, b= removal, base64 with FWS, and record /
 * zone-line parsing.
 *
 * Input: one option byte, then the text.
 *   byte 0: bit 0 the text is a key record (else a message);
 *           bit 1 verify with the fixed keys below (else no key)
 * The fixed keys are the RFC 8463 test keys (tests/data/dkim/keys),
 * so seeds made from the RFC 8463 vector reach the signature check.
 * Checks: no crash, no leak, results well-formed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "missive/dkim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char ED_RECORD[] =
	"brisbane._domainkey.football.example.com. IN TXT \"v=DKIM1; k=ed25519; "
	"p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"";
static const char RSA_RECORD[] =
	"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2"
	"jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3"
	"Ip3G+2kryOTIKT+l/K4w3QIDAQAB";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned opt = data[0];
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	msv_error err;
	if (opt & 1) {
		msv_dkim_key *k = NULL;
		if (msv_dkim_key_from_record(&k, p, n, &err) == MSV_OK && !k)
			abort();
		msv_dkim_key_free(k);
		return 0;
	}
	msv_dkim_key *keys[2] = {NULL, NULL};
	size_t nk = 0;
	if (opt & 2) {
		if (msv_dkim_key_from_record(&keys[0], ED_RECORD, sizeof(ED_RECORD) - 1, &err) ||
		    msv_dkim_key_from_record(&keys[1], RSA_RECORD, sizeof(RSA_RECORD) - 1, &err))
			abort();
		nk = 2;
	}
	msv_dkim_verify_options vo = MSV_DKIM_VERIFY_OPTIONS_INIT;
	vo.keys = (const msv_dkim_key *const *)keys;
	vo.nkeys = nk;
	vo.now = 1600000000;
	msv_dkim_result *res = NULL;
	size_t count = 0;
	if (msv_dkim_verify(&vo, p, n, &res, &count, &err) == MSV_OK) {
		if (count > MSV_DKIM_VERIFY_MAX_SIGNATURES || (count && !res) || (!count && res))
			abort();
		for (size_t i = 0; i < count; i++)
			if (strlen(msv_dkim_status_name(res[i].status)) == 0 ||
			    (res[i].status != MSV_DKIM_PASS && !res[i].reason[0]))
				abort();
	}
	msv_free(res);
	msv_dkim_key_free(keys[0]);
	msv_dkim_key_free(keys[1]);
	return 0;
}
