/* libFuzzer target: the MIME parser.  Parses with small limits (the
 * first byte picks them), checks that every span lies in the input, that
 * the tree links are consistent, and decodes every header, parameter and
 * body without crashing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "missive/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void in_buf(const msv_mime_span *s, const char *b, size_t n)
{
	if (s->len && !(s->p >= b && s->p + s->len <= b + n))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	unsigned depth = (unsigned)(data[0] & 15) + 1;
	char *buf = msv_malloc(size - 1 ? size - 1 : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);
	size_t n = size - 1;
	msv_mime_header headers[256];
	msv_mime_node nodes[64];
	msv_mime_tree t = {headers, 256, 0, nodes, 64, 0, depth};
	msv_error err;
	msv_result r = msv_mime_parse(&t, buf, n, &err);
	if (r != MSV_OK && r != MSV_E_TOO_LARGE && r != MSV_E_BAD_MESSAGE)
		abort();
	if (r != MSV_OK)
		goto done;
	if (t.nnodes < 1 || t.nnodes > 64 || t.nheaders > 256)
		abort();
	msv_buf out;
	msv_buf_init(&out, (size_t)1 << 26);
	for (size_t i = 0; i < t.nnodes; i++) {
		const msv_mime_node *nd = &t.nodes[i];
		if (nd->depth > depth || (i && (nd->parent < 0 || (size_t)nd->parent >= i)))
			abort();
		if (nd->next >= 0 && ((size_t)nd->next <= i || (size_t)nd->next >= t.nnodes))
			abort();
		if (nd->header + nd->nheaders > t.nheaders)
			abort();
		in_buf(&nd->body, buf, n);
		in_buf(&nd->boundary, buf, n);
		msv_buf_reset(&out);
		if (msv_mime_decode_body(&out, nd, &err))
			abort();
		for (size_t h = 0; h < nd->nheaders; h++) {
			const msv_mime_header *hd = &t.headers[nd->header + h];
			if (!(hd->name.p >= buf && hd->name.p + hd->name.len <= buf + n) ||
			    !(hd->value.p >= buf && hd->value.p + hd->value.len <= buf + n))
				abort();
			msv_buf_reset(&out);
			if (msv_mime_decode_header(&out, hd->value.p, hd->value.len, &err))
				abort();
			int found;
			msv_buf_reset(&out);
			if (msv_mime_param(&out, &found, hd->value.p, hd->value.len, "filename", &err))
				abort();
		}
	}
	msv_buf_free(&out);
done:
	msv_free(buf);
	return 0;
}
