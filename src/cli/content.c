/* The content flags shared by `missive build` and `missive send`
 * (cli_content_*, cli.h): from flags to a checked MIME message. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "missive/mime.h"

/* Text and HTML bodies are read whole: they are edited by people, not
 * streamed.  Attachments have no limit: the library streams them. */
#define BODY_FILE_MAX ((size_t)64 << 20)

int cli_content_init(cli_content *c, int argc)
{
	memset(c, 0, sizeof(*c));
	size_t n = (size_t)(argc > 0 ? argc : 1);
	c->items = msv_calloc(n, sizeof(*c->items));
	if (!c->items) {
		cli_err("out of memory");
		return EX_OSERR;
	}
	return 0;
}

void cli_content_free(cli_content *c)
{
	msv_free(c->items);
	c->items = NULL;
}

int cli_content_add_addr(cli_content *c, int kind, const char *addr)
{
	c->items[c->nitems].opt = kind;
	c->items[c->nitems].arg = addr;
	c->nitems++;
	return 0;
}

int cli_content_opt(cli_content *c, int opt, const char *arg)
{
	switch (opt) {
	case CLI_O_FROM_NAME: c->from_name = arg; break;
	case CLI_O_SUBJECT: c->subject = arg; break;
	case CLI_O_TEXT: c->text_file = arg; break;
	case CLI_O_TEXT_BODY: c->text_body = arg; break;
	case CLI_O_HTML: c->html_file = arg; break;
	case CLI_O_MESSAGE_ID: c->message_id = arg; break;
	case CLI_O_DATE: c->date = arg; break;
	case CLI_O_REPLY_TO:
	case CLI_O_ATTACH:
	case CLI_O_INLINE:
	case CLI_O_HEADER:
		c->items[c->nitems].opt = opt;
		c->items[c->nitems].arg = arg;
		c->nitems++;
		break;
	default:
		return 1;
	}
	c->given = 1;
	return 0;
}

/* Which content flag names are missing; NULL if complete. */
const char *cli_content_missing(const cli_content *c)
{
	if (!c->subject)
		return "--subject is required";
	if (!c->text_file && !c->text_body)
		return "one of --text or --text-body is required";
	if (c->text_file && c->text_body)
		return "give only one of --text and --text-body";
	for (size_t i = 0; i < c->nitems; i++)
		if (c->items[i].opt == CLI_O_INLINE && !c->html_file)
			return "--inline needs --html (inline parts are referenced from the HTML)";
	return NULL;
}

/* Prints the library's sentence, prefixed by the flag it came from, and
 * maps it to an exit code: bad data 65, a file 66, the system 71. */
static int lib_err(msv_mime_msg *m, const char *flag)
{
	const msv_error *e = msv_mime_error(m);
	cli_err("%s: %s", flag, e->message);
	switch (e->code) {
	case MSV_E_NO_INPUT: return EX_NOINPUT;
	case MSV_E_SYSTEM: /* no random bytes */
	case MSV_E_NOMEM: return EX_OSERR;
	default: return EX_DATAERR;
	}
}

static int read_body(const char *path, const char *what, char **data, size_t *len)
{
	return cli_read_file(path, BODY_FILE_MAX, data, len, what);
}

/* FILE[:TYPE]: the part after the last ':' is a type when it looks like
 * one and the whole argument is not itself an existing file (asked only
 * then: a system call less for the usual plain path). */
static void split_attach(const char *arg, char *path, size_t pathsz, const char **type)
{
	*type = NULL;
	snprintf(path, pathsz, "%s", arg);
	char *colon = strrchr(path, ':');
	if (!colon || colon == path || !strchr(colon + 1, '/'))
		return;
	if (access(arg, F_OK) == 0)
		return;
	*colon = '\0';
	*type = arg + (colon - path) + 1;
}

