/* missive dkim: key generation, signing and verification (RFC 6376, RFC 8463). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "missive/dkim.h"

#define MESSAGE_MAX ((size_t)512 << 20)
#define KEYFILE_MAX ((size_t)1 << 20)
#define KEYS_MAX 4
/* "checked, and the answer is no": sysexits has no code for it, and 65
 * would mix it up with unreadable input; 1 is what grep, cmp and
 * gpg --verify use for a negative answer. */
#define EXIT_VERIFY_FAILED 1

static const char dkim_help[] =
	"usage: missive dkim COMMAND [OPTIONS]\n"
	"\n"
	"Commands:\n"
	"  keygen   make a signing key and print its DNS TXT record\n"
	"  sign     sign a message (stdin) and write the signed message (stdout)\n"
	"  verify   check the DKIM signatures of a message (stdin) with given keys\n"
	"  record   print the DNS TXT record of an existing key\n"
	"\n"
	"'missive dkim COMMAND --help' for each.  See missive-dkim(1).\n";

static const char keygen_help[] =
	"usage: missive dkim keygen --algo ed25519|rsa [--bits N] --selector S --domain D --out KEY.pem\n"
	"                           [--force] [--json]\n"
	"\n"
	"Generates a private key, writes it to KEY.pem (mode 0600, written to a temporary\n"
	"name, synced, then renamed) and prints the DNS record to publish:\n"
	"  S._domainkey.D. IN TXT \"v=DKIM1; k=...; p=...\"\n"
	"\n"
	"  --algo ed25519|rsa   key type (rsa-sha256 / ed25519-sha256 signatures)\n"
	"  --bits N             RSA size, 1024..16384 (default 2048; under 2048 warns)\n"
	"  --selector S         the selector (s=) the record is published under\n"
	"  --domain D           the signing domain (d=)\n"
	"  --out KEY.pem        where to write the key; an existing file is kept unless --force\n"
	"  --force              replace KEY.pem if it exists\n"
	"  --json               print {\"key_file\",\"algo\",\"bits\",\"selector\",\"domain\",\"name\",\"record\",\"txt\"}\n"
	"\n"
	"Exit: 0 ok; 64 usage; 70 key generation failed; 73 KEY.pem exists or cannot be\n"
	"created; 74 write error.\n";

static const char sign_help[] =
	"usage: missive dkim sign --key KEY.pem --selector S --domain D [options] < msg > signed\n"
	"\n"
	"Prepends a DKIM-Signature field to the message and writes it out, every line end\n"
	"as CRLF (the form that was signed and that SMTP sends).\n"
	"\n"
	"  --key KEY.pem          PEM private key, RSA (>= 1024 bits) or Ed25519; repeat for\n"
	"                         dual signing (RSA and Ed25519, RFC 8463)\n"
	"  --selector S           s=; once for all keys, or once per --key in order\n"
	"  --domain D             d=; once for all keys, or once per --key in order\n"
	"  --algo rsa|ed25519     refuse a key of the other type (one --key only)\n"
	"  --headers LIST         fields to sign, ':' or ',' separated (default: From, To, Cc,\n"
	"                         Subject, Date, Message-ID, Reply-To, In-Reply-To, References,\n"
	"                         MIME-Version, Content-Type, Content-Transfer-Encoding,\n"
	"                         List-Unsubscribe, List-Unsubscribe-Post; those present).\n"
	"                         From is always signed, and listed once more than it occurs\n"
	"  --no-oversign          do not list From the extra time\n"
	"  --canon H/B            header/body canonicalization: relaxed/relaxed (default),\n"
	"                         relaxed/simple, simple/relaxed, simple/simple\n"
	"  --identity ADDR        i= (an address in D or a subdomain)\n"
	"  --expire SECONDS       add x= (t= + SECONDS)\n"
	"  --body-length          add l= (lets anyone append to the body: see missive-dkim(1))\n"
	"  --time T               t= value (seconds since the epoch; default: now)\n"
	"  --message FILE         read the message from FILE instead of stdin\n"
	"  --signature-only       write only the DKIM-Signature field(s)\n"
	"  --json                 print {\"signatures\":[...],\"warnings\":[...]} instead of the message\n"
	"\n"
	"Exit: 0 signed; 64 usage; 65 the input is not a message (no From, a header line\n"
	"that is not a field); 66 the message or key file cannot be opened; 74 write error;\n"
	"78 the key is unusable (not PEM, encrypted, RSA under 1024 bits, wrong type).\n";

