/*
 * Classifying one recipient: reason, hard/soft, status, and the rule that
 * decided (docs/dsn.md, "Rules").
 *
 * Order of the decision, first hit wins:
 *   1. not a failure: delivered / relayed / expanded actions; feedback
 *      and auto-replies are classified by the reader that found them;
 *   2. phrase rules on the diagnostic text (the table below, most
 *      specific first): servers say more in words than in status codes,
 *      and many put a generic code (5.0.0, 5.7.1, 5.5.0) on every
 *      refusal;
 *   3. the status code (RFC 3463 subject and detail);
 *   4. the SMTP command the failure followed (a refusal at MAIL FROM is
 *      about the sender: rejected);
 *   5. a delayed report with nothing else: expired when the report gave
 *      up, else onhold; a failure with nothing usable: undefined.
 *
 * Why this matters: the daemon suppresses an address on a hard bounce.
 * A wrong "hard" loses a working address for good; a wrong "soft" only
 * costs another attempt.  So only reasons that are about the address
 * itself are hard (the table's hard column), and a rule that is not sure
 * leaves the reason soft.
 */
#include <stdio.h>
#include <string.h>

#include "dsn/dsn_int.h"

int msv__dsn_reason_hard_col(msv_dsn_reason r);

/* ---- phrase rules ---- */

enum {
	P_ANY = 0,      /* any status class */
	P_PERM = 1,     /* only when the failure is permanent (5.x.x or 5xx) */
	P_TEMP = 2,     /* only when temporary */
	/* Weak: generic words that many refusals share.  Tried only after
	 * the status code, when the code says nothing specific. */
	P_WEAK = 4,
	/* "User unknown" phrases that Japanese carriers and filters also
	 * send in reply to DATA for a live mailbox (see msv__dsn_classify_rcpt). */
	P_FLIP = 8,
	/* A whole word: not inside a longer one ("virus" is not InterScan
	 * VirusWall's or Anti-Virus's: a product's name says nothing about
	 * the message).  Only for patterns without '*'. */
	P_WORD = 16,
};

typedef struct prule {
	msv_dsn_reason reason;
	const char *pat; /* lowercase; '*' matches up to 80 octets; ' ' one blank */
	unsigned when;
} prule;

#define R(x) MSV_DSN_R_##x

/* Most specific first.  A phrase belongs here when it names one reason
 * and no other: "user unknown", not "rejected".  Where two phrases could
 * both match, the one that says more comes first ("relay access denied"
 * before "access denied", "duplicate header 'dkim-signature'" before
 * "dkim"). */
