/* What the library's other layers (the pool) need of the driver. */
#ifndef MSV_SMTP_CLIENT_H
#define MSV_SMTP_CLIENT_H

#include "tls.h"

/* msv_client_new() with a TLS context shared with other connections to
 * the same destination (NULL: a context of its own), so sessions resume. */
msv_result msv__client_new_shared(msv_client **out, const msv_client_options *opts, msv_tls_ctx *tls,
                                  msv_error *err);

#endif
