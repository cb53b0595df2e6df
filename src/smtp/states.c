/*
 * The SMTP engine's state table: which call or reply may move a session
 * from which state to which.  engine.c decides the moves; set_state()
 * there asks this table before every one and fails the session on a move
 * the table does not list, so the table is the whole state machine a
 * reader has to check.
 *
 * The rows follow RFC 5321 4.3.2 (command-reply sequences), with RFC 3207
 * (STARTTLS), RFC 4954 (AUTH), RFC 2920 (PIPELINING) and RFC 3030 (BDAT)
 * where they add replies.  A reply class is the reply's first digit
 * (RFC 5321 4.2.1).  Three rules hold for every row and are not written
 * out:
 *   - staying in the same state is not a move, so always allowed (a 334
 *     keeps AUTH going, a pipelined RCPT reply keeps ENVELOPE);
 *   - any state may move to FAILED: a reply of a class the row does not
 *     list fails the session, as does 421 to any command but QUIT
 *     (RFC 5321 3.8), a malformed reply, a reply nobody asked for, or an
 *     error of the driver;
 *   - nothing leaves FAILED.
 */
#include "states.h"

#define M(st) (1u << ST_##st)
/* The same targets whatever the server's answer. */
#define ANY_REPLY(targets)                                                                   \
	[ON_2XX] = (targets), [ON_3XX] = (targets), [ON_4XX] = (targets), [ON_5XX] = (targets)

/* moves[from][trigger]: the states the trigger may lead to, besides
 * staying and FAILED. */
static const unsigned moves[ST_COUNT][ON_COUNT] = {
	/* CONNECTION ESTABLISHMENT  S: 220  E: 554.  Only 220 greets. */
	[ST_GREETING] = {[ON_2XX] = M(EHLO)},
	/* EHLO  S: 250  E: 502, 504, 550.  With the capabilities known:
	 * STARTTLS when TLS is due, else AUTH when credentials were given,
	 * else idle.  5yz: an old server that does not know EHLO, HELO
	 * instead (RFC 5321 3.2).  4yz fails. */
	[ST_EHLO] = {[ON_2XX] = M(STARTTLS) | M(AUTH) | M(READY), [ON_5XX] = M(HELO)},
	/* HELO  S: 250.  HELO gives no capabilities, so neither STARTTLS
	 * nor AUTH can follow it: a session that needs them fails. */
	[ST_HELO] = {[ON_2XX] = M(READY)},
	/* STARTTLS  S: 220  E: 454, 501 (RFC 3207 4).  Only 220 leads to
	 * the handshake. */
	[ST_STARTTLS] = {[ON_2XX] = M(TLS)},
	/* No reply is read during the handshake (bytes buffered after the
	 * 220 fail the session).  msv_smtp_tls_started(): EHLO again
	 * (RFC 3207 4.2). */
	[ST_TLS] = {[ON_CALL] = M(EHLO)},
	/* AUTH  S: 235  I: 334 (stays: the next step)  E: 432, 454, 500,
	 * 534, 535, 538 (RFC 4954 6). */
	[ST_AUTH] = {[ON_2XX] = M(READY)},
	/* Nothing outstanding.  msv_smtp_begin(), _rset(), _noop(), _quit(). */
	[ST_READY] = {[ON_CALL] = M(ENVELOPE) | M(RSET) | M(NOOP) | M(QUIT)},
	/* The replies to RSET (sent before MAIL when the last transaction
	 * may still be open), MAIL, each RCPT and DATA, and maybe to the
	 * previous message's "." (RFC 2920 overlap), in order:
	 *   RSET  S: 250                      stays, or MAIL follows
	 *   MAIL  S: 250  E: 451, 452, 455, 503, 550, 552, 553, 555
	 *         refused without PIPELINING: TXN_DONE
	 *   RCPT  S: 250, 251  E: 450, 451, 452, 455, 503, 550-553, 555
	 *         the last one with BDAT: BODY when someone was accepted,
	 *         else TXN_DONE; without PIPELINING nobody accepted: TXN_DONE
	 *   DATA  I: 354  E: 451, 503, 554
	 *         354: BODY, or DATA_END when everyone was refused (end the
	 *         data at once, RFC 2920 3.1); anything else: TXN_DONE
	 * A 3yz to MAIL or RCPT is a refusal like a 5yz. */
	[ST_ENVELOPE] = {[ON_2XX] = M(BODY) | M(TXN_DONE),
	                 [ON_3XX] = M(BODY) | M(DATA_END) | M(TXN_DONE),
	                 [ON_4XX] = M(BODY) | M(TXN_DONE),
	                 [ON_5XX] = M(BODY) | M(TXN_DONE)},
	/* The caller gives the body; msv_smtp_body_end() ends it.  Replies
	 * that arrive meanwhile (the previous message's ".", a BDAT chunk)
	 * are recorded and move nothing. */
	[ST_BODY] = {[ON_CALL] = M(DATA_END)},
	/* "."  S: 250  E: 450, 451, 452, 550, 552, 554; BDAT LAST the same
	 * (RFC 3030 4): any answer ends the transaction.  Answers to the
	 * previous message's "." or an earlier BDAT chunk stay.
	 * msv_smtp_begin() while "." is unanswered: the next envelope. */
	[ST_DATA_END] = {[ON_CALL] = M(ENVELOPE), ANY_REPLY(M(TXN_DONE))},
	/* msv_smtp_step() hands the result over and goes idle. */
	[ST_TXN_DONE] = {[ON_CALL] = M(READY)},
	/* RSET  S: 250. */
	[ST_RSET] = {[ON_2XX] = M(READY)},
	/* NOOP  S: 250. */
	[ST_NOOP] = {[ON_2XX] = M(READY)},
	/* QUIT  S: 221.  Whatever the answer, or the server hanging up
	 * (msv_smtp_feed() of 0 bytes), the session is over. */
	[ST_QUIT] = {[ON_CALL] = M(CLOSED), ANY_REPLY(M(CLOSED))},
	/* Over: a reply now answers nobody. */
	[ST_CLOSED] = {0},
	[ST_FAILED] = {0},
};

