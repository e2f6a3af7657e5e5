/*-------------------------------------------------------------------------
 *
 * util.c
 *	  Small pure helpers: request ids, base64 into a StringInfo, gzip and
 *	  the retry backoff.
 *
 *	  base64 is OpenSSL's EVP_EncodeBlock rather than PostgreSQL's
 *	  pg_b64_encode: it encodes three bytes per step by table and measured
 *	  about twice as fast on 134-byte records (1.7 GB/s against 0.87 GB/s),
 *	  which the Firehose format pays for every byte it sends.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <curl/curl.h>

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include <zlib.h>

#include "common/pg_prng.h"

#include <openssl/evp.h>

#include "utf8.h"

/*
 * fh_uuid_from
 *		A UUID-shaped request id that is a pure function of its inputs, so a
 *		retried part carries the id of its first attempt.  out needs 37 bytes.
 */
void
fh_uuid_from(uint64 a, uint64 b, uint64 c, char *out)
{
	uint64		hi = a ^ (b * UINT64CONST(0x9E3779B97F4A7C15));
	uint64		lo = c ^ (b << 48);
	uint8		u[16];

	for (int i = 0; i < 8; i++)
	{
		u[i] = (uint8) (hi >> (56 - 8 * i));
		u[8 + i] = (uint8) (lo >> (56 - 8 * i));
	}
	u[6] = (u[6] & 0x0F) | 0x80;	/* version 8: custom */
	u[8] = (u[8] & 0x3F) | 0x80;	/* RFC 4122 variant */
	snprintf(out, 37,
			 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7],
			 u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

/*
 * fh_base64_encode
 *		The standard base64 encoding (padded, no line breaks) of len bytes of
 *		data into dst, which has room for FH_BASE64_LEN(len) + 1 bytes (the
 *		encoder writes a terminating NUL).  Returns the length written.
 */
size_t
fh_base64_encode(const char *data, size_t len, char *dst)
{
	size_t		done = 0;
	size_t		out = 0;

	/* EVP_EncodeBlock takes an int length: whole 3-byte groups at a time */
	while (len - done > (size_t) (INT_MAX / 4) * 3)
	{
		out += EVP_EncodeBlock((unsigned char *) dst + out,
							   (const unsigned char *) data + done,
							   (INT_MAX / 4) * 3);
		done += (INT_MAX / 4) * 3;
	}
	out += EVP_EncodeBlock((unsigned char *) dst + out,
						   (const unsigned char *) data + done, (int) (len - done));
	return out;
}

/* append the standard base64 encoding of data to buf */
void
fh_base64_append(StringInfo buf, const char *data, int len)
{
	enlargeStringInfo(buf, (int) FH_BASE64_LEN(len) + 1);
	buf->len += fh_base64_encode(data, len, buf->data + buf->len);
	buf->data[buf->len] = '\0';
}

/*
 * fh_gzip
 *		Compress in into out (reset first) as a gzip member.  Returns false
 *		when zlib fails (out of memory), leaving out unspecified.
 */
bool
fh_gzip(const char *in, size_t inlen, StringInfo out)
{
	z_stream	zs;
	uLong		bound;
	int			rc;

	memset(&zs, 0, sizeof(zs));
	if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
					 Z_DEFAULT_STRATEGY) != Z_OK)
		return false;
	bound = deflateBound(&zs, inlen) + 32;
	resetStringInfo(out);
	enlargeStringInfo(out, bound);
	zs.next_in = (Bytef *) in;
	zs.avail_in = inlen;
	zs.next_out = (Bytef *) out->data;
	zs.avail_out = bound;
	rc = deflate(&zs, Z_FINISH);
	out->len = zs.total_out;
	deflateEnd(&zs);
	return rc == Z_STREAM_END;
}

/*
 * fh_gunzip
 *		Decompress in, one or more gzip members, into out (reset first), up
 *		to max bytes.  NULL when it worked, else why not (a static text).
 */
