/* The smallest useful libmissive program: send a file as one message.
 *   cc send.c $(pkg-config --cflags --libs missive) -o send
 *   ./send HOST PORT FROM TO FILE        (plaintext: for a local relay only) */
#include <missive/smtp.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: %s HOST PORT FROM TO FILE\n", argv[0]);
		return 64;
	}
	FILE *f = fopen(argv[5], "rb");
	if (!f) {
		perror(argv[5]);
		return 66;
	}
	static char msg[1 << 20];
	size_t len = fread(msg, 1, sizeof(msg), f);
	fclose(f);

	msv_client_options o = MSV_CLIENT_OPTIONS_INIT;
	o.host = argv[1];
	o.port = (unsigned)atoi(argv[2]);
	o.smtp.tls = MSV_TLS_NONE;

	msv_body_info info;
	msv_smtp_body_scan(&info, msg, len, 998);
	const char *rcpt[] = {argv[4]};
	msv_envelope env = {.from = argv[3], .rcpt = rcpt, .nrcpt = 1,
	                    .size = info.size, .body_8bit = info.has_8bit};

	msv_client *c;
	msv_error err;
	if (msv_client_new(&c, &o, &err)) {
		fprintf(stderr, "%s\n", err.message);
		return 78;
	}
	const msv_smtp_txn *t = NULL;
	msv_result r = msv_client_connect(c);
	if (!r)
		r = msv_client_send(c, &env, msg, len, &t);
	if (r) {
		const msv_error *e = msv_client_error(c);
		fprintf(stderr, "%s (%s)\n", e->message, msv_class_name(e->cls));
	} else {
		printf("%d %s\n", t->data.code, t->data.text);
		msv_client_quit(c);
	}
	int rc = r ? (msv_client_error(c)->cls == MSV_CLASS_TEMPORARY ? 75 : 69) : 0;
	msv_client_free(c);
	return rc;
}