static const prule rules[] = {
	/* Said outright, whatever else the text mentions (remedies naming
	 * SPF or DKIM follow some of these). */
	{R(SPAMDETECTED), "rejected due to spam classification", P_ANY},

	/* Malformed messages: before authentication (DKIM header names). */
	{R(NOTCOMPLIANTRFC), "duplicate header", P_ANY},
	{R(NOTCOMPLIANTRFC), "multiple addresses in from", P_ANY},
	{R(NOTCOMPLIANTRFC), "not rfc 5322 compliant", P_ANY},
	{R(NOTCOMPLIANTRFC), "not rfc5322 compliant", P_ANY},
	{R(NOTCOMPLIANTRFC), "multiple subject headers", P_ANY},
	{R(NOTCOMPLIANTRFC), "not rfc compliant", P_ANY},
	{R(NOTCOMPLIANTRFC), "rfc 5322", P_ANY},
	{R(NOTCOMPLIANTRFC), "rfc5322", P_ANY},
	{R(NOTCOMPLIANTRFC), "rfc 2822", P_ANY},
	{R(NOTCOMPLIANTRFC), "rfc2822", P_ANY},

	/* Authentication of the sender's domain. */
	{R(AUTHFAILURE), "dmarc", P_ANY},
	{R(AUTHFAILURE), "spf check", P_ANY},
	{R(AUTHFAILURE), "spf fail", P_ANY},
	{R(AUTHFAILURE), "spf validation", P_ANY},
	{R(AUTHFAILURE), "spf record", P_ANY},
	{R(AUTHFAILURE), "sender policy framework", P_ANY},
	{R(AUTHFAILURE), "dkim", P_ANY},
	{R(AUTHFAILURE), "unauthenticated email", P_ANY},
	{R(AUTHFAILURE), "is not authorized to send", P_ANY},
	{R(AUTHFAILURE), "not designated as permitted sender", P_ANY},
	{R(AUTHFAILURE), "authentication checks", P_ANY},
	{R(AUTHFAILURE), "does not have authentication information", P_ANY},

	/* Reverse DNS of the sending host. */
	{R(REQUIREPTR), "ptr record", P_ANY},
	{R(REQUIREPTR), "reverse dns", P_ANY},
	{R(REQUIREPTR), "rdns", P_ANY},
	{R(REQUIREPTR), "reverse lookup", P_ANY},
	{R(REQUIREPTR), "no ptr", P_ANY},
	{R(REQUIREPTR), "reverse hostname", P_ANY},
	{R(REQUIREPTR), "cannot find your hostname", P_ANY},
	{R(REQUIREPTR), "cannot find your reverse", P_ANY},
	{R(REQUIREPTR), "unverifyable sending ip", P_ANY},
	{R(REQUIREPTR), "unresolvable relay host name", P_ANY},
	{R(REQUIREPTR), "ip name lookup failed", P_ANY},
	{R(REQUIREPTR), "mismatches client ip", P_ANY},

	/* Virus before spam: a virus message also says "rejected". */
	{R(VIRUSDETECTED), "virus", P_WORD},
	{R(VIRUSDETECTED), "viruses", P_WORD},
	{R(VIRUSDETECTED), "malware", P_WORD},
	{R(VIRUSDETECTED), "infected", P_WORD},

	/* Relaying before "access denied". */
	{R(NORELAYING), "relay access denied", P_ANY},
	{R(NORELAYING), "relaying denied", P_ANY},
	{R(NORELAYING), "not permitted to relay", P_ANY},
	{R(NORELAYING), "relay not permitted", P_ANY},
	{R(NORELAYING), "unable to relay", P_ANY},
	{R(NORELAYING), "relay denied", P_ANY},
	{R(NORELAYING), "relaying not allowed", P_ANY},
	{R(NORELAYING), "we do not relay", P_ANY},
	{R(NORELAYING), "not allowed to relay", P_ANY},
	{R(NORELAYING), "not configured to relay", P_ANY},
	{R(NORELAYING), "list of allowed rcpthosts", P_ANY},
	{R(NORELAYING), "relay not allowed", P_ANY},
	{R(NORELAYING), "no relaying", P_ANY},
	{R(NORELAYING), "insecure mail relay", P_ANY},
	{R(NORELAYING), "address is not verified", P_ANY},

	/* Office 365 says this for an unknown recipient of a hosted domain. */
	{R(USERUNKNOWN), "recipient address rejected: access denied", P_ANY},
	{R(USERUNKNOWN), "inactive email address", P_ANY},

	{R(SUSPEND), "temporary locked", P_ANY},
	{R(SUSPEND), "temporarily locked", P_ANY},
	{R(SUSPEND), "recipient account is blocked", P_ANY},
	{R(SUSPEND), "disabled recipient", P_ANY},

	{R(BADREPUTATION), "ip reputation", P_ANY},
	{R(BADREPUTATION), "poor reputation", P_ANY},
	{R(BADREPUTATION), "bad reputation", P_ANY},
	{R(BADREPUTATION), "low reputation", P_ANY},
	{R(BADREPUTATION), "sender reputation", P_ANY},
	{R(BADREPUTATION), "temporarily deferred due to unexpected volume", P_ANY},

	{R(POLICYVIOLATION), "content presents a potential", P_ANY},
	{R(POLICYVIOLATION), "host network not allowed", P_ANY},

	{R(SECURITYERROR), "unauthenticated senders not allowed", P_ANY},
	{R(SECURITYERROR), "smtp authentication", P_ANY},
	{R(SECURITYERROR), "authentication required", P_ANY},
	{R(SECURITYERROR), "delivery not authorized", P_ANY},

	/* The sending host is on a list: before "spam" (spamhaus, spamcop). */
	{R(BLOCKED), "spamhaus", P_ANY},
	{R(BLOCKED), "spamcop", P_ANY},
	{R(BLOCKED), "blacklist", P_ANY},
	{R(BLOCKED), "blocklist", P_ANY},
	{R(BLOCKED), "black list", P_ANY},
	{R(BLOCKED), "block list", P_ANY},
	{R(BLOCKED), "dnsbl", P_ANY},
	{R(BLOCKED), "rbl", P_ANY},
	{R(BLOCKED), "sorbs", P_ANY},
	{R(BLOCKED), "please use the smtp server of your isp", P_ANY},
	{R(BLOCKED), "dynamic ip", P_ANY},
	{R(BLOCKED), "dial-up", P_ANY},
	{R(BLOCKED), "dialup", P_ANY},
	{R(BLOCKED), "residential", P_ANY},
	{R(BLOCKED), "client host rejected", P_ANY},
	{R(BLOCKED), "client host blocked", P_ANY},
	{R(BLOCKED), "blocked using", P_ANY},
	{R(BLOCKED), "which is an open relay", P_ANY},
	{R(BLOCKED), "blocked for abuse", P_ANY},
	{R(BLOCKED), "ip address is blocked", P_ANY},
	{R(BLOCKED), "invalid ip for sending", P_ANY},
	{R(BLOCKED), "banned sending ip", P_ANY},
	{R(BLOCKED), "my name was rejected", P_ANY},
	{R(BLOCKED), "refused to talk to me", P_ANY},
	{R(BLOCKED), "not accepting connections", P_ANY},
	{R(BLOCKED), "connection refused by", P_ANY},
	{R(BLOCKED), "messages from * weren't sent", P_ANY},
	{R(BLOCKED), "daily relay quota", P_ANY},
	{R(BLOCKED), "service refused", P_ANY},
	{R(BLOCKED), "has been blocked", P_ANY},
	{R(BLOCKED), "blocked by", P_ANY},
	{R(BLOCKED), "your ip", P_ANY},

	{R(SPAMDETECTED), "ofr_506", P_ANY}, /* Orange: "Mail rejete" for spam */
	{R(SPAMDETECTED), "spam", P_ANY},
	{R(SPAMDETECTED), "junk mail", P_ANY},
	{R(SPAMDETECTED), "bulk mail", P_ANY},
	{R(SPAMDETECTED), "unsolicited", P_ANY},
	{R(SPAMDETECTED), "message content rejected", P_ANY},
	{R(SPAMDETECTED), "content filter", P_ANY},

	/* The mailbox. */
	{R(EXCEEDLIMIT), "message too large for this recipient", P_ANY},
	{R(EXCEEDLIMIT), "message length exceeds administrative limit", P_ANY},
	{R(MAILBOXFULL), "mailbox full", P_ANY},
	{R(MAILBOXFULL), "mailbox is full", P_ANY},
	{R(MAILBOXFULL), "mailbox * full", P_ANY},
	{R(MAILBOXFULL), "over quota", P_ANY},
	{R(MAILBOXFULL), "quota exceeded", P_ANY},
	{R(MAILBOXFULL), "exceeded * quota", P_ANY},
	{R(MAILBOXFULL), "exceeds * quota", P_ANY},
	{R(MAILBOXFULL), "over * quota", P_ANY},
	{R(MAILBOXFULL), "quota full", P_ANY},
	{R(MAILBOXFULL), "disk quota", P_ANY},
	{R(MAILBOXFULL), "exceeded storage", P_ANY},
	{R(MAILBOXFULL), "out of storage space", P_ANY},
	{R(MAILBOXFULL), "mailbox size limit", P_ANY},
	{R(MAILBOXFULL), "mailbox exceeds", P_ANY},
	{R(MAILBOXFULL), "account is full", P_ANY},
	{R(MAILBOXFULL), "full mailbox", P_ANY},
	{R(MAILBOXFULL), "mail box full", P_ANY},
	{R(MAILBOXFULL), "mailfolder is full", P_ANY},
	{R(MAILBOXFULL), "box full", P_ANY},
	{R(MAILBOXFULL), "not enough space", P_ANY},
	{R(MAILBOXFULL), "insufficient space", P_ANY},
	{R(MAILBOXFULL), "too much mail data", P_ANY},
	{R(MAILBOXFULL), "mailbox has exceeded", P_ANY},
	{R(MAILBOXFULL), "recipient's mailbox exceeded", P_ANY},
	{R(MAILBOXFULL), "messages in recipient's mailbox exceeded", P_ANY},

	{R(SUSPEND), "suspended", P_ANY},
	{R(SUSPEND), "account * disabled", P_ANY},
	{R(SUSPEND), "mailbox * disabled", P_ANY},
	{R(SUSPEND), "has been disabled", P_ANY},
	{R(SUSPEND), "is disabled", P_ANY},
	{R(SUSPEND), "inactive", P_ANY},
	{R(SUSPEND), "deactivated", P_ANY},
	{R(SUSPEND), "not active", P_ANY},
	{R(SUSPEND), "account expired", P_ANY},
	{R(SUSPEND), "mailbox is frozen", P_ANY},
	{R(SUSPEND), "account is locked", P_ANY},

	{R(HASMOVED), "has moved", P_ANY},
	{R(HASMOVED), "address has changed", P_ANY},
	{R(HASMOVED), "no longer * this address", P_ANY},

	{R(FILTERED), "recipient preferences", P_ANY},

	/* KDDI/au and other Japanese carriers answer "550 : User unknown"
	 * (an empty address before the colon) when the recipient's domain
	 * filter refuses the sender; the mailbox exists. */
	{R(FILTERED), " : user unknown", P_ANY},
	{R(FILTERED), ": : user unknown", P_ANY},

	/* The sender refused: before the unknown recipients, whose words
	 * ("address does not exist") a refusal of our own domain shares. */
	{R(REJECTED), "sender address rejected", P_ANY},
	{R(REJECTED), "sender rejected", P_ANY},
	{R(REJECTED), "sender was rejected", P_ANY},
	{R(REJECTED), "domain of sender address", P_ANY},
	{R(REJECTED), "sender verify failed", P_ANY},
	{R(REJECTED), "unroutable sender address", P_ANY},

	/* Unknown recipients. */
	{R(USERUNKNOWN), "user unknown", P_FLIP},
	{R(USERUNKNOWN), "unknown user", P_FLIP},
	{R(USERUNKNOWN), "no such user", P_FLIP},
	{R(USERUNKNOWN), "user not exist", P_FLIP},
	{R(USERUNKNOWN), "no such mailbox", P_ANY},
	{R(USERUNKNOWN), "not listed in public name", P_ANY},
	{R(USERUNKNOWN), "recipient name is not recognized", P_ANY},
	{R(USERUNKNOWN), "no valid recipients", P_ANY},
	/* InterScan MSS's notice for an unknown recipient. */
	{R(USERUNKNOWN), "(and other recipients in the same domain)", P_ANY},
	{R(USERUNKNOWN), "address couldn't be found", P_ANY},
	{R(USERUNKNOWN), "please check if address is correct", P_ANY},
	{R(USERUNKNOWN), "no such recipient", P_ANY},
	{R(USERUNKNOWN), "no such address", P_ANY},
	{R(USERUNKNOWN), "no such account", P_ANY},
	{R(USERUNKNOWN), "user not found", P_ANY},
	{R(USERUNKNOWN), "recipient not found", P_ANY},
	{R(USERUNKNOWN), "address not found", P_ANY},
	{R(USERUNKNOWN), "mailbox not found", P_ANY},
	{R(USERUNKNOWN), "unknown recipient", P_ANY},
	{R(USERUNKNOWN), "recipient unknown", P_ANY},
	{R(USERUNKNOWN), "invalid recipient", P_ANY},
	{R(USERUNKNOWN), "unknown address", P_ANY},
	{R(USERUNKNOWN), "unknown mailbox", P_ANY},
	{R(USERUNKNOWN), "unknown local part", P_ANY},
	{R(USERUNKNOWN), "unknown or illegal", P_ANY},
	{R(USERUNKNOWN), "invalid mailbox", P_ANY},
	{R(USERUNKNOWN), "mailbox does not exist", P_ANY},
	{R(USERUNKNOWN), "user does not exist", P_ANY},
	{R(USERUNKNOWN), "user doesn't exist", P_ANY},
	{R(USERUNKNOWN), "account does not exist", P_ANY},
	{R(USERUNKNOWN), "recipient does not exist", P_ANY},
	{R(USERUNKNOWN), "address does not exist", P_ANY},
	{R(USERUNKNOWN), "account that you tried to reach does not exist", P_ANY},
	{R(USERUNKNOWN), "no mailbox here by that name", P_ANY},
	{R(USERUNKNOWN), "addressee unknown", P_ANY},
	{R(USERUNKNOWN), "user is unknown", P_ANY},
	{R(USERUNKNOWN), "not a valid mailbox", P_ANY},
	{R(USERUNKNOWN), "is not a valid user", P_ANY},
	{R(USERUNKNOWN), "bad destination mailbox", P_ANY},
	{R(USERUNKNOWN), "destination address rejected", P_ANY},
	{R(USERUNKNOWN), "not listed in domino directory", P_ANY},
	{R(USERUNKNOWN), "invalid final delivery userid", P_ANY},
	{R(USERUNKNOWN), "doesn't have a * account", P_ANY},
	{R(USERUNKNOWN), "recipient address rejected", P_PERM | P_WEAK},
	{R(USERUNKNOWN), "recipient rejected", P_PERM | P_WEAK},
	{R(USERUNKNOWN), "mailbox unavailable", P_PERM | P_WEAK},
	{R(USERUNKNOWN), "mailbox not available", P_PERM | P_WEAK},
	{R(USERUNKNOWN), "invalid address", P_PERM | P_WEAK},

	/* Unknown domains.  Google's temporary "DNS Error: ... NXDOMAIN"
	 * (4.0.0) is a lookup that may succeed later: network, not unknown. */
	{R(NOTACCEPT), "doesn't receive email", P_ANY},
	{R(NOTACCEPT), "does not receive email", P_ANY},
	{R(NETWORKERROR), "dns type 'mx' lookup of", P_TEMP},
	{R(NETWORKERROR), "host not found, try again", P_ANY},
	{R(NOTACCEPT), "null mx", P_ANY},
	{R(NOTACCEPT), "no mx record found", P_ANY},
	{R(NOTACCEPT), "no mx found", P_ANY},
	{R(NOTACCEPT), "indicated no smtp service", P_ANY},
	{R(NOTACCEPT), "couldn't find a mail exchanger", P_ANY},
	{R(NOTACCEPT), "type=mx: malformed or unexpected name server reply", P_ANY},
	{R(NOTACCEPT), "does not accept mail", P_ANY},
	{R(NOTACCEPT), "accepts no mail", P_ANY},
	{R(NOTACCEPT), "system not accepting network messages", P_ANY},
	{R(HOSTUNKNOWN), "host unknown", P_ANY},
	{R(HOSTUNKNOWN), "unknown host", P_ANY},
	{R(HOSTUNKNOWN), "host not found", P_ANY},
	{R(HOSTUNKNOWN), "host * not found", P_ANY},
	{R(HOSTUNKNOWN), "domain not found", P_ANY},
	{R(HOSTUNKNOWN), "no such domain", P_ANY},
	{R(HOSTUNKNOWN), "domain does not exist", P_ANY},
	{R(HOSTUNKNOWN), "domain name not found", P_ANY},
	{R(HOSTUNKNOWN), "domain is not reachable", P_ANY},
	{R(HOSTUNKNOWN), "unknown domain", P_ANY},
	{R(HOSTUNKNOWN), "unrouteable address", P_ANY},
	{R(HOSTUNKNOWN), "unrouteable mail domain", P_ANY},
	{R(HOSTUNKNOWN), "name or service not known", P_ANY},
	{R(HOSTUNKNOWN), "host or domain name not found", P_ANY},
	{R(HOSTUNKNOWN), "nxdomain", P_ANY},
	{R(HOSTUNKNOWN), "mx records point to non-existent hosts", P_ANY},
	/* MailEnable: "the domain name (x) does not appear to be registered" */
	{R(HOSTUNKNOWN), "does not appear to be registered", P_ANY},

	{R(REJECTED), "invalid sender", P_ANY},
	{R(REJECTED), "sender not allowed", P_ANY},
	{R(REJECTED), "bad sender", P_ANY},
	{R(REJECTED), "purported responsible address", P_ANY},
	{R(REJECTED), "'send mail as'", P_ANY},
	/* A mailing list refusing a post from a non-member. */
	{R(REJECTED), "not a member of this mailing list", P_ANY},

	{R(MESGTOOBIG), "message too big", P_ANY},
	{R(MESGTOOBIG), "message is too big", P_ANY},
	{R(MESGTOOBIG), "message too large", P_ANY},
	{R(MESGTOOBIG), "message is too large", P_ANY},
	{R(MESGTOOBIG), "message size exceeds", P_ANY},
	{R(MESGTOOBIG), "exceeds size limit", P_ANY},
	{R(MESGTOOBIG), "size limit", P_ANY},
	{R(MESGTOOBIG), "maximum message size", P_ANY},
	{R(MESGTOOBIG), "message file too big", P_ANY},
	{R(MESGTOOBIG), "line limit exceeded", P_ANY},

	{R(TOOMANYCONN), "connection rate limit", P_ANY},
	{R(TOOMANYCONN), "frequency limited", P_ANY},
	{R(RATELIMITED), "too many recipients this hour", P_ANY},
	{R(RATELIMITED), "receiving mail at a rate", P_ANY},
	{R(RATELIMITED), "rate limit", P_ANY},
	{R(RATELIMITED), "too many messages", P_ANY},
	{R(RATELIMITED), "sending rate", P_ANY},
	{R(RATELIMITED), "throttl", P_ANY},
	{R(RATELIMITED), "too fast", P_ANY},

	{R(TOOMANYCONN), "too many connections", P_ANY},
	{R(TOOMANYCONN), "too many concurrent", P_ANY},
	{R(TOOMANYCONN), "connection limit", P_ANY},
	{R(TOOMANYCONN), "too many smtp sessions", P_ANY},
	{R(TOOMANYCONN), "too many recipients", P_ANY},

	{R(FAILEDSTARTTLS), "starttls", P_ANY},
	{R(FAILEDSTARTTLS), "does not support tls", P_ANY},
	{R(SECURITYERROR), "certificate", P_ANY},
	{R(SECURITYERROR), "encryption required", P_ANY},

	{R(FILTERED), "rejected by recipient", P_ANY},
	{R(FILTERED), "refused by the recipient", P_ANY},
	{R(FILTERED), "user refuses", P_ANY},
	{R(FILTERED), "filtered", P_ANY},

	{R(CONTENTERROR), "content error", P_ANY},
	{R(CONTENTERROR), "media error", P_ANY},
	{R(CONTENTERROR), "invalid header", P_ANY},
	{R(CONTENTERROR), "illegal character", P_ANY},
	{R(CONTENTERROR), "improper use of 8-bit data", P_ANY},

	{R(POLICYVIOLATION), "header error", P_ANY},
	{R(POLICYVIOLATION), "policy", P_ANY},
	{R(POLICYVIOLATION), "prohibited", P_ANY},
	{R(POLICYVIOLATION), "not authorized", P_ANY},
	{R(POLICYVIOLATION), "violat", P_ANY},

	{R(SYSTEMFULL), "mail system full", P_ANY},
	{R(SYSTEMFULL), "insufficient system storage", P_ANY},
	{R(SYSTEMFULL), "insufficient disk space", P_ANY},
	{R(SYSTEMFULL), "disk full", P_ANY},

	/* Network trouble that is not a plain timeout. */
	{R(NETWORKERROR), "dns query failed", P_ANY},
	{R(NETWORKERROR), "network error", P_ANY},
	{R(NETWORKERROR), "too many hops", P_ANY},
	{R(NETWORKERROR), "mail loop", P_ANY},
	{R(NETWORKERROR), "routing loop", P_ANY},
	{R(NETWORKERROR), "loops back to myself", P_ANY},
	{R(NETWORKERROR), "wasn't able to establish an smtp connection", P_ANY},

	{R(SYSTEMERROR), "ldap server", P_ANY},
	{R(SYSTEMERROR), "service currently unavailable", P_ANY},
	{R(SYSTEMERROR), "could not load drd", P_ANY},

	/* The sender's MTA gave up.  After the specific reasons: qmail and
	 * Exim wrap the remote server's own words ("mailbox is full: retry
	 * timeout exceeded"), which say more. */
	{R(EXPIRED), "retry time not reached for any host", P_ANY},
	{R(EXPIRED), "retry timeout exceeded", P_ANY},
	{R(EXPIRED), "delivery time expired", P_ANY},
	{R(EXPIRED), "message expired", P_ANY},
	{R(EXPIRED), "envelope expired", P_ANY},
	{R(EXPIRED), "deferred for too long", P_ANY},
	{R(EXPIRED), "too long in queue", P_ANY},
	{R(EXPIRED), "could not be delivered within", P_ANY},
	{R(EXPIRED), "could not deliver for the last", P_ANY},
	{R(EXPIRED), "delivery expired", P_ANY},
	{R(EXPIRED), "message timed out", P_ANY},
	{R(EXPIRED), "has been delayed", P_ANY},
	{R(EXPIRED), "was not delivered within", P_ANY},
	{R(EXPIRED), "retry limit exceeded", P_ANY},
	{R(EXPIRED), "have been failing for a long time", P_ANY},
	{R(EXPIRED), "did not accept our requests to connect", P_ANY},
	{R(EXPIRED), "message still undelivered after", P_ANY},
	{R(EXPIRED), "will keep trying until", P_ANY},
	{R(EXPIRED), "connection timed out", P_ANY},
	{R(EXPIRED), "timed out", P_ANY},
	{R(EXPIRED), "host not reachable", P_ANY},
	{R(EXPIRED), "delivery failed * attempts", P_ANY},
	/* qmail says this under every failure it gives up on. */
	{R(EXPIRED), "in the queue too long", P_WEAK},

	{R(NETWORKERROR), "connection refused", P_ANY},
	{R(NETWORKERROR), "no route to host", P_ANY},
	{R(NETWORKERROR), "network is unreachable", P_ANY},
	{R(NETWORKERROR), "connection reset", P_ANY},
	{R(NETWORKERROR), "could not connect", P_ANY},
	{R(NETWORKERROR), "name server", P_ANY},
	{R(NETWORKERROR), "lookup failure", P_ANY},
	{R(NETWORKERROR), "dns failure", P_ANY},

	{R(MAILERERROR), "command output:", P_ANY},
	{R(MAILERERROR), "procmail", P_ANY},
	{R(MAILERERROR), "pipe to |", P_ANY},
	{R(MAILERERROR), "mailer error", P_ANY},
	{R(MAILERERROR), "command died", P_ANY},
	{R(MAILERERROR), "exit status", P_ANY},

	{R(SYNTAXERROR), "syntax error", P_ANY},
	{R(SYNTAXERROR), "command unrecognized", P_ANY},
	{R(SYNTAXERROR), "unrecognized command", P_ANY},
	{R(SYNTAXERROR), "command not implemented", P_ANY},
	{R(SYNTAXERROR), "command parameter not implemented", P_ANY},
	{R(SYNTAXERROR), "bad sequence", P_ANY},
	{R(SYNTAXERROR), "malformed address", P_ANY},

	{R(SYSTEMERROR), "system error", P_ANY},
	{R(SYSTEMERROR), "internal error", P_ANY},
	{R(SYSTEMERROR), "server error", P_ANY},
	{R(SYSTEMERROR), "local error", P_ANY},
	{R(SYSTEMERROR), "i/o error", P_ANY},
	{R(SYSTEMERROR), "out of memory", P_ANY},
	{R(SYSTEMERROR), "system problem", P_ANY},
	{R(SYSTEMERROR), "queue file write error", P_ANY},

	{R(REJECTED), "access denied", P_WEAK},
};