int cli_content_build(const cli_content *c, const char *from, msv_mime_msg **out)
{
	msv_mime_msg *m = NULL;
	*out = NULL;
	if (msv_mime_new(&m, NULL)) {
		cli_err("out of memory");
		return EX_OSERR;
	}
	int rc = 0;
	if (msv_mime_add_address(m, MSV_MIME_FROM, c->from_name, from))
		rc = lib_err(m, "--from");
	for (size_t i = 0; !rc && i < c->nitems; i++) {
		const cli_content_item *it = &c->items[i];
		msv_mime_field f;
		const char *flag;
		switch (it->opt) {
		case CLI_ADDR_TO: f = MSV_MIME_TO; flag = "--to"; break;
		case CLI_ADDR_CC: f = MSV_MIME_CC; flag = "--cc"; break;
		case CLI_ADDR_BCC: f = MSV_MIME_BCC; flag = "--bcc"; break;
		case CLI_O_REPLY_TO: f = MSV_MIME_REPLY_TO; flag = "--reply-to"; break;
		default: continue;
		}
		if (msv_mime_add_address(m, f, NULL, it->arg))
			rc = lib_err(m, flag);
	}
	if (!rc && c->subject && msv_mime_set_subject(m, c->subject))
		rc = lib_err(m, "--subject");
	if (!rc && c->date && msv_mime_set_date(m, c->date))
		rc = lib_err(m, "--date");
	if (!rc && c->message_id && msv_mime_set_message_id(m, c->message_id))
		rc = lib_err(m, "--message-id");
	if (!rc && c->text_body && msv_mime_set_text(m, c->text_body, strlen(c->text_body)))
		rc = lib_err(m, "--text-body");
	if (!rc && c->text_file) {
		char *data = NULL;
		size_t len;
		rc = read_body(c->text_file, "--text file", &data, &len);
		if (!rc) {
			if (msv_mime_set_text(m, data, len))
				rc = lib_err(m, "--text");
			msv_free(data);
		}
	}
	if (!rc && c->html_file) {
		char *data;
		size_t len;
		rc = read_body(c->html_file, "--html file", &data, &len);
		if (!rc) {
			if (msv_mime_set_html(m, data, len))
				rc = lib_err(m, "--html");
			msv_free(data);
		}
	}
	for (size_t i = 0; !rc && i < c->nitems; i++) {
		const cli_content_item *it = &c->items[i];
		if (it->opt == CLI_O_HEADER) {
			const char *colon = strchr(it->arg, ':');
			char name[128];
			if (!colon || colon == it->arg || (size_t)(colon - it->arg) >= sizeof(name)) {
				cli_err("--header '%.80s': expected 'Name: value'", it->arg);
				rc = EX_DATAERR;
				break;
			}
			memcpy(name, it->arg, (size_t)(colon - it->arg));
			name[colon - it->arg] = '\0';
			const char *v = colon + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			if (msv_mime_add_header(m, name, v))
				rc = lib_err(m, "--header");
		} else if (it->opt == CLI_O_ATTACH) {
			char path[4096];
			const char *type;
			split_attach(it->arg, path, sizeof(path), &type);
			msv_mime_part_options po = MSV_MIME_PART_OPTIONS_INIT;
			po.content_type = type;
			if (msv_mime_attach_file(m, path, &po))
				rc = lib_err(m, "--attach");
		} else if (it->opt == CLI_O_INLINE) {
			char path[4096];
			snprintf(path, sizeof(path), "%s", it->arg);
			char *colon = strrchr(path, ':');
			if (!colon || colon == path || !colon[1]) {
				cli_err("--inline '%.200s': expected FILE:CID", it->arg);
				rc = EX_USAGE;
				break;
			}
			*colon = '\0';
			msv_mime_part_options po = MSV_MIME_PART_OPTIONS_INIT;
			po.content_id = colon + 1;
			if (msv_mime_attach_file(m, path, &po))
				rc = lib_err(m, "--inline");
		}
	}
	if (rc) {
		msv_mime_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

int cli_content_prepare(msv_mime_msg *m, unsigned transport, int for_send)
{
	if (!msv_mime_prepare(m, transport))
		return 0;
	const msv_error *e = msv_mime_error(m);
	switch (e->code) {
	case MSV_E_NO_INPUT:
		cli_err("%s", e->message);
		return EX_NOINPUT;
	case MSV_E_SYSTEM: /* no random bytes */
	case MSV_E_NOMEM:
		cli_err("%s", e->message);
		return EX_OSERR;
	case MSV_E_NO_SMTPUTF8:
		/* send: the server lacks SMTPUTF8, a permanent failure as in
		 * the engine; build: the caller did not say the transport has it. */
		cli_err("%s%s", e->message, for_send ? "; the server does not offer it"
		                                     : " (add --smtputf8 if the transport has it)");
		return for_send ? EX_UNAVAILABLE : EX_DATAERR;
	default:
		cli_err("%s", e->message);
		return EX_DATAERR;
	}
}
