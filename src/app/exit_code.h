/* sysexits.h codes for error values: what each main() returns.  One
 * table, as msmtp's smtp_exitcode, used by missive and missived alike. */
#ifndef MSV_APP_EXIT_CODE_H
#define MSV_APP_EXIT_CODE_H

#include <sysexits.h>

#include "missive/core.h"

int app_exit_code(const msv_error *e);

#endif