/* ---- matching ---- */

/* Glob match of pat at s[i..n): ' ' matches one or more blanks (the
 * text is already collapsed, so one), '*' up to 80 octets. */
static int match_at(const char *s, size_t n, size_t i, const char *pat)
{
	for (; *pat; pat++) {
		if (*pat == '*') {
			const char *rest = pat + 1;
			while (*rest == ' ')
				rest++;
			for (size_t k = 0; k <= 80 && i + k <= n; k++)
				if (match_at(s, n, i + k, rest))
					return 1;
			return 0;
		}
		if (i >= n || s[i] != *pat)
			return 0;
		i++;
	}
	return 1;
}

static int word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (unsigned char)c >= 0x80;
}

/* pat as a whole word of folded text s[0..n): no letter, digit or '-'
 * before it ("anti-virus" is a product), no letter or digit after. */
static int word_find(const char *s, size_t n, const char *pat)
{
	size_t m = strlen(pat);
	for (size_t i = 0; i + m <= n; i++) {
		if (memcmp(s + i, pat, m))
			continue;
		if (i && (word_char(s[i - 1]) || s[i - 1] == '-'))
			continue;
		if (i + m < n && word_char(s[i + m]))
			continue;
		return 1;
	}
	return 0;
}

static int glob_find(const char *s, size_t n, const char *pat)
{
	const char *p = s, *end = s + n;
	while (p < end && (p = memchr(p, pat[0], (size_t)(end - p))) != NULL) {
		if (match_at(s, n, (size_t)(p - s), pat))
			return 1;
		p++;
	}
	return 0;
}

