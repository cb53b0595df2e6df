/* Our MIME parser's view of a message, as JSON, for tests/integration/
 * test_mime.py (which compares it with Python's email package).  A test
 * program, not part of the CLI contract.
 *
 *   test_dump                 self-check (run by ctest): build, parse, dump
 *   test_dump --json FILE     the parsed tree of FILE
 *   test_dump --decode        header values on stdin, each ended by a NUL,
 *                             decoded (RFC 2047) onto stdout, each ended
 *                             by a NUL, so any octet survives */
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "missive/mime.h"

#define MAX_NODES 4096
#define MAX_HEADERS 65536

static void json_str(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void lower_span(char *dst, size_t dstsz, msv_mime_span s)
{
	size_t n = s.len < dstsz - 1 ? s.len : dstsz - 1;
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)(s.p[i] >= 'A' && s.p[i] <= 'Z' ? s.p[i] + 32 : s.p[i]);
	dst[n] = '\0';
}

static void dump_header(FILE *f, const msv_mime_tree *t, const msv_mime_node *n,
                        const char *name, const char *key)
{
	const msv_mime_header *h = msv_mime_header_get(t, n, name);
	if (!h)
		return;
	msv_buf b;
	msv_buf_init(&b, 1 << 20);
	msv_error err;
	if (msv_mime_decode_header(&b, h->value.p, h->value.len, &err) == MSV_OK) {
		fprintf(f, ",\"%s\":", key);
		json_str(f, b.data ? b.data : "", b.len);
	}
	msv_buf_free(&b);
}

static int is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The display name of a From field's first address (phrase "<"): atoms,
 * quoted strings unescaped, encoded words decoded by the library; white
 * space between two encoded words dropped (RFC 2047 6.2), any other run
 * of it one space (RFC 5322 3.2.2).  How a reader sees what the builder
 * wrote; 0 when there is a display name. */
static int phrase_decode(msv_buf *out, const char *p, size_t n)
{
	size_t i = 0;
	int prev = 0; /* 0 none, 1 plain, 2 encoded word */
	while (i < n) {
		int ws = 0;
		while (i < n && is_wsp(p[i]))
			i++, ws = 1;
		if (i >= n || p[i] == '<')
			break;
		msv_error err;
		size_t mark = out->len;
		if (prev && ws && msv_buf_addc(out, ' '))
			return -1;
		if (p[i] == '"') {
			for (i++; i < n && p[i] != '"'; i++) {
				if (p[i] == '\\' && i + 1 < n)
					i++;
				else if (p[i] == '\r' || p[i] == '\n')
					continue; /* unfolding */
				if (msv_buf_addc(out, p[i]))
					return -1;
			}
			i++;
			prev = 1;
			continue;
		}
		size_t w0 = i;
		while (i < n && !is_wsp(p[i]) && p[i] != '<' && p[i] != '"')
			i++;
		int ew = i - w0 >= 4 && !strncmp(p + w0, "=?", 2) && !strncmp(p + i - 2, "?=", 2);
		if (ew && prev == 2)
			out->len = mark; /* the space between encoded words goes */
		if (ew ? msv_mime_decode_header(out, p + w0, i - w0, &err)
		       : msv_buf_add(out, p + w0, i - w0))
			return -1;
		prev = ew ? 2 : 1;
	}
	return prev ? 0 : -1;
}

static void dump_from_name(FILE *f, const msv_mime_tree *t, const msv_mime_node *n)
{
	const msv_mime_header *h = msv_mime_header_get(t, n, "From");
	if (!h)
		return;
	msv_buf b;
	msv_buf_init(&b, 1 << 20);
	if (!phrase_decode(&b, h->value.p, h->value.len)) {
		fputs(",\"from_name\":", f);
		json_str(f, b.data ? b.data : "", b.len);
	}
	msv_buf_free(&b);
}

static void dump_param(FILE *f, const msv_mime_tree *t, const msv_mime_node *n, const char *hname,
                       const char *param, const char *key)
{
	const msv_mime_header *h = msv_mime_header_get(t, n, hname);
	if (!h)
		return;
	msv_buf b;
	msv_buf_init(&b, 1 << 20);
	msv_error err;
	int found = 0;
	if (msv_mime_param(&b, &found, h->value.p, h->value.len, param, &err) == MSV_OK && found) {
		fprintf(f, ",\"%s\":", key);
		json_str(f, b.data ? b.data : "", b.len);
	}
	msv_buf_free(&b);
}

