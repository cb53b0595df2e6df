/* Session states of the SMTP engine and the table of the moves between
 * them (states.c).  One X-macro list makes the enum and the names table
 * so they cannot drift apart (as libESMTP does).
 *
 * Internal to src/smtp; the unit tests include it to walk the table. */
#ifndef MSV_SMTP_STATES_H
#define MSV_SMTP_STATES_H

#include "missive/smtp.h"

#define MSV_SMTP_STATES(X)                                                 \
	X(GREETING)  /* connected, waiting for the 220 (first: calloc) */  \
	X(EHLO)      /* EHLO sent */                                       \
	X(HELO)      /* EHLO refused, HELO sent */                         \
	X(STARTTLS)  /* STARTTLS sent */                                   \
	X(TLS)       /* 220 to STARTTLS: the driver does the handshake */  \
	X(AUTH)      /* AUTH exchange in progress */                       \
	X(READY)     /* idle, between transactions */                      \
	X(ENVELOPE)  /* (RSET,) MAIL, RCPT, DATA sent; replies outstanding */ \
	X(BODY)      /* the caller is handing over message bytes */        \
	X(DATA_END)  /* end of data sent, final reply outstanding */       \
	X(TXN_DONE)  /* transaction result ready for the caller */         \
	X(RSET)      /* RSET asked for by the caller, reply outstanding */ \
	X(NOOP)      /* NOOP sent, reply outstanding */                    \
	X(QUIT)      /* QUIT sent, reply outstanding */                    \
	X(CLOSED)    /* QUIT answered or the server hung up after it */    \
	X(FAILED)    /* final: msv_smtp_error() says why */

typedef enum msv_smtp_state {
#define MSV__STATE_ENUM(name) ST_##name,
	MSV_SMTP_STATES(MSV__STATE_ENUM)
#undef MSV__STATE_ENUM
	ST_COUNT
} msv_smtp_state;

/* What makes a move: a call of the caller (msv_smtp_begin, _body_end,
 * _tls_started, _rset, _noop, _quit, _step, a close seen by _feed), or a
 * reply of one class (RFC 5321 4.2.1: the first digit). */
typedef enum msv_smtp_trigger {
	ON_CALL = 0,
	ON_2XX,
	ON_3XX,
	ON_4XX,
	ON_5XX,
	ON_COUNT
} msv_smtp_trigger;

/* "GREETING", ...; "?" for a value out of range. */
const char *msv__smtp_state_str(msv_smtp_state st);
const char *msv__smtp_trigger_str(msv_smtp_trigger t);
/* The trigger a reply code is: ON_2XX for 2yz and so on; codes the reply
 * parser lets through start with 2 to 5. */
msv_smtp_trigger msv__smtp_trigger_of(int code);
/* 1 when the table lets trigger move a session from `from` to `to`.
 * Staying put is always allowed (it is not a move); FAILED can be reached
 * from anywhere; nothing leaves FAILED. */
int msv__smtp_move_allowed(msv_smtp_state from, msv_smtp_trigger trigger, msv_smtp_state to);
/* The table's row: a set of (1u << state), staying and FAILED left out. */
unsigned msv__smtp_moves(msv_smtp_state from, msv_smtp_trigger trigger);

/* Tests only (the engine's own states are changed by the engine): asks
 * the engine's state setter for a move as the caller's trigger would.
 * Returns MSV_OK, or MSV_E_STATE after failing the session for an
 * illegal move. */
msv_result msv__smtp_force_state(msv_smtp *s, msv_smtp_state to);
/* Turns the from -> to trace of every move on or off (MSV_TRACE_INFO
 * lines "state A -> B (on 2xx)"); on by default in builds without NDEBUG. */
void msv__smtp_trace_states(msv_smtp *s, int on);

#endif