/* Lowercase ASCII, blanks collapsed. */
static size_t fold_raw(char *out, size_t cap, const char *s)
{
	size_t k = 0;
	int sp = 0;
	for (; s && *s && k + 1 < cap; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') {
			sp = 1;
			continue;
		}
		if (sp && k) {
			out[k++] = ' ';
			if (k + 1 >= cap)
				break;
		}
		sp = 0;
		out[k++] = (char)msv__dsn_lower(ch);
	}
	out[k] = '\0';
	return k;
}

static int digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Length of a multi-line reply's continuation marker at s ("550-",
 * "550-5.7.1 ", "550 5.7.1 "), 0 when there is none: a reply folded
 * into one line repeats it before each piece of text, which would
 * split the phrases. */
static size_t marker(const char *s)
{
	if (!(s[0] >= '2' && s[0] <= '5') || !digit(s[1]) || !digit(s[2]))
		return 0;
	if (s[3] == '-') {
		size_t k = 4;
		if (s[k] >= '2' && s[k] <= '5' && s[k + 1] == '.') {
			size_t j = k + 2;
			while (digit(s[j]))
				j++;
			if (s[j] == '.' && digit(s[j + 1])) {
				j++;
				while (digit(s[j]))
					j++;
				if (s[j] == ' ')
					return j + 1;
			}
		}
		return k;
	}
	if (s[3] == ' ' && s[4] >= '2' && s[4] <= '5' && s[5] == '.') {
		size_t j = 6;
		while (digit(s[j]))
			j++;
		if (s[j] == '.' && digit(s[j + 1])) {
			j++;
			while (digit(s[j]))
				j++;
			if (s[j] == ' ')
				return j + 1;
		}
	}
	return 0;
}