static const char verify_help[] =
	"usage: missive dkim verify (--key-record FILE | --public-key FILE)... [options] < signed\n"
	"\n"
	"Checks every DKIM-Signature field with the keys given (no DNS lookups) and prints\n"
	"one line per signature: pass, or the reason it fails.\n"
	"\n"
	"  --key-record FILE   a key record: \"v=DKIM1; k=...; p=...\", or the TXT line that\n"
	"                      'missive dkim keygen' prints (its name then picks the s=/d=)\n"
	"  --public-key FILE   a PEM public key (or private key) for any s=/d=\n"
	"                      (repeat either to give keys for several signatures)\n"
	"  --any               exit 0 when at least one signature passes (RFC 6376 receiver\n"
	"                      view); default: every signature must pass\n"
	"  --time T            the current time for x= checks (seconds since the epoch)\n"
	"  --message FILE      read the message from FILE instead of stdin\n"
	"  --json              print {\"result\",\"signatures\":[...]}\n"
	"\n"
	"Exit: 0 pass; 1 a signature failed or the message is unsigned; 64 usage;\n"
	"65 the input is not a message; 66 a file cannot be opened; 78 a key is unusable.\n";

static const char record_help[] =
	"usage: missive dkim record --key KEY.pem --selector S --domain D [--json]\n"
	"\n"
	"Prints the DNS TXT record for the public half of KEY.pem.\n"
	"\n"
	"Exit: 0 ok; 64 usage; 66 KEY.pem cannot be opened; 78 not a usable key.\n";

static int parse_time(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v <= 0 || v > 253402300799LL)
		return -1;
	*out = v;
	return 0;
}

static int write_all(FILE *f, const char *p, size_t n)
{
	if (fwrite(p, 1, n, f) != n || fflush(f)) {
		cli_err("cannot write the output: %s", strerror(errno));
		return EX_IOERR;
	}
	return 0;
}

static void print_json(cJSON *root)
{
	char *s = cJSON_PrintUnformatted(root);
	if (s)
		puts(s);
	cJSON_free(s);
	cJSON_Delete(root);
}

/* Reads a key file: 66 when it cannot be opened, the bytes otherwise
 * (the caller wipes them). */
static int read_key_file(const char *path, char **data, size_t *len, const char *what)
{
	return cli_read_file(path, KEYFILE_MAX, data, len, what);
}

/* ---- keygen ---- */

/* Writes data to path with mode 0600: temporary name in the same
 * directory (O_EXCL), fsync, rename, fsync of the directory, so a crash
 * leaves the old file or the new one, never half a key. */
static int write_key_file(const char *path, const char *data, size_t len, int force)
{
	struct stat st;
	if (!force && lstat(path, &st) == 0) {
		cli_err("%s exists; not replacing a key (use --force)", path);
		return EX_CANTCREAT;
	}
	char tmp[4096];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= sizeof(tmp)) {
		cli_err("key file name too long");
		return EX_USAGE;
	}
	int fd = mkstemp(tmp); /* O_EXCL, mode 0600 */
	if (fd < 0) {
		cli_err("cannot create %s: %s", tmp, strerror(errno));
		return EX_CANTCREAT;
	}
	int rc = 0;
	size_t off = 0;
	if (fchmod(fd, 0600))
		rc = EX_IOERR;
	while (!rc && off < len) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rc = EX_IOERR;
		else
			off += (size_t)w;
	}
	if (!rc && fsync(fd))
		rc = EX_IOERR;
	if (close(fd) && !rc)
		rc = EX_IOERR;
	if (!rc && rename(tmp, path))
		rc = EX_CANTCREAT;
	if (rc) {
		cli_err("cannot write %s: %s", path, strerror(errno));
		unlink(tmp);
		return rc;
	}
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
}

