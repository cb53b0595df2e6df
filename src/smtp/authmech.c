/*
 * SASL mechanism names and the choice among those a server offers: apart
 * from the mechanisms themselves (sasl.c), so that parsing a configured
 * mechanism does not need OpenSSL.
 */
#include <strings.h>

#include "sasl.h"

static const char *const mech_names[] = {
	[MSV_AUTH_AUTO] = "AUTO",         [MSV_AUTH_PLAIN] = "PLAIN",
	[MSV_AUTH_LOGIN] = "LOGIN",       [MSV_AUTH_CRAM_MD5] = "CRAM-MD5",
	[MSV_AUTH_XOAUTH2] = "XOAUTH2",   [MSV_AUTH_OAUTHBEARER] = "OAUTHBEARER",
};

const char *msv_smtp_auth_mech_name(msv_auth_mech m)
{
	if ((unsigned)m >= sizeof(mech_names) / sizeof(mech_names[0]))
		return "?";
	return mech_names[m];
}

int msv_smtp_auth_mech_parse(const char *s, msv_auth_mech *out)
{
	for (unsigned i = 0; i < sizeof(mech_names) / sizeof(mech_names[0]); i++)
		if (!strcasecmp(s, mech_names[i])) {
			*out = (msv_auth_mech)i;
			return 0;
		}
	return -1;
}

msv_auth_mech msv__sasl_choose(unsigned offered, int tls, int token, msv_auth_mech forced)
{
	if (forced != MSV_AUTH_AUTO)
		return (offered & (1u << forced)) ? forced : MSV_AUTH_AUTO;
	static const msv_auth_mech tls_order[] = {MSV_AUTH_PLAIN, MSV_AUTH_LOGIN, MSV_AUTH_CRAM_MD5};
	/* Without TLS only a challenge-response keeps the password off the wire. */
	static const msv_auth_mech clear_order[] = {MSV_AUTH_CRAM_MD5, MSV_AUTH_PLAIN, MSV_AUTH_LOGIN};
	/* A token: the standard mechanism (RFC 7628) first, Google's
	 * XOAUTH2 where it is all the server knows. */
	if (token)
		return (offered & (1u << MSV_AUTH_OAUTHBEARER)) ? MSV_AUTH_OAUTHBEARER
		       : (offered & (1u << MSV_AUTH_XOAUTH2))   ? MSV_AUTH_XOAUTH2
		                                                : MSV_AUTH_AUTO;
	const msv_auth_mech *order = tls ? tls_order : clear_order;
	for (int i = 0; i < 3; i++)
		if (offered & (1u << order[i]))
			return order[i];
	return MSV_AUTH_AUTO;
}