/* Lowercase ASCII, blanks collapsed, continuation markers after the
 * first dropped. */
static size_t fold(char *out, size_t cap, const char *s)
{
	size_t k0 = fold_raw(out, cap, s);
	size_t r = 0, w = 0;
	while (r < k0) {
		size_t m = (r > 0 && out[r - 1] == ' ') ? marker(out + r) : 0;
		if (m) {
			r += m;
			continue;
		}
		out[w++] = out[r++];
	}
	out[w] = '\0';
	return w;
}

/* ---- status codes (RFC 3463, RFC 7372, RFC 7505, RFC 8601) ---- */

typedef struct srule {
	const char *code;  /* "x.1.1": any class; exact subject.detail */
	msv_dsn_reason reason;
	int vague;         /* 1: only when the text said nothing better */
} srule;

static const srule status_rules[] = {
	{"1.0", R(USERUNKNOWN), 1},  /* other address status */
	{"1.1", R(USERUNKNOWN), 0},  /* bad destination mailbox address */
	{"1.2", R(HOSTUNKNOWN), 0},  /* bad destination system address */
	{"1.3", R(USERUNKNOWN), 0},  /* bad destination mailbox address syntax */
	{"1.4", R(USERUNKNOWN), 1},  /* destination mailbox address ambiguous */
	{"1.6", R(HASMOVED), 0},     /* destination mailbox has moved */
	{"1.7", R(REJECTED), 0},     /* bad sender's mailbox address syntax */
	{"1.8", R(REJECTED), 0},     /* bad sender's system address */
	{"1.10", R(NOTACCEPT), 0},   /* RFC 7505: recipient address has null MX */
	{"2.0", R(FILTERED), 1},     /* other mailbox status */
	{"2.1", R(SUSPEND), 1},      /* mailbox disabled, not accepting messages */
	{"2.2", R(MAILBOXFULL), 0},  /* mailbox full */
	{"2.3", R(EXCEEDLIMIT), 0},  /* message length exceeds administrative limit */
	{"2.4", R(FILTERED), 1},     /* mailing list expansion problem */
	{"3.0", R(SYSTEMERROR), 1},  /* other mail system status */
	{"3.1", R(SYSTEMFULL), 0},   /* mail system full */
	{"3.2", R(NOTACCEPT), 1},    /* system not accepting network messages */
	{"3.3", R(SYSTEMERROR), 1},  /* system not capable of selected features */
	{"3.4", R(MESGTOOBIG), 0},   /* message too big for system */
	{"3.5", R(SYSTEMERROR), 1},  /* system incorrectly configured */
	{"4.0", R(NETWORKERROR), 1}, /* other network or routing status */
	{"4.1", R(NETWORKERROR), 1}, /* no answer from host */
	{"4.2", R(NETWORKERROR), 1}, /* bad connection */
	{"4.3", R(SYSTEMERROR), 1},  /* directory server failure */
	{"4.4", R(HOSTUNKNOWN), 1},  /* unable to route */
	{"4.5", R(SYSTEMERROR), 1},  /* mail system congestion */
	{"4.6", R(NETWORKERROR), 0}, /* routing loop detected */
	{"4.7", R(EXPIRED), 0},      /* delivery time expired */
	{"5.0", R(SYNTAXERROR), 1},  /* other protocol status */
	{"5.1", R(SYNTAXERROR), 1},  /* invalid command */
	{"5.2", R(SYNTAXERROR), 1},  /* syntax error */
	{"5.3", R(TOOMANYCONN), 1},  /* too many recipients */
	{"5.4", R(SYNTAXERROR), 1},  /* invalid command arguments */
	{"5.5", R(SYNTAXERROR), 1},  /* wrong protocol version */
	{"6.0", R(CONTENTERROR), 1}, /* other media error */
	{"6.1", R(CONTENTERROR), 1}, /* media not supported */
	{"6.2", R(CONTENTERROR), 1}, /* conversion required and prohibited */
	{"6.3", R(CONTENTERROR), 1}, /* conversion required but not supported */
	{"6.4", R(CONTENTERROR), 1}, /* conversion with loss performed */
	{"6.5", R(CONTENTERROR), 1}, /* conversion failed */
	{"7.0", R(SECURITYERROR), 1}, /* other security status */
	{"7.1", R(SECURITYERROR), 1}, /* delivery not authorized, message refused */
	{"7.2", R(SECURITYERROR), 1}, /* mailing list expansion prohibited */
	{"7.3", R(SECURITYERROR), 1}, /* security conversion required */
	{"7.4", R(SECURITYERROR), 1}, /* security features not supported */
	{"7.5", R(SECURITYERROR), 1}, /* cryptographic failure */
	{"7.6", R(SECURITYERROR), 1}, /* cryptographic algorithm not supported */
	{"7.7", R(SECURITYERROR), 1}, /* message integrity failure */
	{"7.8", R(SECURITYERROR), 0}, /* authentication credentials invalid */
	{"7.9", R(SECURITYERROR), 0}, /* authentication mechanism is too weak */
	{"7.10", R(FAILEDSTARTTLS), 0}, /* encryption needed */
	{"7.11", R(FAILEDSTARTTLS), 0}, /* encryption required for requested mechanism */
	{"7.13", R(SUSPEND), 0},     /* user account disabled */
	{"7.17", R(HASMOVED), 0},    /* mailbox owner has changed */
	{"7.18", R(HASMOVED), 0},    /* domain owner has changed */
	{"7.20", R(AUTHFAILURE), 0}, /* no passing DKIM signature found */
	{"7.21", R(AUTHFAILURE), 0}, /* no acceptable DKIM signature found */
	{"7.22", R(AUTHFAILURE), 0}, /* no valid author-matched DKIM signature */
	{"7.23", R(AUTHFAILURE), 0}, /* SPF validation failed */
	{"7.24", R(AUTHFAILURE), 0}, /* SPF validation error */
	{"7.25", R(REQUIREPTR), 0},  /* reverse DNS validation failed */
	{"7.26", R(AUTHFAILURE), 0}, /* multiple authentication checks failed */
	{"7.27", R(NOTACCEPT), 0},   /* sender address has null MX */
	{"7.28", R(BADREPUTATION), 0}, /* mail flood detected */
};