enum {
	O_ALGO = 256, O_BITS, O_SELECTOR, O_DOMAIN, O_OUT, O_FORCE, O_JSON, O_KEY, O_HEADERS, O_CANON,
	O_IDENTITY, O_EXPIRE, O_BODY_LENGTH, O_TIME, O_MESSAGE, O_SIG_ONLY, O_KEY_RECORD, O_PUBLIC_KEY,
	O_ANY, O_NO_OVERSIGN,
};

static int print_record(const char *selector, const char *domain, msv_dkim_algo algo, unsigned bits,
                        const char *record, const char *key_file, int json)
{
	msv_buf txt;
	msv_buf_init(&txt, 65536);
	if (msv_dkim_dns_txt(&txt, selector, domain, record)) {
		msv_buf_free(&txt);
		cli_err("cannot format the DNS record");
		return EX_SOFTWARE;
	}
	if (json) {
		cJSON *o = cJSON_CreateObject();
		if (key_file)
			cJSON_AddStringToObject(o, "key_file", key_file);
		cJSON_AddStringToObject(o, "algo", msv_dkim_algo_name(algo));
		cJSON_AddNumberToObject(o, "bits", bits);
		cJSON_AddStringToObject(o, "selector", selector);
		cJSON_AddStringToObject(o, "domain", domain);
		char name[600];
		snprintf(name, sizeof(name), "%s._domainkey.%s", selector, domain);
		cJSON_AddStringToObject(o, "name", name);
		cJSON_AddStringToObject(o, "record", record);
		txt.data[--txt.len] = '\0'; /* no newline inside JSON */
		cJSON_AddStringToObject(o, "txt", txt.data);
		print_json(o);
	} else {
		fputs(txt.data, stdout);
	}
	msv_buf_free(&txt);
	return fflush(stdout) ? EX_IOERR : 0;
}

