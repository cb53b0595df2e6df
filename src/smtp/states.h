/* Session states of the SMTP engine.  One X-macro list makes the enum
 * and the names table so they cannot drift apart (as libESMTP does). */
#ifndef MSV_SMTP_STATES_H
#define MSV_SMTP_STATES_H

#define MSV_SMTP_STATES(X)                                                 \
	X(GREETING)  /* connected, waiting for the 220 */                  \
	X(EHLO)      /* EHLO sent */                                       \
	X(HELO)      /* EHLO refused, HELO sent */                         \
	X(STARTTLS)  /* STARTTLS sent */                                   \
	X(TLS)       /* 220 to STARTTLS: the driver does the handshake */  \
	X(AUTH)      /* AUTH exchange in progress */                       \
	X(READY)     /* idle, between transactions */                      \
	X(ENVELOPE)  /* MAIL, RCPT, DATA sent; replies outstanding */      \
	X(BODY)      /* the caller is handing over message bytes */        \
	X(DATA_END)  /* end of data sent, final reply outstanding */       \
	X(TXN_DONE)  /* transaction result ready for the caller */         \
	X(RSET)                                                            \
	X(NOOP)                                                            \
	X(QUIT)                                                            \
	X(CLOSED)                                                          \
	X(FAILED)

typedef enum msv_smtp_state {
#define MSV__STATE_ENUM(name) ST_##name,
	MSV_SMTP_STATES(MSV__STATE_ENUM)
#undef MSV__STATE_ENUM
} msv_smtp_state;

#endif