static const srule *status_rule(const char *status)
{
	/* "5.1.1" -> "1.1" */
	const char *p = strchr(status, '.');
	if (!p)
		return NULL;
	p++;
	for (size_t i = 0; i < sizeof(status_rules) / sizeof(status_rules[0]); i++)
		if (!strcmp(p, status_rules[i].code))
			return &status_rules[i];
	return NULL;
}

/* The status to report when the message gave none: RFC 3463 codes for
 * the reason, class from the failure's permanence. */
static const struct {
	msv_dsn_reason r;
	const char *sd; /* subject.detail */
} inferred[] = {
	{R(USERUNKNOWN), "1.1"},    {R(HOSTUNKNOWN), "1.2"},   {R(HASMOVED), "1.6"},
	{R(REJECTED), "1.8"},       {R(NOTACCEPT), "1.10"},    {R(SUSPEND), "2.1"},
	{R(MAILBOXFULL), "2.2"},    {R(EXCEEDLIMIT), "2.3"},   {R(SYSTEMFULL), "3.1"},
	{R(MESGTOOBIG), "3.4"},     {R(SYSTEMERROR), "3.0"},   {R(NETWORKERROR), "4.0"},
	{R(EXPIRED), "4.7"},        {R(TOOMANYCONN), "4.5"},   {R(RATELIMITED), "7.1"},
	{R(SYNTAXERROR), "5.2"},    {R(CONTENTERROR), "6.0"},  {R(SECURITYERROR), "7.0"},
	{R(BLOCKED), "7.1"},        {R(SPAMDETECTED), "7.1"},  {R(POLICYVIOLATION), "7.1"},
	{R(FILTERED), "7.1"},       {R(NORELAYING), "7.1"},    {R(VIRUSDETECTED), "7.1"},
	{R(BADREPUTATION), "7.1"},  {R(AUTHFAILURE), "7.26"},  {R(REQUIREPTR), "7.25"},
	{R(FAILEDSTARTTLS), "7.10"}, {R(NOTCOMPLIANTRFC), "6.0"}, {R(MAILERERROR), "3.0"},
	{R(ONHOLD), "0.0"},         {R(UNDEFINED), "0.0"},
};

static void infer_status(char *out, msv_dsn_reason r, int temporary)
{
	for (size_t i = 0; i < sizeof(inferred) / sizeof(inferred[0]); i++)
		if (inferred[i].r == r) {
			snprintf(out, MSV_DSN_STATUS_MAX, "%c.%s", temporary ? '4' : '5', inferred[i].sd);
			return;
		}
	snprintf(out, MSV_DSN_STATUS_MAX, "%c.0.0", temporary ? '4' : '5');
}

/* ---- the decision ---- */

typedef struct verdict {
	msv_dsn_reason reason;
	char rule[MSV_DSN_RULE_MAX];
} verdict;

static int perm_of(const char *status, int reply_code, int delayed)
{
	if (status && status[0] == '5')
		return 1;
	if (status && (status[0] == '4' || status[0] == '2'))
		return 0;
	if (reply_code >= 500)
		return 1;
	if (reply_code >= 400)
		return 0;
	return !delayed;
}

/* The first rule of the table that matches folded text low[0..n), with
 * weak rules or without; sets v. */
static const prule *match_rules(const char *low, size_t n, int perm, int weak)
{
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		const prule *p = &rules[i];
		if ((p->when & P_PERM) && !perm)
			continue;
		if ((p->when & P_TEMP) && perm)
			continue;
		if (!!(p->when & P_WEAK) != weak)
			continue;
		if ((p->when & P_WORD) ? word_find(low, n, p->pat) : glob_find(low, n, p->pat))
			return p;
	}
	return NULL;
}