static int cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{"algo", required_argument, NULL, O_ALGO},     {"bits", required_argument, NULL, O_BITS},
		{"selector", required_argument, NULL, O_SELECTOR}, {"domain", required_argument, NULL, O_DOMAIN},
		{"out", required_argument, NULL, O_OUT},       {"force", no_argument, NULL, O_FORCE},
		{"json", no_argument, NULL, O_JSON},           {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	msv_dkim_algo algo = MSV_DKIM_ALGO_AUTO;
	const char *selector = NULL, *domain = NULL, *out = NULL, *bits_s = NULL;
	int force = 0, json = 0, c;
	unsigned bits = 0;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(keygen_help, stdout); return EX_OK;
		case O_ALGO:
			if (msv_dkim_algo_parse(optarg, &algo))
				return cli_usage("dkim keygen", "bad --algo '%s': expected ed25519 or rsa", optarg);
			break;
		case O_BITS: {
			char *end;
			errno = 0;
			long v = strtol(optarg, &end, 10);
			if (!*optarg || *end || errno || v < 1024 || v > 16384)
				return cli_usage("dkim keygen", "bad --bits '%s': expected 1024..16384", optarg);
			bits = (unsigned)v;
			bits_s = optarg;
			break;
		}
		case O_SELECTOR: selector = optarg; break;
		case O_DOMAIN: domain = optarg; break;
		case O_OUT: out = optarg; break;
		case O_FORCE: force = 1; break;
		case O_JSON: json = 1; break;
		case ':': return cli_usage("dkim keygen", "%s needs an argument", argv[optind - 1]);
		default: return cli_usage("dkim keygen", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage("dkim keygen", "unexpected argument '%s'", argv[optind]);
	if (algo == MSV_DKIM_ALGO_AUTO)
		return cli_usage("dkim keygen", "%s", "--algo ed25519 or --algo rsa is required");
	if (!selector || !domain || !out)
		return cli_usage("dkim keygen", "%s", "--selector, --domain and --out are required");
	if (bits_s && algo != MSV_DKIM_RSA_SHA256)
		return cli_usage("dkim keygen", "%s", "--bits applies to RSA keys only");
	msv_buf probe;
	msv_buf_init(&probe, 1024);
	int names_ok = !msv_dkim_dns_txt(&probe, selector, domain, "");
	msv_buf_free(&probe);
	if (!names_ok)
		return cli_usage("dkim keygen", "%s", "--selector and --domain must be DNS names (letters, digits, '-', '.')");
	if (algo == MSV_DKIM_RSA_SHA256 && !bits)
		bits = 2048;
	if (algo == MSV_DKIM_RSA_SHA256 && bits < 2048)
		cli_err("warning: a %u-bit RSA key is weak; use 2048 bits or more (RFC 8301)", bits);

	msv_buf pem, record;
	msv_buf_init(&pem, 1 << 20);
	msv_buf_init(&record, 1 << 16);
	msv_error err;
	msv_error_clear(&err);
	int rc = 0;
	if (msv_dkim_keygen(algo, bits, &pem, &record, &err)) {
		cli_err("%s", err.message);
		rc = EX_SOFTWARE;
	}
	if (!rc)
		rc = write_key_file(out, pem.data, pem.len, force);
	msv_buf_free_secret(&pem);
	if (!rc)
		rc = print_record(selector, domain, algo, algo == MSV_DKIM_ED25519_SHA256 ? 256 : bits, record.data,
		                  out, json);
	msv_buf_free(&record);
	return rc;
}

/* ---- sign ---- */

static int load_signer(msv_dkim_signer **out, const msv_dkim_options *o, const char *path)
{
	/* The library reads the key itself and wipes what it read; only
	 * "cannot open" is told apart here, for its own exit code. */
	FILE *f = fopen(path, "rb");
	if (!f) {
		cli_err("cannot open key file %s: %s", path, strerror(errno));
		return EX_NOINPUT;
	}
	fclose(f);
	msv_error err;
	msv_error_clear(&err);
	msv_result r = msv_dkim_signer_load(out, o, path, &err);
	if (r) {
		cli_err("%s", err.message);
		return r == MSV_E_NOMEM ? EX_OSERR : EX_CONFIG;
	}
	if (msv_dkim_signer_warnings(*out) & MSV_DKIM_WARN_SHORT_KEY)
		cli_err("warning: %s is a %u-bit RSA key; use 2048 bits or more (RFC 8301)", path,
		        msv_dkim_signer_key_bits(*out));
	return 0;
}

typedef struct sign_args {
	const char *keys[KEYS_MAX], *selectors[KEYS_MAX], *domains[KEYS_MAX];
	size_t nkeys, nsel, ndom;
	msv_dkim_options o;
	int64_t t;
	const char *message;
	int sig_only, json;
} sign_args;

static int sign_parse(sign_args *a, int argc, char **argv, int record_mode)
{
	static const struct option opts[] = {
		{"key", required_argument, NULL, O_KEY},
		{"selector", required_argument, NULL, O_SELECTOR},
		{"domain", required_argument, NULL, O_DOMAIN},
		{"algo", required_argument, NULL, O_ALGO},
		{"headers", required_argument, NULL, O_HEADERS},
		{"no-oversign", no_argument, NULL, O_NO_OVERSIGN},
		{"canon", required_argument, NULL, O_CANON},
		{"identity", required_argument, NULL, O_IDENTITY},
		{"expire", required_argument, NULL, O_EXPIRE},
		{"body-length", no_argument, NULL, O_BODY_LENGTH},
		{"time", required_argument, NULL, O_TIME},
		{"message", required_argument, NULL, O_MESSAGE},
		{"signature-only", no_argument, NULL, O_SIG_ONLY},
		{"json", no_argument, NULL, O_JSON},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *sub = record_mode ? "dkim record" : "dkim sign";
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (record_mode && c != O_KEY && c != O_SELECTOR && c != O_DOMAIN && c != O_JSON && c != 'h' &&
		    c != ':' && c != '?')
			return cli_usage(sub, "option '%s' does not apply to record", argv[optind - 1]);
		switch (c) {
		case 'h': fputs(record_mode ? record_help : sign_help, stdout); return -1;
		case O_KEY:
			if (a->nkeys == KEYS_MAX)
				return cli_usage(sub, "at most %d --key", KEYS_MAX);
			a->keys[a->nkeys++] = optarg;
			break;
		case O_SELECTOR:
			if (a->nsel == KEYS_MAX)
				return cli_usage(sub, "at most %d --selector", KEYS_MAX);
			a->selectors[a->nsel++] = optarg;
			break;
		case O_DOMAIN:
			if (a->ndom == KEYS_MAX)
				return cli_usage(sub, "at most %d --domain", KEYS_MAX);
			a->domains[a->ndom++] = optarg;
			break;
		case O_ALGO:
			if (msv_dkim_algo_parse(optarg, &a->o.algo))
				return cli_usage(sub, "bad --algo '%s': expected rsa or ed25519", optarg);
			break;
		case O_HEADERS: a->o.headers = optarg; break;
		case O_NO_OVERSIGN: a->o.no_oversign = 1; break;
		case O_CANON:
			if (msv_dkim_canon_parse(optarg, &a->o.header_canon, &a->o.body_canon))
				return cli_usage(sub, "bad --canon '%s': expected HEADER/BODY, each relaxed or simple "
				                        "(e.g. relaxed/relaxed)", optarg);
			break;
		case O_IDENTITY: a->o.identity = optarg; break;
		case O_EXPIRE: {
			int64_t v;
			if (parse_time(optarg, &v) || v > ((int64_t)1 << 40))
				return cli_usage(sub, "bad --expire '%s': expected seconds > 0", optarg);
			a->o.expire_seconds = v;
			break;
		}
		case O_BODY_LENGTH: a->o.body_length = 1; break;
		case O_TIME:
			if (parse_time(optarg, &a->t))
				return cli_usage(sub, "bad --time '%s': expected seconds since the epoch", optarg);
			break;
		case O_MESSAGE: a->message = optarg; break;
		case O_SIG_ONLY: a->sig_only = 1; break;
		case O_JSON: a->json = 1; break;
		case ':': return cli_usage(sub, "%s needs an argument", argv[optind - 1]);
		default: return cli_usage(sub, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage(sub, "unexpected argument '%s'", argv[optind]);
	if (!a->nkeys || !a->nsel || !a->ndom)
		return cli_usage(sub, "%s", "--key, --selector and --domain are required");
	if (record_mode && a->nkeys > 1)
		return cli_usage(sub, "%s", "one --key at a time");
	if ((a->nsel != 1 && a->nsel != a->nkeys) || (a->ndom != 1 && a->ndom != a->nkeys))
		return cli_usage(sub, "%s", "give --selector and --domain once, or once per --key");
	if (a->o.algo != MSV_DKIM_ALGO_AUTO && a->nkeys > 1)
		return cli_usage(sub, "%s", "--algo applies to a single --key");
	return 0;
}

static int cmd_sign(int argc, char **argv)
{
	sign_args a;
	memset(&a, 0, sizeof(a));
	msv_dkim_options init = MSV_DKIM_OPTIONS_INIT;
	a.o = init;
	int rc = sign_parse(&a, argc, argv, 0);
	if (rc)
		return rc < 0 ? EX_OK : rc;
	msv_dkim_signer *signers[KEYS_MAX] = {NULL};
	for (size_t i = 0; !rc && i < a.nkeys; i++) {
		msv_dkim_options o = a.o;
		o.selector = a.selectors[a.nsel == 1 ? 0 : i];
		o.domain = a.domains[a.ndom == 1 ? 0 : i];
		rc = load_signer(&signers[i], &o, a.keys[i]);
	}
	char *msg = NULL;
	size_t len = 0;
	if (!rc)
		rc = cli_read_file(a.message ? a.message : "-", MESSAGE_MAX, &msg, &len, "message");
	msv_buf out;
	msv_buf_init(&out, MESSAGE_MAX * 2 + (size_t)MSV_DKIM_HEADER_MAX * KEYS_MAX);
	msv_error err;
	msv_error_clear(&err);
	if (!rc) {
		msv_result r = a.sig_only || a.json ? msv_dkim_sign_multi(signers, a.nkeys, msg, len, a.t, &out, &err)
		                                    : msv_dkim_sign_message(signers, a.nkeys, msg, len, a.t, &out, &err);
		if (r) {
			cli_err("cannot sign: %s", err.message);
			rc = r == MSV_E_NOMEM ? EX_OSERR : r == MSV_E_SYSTEM ? EX_SOFTWARE : EX_DATAERR;
		}
	}
	if (!rc && a.json) {
		cJSON *root = cJSON_CreateObject();
		cJSON *sigs = cJSON_AddArrayToObject(root, "signatures");
		cJSON *warn = cJSON_AddArrayToObject(root, "warnings");
		/* out holds one field per signer, in order: each starts at a line
		 * that begins "DKIM-Signature:". */
		const char *p = out.data, *end = out.data + out.len;
		for (size_t i = 0; i < a.nkeys; i++) {
			const char *next = p;
			do {
				const char *nl = memchr(next, '\n', (size_t)(end - next));
				next = nl ? nl + 1 : end;
			} while (next < end && (*next == ' ' || *next == '\t'));
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "algo", msv_dkim_algo_name(msv_dkim_signer_algo(signers[i])));
			cJSON_AddNumberToObject(o, "key_bits", msv_dkim_signer_key_bits(signers[i]));
			cJSON_AddStringToObject(o, "domain", a.domains[a.ndom == 1 ? 0 : i]);
			cJSON_AddStringToObject(o, "selector", a.selectors[a.nsel == 1 ? 0 : i]);
			char *h = cJSON_malloc((size_t)(next - p) + 1);
			if (h) {
				memcpy(h, p, (size_t)(next - p));
				h[next - p] = '\0';
				cJSON_AddStringToObject(o, "header", h);
				cJSON_free(h);
			}
			cJSON_AddItemToArray(sigs, o);
			if (msv_dkim_signer_warnings(signers[i]) & MSV_DKIM_WARN_SHORT_KEY) {
				char w[200];
				snprintf(w, sizeof(w), "%s: RSA key of %u bits; use 2048 or more", a.keys[i],
				         msv_dkim_signer_key_bits(signers[i]));
				cJSON_AddItemToArray(warn, cJSON_CreateString(w));
			}
			p = next;
		}
		print_json(root);
		if (fflush(stdout))
			rc = EX_IOERR;
	} else if (!rc) {
		rc = write_all(stdout, out.data, out.len);
	}
	msv_buf_free(&out);
	msv_free(msg);
	for (size_t i = 0; i < a.nkeys; i++)
		msv_dkim_signer_free(signers[i]);
	return rc;
}

static int cmd_record(int argc, char **argv)
{
	sign_args a;
	memset(&a, 0, sizeof(a));
	msv_dkim_options init = MSV_DKIM_OPTIONS_INIT;
	a.o = init;
	int rc = sign_parse(&a, argc, argv, 1);
	if (rc)
		return rc < 0 ? EX_OK : rc;
	a.o.selector = a.selectors[0];
	a.o.domain = a.domains[0];
	msv_dkim_signer *s = NULL;
	rc = load_signer(&s, &a.o, a.keys[0]);
	if (rc)
		return rc;
	msv_buf rec;
	msv_buf_init(&rec, 65536);
	if (msv_dkim_signer_record(s, &rec)) {
		cli_err("cannot format the key record");
		rc = EX_SOFTWARE;
	} else {
		rc = print_record(a.o.selector, a.o.domain, msv_dkim_signer_algo(s), msv_dkim_signer_key_bits(s),
		                  rec.data, NULL, a.json);
	}
	msv_buf_free(&rec);
	msv_dkim_signer_free(s);
	return rc;
}

/* ---- verify ---- */

#define VERIFY_KEYS_MAX 16

typedef struct verify_args {
	const char *files[VERIFY_KEYS_MAX];
	int is_record[VERIFY_KEYS_MAX];
	size_t nf;
	const char *message;
	int any, json;
	int64_t now;
} verify_args;

/* 0 to go on, -1 after --help, else the usage error's exit code. */
static int verify_parse(verify_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{"key-record", required_argument, NULL, O_KEY_RECORD},
		{"public-key", required_argument, NULL, O_PUBLIC_KEY},
		{"any", no_argument, NULL, O_ANY},
		{"time", required_argument, NULL, O_TIME},
		{"message", required_argument, NULL, O_MESSAGE},
		{"json", no_argument, NULL, O_JSON},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(verify_help, stdout); return -1;
		case O_KEY_RECORD:
		case O_PUBLIC_KEY:
			if (a->nf == VERIFY_KEYS_MAX)
				return cli_usage("dkim verify", "%s", "at most 16 keys");
			a->is_record[a->nf] = c == O_KEY_RECORD;
			a->files[a->nf++] = optarg;
			break;
		case O_ANY: a->any = 1; break;
		case O_TIME:
			if (parse_time(optarg, &a->now))
				return cli_usage("dkim verify", "bad --time '%s': expected seconds since the epoch", optarg);
			break;
		case O_MESSAGE: a->message = optarg; break;
		case O_JSON: a->json = 1; break;
		case ':': return cli_usage("dkim verify", "%s needs an argument", argv[optind - 1]);
		default: return cli_usage("dkim verify", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage("dkim verify", "unexpected argument '%s'", argv[optind]);
	if (!a->nf)
		return cli_usage("dkim verify", "%s", "give --key-record FILE or --public-key FILE");
	return 0;
}

/* Loads the keys of --key-record and --public-key into keys[]; 0 or an
 * EX_* code after printing why. */
static int verify_load_keys(const verify_args *a, msv_dkim_key **keys)
{
	msv_error err;
	msv_error_clear(&err);
	for (size_t i = 0; i < a->nf; i++) {
		char *data = NULL;
		size_t len = 0;
		int rc = read_key_file(a->files[i], &data, &len,
		                       a->is_record[i] ? "key record" : "public key");
		if (rc)
			return rc;
		msv_result r = a->is_record[i] ? msv_dkim_key_from_record(&keys[i], data, len, &err)
		                               : msv_dkim_key_from_pem(&keys[i], data, len, &err);
		msv_wipe(data, len);
		msv_free(data);
		if (r) {
			cli_err("%s: %s", a->files[i], err.message);
			return r == MSV_E_NOMEM ? EX_OSERR : EX_CONFIG;
		}
	}
	return 0;
}

static void verify_print_json(const msv_dkim_result *res, size_t n, int ok)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "result", !n ? "none" : ok ? "pass" : "fail");
	cJSON *list = cJSON_AddArrayToObject(root, "signatures");
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "index", (double)(i + 1));
		cJSON_AddStringToObject(o, "status", msv_dkim_status_name(res[i].status));
		cJSON_AddBoolToObject(o, "pass", res[i].status == MSV_DKIM_PASS);
		cJSON_AddStringToObject(o, "domain", res[i].domain);
		cJSON_AddStringToObject(o, "selector", res[i].selector);
		cJSON_AddStringToObject(o, "algo", res[i].algo);
		cJSON_AddStringToObject(o, "canon", res[i].canon);
		if (res[i].timestamp >= 0)
			cJSON_AddNumberToObject(o, "timestamp", (double)res[i].timestamp);
		else
			cJSON_AddNullToObject(o, "timestamp");
		if (res[i].expires >= 0)
			cJSON_AddNumberToObject(o, "expires", (double)res[i].expires);
		else
			cJSON_AddNullToObject(o, "expires");
		if (res[i].reason[0])
			cJSON_AddStringToObject(o, "reason", res[i].reason);
		else
			cJSON_AddNullToObject(o, "reason");
		cJSON_AddItemToArray(list, o);
	}
	print_json(root);
}

