/*
 * The audit line format (docs/audit.md): building one event line,
 * its hash, and parsing it back; reading a trail file a line at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "audit/chain_int.h"
#include "core/core_int.h"

const char msv__audit_zero_hash[MSV__AUDIT_HEX + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

int msv__audit_hash(const unsigned char *key, size_t keylen, const char *data, size_t len,
                    char hex[MSV__AUDIT_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (key) {
		if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)data, len, md, &mdlen))
			return -1;
	} else if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL)) {
		return -1;
	}
	if (mdlen != 32)
		return -1;
	for (unsigned i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[MSV__AUDIT_HEX] = '\0';
	return 0;
}

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF)
		need = 1;
	else if (c >= 0xE0 && c <= 0xEF)
		need = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
	else if (c >= 0xF0 && c <= 0xF4)
		need = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
	else
		return 0;
	if (n < need + 1 || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i <= need; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return need + 1;
}

msv_result msv__audit_json_escape(msv_buf *out, const char *in, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)in;
	msv_result rc = MSV_OK;
	size_t i = 0;
	while (!rc && i < len) {
		size_t run = i;
		/* Plain printable ASCII goes in runs. */
		while (run < len && p[run] >= 0x20 && p[run] < 0x7F && p[run] != '"' && p[run] != '\\')
			run++;
		if (run > i) {
			rc = msv_buf_add(out, in + i, run - i);
			i = run;
			continue;
		}
		unsigned char c = p[i];
		if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};
			rc = msv_buf_add(out, esc, 2);
			i++;
		} else if (c < 0x20 || c == 0x7F) {
			char esc[6] = {'\\', 'u', '0', '0', digits[c >> 4], digits[c & 15]};
			rc = msv_buf_add(out, esc, 6);
			i++;
		} else {
			size_t n = utf8_len(p + i, len - i);
			/* Not UTF-8: U+FFFD, so that every line is valid JSON text. */
			rc = n ? msv_buf_add(out, in + i, n) : msv_buf_add(out, "\xEF\xBF\xBD", 3);
			i += n ? n : 1;
		}
	}
	return rc;
}

void msv__audit_ts(char out[25], int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	char sec[21];
	strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
	/* strftime's output is 19 characters for years 1000-9999. */
	memcpy(out, sec, 19);
	out[19] = '.';
	out[20] = (char)('0' + (ms % 1000) / 100);
	out[21] = (char)('0' + (ms % 100) / 10);
	out[22] = (char)('0' + ms % 10);
	out[23] = 'Z';
	out[24] = '\0';
}

int msv__audit_uuidv7(char out[37], int64_t ms)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char b[16];
	if (msv__random_bytes(b + 6, 10))
		return -1;
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)((uint64_t)ms >> (40 - 8 * i));
	b[6] = (unsigned char)(0x70 | (b[6] & 0x0F)); /* version 7 */
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3F)); /* RFC 9562 variant */
	char *o = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*o++ = '-';
		*o++ = digits[b[i] >> 4];
		*o++ = digits[b[i] & 15];
	}
	*o = '\0';
	return 0;
}

static const char *actor_kind(msv_audit_actor a)
{
	switch (a) {
	case MSV_AUDIT_KEY: return "key";
	case MSV_AUDIT_UID: return "uid";
	case MSV_AUDIT_OPERATOR: return "operator";
	default: return "system";
	}
}

/* s as a JSON string, or null. */
static msv_result add_str(msv_buf *out, const char *s, size_t len)
{
	if (!s)
		return msv_buf_addstr(out, "null");
	msv_result rc = msv_buf_addc(out, '"');
	if (!rc)
		rc = msv__audit_json_escape(out, s, len);
	return rc ? rc : msv_buf_addc(out, '"');
}

/* sep"key":value, value a JSON string (escaped, not masked) or null. */
static msv_result add_member(msv_buf *out, const char *sep, const char *key, const char *val)
{
	msv_result rc = msv_buf_addf(out, "%s\"%s\":", sep, key);
	return rc ? rc : add_str(out, val, val ? strlen(val) : 0);
}

