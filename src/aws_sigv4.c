/*-------------------------------------------------------------------------
 *
 * aws_sigv4.c
 *	  AWS Signature Version 4 with OpenSSL: canonical request, string to
 *	  sign, signing key and Authorization header for one HTTP request.
 *
 * The only file of firehose that includes OpenSSL, and it includes no
 * PostgreSQL header: plain C99 with malloc and free and a small growable
 * buffer of its own, so test/unit/sigv4_test.c builds it alone and checks
 * every stage against AWS's official test suite.  libcurl's own signer
 * (CURLOPT_AWS_SIGV4) is not used: the version in Debian 12 has bugs, and
 * it cannot show its intermediate results.
 *
 * The steps, as AWS documents them
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html):
 *	1. canonical request: method, canonical URI, canonical query string,
 *	   canonical headers, signed header names and payload hash, one a line;
 *	2. string to sign: algorithm, time, credential scope
 *	   (date/region/service/aws4_request), hex SHA-256 of step 1;
 *	3. signing key: HMAC-SHA256 of the date keyed with "AWS4" + secret,
 *	   then of the region, the service and "aws4_request", each keyed with
 *	   the previous result;
 *	4. signature: hex HMAC-SHA256 of step 2 keyed with step 3's key, put
 *	   into the Authorization header with the scope and signed headers.
 *
 * The canonical URI differs between S3 and the other services:
 *	- other services: dot segments and empty segments are removed (RFC 3986
 *	  section 5.2.4), then every byte but the unreserved ones and '/' is
 *	  percent-encoded, '%' included: the path as sent is encoded once
 *	  already and AWS encodes it a second time;
 *	- S3 never normalizes ("a//b/./c" is a valid key) and encodes once:
 *	  bytes are encoded the same way except that a "%XX" escape already
 *	  present is kept, so the caller may pass the raw path ("/my bucket/k")
 *	  or the encoded one ("/my%20bucket/k") and sends canonical_uri.
 *
 * Canonical query: split on '&', each name and value percent-decoded and
 * encoded again per RFC 3986 ('+' is a plus, not a space), sorted by name
 * then value, a name without '=' gets an empty value.  Canonical headers:
 * lowercase names, values trimmed with inner runs of blanks squeezed to one
 * space, the values of a repeated name joined by ',' in the order given,
 * sorted by name.
 *
 * Every function is pure: the time is an input, there is no global state,
 * and failures are returned as FhSigV4Status, never by aborting.
 *
 *-------------------------------------------------------------------------
 */
#include "aws_sigv4.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SCOPE_TERMINATOR	"aws4_request"
#define SHA256_LEN			32

/* ---------- a growable string; a failed allocation sticks ---------- */

typedef struct SigBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	bool		failed;			/* an allocation failed: content is lost */
} SigBuf;

static void
buf_reserve(SigBuf *b, size_t more)
{
	size_t		need;
	size_t		cap;
	char	   *data;

	if (b->failed)
		return;
	if (more > SIZE_MAX - b->len - 1)
	{
		b->failed = true;
		return;
	}
	need = b->len + more + 1;
	if (need <= b->cap)
		return;
	cap = b->cap ? b->cap : 128;
	while (cap < need)
		cap = (cap > SIZE_MAX / 2) ? need : cap * 2;
	data = realloc(b->data, cap);
	if (data == NULL)
	{
		b->failed = true;
		return;
	}
	b->data = data;
	b->cap = cap;
}