static int decide(verdict *v, const char *status, int reply_code, const char *diag,
                  const char *context, const char *command, int delayed, unsigned *flags)
{
	char low[DSN_FIELD_MAX + 1];
	int perm = perm_of(status, reply_code, delayed);
	const srule *st = status && *status ? status_rule(status) : NULL;
	size_t n = fold(low, sizeof(low), diag);
	const prule *p;
	*flags = 0;
	/* 1. a phrase of the diagnostic that names one reason */
	if (n && (p = match_rules(low, n, perm, 0))) {
		v->reason = p->reason;
		*flags = p->when;
		snprintf(v->rule, sizeof(v->rule), "diagnostic matches '%s'", p->pat);
		return 1;
	}
	/* 2. a status code that names one */
	if (st && !st->vague) {
		v->reason = st->reason;
		snprintf(v->rule, sizeof(v->rule), "status %s", status);
		return 1;
	}
	/* 3. a generic phrase of the diagnostic */
	if (n && (p = match_rules(low, n, perm, 1))) {
		v->reason = p->reason;
		*flags = p->when;
		snprintf(v->rule, sizeof(v->rule), "diagnostic matches '%s'", p->pat);
		return 1;
	}
	/* 4. the report's prose around the recipients */
	size_t cn = context ? fold(low, sizeof(low), context) : 0;
	if (cn && ((p = match_rules(low, cn, perm, 0)) || (p = match_rules(low, cn, perm, 1)))) {
		v->reason = p->reason;
		*flags = p->when;
		snprintf(v->rule, sizeof(v->rule), "report text matches '%s'", p->pat);
		return 1;
	}
	/* 5. a delay notice: the sender's MTA is still trying, and will
	 * give up when the time runs out */
	if (delayed && (!st || st->reason == R(NETWORKERROR) || st->reason == R(SYSTEMERROR))) {
		v->reason = R(EXPIRED);
		snprintf(v->rule, sizeof(v->rule), "delayed, status %s", status && *status ? status : "none");
		return 1;
	}
	/* 6. a status code that hints */
	if (st) {
		v->reason = st->reason;
		snprintf(v->rule, sizeof(v->rule), "status %s", status);
		return 1;
	}
	if (command && !strcmp(command, "MAIL")) {
		v->reason = R(REJECTED);
		snprintf(v->rule, sizeof(v->rule), "refused in reply to MAIL FROM");
		return 1;
	}
	if (delayed) {
		v->reason = R(EXPIRED);
		snprintf(v->rule, sizeof(v->rule), "delayed report without a reason");
		return 1;
	}
	int said = (diag && *diag) || (context && *context);
	v->reason = said ? R(ONHOLD) : R(UNDEFINED);
	snprintf(v->rule, sizeof(v->rule), "%s", said ? "no rule matched the diagnostic"
	                                              : "no status and no diagnostic");
	return 0;
}

/* Providers whose bounces say nothing a phrase rule can use, keyed by
 * the recipient's domain (Sisimai's "rhost" idea, for the few that
 * matter).  Applied only when no other rule matched. */
static const struct {
	const char *domain;
	msv_dsn_reason reason;
	const char *why;
} domain_rules[] = {
	/* Groups that do not exist or do not take posts from non-members;
	 * the prose is localized into dozens of languages. */
	{"googlegroups.com", R(REJECTED), "Google Groups refuses the post"},
};

static void domain_rule(verdict *v, const char *addr)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;
	if (!at)
		return;
	for (size_t i = 0; i < sizeof(domain_rules) / sizeof(domain_rules[0]); i++) {
		size_t dl = strlen(domain_rules[i].domain), al = strlen(at + 1);
		if (al >= dl && msv__dsn_ci_eq(at + 1 + al - dl, dl, domain_rules[i].domain) &&
		    (al == dl || at[al - dl] == '.')) {
			v->reason = domain_rules[i].reason;
			snprintf(v->rule, sizeof(v->rule), "recipient domain %s: %s",
			         domain_rules[i].domain, domain_rules[i].why);
			return;
		}
	}
}

static int is_hard(msv_dsn_reason r, int perm)
{
	int col = msv__dsn_reason_hard_col(r);
	return col == 1 || (col == 2 && perm);
}

/* The status a diagnostic gives: the last code that follows an SMTP
 * reply code ("550 5.7.1", "550-'5.2.2", "<421 4.4.2": the innermost
 * server's words come last), else the first code in the text. */
static int diag_status(const char *d, char *out)
{
	size_t n = strlen(d), from = 0;
	int found = 0;
	char st[MSV_DSN_STATUS_MAX];
	long k;
	while ((k = msv__dsn_find_status(d + from, n - from, st)) >= 0) {
		size_t at = from + (size_t)k;
		size_t b = at;
		while (b > 0 && (d[b - 1] == ' ' || d[b - 1] == '-' || d[b - 1] == '\'' || d[b - 1] == '"'))
			b--;
		if (b >= 3 && at - b <= 3 && digit(d[b - 1]) && digit(d[b - 2]) &&
		    (d[b - 3] == '2' || d[b - 3] == '4' || d[b - 3] == '5') &&
		    (b == 3 || !digit(d[b - 4]))) {
			memcpy(out, st, sizeof(st));
			found = 1;
		}
		from = at + strlen(st);
	}
	if (!found && msv__dsn_find_status(d, n, st) >= 0) {
		memcpy(out, st, sizeof(st));
		found = 1;
	}
	return found;
}

/* Corrections that need the SMTP command or the status next to the
 * phrase that matched. */
static void adjust(verdict *v, unsigned flags, const char *status, const char *command)
{
	int rcpt = command && !strcmp(command, "RCPT");
	int data = command && !strcmp(command, "DATA");
	int mail = command && !strcmp(command, "MAIL");
	const char *sd = status && status[0] ? status + 1 : ""; /* ".1.1" */
	/* A refusal of MAIL FROM is about our sender, never the recipient:
	 * "no such domain" there means our domain.  Suppressing the
	 * recipient for it would lose a working address. */
	if (mail && (v->reason == R(HOSTUNKNOWN) || v->reason == R(USERUNKNOWN))) {
		v->reason = R(REJECTED);
		snprintf(v->rule, sizeof(v->rule), "refused in reply to MAIL FROM: the sender, not the recipient");
		return;
	}
	/* "User unknown" that is not about a missing mailbox: said in reply
	 * to DATA (RCPT was accepted, so the mailbox exists), or with a
	 * mailbox-status code (X.2.0, X.2.1: disabled, refusing) where
	 * nothing says it came at RCPT.  Japanese carriers answer so for
	 * senders the recipient blocked.  Calling it unknown would suppress
	 * a live address; an X.1.x code is trusted as unknown. */
	if (v->reason == R(USERUNKNOWN) && (flags & P_FLIP) && strncmp(sd, ".1.", 3) && !rcpt &&
	    (data || !strcmp(sd, ".2.0") || !strcmp(sd, ".2.1") || !strncmp(sd, ".7.", 3))) {
		v->reason = R(FILTERED);
		snprintf(v->rule, sizeof(v->rule), "'user unknown' %s: a filter refused it",
		         data ? "in reply to DATA"
		              : !strncmp(sd, ".7.", 3) ? "with a security-policy code"
		                                       : "with a mailbox-status code");
		return;
	}
	/* RFC 3463 X.2.3 is the per-mailbox limit, X.3.4 the system's. */
	if (v->reason == R(MESGTOOBIG) && !strcmp(sd, ".2.3")) {
		v->reason = R(EXCEEDLIMIT);
		snprintf(v->rule, sizeof(v->rule), "message too big with status %s: a per-mailbox limit",
		         status);
	}
}