static void verify_print_text(const msv_dkim_result *res, size_t n)
{
	if (!n)
		printf("no DKIM-Signature field: the message is not signed\n");
	for (size_t i = 0; i < n; i++) {
		printf("signature %zu: %s d=%s s=%s a=%s c=%s", i + 1,
		       res[i].status == MSV_DKIM_PASS ? "pass" : "fail", res[i].domain, res[i].selector,
		       res[i].algo, res[i].canon);
		if (res[i].status != MSV_DKIM_PASS)
			printf(" (%s: %s)", msv_dkim_status_name(res[i].status), res[i].reason);
		putchar('\n');
	}
}

/* Prints the results; 0 when they pass (all, or one with --any), else
 * EXIT_VERIFY_FAILED, or EX_IOERR when stdout fails. */
static int verify_report(const verify_args *a, const msv_dkim_result *res, size_t n)
{
	size_t passed = 0;
	for (size_t i = 0; i < n; i++)
		passed += res[i].status == MSV_DKIM_PASS;
	int ok = n && (a->any ? passed > 0 : passed == n);
	if (a->json)
		verify_print_json(res, n, ok);
	else
		verify_print_text(res, n);
	if (fflush(stdout))
		return EX_IOERR;
	return ok ? 0 : EXIT_VERIFY_FAILED;
}

