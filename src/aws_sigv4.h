/*-------------------------------------------------------------------------
 *
 * aws_sigv4.h
 *	  AWS Signature Version 4 (aws_sigv4.c): signs one HTTP request with
 *	  the Authorization header, for any service and region.
 *
 * This header and aws_sigv4.c use plain C99 plus OpenSSL and no PostgreSQL
 * header, so the unit test (test/unit/sigv4_test.c) builds them without a
 * server.  Nothing here keeps global state, reads the clock or aborts: the
 * time is an input, every function returns a status, and strings handed
 * back are malloc'd and released by fh_sigv4_result_free().
 *
 * Use:
 *		FhSigV4Request req = {.method = "PUT", .path = "/bucket/key", ...};
 *		FhSigV4Result res;
 *
 *		if (fh_sigv4_sign(&req, &res) != FH_SIGV4_OK)
 *			... report fh_sigv4_strerror(status) and res.error ...
 *		send req.headers, then res.add_headers[0 .. nadd_headers-1], then
 *		"Authorization: " res.authorization; the path sent is
 *		res.canonical_uri for S3 (see fh_sigv4_sign)
 *		fh_sigv4_result_free(&res);
 *
 * Spec: https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
 * and, for S3, https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
 *
 *-------------------------------------------------------------------------
 */
#ifndef AWS_SIGV4_H
#define AWS_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define FH_SIGV4_ALGORITHM			"AWS4-HMAC-SHA256"
#define FH_SIGV4_UNSIGNED_PAYLOAD	"UNSIGNED-PAYLOAD"
#define FH_SIGV4_HEX_LEN			64	/* hex SHA-256, without the NUL */
#define FH_SIGV4_DATE_LEN			16	/* "YYYYMMDDTHHMMSSZ" */
#define FH_SIGV4_MAX_ADD_HEADERS	3

typedef enum FhSigV4Status
{
	FH_SIGV4_OK = 0,
	FH_SIGV4_EINVAL,			/* an input is malformed: see result->error */
	FH_SIGV4_ENOMEM,			/* malloc failed */
	FH_SIGV4_ECRYPTO			/* OpenSSL failed */
} FhSigV4Status;

typedef struct FhSigV4Header
{
	const char *name;			/* any case; RFC 9110 token characters */
	const char *value;			/* no CR, LF or other control character
								 * except tab */
	bool		nosign;			/* sent but left out of the signature */
} FhSigV4Header;

typedef struct FhSigV4Request
{
	const char *method;			/* "GET", "PUT", ... */
	const char *path;			/* the path, see fh_sigv4_sign */
	const char *query;			/* raw query without '?', or NULL */
	const FhSigV4Header *headers;	/* Host and the others to sign; never
									 * X-Amz-Date or Authorization */
	int			nheaders;
	const char *payload_hash;	/* lowercase hex SHA-256 of the body (see
								 * fh_sigv4_payload_hash), or
								 * "UNSIGNED-PAYLOAD" */
	bool		add_content_sha256; /* add (and sign) x-amz-content-sha256:
									 * payload_hash, as S3 requires */
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;	/* NULL or "": none */
	bool		session_token_unsigned; /* add X-Amz-Security-Token after
										 * signing instead of signing it */
	const char *region;			/* "us-east-1" */
	const char *service;		/* "s3", "es", ...; "s3" changes the path
								 * rules */
	const char *amz_date;		/* "YYYYMMDDTHHMMSSZ", UTC: see
								 * fh_sigv4_amz_date */
} FhSigV4Request;

typedef struct FhSigV4Result
{
	char	   *canonical_uri;	/* the path as signed */
	char	   *canonical_request;
	char	   *string_to_sign;
	char	   *signed_headers; /* "host;x-amz-date" */
	char		signature[FH_SIGV4_HEX_LEN + 1];
	char	   *authorization;	/* the Authorization header's value */
	/* headers the caller must send besides its own, in this order */
	FhSigV4Header add_headers[FH_SIGV4_MAX_ADD_HEADERS];
	int			nadd_headers;
	const char *error;			/* FH_SIGV4_EINVAL: which input, static */
	/* private: storage of the added headers' values */
	char		amz_date[FH_SIGV4_DATE_LEN + 1];
	char	   *payload_hash;
	char	   *session_token;
} FhSigV4Result;

extern FhSigV4Status fh_sigv4_sign(const FhSigV4Request *req,
								   FhSigV4Result *res);
extern void fh_sigv4_result_free(FhSigV4Result *res);
extern const char *fh_sigv4_strerror(FhSigV4Status status);

extern FhSigV4Status fh_sigv4_payload_hash(const void *data, size_t len,
										   char out[FH_SIGV4_HEX_LEN + 1]);
extern FhSigV4Status fh_sigv4_signing_key(const char *secret_access_key,
										  const char *date8,
										  const char *region,
										  const char *service,
										  unsigned char key[32]);
extern bool fh_sigv4_amz_date(time_t t, char out[FH_SIGV4_DATE_LEN + 1]);
extern size_t fh_sigv4_uri_encode(char *dst, const char *src, size_t len,
								  bool keep_slash);

#endif							/* AWS_SIGV4_H */
