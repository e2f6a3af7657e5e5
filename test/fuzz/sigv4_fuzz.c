/*-------------------------------------------------------------------------
 *
 * sigv4_fuzz.c
 *	  libFuzzer target of src/aws_sigv4.c: the canonical request (method,
 *	  path normalization and encoding, query sorting and encoding, header
 *	  folding and sorting), signing, and URI encoding, from arbitrary bytes.
 *
 * Input: 1 byte of flags, 1 of header count, then NUL-separated strings:
 * method, path, query, session token, then a name and a value per header,
 * then (when the flags say so) payload hash, amz_date, region, service,
 * access key id.  A signed Host header always comes first and the fields
 * not taken from the input have valid values, so that most inputs get
 * past the checks of the request and reach the canonicalisation.
 *
 * Checks: a signed request has a 64 lowercase hex digit signature, an
 * Authorization header with the credential scope, and signing it again
 * gives the same signature; a refused one says why.  URI encoding writes
 * exactly the length it returns, of unreserved characters and %XX only.
 *
 *-------------------------------------------------------------------------
 */
#include "aws_sigv4.h"
#include "fuzz.h"

#define MAX_HEADERS	8

static bool
unreserved(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
}

static void
check_uri_encode(const char *s, bool keep_slash)
{
	size_t		len = strlen(s);
	size_t		n = fh_sigv4_uri_encode(NULL, s, len, keep_slash);
	char	   *dst = malloc(n + 1);

	if (dst == NULL)
		abort();
	fuzz_assert(fh_sigv4_uri_encode(dst, s, len, keep_slash) == n);
	fuzz_assert(strlen(dst) == n);
	for (size_t i = 0; i < n; i++)
	{
		if (dst[i] == '%')
		{
			fuzz_assert(i + 2 < n);
			fuzz_assert(strchr("0123456789ABCDEF", dst[i + 1]) &&
						strchr("0123456789ABCDEF", dst[i + 2]));
			i += 2;
		}
		else
			fuzz_assert(unreserved(dst[i]) || (keep_slash && dst[i] == '/'));
	}
	free(dst);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FuzzInput	in = {data, size};
	unsigned	flags = (unsigned) fuzz_u64(&in, 1);
	int			nextra = (int) (fuzz_u64(&in, 1) % (MAX_HEADERS - 1));
	FhSigV4Header headers[MAX_HEADERS];
	char	   *strings[5 + 2 * MAX_HEADERS + 5];
	int			ns = 0;
	FhSigV4Request req;
	FhSigV4Result res;
	FhSigV4Result again;
	FhSigV4Status st;
	char	   *s;

#define NEXT() (strings[ns++] = fuzz_string(&in))
	memset(&req, 0, sizeof(req));
	req.method = NEXT();
	req.path = NEXT();
	req.query = NEXT();
	req.session_token = NEXT();
	headers[0] = (FhSigV4Header) {"Host", "example.amazonaws.com", false};
	for (int i = 1; i <= nextra; i++)
	{
		headers[i].name = NEXT();
		headers[i].value = NEXT();
		headers[i].nosign = (flags >> (i % 4)) & 1;
	}
	req.headers = headers;
	req.nheaders = nextra + 1;
	req.add_content_sha256 = flags & 0x10;
	req.session_token_unsigned = flags & 0x20;
	req.payload_hash = FH_SIGV4_UNSIGNED_PAYLOAD;
	req.amz_date = "20150830T123600Z";
	req.region = "us-east-1";
	req.service = (flags & 0x40) ? "s3" : "es";
	req.access_key_id = "AKIDEXAMPLE";
	req.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	if (flags & 0x80)
	{
		/* the rest of the request from the input too */
		if ((s = NEXT()) != NULL)
			req.payload_hash = s;
		if ((s = NEXT()) != NULL)
			req.amz_date = s;
		if ((s = NEXT()) != NULL)
			req.region = s;
		if ((s = NEXT()) != NULL)
			req.service = s;
		if ((s = NEXT()) != NULL)
			req.access_key_id = s;
	}
#undef NEXT

	st = fh_sigv4_sign(&req, &res);
	if (st == FH_SIGV4_OK)
	{
		char		prefix[256];

		fuzz_assert(strlen(res.signature) == FH_SIGV4_HEX_LEN);
		fuzz_assert(strspn(res.signature, "0123456789abcdef") == FH_SIGV4_HEX_LEN);
		snprintf(prefix, sizeof(prefix), "AWS4-HMAC-SHA256 Credential=%s/%.8s/",
				 req.access_key_id, req.amz_date);
		fuzz_assert(strncmp(res.authorization, prefix, strlen(prefix)) == 0);
		fuzz_assert(strncmp(res.canonical_request, req.method,
							strlen(req.method)) == 0);
		fuzz_assert(strstr(res.signed_headers, "host") != NULL);
		fuzz_assert(res.nadd_headers >= 1 && res.nadd_headers <= FH_SIGV4_MAX_ADD_HEADERS);
		fuzz_assert(fh_sigv4_sign(&req, &again) == FH_SIGV4_OK);
		fuzz_assert(strcmp(res.signature, again.signature) == 0);
		fuzz_assert(strcmp(res.canonical_request, again.canonical_request) == 0);
		fh_sigv4_result_free(&again);
	}
	else
		fuzz_assert(st != FH_SIGV4_EINVAL || res.error != NULL);
	fh_sigv4_result_free(&res);

	if (req.path)
	{
		check_uri_encode(req.path, true);
		check_uri_encode(req.path, false);
	}
	for (int i = 0; i < ns; i++)
		free(strings[i]);
	return 0;
}