static int cmd_verify(int argc, char **argv)
{
	verify_args a;
	memset(&a, 0, sizeof(a));
	int rc = verify_parse(&a, argc, argv);
	if (rc)
		return rc < 0 ? EX_OK : rc;
	msv_dkim_key *keys[VERIFY_KEYS_MAX] = {NULL};
	rc = verify_load_keys(&a, keys);
	char *msg = NULL;
	size_t len = 0;
	if (!rc)
		rc = cli_read_file(a.message ? a.message : "-", MESSAGE_MAX, &msg, &len, "message");
	msv_dkim_result *res = NULL;
	size_t n = 0;
	if (!rc) {
		msv_dkim_verify_options vo = MSV_DKIM_VERIFY_OPTIONS_INIT;
		vo.keys = (const msv_dkim_key *const *)keys;
		vo.nkeys = a.nf;
		vo.now = a.now;
		msv_error err;
		msv_result r = msv_dkim_verify(&vo, msg, len, &res, &n, &err);
		if (r) {
			cli_err("cannot verify: %s", err.message);
			rc = r == MSV_E_NOMEM ? EX_OSERR : EX_DATAERR;
		}
	}
	if (!rc)
		rc = verify_report(&a, res, n);
	msv_free(res);
	msv_free(msg);
	for (size_t i = 0; i < a.nf; i++)
		msv_dkim_key_free(keys[i]);
	return rc;
}

int cmd_dkim(int argc, char **argv)
{
	if (argc < 2) {
		fputs(dkim_help, stderr);
		return EX_USAGE;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
		fputs(dkim_help, stdout);
		return EX_OK;
	}
	if (!strcmp(sub, "keygen"))
		return cmd_keygen(argc - 1, argv + 1);
	if (!strcmp(sub, "sign"))
		return cmd_sign(argc - 1, argv + 1);
	if (!strcmp(sub, "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (!strcmp(sub, "record"))
		return cmd_record(argc - 1, argv + 1);
	cli_err("unknown dkim command '%s' (see 'missive dkim --help')", sub);
	return EX_USAGE;
}
