/*
 * Provider presets and names: apart from the token source (oauth2.c), so
 * that parsing the oauth2-* keys links neither libcurl nor OpenSSL (the
 * light missive and the sendmail front end read routes too).
 */
#include <string.h>

#include "missive/oauth2.h"

const char *msv_oauth2_grant_name(msv_oauth2_grant g)
{
	switch (g) {
	case MSV_OAUTH2_REFRESH: return "refresh_token";
	case MSV_OAUTH2_CLIENT_CREDENTIALS: return "client_credentials";
	case MSV_OAUTH2_JWT_BEARER: return "jwt_bearer";
	default: return "none";
	}
}

int msv_oauth2_preset_get(const char *provider, msv_oauth2_preset *out)
{
	static const struct {
		const char *name;
		msv_oauth2_preset p;
	} presets[] = {
		{"google",
		 {"https://oauth2.googleapis.com/token", "https://oauth2.googleapis.com/device/code",
		  "https://mail.google.com/", "https://mail.google.com/"}},
		{"microsoft",
		 {"https://login.microsoftonline.com/common/oauth2/v2.0/token",
		  "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
		  "https://outlook.office.com/SMTP.Send offline_access",
		  "https://outlook.office365.com/.default"}},
	};
	for (size_t i = 0; provider && i < sizeof(presets) / sizeof(presets[0]); i++)
		if (!strcmp(provider, presets[i].name)) {
			*out = presets[i].p;
			return 0;
		}
	return -1;
}