/* A masked string as a JSON string. */
static msv_result add_masked(const msv__audit_ctx *c, msv_buf *out, const char *s, msv_buf *tmp)
{
	msv_buf_reset(tmp);
	msv_result rc = msv_mask(c->masker, s, strlen(s), tmp);
	return rc ? rc : add_str(out, tmp->data ? tmp->data : "", tmp->len);
}

static msv_result add_payload(const msv__audit_ctx *c, const msv_audit_event *ev, msv_buf *out,
                              msv_buf *tmp)
{
	msv_result rc = msv_buf_addstr(out, ",\"masked_payload\":{");
	for (size_t i = 0; !rc && i < ev->nfields; i++) {
		const msv_audit_field *f = &ev->fields[i];
		const char *key = f->key ? f->key : "";
		if (i)
			rc = msv_buf_addc(out, ',');
		if (!rc)
			rc = add_str(out, key, strlen(key));
		if (!rc)
			rc = msv_buf_addc(out, ':');
		if (rc)
			break;
		if (f->kind == MSV_AUDIT_INT)
			rc = msv_buf_addf(out, "%lld", f->num);
		else if (f->kind == MSV_AUDIT_BOOL)
			rc = msv_buf_addstr(out, f->num ? "true" : "false");
		else if (!f->str || f->kind == MSV_AUDIT_RAW)
			rc = add_str(out, f->str, f->str ? strlen(f->str) : 0);
		else
			rc = add_masked(c, out, f->str, tmp);
	}
	return rc ? rc : msv_buf_addc(out, '}');
}

static msv_result add_actor(const msv__audit_ctx *c, const msv_audit_event *ev, msv_buf *out,
                            msv_buf *tmp)
{
	msv_result rc = msv_buf_addf(out, ",\"actor\":{\"kind\":\"%s\"", actor_kind(ev->actor));
	if (!rc && ev->actor != MSV_AUDIT_SYSTEM) {
		rc = msv_buf_addstr(out, ",\"id\":");
		if (!rc)
			rc = add_masked(c, out, ev->actor_id ? ev->actor_id : "", tmp);
	}
	return rc ? rc : msv_buf_addc(out, '}');
}

msv_result msv__audit_format(const msv__audit_ctx *c, uint64_t seq, int64_t ts_ms,
                             const char *prev, const msv_audit_event *ev, msv_buf *out,
                             char hash[MSV__AUDIT_HEX + 1])
{
	char id[37], ts[25];
	if (!ev || !ev->type || !*ev->type || (ev->nfields && !ev->fields))
		return MSV_E_INVALID;
	if (msv__audit_uuidv7(id, ts_ms))
		return MSV_E_SYSTEM;
	msv__audit_ts(ts, ts_ms);
	msv_buf tmp;
	msv_buf_init(&tmp, MSV__AUDIT_LINE_MAX);
	size_t start = out->len;
	msv_result rc = msv_buf_addf(out, "{\"seq\":%llu,\"event_id\":\"%s\",\"ts\":\"%s\"",
	                             (unsigned long long)seq, id, ts);
	if (!rc)
		rc = add_member(out, ",", "type", ev->type);
	if (!rc && c->node)
		rc = add_member(out, ",", "node", c->node);
	if (!rc)
		rc = add_actor(c, ev, out, &tmp);
	if (!rc)
		rc = add_member(out, ",", "actor_ip", ev->actor_ip);
	if (!rc)
		rc = add_member(out, ",", "qid", ev->qid);
	if (!rc)
		rc = add_payload(c, ev, out, &tmp);
	if (!rc)
		rc = msv_buf_addf(out, ",\"prev\":\"%s\"", prev);
	msv_buf_free(&tmp);
	if (!rc && msv__audit_hash(c->key, c->keylen, out->data + start, out->len - start, hash))
		rc = MSV_E_SYSTEM;
	if (!rc)
		rc = msv_buf_addf(out, ",\"hash\":\"%s\"}\n", hash);
	if (!rc && out->len - start - 1 > MSV__AUDIT_LINE_MAX)
		rc = MSV_E_TOO_LARGE;
	return rc;
}

/* ---- parsing ---- */