static void
buf_append(SigBuf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	if (b->failed)
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
buf_puts(SigBuf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

static void
buf_putc(SigBuf *b, char c)
{
	buf_append(b, &c, 1);
}

/* hand over the string (never NULL when it succeeds); NULL after a failure */
static char *
buf_finish(SigBuf *b)
{
	char	   *data;

	if (!b->failed && b->data == NULL)
		buf_reserve(b, 0);
	if (b->failed)
	{
		free(b->data);
		b->data = NULL;
		return NULL;
	}
	data = b->data;
	b->data = NULL;
	return data;
}

/* strdup, which C99 lacks */
static char *
dup_string(const char *s)
{
	size_t		n = strlen(s) + 1;
	char	   *d = malloc(n);

	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

/* ---------- character classes and percent-encoding ---------- */

/* RFC 3986 section 2.3 */
static bool
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
		c == '~';
}

/* RFC 9110 section 5.6.2: the characters of a header name */
static bool
is_tchar(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static bool
is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static bool
is_blank(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void
hex_encode(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++)
	{
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

/*
 * Write the RFC 3986 encoding of c into out: the byte itself when it is
 * unreserved (or '/' with keep_slash), else "%XX" with uppercase hex.
 * Returns the number of characters written, 1 or 3.
 */
static int
encode_byte(unsigned char c, bool keep_slash, char *out)
{
	static const char digits[] = "0123456789ABCDEF";

	if (is_unreserved(c) || (keep_slash && c == '/'))
	{
		out[0] = (char) c;
		return 1;
	}
	out[0] = '%';
	out[1] = digits[c >> 4];
	out[2] = digits[c & 0x0f];
	return 3;
}

static void
buf_encode(SigBuf *b, const char *s, size_t n, bool keep_slash)
{
	char		enc[3];

	for (size_t i = 0; i < n; i++)
		buf_append(b, enc, encode_byte((unsigned char) s[i], keep_slash, enc));
}

/*
 * fh_sigv4_uri_encode
 *		RFC 3986 percent-encoding of the len bytes at src, keeping '/' when
 *		keep_slash is set (for S3 object keys in a path).  Writes the result
 *		and a NUL into dst, which needs the returned length plus one bytes;
 *		with dst NULL it only returns that length.
 */
size_t
fh_sigv4_uri_encode(char *dst, const char *src, size_t len, bool keep_slash)
{
	size_t		n = 0;
	char		enc[3];

	for (size_t i = 0; i < len; i++)
	{
		int			k = encode_byte((unsigned char) src[i], keep_slash, enc);

		if (dst != NULL)
			memcpy(dst + n, enc, k);
		n += k;
	}
	if (dst != NULL)
		dst[n] = '\0';
	return n;
}

/* ---------- OpenSSL ---------- */

static bool
sha256(const void *data, size_t len, unsigned char out[SHA256_LEN])
{
	unsigned int outlen = 0;

	return EVP_Digest(data, len, out, &outlen, EVP_sha256(), NULL) == 1 &&
		outlen == SHA256_LEN;
}

static bool
hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
			unsigned char out[SHA256_LEN])
{
	unsigned int outlen = 0;

	if (keylen > INT_MAX)
		return false;
	return HMAC(EVP_sha256(), key, (int) keylen, msg, msglen, out,
				&outlen) != NULL && outlen == SHA256_LEN;
}

/*
 * fh_sigv4_payload_hash
 *		The lowercase hex SHA-256 of a request body, for payload_hash and
 *		x-amz-content-sha256.
 */
FhSigV4Status
fh_sigv4_payload_hash(const void *data, size_t len,
					  char out[FH_SIGV4_HEX_LEN + 1])
{
	unsigned char md[SHA256_LEN];

	if (!sha256(len > 0 ? data : "", len, md))
		return FH_SIGV4_ECRYPTO;
	hex_encode(md, SHA256_LEN, out);
	return FH_SIGV4_OK;
}

/*
 * fh_sigv4_signing_key
 *		Step 3: derive the key that signs requests of one day, region and
 *		service.  date8 is "YYYYMMDD".  The intermediate keys are wiped.
 */
FhSigV4Status
fh_sigv4_signing_key(const char *secret_access_key, const char *date8,
					 const char *region, const char *service,
					 unsigned char key[32])
{
	size_t		slen = strlen(secret_access_key);
	char	   *ksecret;
	unsigned char k1[SHA256_LEN];
	unsigned char k2[SHA256_LEN];
	bool		ok;

	if (slen > SIZE_MAX - 5)
		return FH_SIGV4_ENOMEM;
	ksecret = malloc(slen + 5);
	if (ksecret == NULL)
		return FH_SIGV4_ENOMEM;
	memcpy(ksecret, "AWS4", 4);
	memcpy(ksecret + 4, secret_access_key, slen + 1);

	ok = hmac_sha256(ksecret, slen + 4, date8, strlen(date8), k1) &&
		hmac_sha256(k1, SHA256_LEN, region, strlen(region), k2) &&
		hmac_sha256(k2, SHA256_LEN, service, strlen(service), k1) &&
		hmac_sha256(k1, SHA256_LEN, SCOPE_TERMINATOR,
					strlen(SCOPE_TERMINATOR), key);

	OPENSSL_cleanse(ksecret, slen + 4);
	free(ksecret);
	OPENSSL_cleanse(k1, sizeof(k1));
	OPENSSL_cleanse(k2, sizeof(k2));
	return ok ? FH_SIGV4_OK : FH_SIGV4_ECRYPTO;
}

/* ---------- the clock ---------- */

/*
 * fh_sigv4_amz_date
 *		Format t as the UTC "YYYYMMDDTHHMMSSZ" of X-Amz-Date, without the C
 *		library's time zone state (days to civil date, proleptic Gregorian).
 *		Returns false when the year falls outside 0000-9999.
 */
bool
fh_sigv4_amz_date(time_t t, char out[FH_SIGV4_DATE_LEN + 1])
{
	long long	secs = (long long) t;
	long long	days = secs / 86400;
	long long	rem = secs % 86400;
	long long	era,
				doe,
				yoe,
				doy,
				mp,
				year;
	int			month,
				day;

	if (rem < 0)
	{
		rem += 86400;
		days -= 1;
	}
	/* shift the epoch to 0000-03-01 so leap days end a year */
	days += 719468;
	era = (days >= 0 ? days : days - 146096) / 146097;
	doe = days - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	day = (int) (doy - (153 * mp + 2) / 5 + 1);
	month = (int) (mp < 10 ? mp + 3 : mp - 9);
	year = yoe + era * 400 + (month <= 2);
	if (year < 0 || year > 9999)
		return false;
	snprintf(out, FH_SIGV4_DATE_LEN + 1, "%04d%02d%02dT%02d%02d%02dZ",
			 (int) year, month, day, (int) (rem / 3600),
			 (int) (rem / 60 % 60), (int) (rem % 60));
	return true;
}

/* ---------- canonical request parts ---------- */

/*
 * The canonical URI of path, by the rules in the file header.  path starts
 * with '/' (checked by the caller) or is empty, which means "/".
 */
static void
canonical_uri(SigBuf *b, const char *path, bool s3)
{
	size_t		len = strlen(path);
	const char **seg;
	size_t	   *seglen;
	size_t		nseg = 0;
	bool		trailing_slash = false;
	const char *p;

	if (len == 0)
	{
		buf_putc(b, '/');
		return;
	}
	if (s3)
	{
		for (size_t i = 0; i < len; i++)
		{
			if (path[i] == '%' && hex_value(path[i + 1]) >= 0 &&
				hex_value(path[i + 2]) >= 0)
			{
				/* an escape made by the caller: S3 encodes once */
				buf_append(b, path + i, 3);
				i += 2;
			}
			else
				buf_encode(b, path + i, 1, true);
		}
		return;
	}

	/* a path of len bytes has at most len segments after its first '/' */
	seg = malloc(len * sizeof(*seg));
	seglen = malloc(len * sizeof(*seglen));
	if (seg == NULL || seglen == NULL)
	{
		free(seg);
		free(seglen);
		b->failed = true;
		return;
	}
	p = path + 1;
	for (;;)
	{
		const char *slash = strchr(p, '/');
		size_t		n = slash ? (size_t) (slash - p) : strlen(p);

		/* a path ending in "/", "/." or "/.." names a directory */
		trailing_slash = (n == 0 || (n == 1 && p[0] == '.') ||
						  (n == 2 && p[0] == '.' && p[1] == '.'));
		if (n == 2 && p[0] == '.' && p[1] == '.')
		{
			if (nseg > 0)
				nseg--;
		}
		else if (n > 0 && !(n == 1 && p[0] == '.'))
		{
			seg[nseg] = p;
			seglen[nseg] = n;
			nseg++;
		}
		if (slash == NULL)
			break;
		p = slash + 1;
	}

	for (size_t i = 0; i < nseg; i++)
	{
		buf_putc(b, '/');
		buf_encode(b, seg[i], seglen[i], false);
	}
	if (nseg == 0 || trailing_slash)
		buf_putc(b, '/');
	free(seg);
	free(seglen);
}

typedef struct QueryParam
{
	char	   *name;			/* encoded; one allocation with value */
	char	   *value;			/* encoded */
} QueryParam;

static int
query_param_cmp(const void *a, const void *b)
{
	const QueryParam *x = a;
	const QueryParam *y = b;
	int			c = strcmp(x->name, y->name);

	return c != 0 ? c : strcmp(x->value, y->value);
}

/* percent-decode s[0..n) and encode it again per RFC 3986 */
static void
buf_reencode(SigBuf *b, const char *s, size_t n)
{
	char		enc[3];

	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '%' && i + 2 < n &&
			hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0)
		{
			c = (unsigned char) (hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
			i += 2;
		}
		buf_append(b, enc, encode_byte(c, false, enc));
	}
}

/* the canonical query string of query (NULL or "" gives "") */
static void
canonical_query(SigBuf *b, const char *query)
{
	size_t		nmax = 1;
	size_t		n = 0;
	QueryParam *params;
	const char *p;

	if (query == NULL || *query == '\0')
		return;
	for (p = query; *p; p++)
		if (*p == '&')
			nmax++;
	params = calloc(nmax, sizeof(*params));
	if (params == NULL)
	{
		b->failed = true;
		return;
	}

	p = query;
	for (;;)
	{
		const char *amp = strchr(p, '&');
		size_t		len = amp ? (size_t) (amp - p) : strlen(p);

		if (len > 0)
		{
			const char *eq = memchr(p, '=', len);
			size_t		namelen = eq ? (size_t) (eq - p) : len;
			SigBuf		pb = {0};
			size_t		valoff;

			buf_reencode(&pb, p, namelen);
			buf_putc(&pb, '\0');
			valoff = pb.len;
			if (eq != NULL)
				buf_reencode(&pb, eq + 1, len - namelen - 1);
			buf_putc(&pb, '\0');	/* also makes an empty value exist */
			params[n].name = buf_finish(&pb);
			if (params[n].name == NULL)
			{
				b->failed = true;
				break;
			}
			params[n].value = params[n].name + valoff;
			n++;
		}
		if (amp == NULL)
			break;
		p = amp + 1;
	}

	if (!b->failed)
	{
		qsort(params, n, sizeof(*params), query_param_cmp);
		for (size_t i = 0; i < n; i++)
		{
			if (i > 0)
				buf_putc(b, '&');
			buf_puts(b, params[i].name);
			buf_putc(b, '=');
			buf_puts(b, params[i].value);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(params[i].name);
	free(params);
}

typedef struct CanonHeader
{
	char	   *name;			/* lowercase; one allocation with value */
	char	   *value;			/* trimmed, blanks squeezed */
	int			order;			/* position given, to keep repeated names'
								 * values in order */
} CanonHeader;

static int
canon_header_cmp(const void *a, const void *b)
{
	const CanonHeader *x = a;
	const CanonHeader *y = b;
	int			c = strcmp(x->name, y->name);

	return c != 0 ? c : (x->order > y->order) - (x->order < y->order);
}

/* fill h with the lowercase name and the trimmed, squeezed value */
static bool
canon_header_make(CanonHeader *h, const char *name, const char *value,
				  int order)
{
	SigBuf		hb = {0};
	size_t		valoff;
	const char *v = value;
	bool		pending_blank = false;

	for (const char *c = name; *c; c++)
		buf_putc(&hb, (*c >= 'A' && *c <= 'Z') ? *c - 'A' + 'a' : *c);
	buf_putc(&hb, '\0');
	valoff = hb.len;
	while (is_blank((unsigned char) *v))
		v++;
	for (; *v; v++)
	{
		if (is_blank((unsigned char) *v))
			pending_blank = true;
		else
		{
			if (pending_blank)
				buf_putc(&hb, ' ');
			pending_blank = false;
			buf_putc(&hb, *v);
		}
	}
	buf_putc(&hb, '\0');
	h->name = buf_finish(&hb);
	if (h->name == NULL)
		return false;
	h->value = h->name + valoff;
	h->order = order;
	return true;
}

/* ---------- input checks ---------- */

static bool
has_control(const char *s)
{
	for (; *s; s++)
		if (is_control((unsigned char) *s) && *s != '\t')
			return true;
	return false;
}

/* letters, digits, '-' and '_': region and service names */
static bool
is_scope_word(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return true;
}

static bool
is_amz_date(const char *s)
{
	if (s == NULL || strlen(s) != FH_SIGV4_DATE_LEN ||
		s[8] != 'T' || s[15] != 'Z')
		return false;
	for (int i = 0; i < 15; i++)
		if (i != 8 && (s[i] < '0' || s[i] > '9'))
			return false;
	return true;
}

/* 64 lowercase hex digits, or a literal like UNSIGNED-PAYLOAD */
static bool
is_payload_hash(const char *s)
{
	size_t		n = s ? strlen(s) : 0;
	bool		hex = (n == FH_SIGV4_HEX_LEN);
	bool		word = (n > 0);

	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			hex = false;
		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
			word = false;
	}
	return hex || word;
}

static bool
name_is(const char *name, const char *lower)
{
	for (; *name && *lower; name++, lower++)
	{
		char		c = (*name >= 'A' && *name <= 'Z') ? *name - 'A' + 'a' : *name;

		if (c != *lower)
			return false;
	}
	return *name == '\0' && *lower == '\0';
}

/*
 * Check the request; returns NULL when it can be signed, else a message
 * saying what is wrong.
 */
static const char *
check_request(const FhSigV4Request *req)
{
	bool		token = req->session_token && *req->session_token;
	bool		host = false;

	if (req->method == NULL || *req->method == '\0')
		return "method is empty";
	for (const char *c = req->method; *c; c++)
		if (!is_tchar((unsigned char) *c))
			return "method contains a character not allowed in a token";
	if (req->path == NULL || (req->path[0] != '\0' && req->path[0] != '/'))
		return "path must start with \"/\"";
	if (has_control(req->path) || strchr(req->path, '\t'))
		return "path contains a control character";
	if (req->query && (has_control(req->query) || strchr(req->query, '\t')))
		return "query contains a control character";
	if (req->nheaders < 0 || (req->nheaders > 0 && req->headers == NULL))
		return "headers are missing";
	for (int i = 0; i < req->nheaders; i++)
	{
		const FhSigV4Header *h = &req->headers[i];

		if (h->name == NULL || *h->name == '\0')
			return "a header name is empty";
		for (const char *c = h->name; *c; c++)
			if (!is_tchar((unsigned char) *c))
				return "a header name contains a character not allowed in a token";
		if (h->value == NULL || has_control(h->value))
			return "a header value is missing or contains a control character";
		if (name_is(h->name, "x-amz-date") ||
			name_is(h->name, "authorization"))
			return "headers X-Amz-Date and Authorization are the signer's to add";
		if (token && name_is(h->name, "x-amz-security-token"))
			return "header X-Amz-Security-Token is added from session_token";
		if (req->add_content_sha256 &&
			name_is(h->name, "x-amz-content-sha256"))
			return "header x-amz-content-sha256 is added by add_content_sha256";
		if (!h->nosign && name_is(h->name, "host"))
			host = true;
	}
	if (!host)
		return "a signed Host header is required";
	if (!is_payload_hash(req->payload_hash))
		return "payload hash must be 64 lowercase hex digits or a literal such as UNSIGNED-PAYLOAD";
	if (req->access_key_id == NULL || *req->access_key_id == '\0')
		return "access key id is empty";
	for (const char *c = req->access_key_id; *c; c++)
		if (is_control((unsigned char) *c) || *c == ' ' || *c == '/' ||
			*c == ',')
			return "access key id contains a blank, a control character, \"/\" or \",\"";
	if (req->secret_access_key == NULL || *req->secret_access_key == '\0')
		return "secret access key is empty";
	if (token && has_control(req->session_token))
		return "session token contains a control character";
	if (!is_scope_word(req->region))
		return "region must be letters, digits, \"-\" and \"_\"";
	if (!is_scope_word(req->service))
		return "service must be letters, digits, \"-\" and \"_\"";
	if (!is_amz_date(req->amz_date))
		return "amz_date must have the form YYYYMMDDTHHMMSSZ";
	return NULL;
}

/* ---------- signing ---------- */

/*
 * The canonical headers and the signed header names of req, with the
 * headers the signer adds (x-amz-date, x-amz-content-sha256 when asked,
 * x-amz-security-token when signed).  Returns false when out of memory.
 */
static bool
canonical_headers(const FhSigV4Request *req, SigBuf *canon, SigBuf *names)
{
	CanonHeader *hs;
	int			n = 0;
	bool		ok = true;
	bool		token = req->session_token && *req->session_token &&
		!req->session_token_unsigned;

	hs = calloc((size_t) req->nheaders + 3, sizeof(*hs));
	if (hs == NULL)
		return false;
	for (int i = 0; ok && i < req->nheaders; i++)
		if (!req->headers[i].nosign)
			ok = canon_header_make(&hs[n++], req->headers[i].name,
								   req->headers[i].value, i);
	if (ok)
		ok = canon_header_make(&hs[n++], "x-amz-date", req->amz_date,
							   req->nheaders);
	if (ok && req->add_content_sha256)
		ok = canon_header_make(&hs[n++], "x-amz-content-sha256",
							   req->payload_hash, req->nheaders + 1);
	if (ok && token)
		ok = canon_header_make(&hs[n++], "x-amz-security-token",
							   req->session_token, req->nheaders + 2);

	if (ok)
	{
		qsort(hs, n, sizeof(*hs), canon_header_cmp);
		for (int i = 0; i < n; i++)
		{
			bool		same = (i > 0 && strcmp(hs[i].name, hs[i - 1].name) == 0);

			if (same)
				buf_putc(canon, ',');
			else
			{
				if (i > 0)
				{
					buf_putc(canon, '\n');
					buf_putc(names, ';');
				}
				buf_puts(canon, hs[i].name);
				buf_putc(canon, ':');
				buf_puts(names, hs[i].name);
			}
			buf_puts(canon, hs[i].value);
		}
		buf_putc(canon, '\n');
	}
	for (int i = 0; i < n; i++)
		free(hs[i].name);
	free(hs);
	return ok;
}

/*
 * fh_sigv4_sign
 *		Sign req: fill res with the canonical request, the string to sign,
 *		the signature, the Authorization header's value and the headers the
 *		caller must add (X-Amz-Date, X-Amz-Content-Sha256 when
 *		add_content_sha256, X-Amz-Security-Token when a session token is
 *		given).  req->path is the path as sent; the canonical URI follows
 *		the rules in the file header (S3: not normalized, encoded once).
 *
 *		Returns FH_SIGV4_OK, or an error with res holding nothing to free
 *		but res->error (for FH_SIGV4_EINVAL).  Free res with
 *		fh_sigv4_result_free() in either case.
 */
FhSigV4Status
fh_sigv4_sign(const FhSigV4Request *req, FhSigV4Result *res)
{
	SigBuf		uri = {0};
	SigBuf		creq = {0};
	SigBuf		canon = {0};
	SigBuf		names = {0};
	SigBuf		sts = {0};
	SigBuf		authz = {0};
	char		date8[9];
	unsigned char md[SHA256_LEN];
	unsigned char key[SHA256_LEN];
	char		creq_hash[FH_SIGV4_HEX_LEN + 1];
	FhSigV4Status status = FH_SIGV4_OK;
	bool		s3;

	memset(res, 0, sizeof(*res));
	res->error = check_request(req);
	if (res->error != NULL)
		return FH_SIGV4_EINVAL;
	s3 = (strcmp(req->service, "s3") == 0);
	memcpy(date8, req->amz_date, 8);
	date8[8] = '\0';

	/* step 1: the canonical request */
	canonical_uri(&uri, req->path, s3);
	res->canonical_uri = buf_finish(&uri);
	if (res->canonical_uri == NULL ||
		!canonical_headers(req, &canon, &names))
	{
		status = FH_SIGV4_ENOMEM;
		goto fail;
	}
	res->signed_headers = buf_finish(&names);
	if (res->signed_headers == NULL)
	{
		status = FH_SIGV4_ENOMEM;
		goto fail;
	}
	buf_puts(&creq, req->method);
	buf_putc(&creq, '\n');
	buf_puts(&creq, res->canonical_uri);
	buf_putc(&creq, '\n');
	canonical_query(&creq, req->query);
	buf_putc(&creq, '\n');
	if (!canon.failed)
		buf_append(&creq, canon.data, canon.len);
	else
		creq.failed = true;
	buf_putc(&creq, '\n');
	buf_puts(&creq, res->signed_headers);
	buf_putc(&creq, '\n');
	buf_puts(&creq, req->payload_hash);
	res->canonical_request = buf_finish(&creq);
	if (res->canonical_request == NULL)
	{
		status = FH_SIGV4_ENOMEM;
		goto fail;
	}

	/* step 2: the string to sign */
	if (!sha256(res->canonical_request, strlen(res->canonical_request), md))
	{
		status = FH_SIGV4_ECRYPTO;
		goto fail;
	}
	hex_encode(md, SHA256_LEN, creq_hash);
	buf_puts(&sts, FH_SIGV4_ALGORITHM "\n");
	buf_puts(&sts, req->amz_date);
	buf_putc(&sts, '\n');
	buf_puts(&sts, date8);
	buf_putc(&sts, '/');
	buf_puts(&sts, req->region);
	buf_putc(&sts, '/');
	buf_puts(&sts, req->service);
	buf_puts(&sts, "/" SCOPE_TERMINATOR "\n");
	buf_puts(&sts, creq_hash);
	res->string_to_sign = buf_finish(&sts);
	if (res->string_to_sign == NULL)
	{
		status = FH_SIGV4_ENOMEM;
		goto fail;
	}

	/* steps 3 and 4: the signing key and the signature */
	status = fh_sigv4_signing_key(req->secret_access_key, date8, req->region,
								  req->service, key);
	if (status != FH_SIGV4_OK)
		goto fail;
	if (!hmac_sha256(key, SHA256_LEN, res->string_to_sign,
					 strlen(res->string_to_sign), md))
	{
		OPENSSL_cleanse(key, sizeof(key));
		status = FH_SIGV4_ECRYPTO;
		goto fail;
	}
	OPENSSL_cleanse(key, sizeof(key));
	hex_encode(md, SHA256_LEN, res->signature);

	buf_puts(&authz, FH_SIGV4_ALGORITHM " Credential=");
	buf_puts(&authz, req->access_key_id);
	buf_putc(&authz, '/');
	buf_puts(&authz, date8);
	buf_putc(&authz, '/');
	buf_puts(&authz, req->region);
	buf_putc(&authz, '/');
	buf_puts(&authz, req->service);
	buf_puts(&authz, "/" SCOPE_TERMINATOR ", SignedHeaders=");
	buf_puts(&authz, res->signed_headers);
	buf_puts(&authz, ", Signature=");
	buf_puts(&authz, res->signature);
	res->authorization = buf_finish(&authz);
	if (res->authorization == NULL)
	{
		status = FH_SIGV4_ENOMEM;
		goto fail;
	}

	/* the headers to send besides the caller's */
	memcpy(res->amz_date, req->amz_date, FH_SIGV4_DATE_LEN + 1);
	res->add_headers[res->nadd_headers].name = "X-Amz-Date";
	res->add_headers[res->nadd_headers++].value = res->amz_date;
	if (req->add_content_sha256)
	{
		res->payload_hash = dup_string(req->payload_hash);
		if (res->payload_hash == NULL)
		{
			status = FH_SIGV4_ENOMEM;
			goto fail;
		}
		res->add_headers[res->nadd_headers].name = "X-Amz-Content-Sha256";
		res->add_headers[res->nadd_headers++].value = res->payload_hash;
	}
	if (req->session_token && *req->session_token)
	{
		res->session_token = dup_string(req->session_token);
		if (res->session_token == NULL)
		{
			status = FH_SIGV4_ENOMEM;
			goto fail;
		}
		res->add_headers[res->nadd_headers].name = "X-Amz-Security-Token";
		res->add_headers[res->nadd_headers].value = res->session_token;
		res->add_headers[res->nadd_headers++].nosign =
			req->session_token_unsigned;
	}
	free(canon.data);
	return FH_SIGV4_OK;

fail:
	free(uri.data);
	free(creq.data);
	free(canon.data);
	free(names.data);
	free(sts.data);
	free(authz.data);
	fh_sigv4_result_free(res);
	return status;
}

/* release what fh_sigv4_sign allocated; res is left empty */
void
fh_sigv4_result_free(FhSigV4Result *res)
{
	const char *error = res->error;

	free(res->canonical_uri);
	free(res->canonical_request);
	free(res->string_to_sign);
	free(res->signed_headers);
	free(res->authorization);
	free(res->payload_hash);
	if (res->session_token != NULL)
	{
		OPENSSL_cleanse(res->session_token, strlen(res->session_token));
		free(res->session_token);
	}
	memset(res, 0, sizeof(*res));
	res->error = error;
}

const char *
fh_sigv4_strerror(FhSigV4Status status)
{
	switch (status)
	{
		case FH_SIGV4_OK:
			return "success";
		case FH_SIGV4_EINVAL:
			return "invalid request to sign";
		case FH_SIGV4_ENOMEM:
			return "out of memory";
		case FH_SIGV4_ECRYPTO:
			return "OpenSSL failed";
	}
	return "unknown error";
}