const char *
fh_gunzip(const char *in, size_t inlen, size_t max, StringInfo out)
{
	z_stream	zs;
	int			rc = Z_OK;

	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 15 + 16) != Z_OK)
		return "zlib could not start.";
	resetStringInfo(out);
	zs.next_in = (Bytef *) in;
	zs.avail_in = inlen;
	while (rc != Z_STREAM_END || zs.avail_in > 0)
	{
		/* members one after the other, as gzip(1) reads them */
		if (rc == Z_STREAM_END && inflateReset(&zs) != Z_OK)
			break;
		if (out->maxlen - out->len < 65536)
		{
			if ((size_t) out->len >= max)
			{
				inflateEnd(&zs);
				return "The decompressed record is too large.";
			}
			enlargeStringInfo(out, 65536);
		}
		zs.next_out = (Bytef *) out->data + out->len;
		zs.avail_out = Min(out->maxlen - out->len - 1, max + 1 - out->len);
		rc = inflate(&zs, Z_NO_FLUSH);
		out->len = (char *) zs.next_out - out->data;
		if ((size_t) out->len > max)
		{
			inflateEnd(&zs);
			return "The decompressed record is too large.";
		}
		if (rc != Z_OK && rc != Z_STREAM_END)
		{
			inflateEnd(&zs);
			return rc == Z_BUF_ERROR ? "The gzip data is truncated." :
				"The data is not valid gzip.";
		}
	}
	out->data[out->len] = '\0';
	inflateEnd(&zs);
	if (inlen == 0)
		return "The record is empty, not gzip.";
	return rc == Z_STREAM_END ? NULL : "The gzip data is truncated.";
}

/*
 * fh_backoff_ms
 *		Delay before retry number attempt (1 = after the first failure):
 *		base doubling, capped at max, with +-15% jitter.
 */
int64
fh_backoff_ms(int attempt, int64 base_ms, int64 max_ms)
{
	double		d = (double) base_ms;

	for (int i = 1; i < attempt && d < (double) max_ms; i++)
		d *= 2;
	if (d > (double) max_ms)
		d = (double) max_ms;
	d *= 0.85 + 0.30 * pg_prng_double(&pg_global_prng_state);
	return (int64) d;
}

