/*-------------------------------------------------------------------------
 *
 * aws_request.c
 *	  Sign a request of any sink with AWS Signature V4 (aws_sigv4.c) and
 *	  address it: the S3 destination and OpenSearch with SigV4 use this.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <curl/curl.h>

#include "aws_sigv4.h"

#define MAX_SIGNED_HEADERS	8

/*
 * fh_aws_sign_request
 *		Fill req for method on scheme://host<path>[?query] with body
 *		data/len: the signed headers (host, x-amz-date,
 *		x-amz-content-sha256 with the body's real SHA-256, the session
 *		token, the extra name/value pairs given, lowercase), Authorization,
 *		and Content-Type (content_type, or none: curl would otherwise add a
 *		form type to a POST).  path is unencoded; query is encoded already.
 *		In the part's memory context.
 */
void
fh_aws_sign_request(const FhAwsTarget *t, FhRequest *req, const char *method,
					const char *path, const char *query,
					const char *data, size_t len,
					const char *const *extra, int nextra,
					const char *content_type)
{
	FhSigV4Header hdrs[MAX_SIGNED_HEADERS];
	FhSigV4Request sr;
	FhSigV4Result res;
	FhSigV4Status status;
	char		hash[FH_SIGV4_HEX_LEN + 1];
	char		date[FH_SIGV4_DATE_LEN + 1];
	int			n = 0;

	if (nextra > MAX_SIGNED_HEADERS - 1)
		elog(ERROR, "too many headers to sign");
	hdrs[n].name = "host";
	hdrs[n].value = t->host;
	hdrs[n++].nosign = false;
	for (int i = 0; i < nextra; i++)
	{
		hdrs[n].name = extra[2 * i];
		hdrs[n].value = extra[2 * i + 1];
		hdrs[n++].nosign = false;
	}
	if (fh_sigv4_payload_hash(data ? data : "", len, hash) != FH_SIGV4_OK ||
		!fh_sigv4_amz_date(time(NULL), date))
		elog(ERROR, "could not hash a request to sign");
	memset(&sr, 0, sizeof(sr));
	sr.method = method;
	sr.path = path;
	sr.query = query;
	sr.headers = hdrs;
	sr.nheaders = n;
	sr.payload_hash = hash;
	sr.add_content_sha256 = true;
	sr.access_key_id = t->access_key_id;
	sr.secret_access_key = t->secret_access_key;
	sr.session_token = t->session_token;
	sr.region = t->region;
	sr.service = t->service;
	sr.amz_date = date;
	status = fh_sigv4_sign(&sr, &res);
	if (status != FH_SIGV4_OK)
	{
		char	   *msg = psprintf("%s%s%s", fh_sigv4_strerror(status),
								   res.error ? ": " : "", res.error ? res.error : "");

		fh_sigv4_result_free(&res);
		elog(ERROR, "could not sign a request: %s", msg);
	}

	req->method = method;
	req->url = psprintf("%s://%s%s%s%s", t->scheme, t->host,
						strcmp(t->service, "s3") == 0 ? res.canonical_uri : path,
						query ? "?" : "", query ? query : "");
	for (int i = 1; i < n; i++)
		req->headers = curl_slist_append(req->headers,
										 psprintf("%s: %s", hdrs[i].name, hdrs[i].value));
	for (int i = 0; i < res.nadd_headers; i++)
		req->headers = curl_slist_append(req->headers,
										 psprintf("%s: %s", res.add_headers[i].name,
												  res.add_headers[i].value));
	req->headers = curl_slist_append(req->headers, psprintf("Authorization: %s", res.authorization));
	req->headers = curl_slist_append(req->headers, content_type ?
									 psprintf("Content-Type: %s", content_type) : "Content-Type:");
	fh_sigv4_result_free(&res);
	req->data = data ? data : "";
	req->len = len;
}

/*
 * Are t's keys missing (credentials 'environment' with AWS_* unset)?  Then
 * verdict says the part fails at once with code: no request can be signed.
 */
bool
fh_aws_missing_credentials(const FhAwsTarget *t, FhVerdict *verdict, const char *code)
{
	if (t->access_key_id != NULL && t->secret_access_key != NULL)
		return false;
	fh_verdict_set(verdict, FH_OUTCOME_FAIL, code,
				   "AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not set in the server's environment.");
	return true;
}

/* credentials from options, or from the server's environment */
void
fh_aws_credentials(Jsonb *o, FhAwsTarget *t)
{
	char	   *s = NULL;

	if (fh_jsonb_get_text(o, "credentials", &s) && strcmp(s, "environment") == 0)
	{
		const char *v;

		t->access_key_id = (v = getenv("AWS_ACCESS_KEY_ID")) && *v ? pstrdup(v) : NULL;
		t->secret_access_key = (v = getenv("AWS_SECRET_ACCESS_KEY")) && *v ? pstrdup(v) : NULL;
		t->session_token = (v = getenv("AWS_SESSION_TOKEN")) && *v ? pstrdup(v) : NULL;
	}
	else
	{
		fh_jsonb_get_text(o, "access_key_id", &t->access_key_id);
		fh_jsonb_get_text(o, "secret_access_key", &t->secret_access_key);
		fh_jsonb_get_text(o, "session_token", &t->session_token);
	}
}

/* options of AWS credentials: both keys, or credentials 'environment' */
void
fh_aws_validate_credentials(Jsonb *o, const char *what)
{
	char	   *s = "static";

	fh_jsonb_get_text(o, "credentials", &s);
	if (strcmp(s, "environment") == 0)
	{
		const char *given[] = {"access_key_id", "secret_access_key", "session_token"};

		for (int i = 0; i < lengthof(given); i++)
			if (fh_jsonb_get(o, given[i]))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"%s\" conflicts with \"credentials\": \"environment\"", given[i]),
						 errhint("With \"environment\" the worker reads AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN from the server's environment.")));
	}
	else if (!fh_jsonb_get(o, "access_key_id") || !fh_jsonb_get(o, "secret_access_key"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s needs credentials", what),
				 errhint("Set \"access_key_id\" and \"secret_access_key\" (and \"session_token\" for temporary credentials), or \"credentials\": \"environment\".")));
}
