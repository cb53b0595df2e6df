/* missive, as installed and run: the light program.  `missive sendmail`
 * hands the message to missived's socket itself, exactly as the sendmail
 * front end does (cmd_sendmail.c, core_exec.c), without loading OpenSSL
 * or SQLite; every other command, and --help, --version or none, is
 * missive-core's (main.c), which this execs with argv unchanged.  The
 * start-up of the fully linked program is paid only where it is needed
 * (docs/internals/cli.md). */
#include <string.h>

#include "core_exec.h"

int main(int argc, char **argv)
{
	/* MSV_CORE_FROM_SELF: from bindir, where this is installed. */
	static const cli_core_where where = {MSV_CORE_FROM_SELF, MSV_CORE_DIR};
	void *payload = (void *)&where;
	/* Called by the name sendmail, missive speaks sendmail(8), as
	 * missive-core's main() does. */
	const char *self = argc > 0 ? strrchr(argv[0], '/') : NULL;
	if (argc > 0 && !strcmp(self ? self + 1 : argv[0], "sendmail"))
		return cli_sendmail(argc, argv, cli_core_sendmail, payload);
	if (argc > 1 && !strcmp(argv[1], "sendmail"))
		return cli_sendmail(argc - 1, argv + 1, cli_core_sendmail, payload);
	return cli_core_exec(&where, argv);
}
