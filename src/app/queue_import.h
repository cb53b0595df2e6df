/* `missive queue import`'s reader: the JSON Lines that `missive queue
 * export` writes, one record at a time, checked field by field into the
 * rows msv_queue_import() writes.  The input is hostile like any other
 * (a file from another host, edited by hand): a record with a missing or
 * malformed field, or a number that is not a whole number in range, is
 * refused by name, never stored altered. */
#ifndef MSV_APP_QUEUE_IMPORT_H
#define MSV_APP_QUEUE_IMPORT_H

#include "missive/queue.h"

typedef struct app_import app_import;

msv_result app_import_new(app_import **out, msv_error *err);
/* One line (without its newline; empty lines are skipped).  MSV_OK, or
 * MSV_E_BAD_MESSAGE with err naming what is wrong (MSV_E_NOMEM). */
msv_result app_import_line(app_import *im, const char *line, size_t len, msv_error *err);
/* What was read, for msv_queue_import(); valid until app_import_free. */
void app_import_set(const app_import *im, msv_queue_import_set *set);
void app_import_free(app_import *im);

#endif