/* t as milliseconds since 1970-01-01 UTC, rounded down: Firehose's timestamps */
int64
fh_epoch_ms(TimestampTz t)
{
	int64		ms = t / 1000;

	if (t % 1000 < 0)
		ms--;
	return ms + (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * (int64) SECS_PER_DAY * 1000;
}

/* the length of url without its trailing slashes, to append a path */
size_t
fh_url_trimmed_len(const char *url)
{
	size_t		len = strlen(url);

	while (len > 0 && url[len - 1] == '/')
		len--;
	return len;
}

/*
 * fh_url_escape
 *		s percent-encoded for a URL's path segment or query value (libcurl's
 *		rules: all but RFC 3986's unreserved characters), palloc'd.
 */
char *
fh_url_escape(const char *s)
{
	char	   *enc = curl_easy_escape(NULL, s, 0);
	char	   *r;

	if (enc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	r = pstrdup(enc);
	curl_free(enc);
	return r;
}

/*
 * fh_url_userinfo
 *		Where the user information of an absolute URL ("user:password" in
 *		"https://user:password@host/") lies: true with its offset and length,
 *		or false when there is none.  Up to the last '@' of the authority,
 *		which covers whatever curl could take for user information.
 */
bool
fh_url_userinfo(const char *url, size_t *start, size_t *len)
{
	const char *sep = url ? strstr(url, "://") : NULL;
	const char *auth;
	const char *at;
	size_t		authlen;

	if (sep == NULL)
		return false;
	auth = sep + 3;
	authlen = strcspn(auth, "/?#");
	at = NULL;
	for (const char *c = auth; c < auth + authlen; c++)
		if (*c == '@')
			at = c;
	if (at == NULL)
		return false;
	*start = auth - url;
	*len = at - auth;
	return true;
}

/* url with its user information, if any, shown as "********" */
char *
fh_url_redact(const char *url)
{
	size_t		start;
	size_t		len;

	if (!fh_url_userinfo(url, &start, &len))
		return pstrdup(url);
	return psprintf("%.*s********%s", (int) start, url, url + start + len);
}

/*
 * fh_url_split
 *		The scheme, "host[:port]" and path of an absolute URL (checked when
 *		the options were), palloc'd; path "/" when the URL has none.
 */
void
fh_url_split(const char *url, char **scheme, char **hostport, char **path)
{
	CURLU	   *h = curl_url();
	char	   *s = NULL;
	char	   *host = NULL;
	char	   *port = NULL;
	char	   *p = NULL;

	if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK ||
		curl_url_get(h, CURLUPART_SCHEME, &s, 0) != CURLUE_OK ||
		curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
		curl_url_get(h, CURLUPART_PATH, &p, 0) != CURLUE_OK)
	{
		curl_url_cleanup(h);
		elog(ERROR, "invalid URL \"%s\"", url);
	}
	(void) curl_url_get(h, CURLUPART_PORT, &port, 0);
	*scheme = pstrdup(s);
	*hostport = psprintf("%s%s%s", host, port ? ":" : "", port ? port : "");
	*path = pstrdup(p);
	curl_free(s);
	curl_free(host);
	curl_free(p);
	if (port)
		curl_free(port);
	curl_url_cleanup(h);
}

/* is data (len bytes) one JSON value?  PostgreSQL's parser, without throwing */
bool
fh_is_json(const char *data, int len)
{
	JsonLexContext *lex = makeJsonLexContextCstringLen((char *) data, len,
													   GetDatabaseEncoding(), false);

	return pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS;
}

/*
 * fh_jsonb_parse
 *		text (a C string) as jsonb; NULL and *error (why) when jsonb_in
 *		refuses it.  jsonb_in's ERROR is caught without a subtransaction: the
 *		parser takes no locks or buffers and only allocates in
 *		CurrentMemoryContext, which the caller is to reset or delete.  Errors
 *		other than bad data (out of memory, cancel) go on up.
 */
Jsonb *
fh_jsonb_parse(const char *text, char **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	Jsonb	   *volatile jb = NULL;

	*error = NULL;
	PG_TRY();
	{
		jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	}
	PG_CATCH();
	{
		ErrorData  *ed;

		MemoryContextSwitchTo(cxt);
		ed = CopyErrorData();
		if (ERRCODE_TO_CATEGORY(ed->sqlerrcode) != ERRCODE_DATA_EXCEPTION &&
			ERRCODE_TO_CATEGORY(ed->sqlerrcode) != ERRCODE_PROGRAM_LIMIT_EXCEEDED)
			PG_RE_THROW();
		FlushErrorState();
		*error = ed->message;
	}
	PG_END_TRY();
	return jb;
}

/* secret (len bytes) at p, or a start of it cut off by the end of the text */
static size_t
secret_at(const char *p, const char *end, const char *secret, size_t len)
{
	size_t		left = end - p;

	if (left >= len)
		return memcmp(p, secret, len) == 0 ? len : 0;
	/* a text clipped (here or by the sink) ends in the start of the secret */
	if (left >= FH_MIN_SECRET_LEN && memcmp(p, secret, left) == 0)
		return left;
	return 0;
}

/*
 * The text msg made valid text of the database's encoding (in UTF-8, a
 * malformed byte becomes U+FFFD; in other encodings every byte outside
 * ASCII becomes '?'), cut on a character boundary to at most max bytes;
 * *clipped tells whether it was cut.
 */
static void
valid_text(const char *msg, int max, StringInfo out, bool *clipped)
{
	bool		utf8 = GetDatabaseEncoding() == PG_UTF8;
	const char *end = msg + strlen(msg);

	for (const char *p = msg; p < end;)
	{
		uint32_t	cp;
		int			n = utf8 ? fh_utf8_decode((const unsigned char *) p, end - p, &cp) :
			((unsigned char) *p < 0x80);
		const char *rep = NULL;

		if (n == 0)
		{
			rep = utf8 ? "\xEF\xBF\xBD" : "?";
			n = 1;
		}
		if (out->len + (rep ? (int) strlen(rep) : n) > max)
		{
			*clipped = true;
			return;
		}
		if (rep)
			appendStringInfoString(out, rep);
		else
			appendBinaryStringInfo(out, p, n);
		p += n;
	}
}

/*
 * fh_error_text
 *		An error text fit to be stored and shown: valid text of the
 *		database's encoding (see valid_text; NUL characters cannot pass, the
 *		text ends at the first), clipped on a character boundary to
 *		FH_MAX_ERROR_LEN bytes with "..." at the end, and every occurrence
 *		of the stream's secrets (a list of strings, see fh_options_redact)
 *		replaced by "[redacted]", a secret cut short by the end of the text
 *		included.  An error text quotes what a destination answered, and a
 *		destination may echo what it was sent: keys, tokens, passwords.
 *		NULL stays NULL.
 */
char *
fh_error_text(const char *msg, List *secrets)
{
	StringInfoData text;
	StringInfoData out;
	bool		clipped = false;
	const char *end;

	if (msg == NULL)
		return NULL;

	/* clipped first, so that a secret the clip cuts short is scrubbed */
	initStringInfo(&text);
	valid_text(msg, FH_MAX_ERROR_LEN - 3, &text, &clipped);

	initStringInfo(&out);
	end = text.data + text.len;
	for (const char *p = text.data; p < end;)
	{
		ListCell   *lc;
		size_t		n = 0;

		foreach(lc, secrets)
		{
			const char *secret = lfirst(lc);

			if ((n = secret_at(p, end, secret, strlen(secret))) > 0)
				break;
		}
		if (n > 0)
		{
			appendStringInfoString(&out, "[redacted]");
			p += n;
		}
		else
			appendStringInfoChar(&out, *p++);
	}
	pfree(text.data);

	/* "[redacted]" may be longer than what it replaced: clip again */
	if (out.len > FH_MAX_ERROR_LEN - 3)
	{
		int			cut = FH_MAX_ERROR_LEN - 3;

		/* back to a character's first byte (outside UTF-8 all is ASCII) */
		while (cut > 0 && (out.data[cut] & 0xC0) == 0x80)
			cut--;
		out.len = cut;
		out.data[cut] = '\0';
		clipped = true;
	}
	if (clipped)
		appendStringInfoString(&out, "...");
	return out.data;
}

/*
 * fh_append_answer
 *		Append the first max bytes of resp's body to out, for an error text
 *		that quotes the destination, each NUL byte as U+FFFD: fh_error_text
 *		ends a text at its first NUL, and an answer must not hide what
 *		follows one.  Other invalid bytes are fh_error_text's to replace.
 */
void
fh_append_answer(StringInfo out, const FhResponse *resp, int max)
{
	const char *p = resp->body.data;
	const char *end = p ? p + Min(resp->body.len, max) : NULL;

	while (p < end)
	{
		const char *nul = memchr(p, '\0', end - p);

		appendBinaryStringInfo(out, p, (nul ? nul : end) - p);
		if (nul == NULL)
			break;
		appendStringInfoString(out, "\xEF\xBF\xBD");
		p = nul + 1;
	}
}

/*
 * fh_jsonb_path_scalar
 *		The first item path (a jsonpath) finds in doc, as
 *		jsonb_path_query_first(doc, path, '{}', silent => true) finds it,
 *		when it is a string or a number: its text (a string unquoted, a
 *		number as numeric_out writes it); with booleans, true and false too.
 *		NULL when nothing is found or the item is of another kind; *found
 *		(when not NULL) says whether anything but a JSON null was found.
 */
char *
fh_jsonb_path_scalar(Jsonb *doc, Datum path, bool booleans, bool *found)
{
	LOCAL_FCINFO(fcinfo, 4);
	Datum		v;
	Jsonb	   *j;
	static Jsonb *no_vars = NULL;

	/*
	 * Kept for the life of the process, so made in TopMemoryContext: the
	 * current context is a part's, deleted with the part.
	 */
	if (no_vars == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		no_vars = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
		MemoryContextSwitchTo(old);
	}
	InitFunctionCallInfoData(*fcinfo, NULL, 4, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = JsonbPGetDatum(doc);
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = path;
	fcinfo->args[1].isnull = false;
	fcinfo->args[2].value = JsonbPGetDatum(no_vars);
	fcinfo->args[2].isnull = false;
	fcinfo->args[3].value = BoolGetDatum(true);
	fcinfo->args[3].isnull = false;
	v = jsonb_path_query_first(fcinfo);
	if (found)
		*found = !fcinfo->isnull;
	if (fcinfo->isnull)
		return NULL;
	j = DatumGetJsonbP(v);
	if (!JB_ROOT_IS_SCALAR(j))
		return NULL;
	if (found && getIthJsonbValueFromContainer(&j->root, 0)->type == jbvNull)
		*found = false;			/* a JSON null is no value */
	return fh_jsonb_scalar_text(getIthJsonbValueFromContainer(&j->root, 0), booleans);
}

/*
 * fh_jsonb_scalar_text
 *		The text of jv when it is a string (unquoted) or a number (as
 *		numeric_out writes it), with booleans true and false too; else NULL.
 */
char *
fh_jsonb_scalar_text(const JsonbValue *jv, bool booleans)
{
	if (jv->type == jbvString)
		return pnstrdup(jv->val.string.val, jv->val.string.len);
	if (jv->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(jv->val.numeric)));
	if (jv->type == jbvBool && booleans)
		return pstrdup(jv->val.boolean ? "true" : "false");
	return NULL;
}
