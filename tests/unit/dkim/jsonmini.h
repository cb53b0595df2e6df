/* A small JSON reader for the corpus files the DKIM tests replay
 * (canon/cases.json, vectors.json).  Test code only: the library has
 * no JSON dependency.  Parses into a tree of nodes; strings are decoded
 * (\uXXXX to UTF-8, surrogate pairs included) and may hold NUL bytes. */
#ifndef TEST_JSONMINI_H
#define TEST_JSONMINI_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { JN_NULL, JN_BOOL, JN_NUM, JN_STR, JN_ARR, JN_OBJ } jn_type;

typedef struct jn {
	jn_type type;
	double num;
	int boolean;
	char *str; /* JN_STR: decoded bytes, NUL-terminated */
	size_t len;
	char *key; /* member name inside an object */
	struct jn *kids;
	size_t nkids;
} jn;

typedef struct {
	const char *p, *e;
} jn_cur;

static void jn_ws(jn_cur *c)
{
	while (c->p < c->e && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static void jn_put_utf8(char *d, size_t *n, unsigned long u)
{
	if (u < 0x80) {
		d[(*n)++] = (char)u;
	} else if (u < 0x800) {
		d[(*n)++] = (char)(0xC0 | (u >> 6));
		d[(*n)++] = (char)(0x80 | (u & 0x3F));
	} else if (u < 0x10000) {
		d[(*n)++] = (char)(0xE0 | (u >> 12));
		d[(*n)++] = (char)(0x80 | ((u >> 6) & 0x3F));
		d[(*n)++] = (char)(0x80 | (u & 0x3F));
	} else {
		d[(*n)++] = (char)(0xF0 | (u >> 18));
		d[(*n)++] = (char)(0x80 | ((u >> 12) & 0x3F));
		d[(*n)++] = (char)(0x80 | ((u >> 6) & 0x3F));
		d[(*n)++] = (char)(0x80 | (u & 0x3F));
	}
}

static int jn_hex4(jn_cur *c, unsigned long *u)
{
	if (c->e - c->p < 4)
		return -1;
	*u = 0;
	for (int i = 0; i < 4; i++) {
		char h = *c->p++;
		*u <<= 4;
		if (h >= '0' && h <= '9')
			*u |= (unsigned long)(h - '0');
		else if (h >= 'a' && h <= 'f')
			*u |= (unsigned long)(h - 'a' + 10);
		else if (h >= 'A' && h <= 'F')
			*u |= (unsigned long)(h - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

static int jn_string(jn_cur *c, char **out, size_t *len)
{
	if (c->p >= c->e || *c->p != '"')
		return -1;
	c->p++;
	char *d = malloc((size_t)(c->e - c->p) + 1);
	size_t n = 0;
	while (c->p < c->e && *c->p != '"') {
		char ch = *c->p++;
		if (ch != '\\') {
			d[n++] = ch;
			continue;
		}
		if (c->p >= c->e)
			break;
		ch = *c->p++;
		switch (ch) {
		case 'n': d[n++] = '\n'; break;
		case 'r': d[n++] = '\r'; break;
		case 't': d[n++] = '\t'; break;
		case 'b': d[n++] = '\b'; break;
		case 'f': d[n++] = '\f'; break;
		case 'u': {
			unsigned long u, lo;
			if (jn_hex4(c, &u))
				goto bad;
			if (u >= 0xD800 && u < 0xDC00 && c->e - c->p >= 6 && c->p[0] == '\\' && c->p[1] == 'u') {
				c->p += 2;
				if (jn_hex4(c, &lo))
					goto bad;
				u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
			}
			jn_put_utf8(d, &n, u);
			break;
		}
		default: d[n++] = ch; break;
		}
	}
	if (c->p >= c->e)
		goto bad;
	c->p++;
	d[n] = '\0';
	*out = d;
	*len = n;
	return 0;
bad:
	free(d);
	return -1;
}

static int jn_value(jn_cur *c, jn *v);

static int jn_push(jn *v, jn *kid)
{
	jn *k = realloc(v->kids, (v->nkids + 1) * sizeof(*k));
	if (!k)
		return -1;
	v->kids = k;
	v->kids[v->nkids++] = *kid;
	return 0;
}

static int jn_value(jn_cur *c, jn *v)
{
	memset(v, 0, sizeof(*v));
	jn_ws(c);
	if (c->p >= c->e)
		return -1;
	char ch = *c->p;
	if (ch == '"') {
		v->type = JN_STR;
		return jn_string(c, &v->str, &v->len);
	}
	if (ch == '{' || ch == '[') {
		v->type = ch == '{' ? JN_OBJ : JN_ARR;
		char close = ch == '{' ? '}' : ']';
		c->p++;
		jn_ws(c);
		if (c->p < c->e && *c->p == close) {
			c->p++;
			return 0;
		}
		for (;;) {
			jn kid;
			char *key = NULL;
			size_t kl;
			if (v->type == JN_OBJ) {
				jn_ws(c);
				if (jn_string(c, &key, &kl))
					return -1;
				jn_ws(c);
				if (c->p >= c->e || *c->p != ':')
					return -1;
				c->p++;
			}
			if (jn_value(c, &kid))
				return -1;
			kid.key = key;
			if (jn_push(v, &kid))
				return -1;
			jn_ws(c);
			if (c->p < c->e && *c->p == ',') {
				c->p++;
				continue;
			}
			if (c->p < c->e && *c->p == close) {
				c->p++;
				return 0;
			}
			return -1;
		}
	}
	if (!strncmp(c->p, "true", 4) || !strncmp(c->p, "false", 5)) {
		v->type = JN_BOOL;
		v->boolean = *c->p == 't';
		c->p += v->boolean ? 4 : 5;
		return 0;
	}
	if (!strncmp(c->p, "null", 4)) {
		v->type = JN_NULL;
		c->p += 4;
		return 0;
	}
	char *end;
	v->type = JN_NUM;
	v->num = strtod(c->p, &end);
	if (end == c->p)
		return -1;
	c->p = end;
	return 0;
}

static void jn_free(jn *v)
{
	for (size_t i = 0; i < v->nkids; i++) {
		free(v->kids[i].key);
		jn_free(&v->kids[i]);
	}
	free(v->kids);
	free(v->str);
}

/* Reads and parses a file; returns 0 or -1. */
static int jn_load(const char *path, jn *root)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = malloc((size_t)n + 1);
	size_t got = fread(buf, 1, (size_t)n, f);
	fclose(f);
	jn_cur c = {buf, buf + got};
	int r = jn_value(&c, root);
	free(buf);
	return r;
}

static const jn *jn_get(const jn *obj, const char *key)
{
	for (size_t i = 0; obj && i < obj->nkids; i++)
		if (obj->kids[i].key && !strcmp(obj->kids[i].key, key))
			return &obj->kids[i];
	return NULL;
}

#endif
