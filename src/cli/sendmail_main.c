/* missive-sendmail, installed as sendmail: the sendmail(8) front end, as
 * Postfix's sendmail is to postdrop.  It hands the message to missived's
 * submission socket and so links neither OpenSSL nor SQLite: loading them
 * would cost more than the hand-over (docs/internals/cli.md).  When
 * missived does not take the message, it execs missive-core with the
 * message as read, which writes the queue (core_exec.h). */
#include "core_exec.h"

int main(int argc, char **argv)
{
	/* MSV_CORE_FROM_SELF: from sbindir, where this is installed. */
	static const cli_core_where where = {MSV_CORE_FROM_SELF, MSV_CORE_DIR};
	return cli_sendmail(argc, argv, cli_core_sendmail, (void *)&where);
}