static int is_hex64(const char *p)
{
	for (int i = 0; i < MSV__AUDIT_HEX; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

/* n decimal digits at p, or -1. */
static long digits_at(const char *p, int n)
{
	long v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(long y, long m, long d)
{
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (int64_t)era * 146097 + doe - 719468;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" into ms; 0 or -1. */
static int parse_ts(const char *p, int64_t *ms)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	for (int i = 0; i < 24; i++)
		if (shape[i] == 'd' ? (p[i] < '0' || p[i] > '9') : p[i] != shape[i])
			return -1;
	long y = digits_at(p, 4), mo = digits_at(p + 5, 2), d = digits_at(p + 8, 2);
	long h = digits_at(p + 11, 2), mi = digits_at(p + 14, 2), s = digits_at(p + 17, 2);
	long f = digits_at(p + 20, 3);
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return -1;
	*ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + s * 1000 + f;
	return 0;
}

static int expect(const char *line, size_t len, size_t *at, const char *lit)
{
	size_t n = strlen(lit);
	if (len - *at < n || memcmp(line + *at, lit, n))
		return -1;
	*at += n;
	return 0;
}

/* The JSON string body at line+*at up to its closing quote; 0 or -1. */
static int string_end(const char *line, size_t len, size_t *at)
{
	while (*at < len && line[*at] != '"')
		*at += line[*at] == '\\' ? 2 : 1;
	return *at < len ? 0 : -1;
}

static int parse_head(const char *line, size_t len, size_t *at, msv__audit_line *out)
{
	if (expect(line, len, at, "{\"seq\":"))
		return -1;
	uint64_t seq = 0;
	size_t d0 = *at;
	while (*at < len && line[*at] >= '0' && line[*at] <= '9') {
		unsigned v = (unsigned)(line[*at] - '0');
		if (seq > (UINT64_MAX - v) / 10)
			return -1;
		seq = seq * 10 + v;
		(*at)++;
	}
	/* seq starts at 1 and has no leading zeros: one spelling per number. */
	if (*at == d0 || line[d0] == '0' || expect(line, len, at, ",\"event_id\":\""))
		return -1;
	out->seq = seq;
	if (len - *at < 36)
		return -1;
	for (int i = 0; i < 36; i++) {
		char c = line[*at + (size_t)i];
		int dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return -1;
	}
	*at += 36;
	if (expect(line, len, at, "\",\"ts\":\"") || len - *at < 24 ||
	    parse_ts(line + *at, &out->ts_ms))
		return -1;
	*at += 24;
	if (expect(line, len, at, "\",\"type\":\""))
		return -1;
	out->type = line + *at;
	if (string_end(line, len, at))
		return -1;
	out->type_len = (size_t)(line + *at - out->type);
	(*at)++;
	return expect(line, len, at, ",");
}

int msv__audit_parse_line(const char *line, size_t len, msv__audit_line *out)
{
	memset(out, 0, sizeof(*out));
	if (len > MSV__AUDIT_LINE_MAX || len < MSV__AUDIT_HASH_SUFFIX + MSV__AUDIT_PREV_SUFFIX)
		return -1;
	/* Escaped JSON has no raw control characters; their presence means
	 * the line was damaged (or is two lines run together). */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20)
			return -1;
	size_t at = 0;
	if (parse_head(line, len, &at, out))
		return -1;
	size_t covered = len - MSV__AUDIT_HASH_SUFFIX;
	const char *h = line + covered, *p = line + covered - MSV__AUDIT_PREV_SUFFIX;
	if (covered - MSV__AUDIT_PREV_SUFFIX < at || memcmp(h, ",\"hash\":\"", 9) ||
	    !is_hex64(h + 9) || memcmp(h + 9 + MSV__AUDIT_HEX, "\"}", 2) ||
	    memcmp(p, ",\"prev\":\"", 9) || !is_hex64(p + 9) || p[9 + MSV__AUDIT_HEX] != '"')
		return -1;
	out->prev = p + 9;
	out->hash = h + 9;
	out->covered = covered;
	return 0;
}

/* ---- reading files ---- */

void msv__audit_lines_init(msv__audit_lines *r, int fd, uint64_t offset)
{
	r->fd = fd;
	msv_buf_init(&r->buf, MSV__AUDIT_LINE_MAX + 65536);
	r->pos = 0;
	r->eof = 0;
	r->offset = offset;
}

void msv__audit_lines_free(msv__audit_lines *r)
{
	msv_buf_free(&r->buf);
}

/* Reads more into the buffer: 1 read something, 0 at end, -1 error. */
static int fill(msv__audit_lines *r)
{
	if (r->pos) {
		msv_buf_consume(&r->buf, r->pos);
		r->pos = 0;
	}
	if (r->buf.len > MSV__AUDIT_LINE_MAX) {
		errno = EFBIG;
		return -1;
	}
	if (msv_buf_reserve(&r->buf, 65536)) {
		errno = ENOMEM;
		return -1;
	}
	for (;;) {
		ssize_t n = read(r->fd, r->buf.data + r->buf.len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		r->buf.len += (size_t)n;
		r->buf.data[r->buf.len] = '\0';
		return n > 0;
	}
}

int msv__audit_lines_next(msv__audit_lines *r, const char **line, size_t *len)
{
	for (;;) {
		const char *start = r->buf.data ? r->buf.data + r->pos : NULL;
		size_t avail = r->buf.len - r->pos;
		const char *nl = start ? memchr(start, '\n', avail) : NULL;
		if (nl) {
			*line = start;
			*len = (size_t)(nl - start);
			r->pos += *len + 1;
			r->offset += *len + 1;
			return 1;
		}
		int got = r->eof ? 0 : fill(r);
		if (got < 0)
			return -1;
		if (got == 0) {
			/* Not sticky: a follower reads again later. */
			*line = avail ? r->buf.data + r->pos : NULL;
			*len = r->buf.len - r->pos;
			return 0;
		}
	}
}

/* pread of the last want bytes of a file of size size into b. */
static int read_end(int fd, uint64_t size, uint64_t want, msv_buf *b)
{
	msv_buf_reset(b);
	if (msv_buf_reserve(b, (size_t)want)) {
		errno = ENOMEM;
		return -1;
	}
	while (b->len < want) {
		ssize_t n = pread(fd, b->data + b->len, (size_t)want - b->len,
		                  (off_t)(size - want + b->len));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errno = n < 0 ? errno : EIO;
			return -1;
		}
		b->len += (size_t)n;
	}
	return 0;
}

int msv__audit_tail(int fd, uint64_t size, msv_buf *out, int *partial)
{
	msv_buf_reset(out);
	*partial = 0;
	if (size == 0)
		return 0;
	/* A partial line (a crash mid-write), the last whole line and the
	 * '\n' before it fit in the largest window; most tails need 64 KiB. */
	const uint64_t max = 2 * (uint64_t)MSV__AUDIT_LINE_MAX + 2;
	msv_buf b;
	msv_buf_init(&b, (size_t)max);
	int rc = 0;
	for (uint64_t window = 65536;; window *= 2) {
		uint64_t want = size < window ? size : window < max ? window : max;
		if ((rc = read_end(fd, size, want, &b)))
			break;
		size_t end = b.len;
		*partial = b.data[end - 1] != '\n';
		while (end > 0 && b.data[end - 1] != '\n')
			end--;
		size_t s = end ? end - 1 : 0;
		while (s > 0 && b.data[s - 1] != '\n')
			s--;
		/* The last whole line may start before the window: widen it. */
		int whole = want == size || (end > 0 && s > 0);
		if (!whole && want < max)
			continue;
		if (!whole) {
			errno = EFBIG;
			rc = -1;
		} else if (end > 0 && msv_buf_add(out, b.data + s, end - 1 - s)) {
			errno = ENOMEM;
			rc = -1;
		}
		break;
	}
	msv_buf_free(&b);
	return rc;
}

int msv__audit_file_last(const char *path, msv_buf *line, msv__audit_line *ev, int *bad)
{
	*bad = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	struct stat st;
	int partial, rc = fstat(fd, &st);
	if (!rc)
		rc = msv__audit_tail(fd, (uint64_t)st.st_size, line, &partial);
	int e = errno;
	close(fd);
	if (rc) {
		errno = e;
		return -1;
	}
	if (!line->len)
		return 0;
	if (msv__audit_parse_line(line->data, line->len, ev)) {
		*bad = 1;
		return 0;
	}
	return 1;
}