static const char *const state_names[] = {
#define MSV__STATE_NAME(name) #name,
	MSV_SMTP_STATES(MSV__STATE_NAME)
#undef MSV__STATE_NAME
};

_Static_assert(sizeof(state_names) / sizeof(state_names[0]) == ST_COUNT,
               "one name per state");
_Static_assert(ST_COUNT <= 32, "moves[] holds a state set in an unsigned");
/* msv_smtp_new() starts from calloc'ed memory. */
_Static_assert(ST_GREETING == 0, "a new session starts in GREETING");

const char *msv__smtp_state_str(msv_smtp_state st)
{
	return (unsigned)st < ST_COUNT ? state_names[st] : "?";
}

const char *msv__smtp_trigger_str(msv_smtp_trigger t)
{
	static const char *const names[ON_COUNT] = {"call", "2xx", "3xx", "4xx", "5xx"};
	return (unsigned)t < ON_COUNT ? names[t] : "?";
}

msv_smtp_trigger msv__smtp_trigger_of(int code)
{
	switch (code / 100) {
	case 2: return ON_2XX;
	case 3: return ON_3XX;
	case 4: return ON_4XX;
	default: return ON_5XX; /* the parser lets nothing else through */
	}
}

int msv__smtp_move_allowed(msv_smtp_state from, msv_smtp_trigger trigger, msv_smtp_state to)
{
	if ((unsigned)from >= ST_COUNT || (unsigned)to >= ST_COUNT || (unsigned)trigger >= ON_COUNT)
		return 0;
	if (from == ST_FAILED)
		return to == ST_FAILED;
	if (from == to || to == ST_FAILED)
		return 1;
	return (moves[from][trigger] & (1u << to)) != 0;
}

unsigned msv__smtp_moves(msv_smtp_state from, msv_smtp_trigger trigger)
{
	if ((unsigned)from >= ST_COUNT || (unsigned)trigger >= ON_COUNT)
		return 0;
	return moves[from][trigger];
}