void msv__dsn_classify_rcpt(dsn_ctx *c, msv_dsn_recipient *r, const dsn_hint *h)
{
	if (r->reason == R(FEEDBACK) || r->reason == R(VACATION)) {
		const char *rule = r->reason == R(FEEDBACK) ? "ARF feedback report (RFC 5965)"
		                                            : "auto-reply (RFC 3834)";
		r->rule = msv__dsn_str(c, rule, strlen(rule));
		r->hard = 0;
		return;
	}
	if (r->action == MSV_DSN_ACTION_DELIVERED || r->action == MSV_DSN_ACTION_RELAYED ||
	    r->action == MSV_DSN_ACTION_EXPANDED) {
		r->reason = R(DELIVERED);
		r->hard = 0;
		char rule[64];
		snprintf(rule, sizeof(rule), "action %s", msv_dsn_action_name(r->action));
		r->rule = msv__dsn_str(c, rule, strlen(rule));
		return;
	}
	/* The remote server's own enhanced code (in the diagnostic, after
	 * its reply code) is more precise than the Status field the
	 * reporting MTA summarized it into (Status: 5.0.0 or 5.1.0 for a
	 * "550 5.7.1 ..."); a generic X.0.0 there does not replace a field. */
	if (!r->reply_code && r->diagnostic)
		r->reply_code = msv__dsn_find_reply_code(r->diagnostic, strlen(r->diagnostic));
	if (r->diagnostic) {
		char st[MSV_DSN_STATUS_MAX];
		if (diag_status(r->diagnostic, st) &&
		    (!r->status[0] || (strcmp(st, r->status) && strcmp(st + 1, ".0.0")))) {
			memcpy(r->status, st, sizeof(st));
			r->status_source = MSV_DSN_SRC_TEXT;
		}
	}
	int delayed = r->action == MSV_DSN_ACTION_DELAYED || (h && h->delayed && r->action == 0);
	verdict v;
	memset(&v, 0, sizeof(v));
	unsigned flags = 0;
	int matched = decide(&v, r->status, r->reply_code, r->diagnostic, h ? h->context : NULL,
	                     r->command, delayed, &flags);
	if (r->diagnostic_type && msv__dsn_ci_eq(r->diagnostic_type, strlen(r->diagnostic_type), "x-unix") &&
	    (strncmp(v.rule, "diagnostic matches", 18) || v.reason == R(SYSTEMERROR))) {
		/* RFC 3464 2.3.6: an X-Unix diagnostic is the exit of a local
		 * delivery program (procmail, a pipe alias); unless its words
		 * said more ("Disk quota exceeded"), the program failed. */
		v.reason = R(MAILERERROR);
		snprintf(v.rule, sizeof(v.rule), "diagnostic type x-unix: a local mailer program failed");
	} else {
		if (!matched)
			domain_rule(&v, r->address);
		adjust(&v, flags, r->status, r->command);
	}
	r->reason = v.reason;
	/* A report without an Action field (plain prose): a mailbox or
	 * domain that does not exist is no delay, whatever weak words (a
	 * "Warning:" subject) said, unless a 4xx code or the prose's
	 * "will be retried" does. */
	int prose = r->action == MSV_DSN_ACTION_NONE;
	int coded = (r->status[0] && r->status_source != MSV_DSN_SRC_INFERRED) || r->reply_code;
	if (prose && delayed && h && !h->delay_said && !coded && msv__dsn_reason_hard_col(v.reason) == 1)
		delayed = 0;
	int perm = perm_of(r->status, r->reply_code, delayed);
	/* "retry timeout exceeded": the MTA gave up after temporary
	 * failures; the code it never got would have been a 4xx (the
	 * failure itself stays final). */
	int temp_code = !perm;
	if (!r->status[0] && !r->reply_code && r->diagnostic &&
	    (v.reason == R(EXPIRED) || msv__dsn_ci_find(r->diagnostic, strlen(r->diagnostic),
	                                           "retry timeout exceeded") >= 0))
		temp_code = 1;
	if (!r->status[0]) {
		infer_status(r->status, v.reason, temp_code);
		r->status_source = MSV_DSN_SRC_INFERRED;
	}
	/* RFC 3464 2.3.3: failed means the reporting MTA will not retry.
	 * Prose that says it gave up ("This is a permanent error; I've
	 * given up", "failed permanently") is a failure even over a 4xx
	 * code: the code is the last attempt's, the decision is final. */
	if (prose)
		r->action = perm || (h && h->permanent) ? MSV_DSN_ACTION_FAILED : MSV_DSN_ACTION_DELAYED;
	r->hard = r->action == MSV_DSN_ACTION_FAILED && is_hard(v.reason, perm);
	r->rule = msv__dsn_str(c, v.rule, strlen(v.rule));
}

void msv_dsn_classify(msv_dsn_verdict *out, const char *status, int reply_code, const char *text,
                      const char *command)
{
	memset(out, 0, sizeof(*out));
	char st[MSV_DSN_STATUS_MAX] = "";
	if (status && msv__dsn_status_norm(status, strlen(status), st))
		out->status_source = MSV_DSN_SRC_FIELD;
	else if (text && msv__dsn_find_status(text, strlen(text), st) >= 0)
		out->status_source = MSV_DSN_SRC_TEXT;
	if (!reply_code && text)
		reply_code = msv__dsn_find_reply_code(text, strlen(text));
	verdict v;
	memset(&v, 0, sizeof(v));
	unsigned flags = 0;
	decide(&v, st, reply_code, text, NULL, command, 0, &flags);
	adjust(&v, flags, st, command);
	int perm = perm_of(st, reply_code, 0);
	out->reason = v.reason;
	out->hard = is_hard(v.reason, perm);
	if (st[0]) {
		memcpy(out->status, st, sizeof(st));
	} else if (reply_code) {
		snprintf(out->status, sizeof(out->status), "%d.0.0", reply_code / 100);
		out->status_source = MSV_DSN_SRC_REPLY;
	} else {
		infer_status(out->status, v.reason, !perm);
		out->status_source = MSV_DSN_SRC_INFERRED;
	}
	snprintf(out->rule, sizeof(out->rule), "%s", v.rule);
}