static void dump_node(FILE *f, const msv_mime_tree *t, long idx)
{
	const msv_mime_node *n = &t->nodes[idx];
	char type[128], sub[128];
	lower_span(type, sizeof(type), n->type);
	lower_span(sub, sizeof(sub), n->subtype);
	fprintf(f, "{\"type\":\"%s/%s\"", type, sub);
	if (n->depth == 0) {
		dump_header(f, t, n, "Subject", "subject");
		dump_header(f, t, n, "From", "from");
		dump_from_name(f, t, n);
		dump_header(f, t, n, "To", "to");
		dump_header(f, t, n, "Cc", "cc");
	}
	dump_param(f, t, n, "Content-Disposition", "filename", "filename");
	dump_param(f, t, n, "Content-Type", "name", "name");
	dump_param(f, t, n, "Content-Type", "charset", "charset");
	dump_header(f, t, n, "Content-ID", "cid");
	fprintf(f, ",\"flags\":%u", n->flags);
	if (n->first_child < 0 || strcmp(type, "multipart")) {
		msv_buf b;
		msv_buf_init(&b, (size_t)1 << 31);
		msv_error err;
		if (msv_mime_decode_body(&b, n, &err) == MSV_OK) {
			unsigned char md[SHA256_DIGEST_LENGTH];
			SHA256((const unsigned char *)(b.data ? b.data : ""), b.len, md);
			fprintf(f, ",\"size\":%zu,\"sha256\":\"", b.len);
			for (size_t i = 0; i < sizeof(md); i++)
				fprintf(f, "%02x", md[i]);
			fputc('"', f);
			/* The same with CRLF folded to LF (text compared across decoders). */
			size_t o = 0;
			for (size_t i = 0; i < b.len; i++)
				if (!(b.data[i] == '\r' && i + 1 < b.len && b.data[i + 1] == '\n'))
					b.data[o++] = b.data[i];
			SHA256((const unsigned char *)(b.data ? b.data : ""), o, md);
			fputs(",\"sha256_lf\":\"", f);
			for (size_t i = 0; i < sizeof(md); i++)
				fprintf(f, "%02x", md[i]);
			fputc('"', f);
		}
		msv_buf_free(&b);
	}
	fputs(",\"children\":[", f);
	for (long c = n->first_child, k = 0; c >= 0; c = t->nodes[c].next, k++) {
		if (k)
			fputc(',', f);
		dump_node(f, t, c);
	}
	fputs("]}", f);
}

static int read_all(FILE *in, msv_buf *b)
{
	char tmp[65536];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), in)) > 0)
		if (msv_buf_add(b, tmp, n))
			return -1;
	return 0;
}

static msv_mime_header headers[MAX_HEADERS];
static msv_mime_node nodes[MAX_NODES];

static int dump_file(const char *path)
{
	FILE *in = fopen(path, "rb");
	if (!in) {
		perror(path);
		return 2;
	}
	msv_buf b;
	msv_buf_init(&b, (size_t)1 << 31);
	int rc = read_all(in, &b);
	fclose(in);
	if (rc)
		return 2;
	msv_mime_tree t = {headers, MAX_HEADERS, 0, nodes, MAX_NODES, 0, 0};
	msv_error err;
	msv_result r = msv_mime_parse(&t, b.data ? b.data : "", b.len, &err);
	if (r) {
		printf("{\"error\":");
		json_str(stdout, err.message, strlen(err.message));
		printf("}\n");
	} else {
		dump_node(stdout, &t, 0);
		fputc('\n', stdout);
	}
	msv_buf_free(&b);
	return 0;
}

static int decode_stdin(void)
{
	msv_buf in;
	msv_buf_init(&in, (size_t)1 << 28);
	if (read_all(stdin, &in))
		return 2;
	size_t i = 0;
	while (i < in.len) {
		const char *s = in.data + i;
		size_t n = strnlen(s, in.len - i);
		msv_buf out;
		msv_buf_init(&out, (size_t)1 << 24);
		msv_error err;
		if (msv_mime_decode_header(&out, s, n, &err))
			return 2;
		fwrite(out.data ? out.data : "", 1, out.len, stdout);
		fputc('\0', stdout);
		msv_buf_free(&out);
		i += n + 1;
	}
	msv_buf_free(&in);
	return 0;
}

/* The self-check: a message with every kind of part survives a build
 * and a parse. */
static int self_check(void)
{
	msv_mime_msg *m;
	if (msv_mime_new(&m, NULL))
		return 1;
	static const char att[] = "\0\1\2binary\r\n\xff";
	msv_mime_part_options po = MSV_MIME_PART_OPTIONS_INIT;
	po.filename = "d\xc3\xa9j\xc3\xa0 vu.bin";
	msv_mime_part_options pi = MSV_MIME_PART_OPTIONS_INIT;
	pi.content_type = "image/png";
	pi.content_id = "logo@example.com";
	if (msv_mime_add_address(m, MSV_MIME_FROM, "A", "a@example.com") ||
	    msv_mime_add_address(m, MSV_MIME_TO, NULL, "b@example.com") ||
	    msv_mime_set_subject(m, "self check \xe2\x9c\x93") || msv_mime_set_text(m, "t\n", 2) ||
	    msv_mime_set_html(m, "<img src=\"cid:logo@example.com\">", 32) ||
	    msv_mime_attach_data(m, att, sizeof(att) - 1, MSV_MIME_BORROW, &po) ||
	    msv_mime_attach_data(m, "PNG", 3, MSV_MIME_COPY, &pi) || msv_mime_prepare(m, 0)) {
		fprintf(stderr, "build: %s\n", msv_mime_error(m)->message);
		msv_mime_free(m);
		return 1;
	}
	msv_buf b;
	msv_buf_init(&b, 1 << 20);
	int rc = msv_mime_write_buf(m, &b) != MSV_OK;
	msv_mime_free(m);
	msv_mime_tree t = {headers, MAX_HEADERS, 0, nodes, MAX_NODES, 0, 0};
	msv_error err;
	if (!rc && msv_mime_parse(&t, b.data, b.len, &err)) {
		fprintf(stderr, "parse: %s\n", err.message);
		rc = 1;
	}
	/* mixed(related(alternative(text, html), png), attachment) = 7 nodes */
	if (!rc && t.nnodes != 7) {
		fprintf(stderr, "expected 7 nodes, got %zu\n", t.nnodes);
		rc = 1;
	}
	if (!rc)
		dump_node(stdout, &t, 0);
	fputc('\n', stdout);
	msv_buf_free(&b);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--json"))
		return dump_file(argv[2]);
	if (argc == 2 && !strcmp(argv[1], "--decode"))
		return decode_stdin();
	return self_check();
}
