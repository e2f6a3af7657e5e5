/*-------------------------------------------------------------------------
 *
 * sink_http.c
 *	  destination 'http': the Firehose HTTP endpoint delivery protocol v1.0
 *	  (format 'firehose'), and plain webhooks (format 'raw').
 *
 * Firehose format, as Amazon Data Firehose sends it:
 *	POST <url>
 *	X-Amz-Firehose-Protocol-Version: 1.0
 *	X-Amz-Firehose-Request-Id: <id, the same on every retry of a part>
 *	X-Amz-Firehose-Access-Key: <access_key>			(when set)
 *	X-Amz-Firehose-Common-Attributes: {"commonAttributes":{...}} (when set)
 *	Content-Type: application/json
 *	Content-Encoding: gzip							(content_encoding gzip)
 *	{"requestId":"<id>","timestamp":<ms>,"records":[{"data":"<base64>"},...]}
 * At most 10,000 records and 64 MiB of body per request.  Only a 200 whose
 * body is JSON with the same requestId and a numeric timestamp is a
 * success; 413 and other 4xx except 408 and 429 fail at once; everything
 * else, malformed 200s included, is retried.
 *
 * Raw format: the records, each followed by the delimiter (newline: NDJSON),
 * with the stream's headers; any 2xx is a success.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <curl/curl.h>

#include "answers.h"

#include "nodes/pg_list.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"

#define HTTP_MAX_RECORDS	10000
#define HTTP_MAX_BODY		(64 * 1024 * 1024)
#define ERROR_BODY_MAX		8192

static const char *const formats[] = {"firehose", "raw", NULL};
static const char *const encodings[] = {"none", "gzip", NULL};

typedef struct HttpConfig
{
	char	   *url;
	bool		raw;
	char	   *access_key;
	char	   *common_attributes;	/* header value, or NULL */
	bool		gzip;
	char	   *delimiter;
	List	   *headers;		/* "Name: value" strings */
	bool		has_content_type;
	bool		tls_verify;
	char	   *ca_file;
} HttpConfig;

/* the options with a field of their own are written into HttpConfig */
#define HC(member) FH_FIELD(HttpConfig, member)
static const FhOptionDef http_options[] = {
	{"url", FH_OPT_URL, 0, 1000, NULL, NULL, false, true, .location = true, HC(url)},
	{"format", FH_OPT_ENUM, 0, 0, "\"firehose\"", formats},
	{"access_key", FH_OPT_STRING, 0, 4096, NULL, NULL, true, HC(access_key)},
	{"common_attributes", FH_OPT_STRMAP, 0, 0, NULL},
	{"content_encoding", FH_OPT_ENUM, 0, 0, "\"none\"", encodings},
	{"delimiter", FH_OPT_STRING, 0, 64, NULL, HC(delimiter)},
	{"headers", FH_OPT_STRMAP, 0, 0, NULL, NULL, true},
	{"tls_verify", FH_OPT_BOOL, 0, 0, "true", HC(tls_verify)},
	{"ca_file", FH_OPT_STRING, 0, 4096, NULL, HC(ca_file)},
	FH_BACKUP_OPTION,
	{NULL}
};
#undef HC


static void
http_validate(Jsonb *o)
{
	char	   *format = "firehose";
	const char *firehose_only[] = {"access_key", "common_attributes", NULL};

	fh_jsonb_get_text(o, "format", &format);
	if (strcmp(format, "raw") == 0)
	{
		for (int i = 0; firehose_only[i]; i++)
			if (fh_jsonb_get(o, firehose_only[i]))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"%s\" does not apply to format \"raw\"", firehose_only[i]),
						 errhint("It is part of the Firehose HTTP endpoint protocol; use format \"firehose\", or send credentials with the \"headers\" option.")));
	}
	else if (fh_jsonb_get(o, "delimiter"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"delimiter\" does not apply to format \"firehose\""),
				 errhint("The Firehose protocol frames each record itself; set \"format\": \"raw\" to send delimited records.")));

	/* Firehose's limits on common attributes */
	{
		JsonbValue *ca = fh_jsonb_get(o, "common_attributes");

		if (ca && ca->type == jbvBinary)
		{
			JsonbIterator *it = JsonbIteratorInit(ca->val.binary.data);
			JsonbValue	v;
			JsonbIteratorToken tok;
			int			n = 0;

			while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
			{
				if (tok == WJB_KEY && (++n > 50 || v.val.string.len > 256))
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("option \"common_attributes\" is out of range"),
							 errdetail("At most 50 attributes with names of 1 to 256 bytes are allowed.")));
				if (tok == WJB_VALUE && v.val.string.len > 1024)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("option \"common_attributes\" is out of range"),
							 errdetail("Attribute values may have at most 1024 bytes.")));
			}
		}
	}
}

void *
fh_http_configure(Jsonb *o, const char *stream, int32 version)
{
	HttpConfig *c = palloc0(sizeof(HttpConfig));
	char	   *s = NULL;
	JsonbValue *v;

	/* raw records are delimited by a line feed unless "delimiter" says */
	c->delimiter = "\n";
	fh_options_load(http_options, o, c);
	if (fh_jsonb_get_text(o, "format", &s))
		c->raw = strcmp(s, "raw") == 0;
	if (fh_jsonb_get_text(o, "content_encoding", &s))
		c->gzip = strcmp(s, "gzip") == 0;

	v = fh_jsonb_get(o, "common_attributes");
	if (v && v->type == jbvBinary)
	{
		Jsonb	   *j = JsonbValueToJsonb(v);
		StringInfoData h;

		initStringInfo(&h);
		appendStringInfo(&h, "X-Amz-Firehose-Common-Attributes: {\"commonAttributes\":%s}",
						 JsonbToCString(NULL, &j->root, VARSIZE(j)));
		c->common_attributes = h.data;
	}
	v = fh_jsonb_get(o, "headers");
	if (v && v->type == jbvBinary)
	{
		JsonbIterator *it = JsonbIteratorInit(v->val.binary.data);
		JsonbValue	kv;
		JsonbIteratorToken tok;
		char	   *key = NULL;

		while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
				key = pnstrdup(kv.val.string.val, kv.val.string.len);
			else if (tok == WJB_VALUE)
			{
				c->headers = lappend(c->headers,
									 psprintf("%s: %.*s", key, kv.val.string.len,
											  kv.val.string.val));
				if (pg_strcasecmp(key, "content-type") == 0)
					c->has_content_type = true;
			}
		}
	}
	return c;
}

void
fh_http_limits(void *config, int *max_records, int64 *max_bytes)
{
	HttpConfig *c = config;

	if (c->raw)
	{
		*max_records = INT_MAX / 2;
		*max_bytes = HTTP_MAX_BODY;
	}
	else
	{
		/* base64 grows data by 4/3; keep the whole body under 64 MiB */
		*max_records = HTTP_MAX_RECORDS;
		*max_bytes = (HTTP_MAX_BODY / 4) * 3 - 64 * HTTP_MAX_RECORDS;
	}
}

/* the headers of the Firehose protocol */
static void
http_firehose_headers(HttpConfig *c, FhPartView *part, FhRequest *req)
{
	req->headers = curl_slist_append(req->headers, "Content-Type: application/json");
	req->headers = curl_slist_append(req->headers, "X-Amz-Firehose-Protocol-Version: 1.0");
	req->headers = curl_slist_append(req->headers,
									 psprintf("X-Amz-Firehose-Request-Id: %s", part->request_id));
	if (c->access_key)
		req->headers = curl_slist_append(req->headers,
										 psprintf("X-Amz-Firehose-Access-Key: %s", c->access_key));
	if (c->common_attributes)
		req->headers = curl_slist_append(req->headers, c->common_attributes);
}

/*
 * A body without content encoding is made as curl sends it (FhRequest.piece):
 * raw, each record's data from the part's memory, then the delimiter; the
 * Firehose format, its head, then each record framed and base64-encoded
 * into the scratch buffer, then its tail.  Nothing holds the whole body.
 */
typedef struct HttpStream
{
	HttpConfig *config;
	const FhRecord *records;	/* the part's */
	int			nrecords;
	size_t		delimiter_len;	/* raw */
	char	   *head;			/* {"requestId":...,"records":[ */
	int			head_len;
} HttpStream;

/* raw piece k (< 2 * nrecords): record k / 2's data, or the delimiter */
static inline void
raw_piece_at(const HttpStream *hs, int64 k, const char **data, size_t *len)
{
	if (k % 2 == 1)
	{
		*data = hs->config->delimiter;
		*len = hs->delimiter_len;
	}
	else
	{
		bytea	   *rec = hs->records[k / 2].data;

		*data = VARDATA_ANY(rec);
		*len = VARSIZE_ANY_EXHDR(rec);
	}
}

static bool
http_raw_piece(void *arg, int64 k, const char **data, size_t *len,
			   StringInfo scratch)
{
	HttpStream *hs = arg;

	if (k >= 2 * (int64) hs->nrecords)
		return false;
	raw_piece_at(hs, k, data, len);
	return true;
}

/* http_raw_piece's pieces, as many as fit whole in buf (FhRequest.fill) */
static size_t
http_raw_fill(void *arg, int64 *next, char *buf, size_t room)
{
	HttpStream *hs = arg;
	int64		end = 2 * (int64) hs->nrecords;
	int64		k;
	size_t		n = 0;

	for (k = *next; k < end; k++)
	{
		const char *data;
		size_t		len;

		raw_piece_at(hs, k, &data, &len);
		if (len > room - n)
			break;
		if (len == 1)			/* the usual delimiter: no call */
			buf[n] = *data;
		else
			memcpy(buf + n, data, len);
		n += len;
	}
	*next = k;
	return n;
}

#define FH_RECORD_OPEN		"{\"data\":\""
#define FH_RECORD_CLOSE		"\"}"
#define FH_BODY_TAIL		"]}"

/* the length of the Firehose format's piece k (1 ... nrecords): a record */
static inline size_t
firehose_record_len(int64 k, const bytea *rec)
{
	return (k > 1) + strlen(FH_RECORD_OPEN) +
		FH_BASE64_LEN(VARSIZE_ANY_EXHDR(rec)) + strlen(FH_RECORD_CLOSE);
}

/*
 * Writes that piece at p, which has room for it: the encoder's terminating
 * NUL falls where the close then goes.
 */
static inline void
firehose_record_write(char *p, int64 k, const bytea *rec)
{
	if (k > 1)
		*p++ = ',';
	memcpy(p, FH_RECORD_OPEN, strlen(FH_RECORD_OPEN));
	p += strlen(FH_RECORD_OPEN);
	p += fh_base64_encode(VARDATA_ANY(rec), VARSIZE_ANY_EXHDR(rec), p);
	memcpy(p, FH_RECORD_CLOSE, strlen(FH_RECORD_CLOSE));
}

static bool
http_firehose_piece(void *arg, int64 k, const char **data, size_t *len,
					StringInfo scratch)
{
	HttpStream *hs = arg;
	bytea	   *rec;

	if (k == 0)
	{
		*data = hs->head;
		*len = hs->head_len;
		return true;
	}
	if (k == (int64) hs->nrecords + 1)
	{
		*data = FH_BODY_TAIL;
		*len = strlen(FH_BODY_TAIL);
		return true;
	}
	if (k > (int64) hs->nrecords + 1)
		return false;
	rec = hs->records[k - 1].data;
	/* the room was made for the largest record: no allocation here */
	firehose_record_write(scratch->data + scratch->len, k, rec);
	scratch->len += firehose_record_len(k, rec);
	scratch->data[scratch->len] = '\0';
	return true;
}

/*
 * http_firehose_piece's records, as many as fit whole in buf, each
 * base64-encoded straight into it (FhRequest.fill); the head and the tail
 * are left to http_firehose_piece
 */
static size_t
http_firehose_fill(void *arg, int64 *next, char *buf, size_t room)
{
	HttpStream *hs = arg;
	int64		k;
	size_t		n = 0;

	for (k = *next; k >= 1 && k <= (int64) hs->nrecords; k++)
	{
		bytea	   *rec = hs->records[k - 1].data;
		size_t		len = firehose_record_len(k, rec);

		if (len > room - n)
			break;
		firehose_record_write(buf + n, k, rec);
		n += len;
	}
	*next = k;
	return n;
}

/* the body of part in req, made as it is sent */
static void
http_stream_body(HttpConfig *c, FhPartView *part, FhRequest *req)
{
	HttpStream *hs = palloc0(sizeof(HttpStream));
	size_t		total = 0;
	size_t		largest = 0;

	hs->config = c;
	hs->records = part->records;
	hs->nrecords = part->nrecords;
	if (c->raw)
	{
		/*
		 * The worker counted the bytes of the records it read or processed:
		 * summing them here again read each record's header, scattered over
		 * the part's memory (4% of the raw benchmark's worker CPU).
		 */
		hs->delimiter_len = strlen(c->delimiter);
		total = (size_t) part->bytes;
		if (total == 0)
			for (int i = 0; i < part->nrecords; i++)
				total += VARSIZE_ANY_EXHDR(part->records[i].data);
		total += hs->delimiter_len * part->nrecords;
		req->piece = http_raw_piece;
		req->fill = http_raw_fill;
	}
	else
	{
		hs->head = psprintf("{\"requestId\":\"%s\",\"timestamp\":" INT64_FORMAT ",\"records\":[",
							part->request_id, fh_epoch_ms(GetCurrentTimestamp()));
		hs->head_len = strlen(hs->head);
		total = hs->head_len + strlen(FH_BODY_TAIL);
		for (int i = 0; i < part->nrecords; i++)
		{
			size_t		piece = firehose_record_len(i + 1, part->records[i].data);

			total += piece;
			largest = Max(largest, piece);
		}
		req->piece = http_firehose_piece;
		req->fill = http_firehose_fill;
	}
	req->piece_arg = hs;
	req->stream_len = total;
	req->piece_room = largest;
}

/*
 * Copies of a part's records a request holds: none when the body is made as
 * it is sent; with gzip the whole body and then its compressed form.
 */
int
fh_http_body_copies(void *config)
{
	return ((HttpConfig *) config)->gzip ? 2 : 0;
}

void
fh_http_encode(void *config, FhPartView *part, FhRequest *req, FhVerdict *v)
{
	HttpConfig *c = config;
	const char *request_id = part->request_id;
	const FhRecord *records = part->records;
	int			nrecords = part->nrecords;
	StringInfoData body;
	ListCell   *lc;

	if (!c->gzip)
	{
		http_stream_body(c, part, req);
		if (c->raw)
		{
			if (!c->has_content_type)
				req->headers = curl_slist_append(req->headers, "Content-Type: application/x-ndjson");
		}
		else
			http_firehose_headers(c, part, req);
		foreach(lc, c->headers)
			req->headers = curl_slist_append(req->headers, (char *) lfirst(lc));
		req->url = pstrdup(c->url);
		req->tls_verify = c->tls_verify;
		req->ca_file = c->ca_file ? pstrdup(c->ca_file) : NULL;
		return;
	}

	/* gzip: the whole body first, then compressed */
	initStringInfo(&body);
	if (c->raw)
	{
		for (int i = 0; i < nrecords; i++)
		{
			appendBinaryStringInfo(&body, VARDATA_ANY(records[i].data),
								   VARSIZE_ANY_EXHDR(records[i].data));
			appendStringInfoString(&body, c->delimiter);
		}
		if (!c->has_content_type)
			req->headers = curl_slist_append(req->headers, "Content-Type: application/x-ndjson");
	}
	else
	{
		appendStringInfo(&body, "{\"requestId\":\"%s\",\"timestamp\":" INT64_FORMAT ",\"records\":[",
						 request_id, fh_epoch_ms(GetCurrentTimestamp()));
		for (int i = 0; i < nrecords; i++)
		{
			appendStringInfoString(&body, i ? ",{\"data\":\"" : "{\"data\":\"");
			fh_base64_append(&body, VARDATA_ANY(records[i].data),
							 VARSIZE_ANY_EXHDR(records[i].data));
			appendStringInfoString(&body, "\"}");
		}
		appendStringInfoString(&body, "]}");
		http_firehose_headers(c, part, req);
	}
	foreach(lc, c->headers)
		req->headers = curl_slist_append(req->headers, (char *) lfirst(lc));

	if (c->gzip)
	{
		initStringInfo(&req->body);
		if (!fh_gzip(body.data, body.len, &req->body))
			elog(ERROR, "gzip compression failed");
		pfree(body.data);
		req->headers = curl_slist_append(req->headers, "Content-Encoding: gzip");
	}
	else
		req->body = body;
	req->url = pstrdup(c->url);
	req->tls_verify = c->tls_verify;
	req->ca_file = c->ca_file ? pstrdup(c->ca_file) : NULL;
}

/* the endpoint's answer, quoted for errorMessage as Firehose does */
static char *
endpoint_said(FhResponse *resp)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s, "Received the following response from the endpoint destination. %ld: ",
					 resp->status);
	fh_append_answer(&s, resp, ERROR_BODY_MAX);
	return s.data;
}

static void
no_response(FhResponse *resp, FhVerdict *v)
{
	v->outcome = FH_OUTCOME_RETRY;
	switch (resp->curl_code)
	{
		case CURLE_OPERATION_TIMEDOUT:
			v->error_code = "HttpEndpoint.RequestTimeout";
			break;
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CIPHER:
		case CURLE_SSL_CACERT_BADFILE:
			v->error_code = "HttpEndpoint.SSLHandshakeFailure";
			break;
		case CURLE_UNSUPPORTED_PROTOCOL:	/* "HTTP/0.9": not HTTP at all */
		case CURLE_WEIRD_SERVER_REPLY:
			v->error_code = "HttpEndpoint.InvalidResponseFromDestination";
			break;
		case CURLE_WRITE_ERROR:	/* transport.c: headers over its limit */
			v->error_code = "HttpEndpoint.ResponseTooLarge";
			break;
		case CURLE_RECV_ERROR:
		case CURLE_SEND_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
			v->error_code = "HttpEndpoint.ConnectionReset";
			break;
		default:
			v->error_code = "HttpEndpoint.ConnectionFailed";
			break;
	}
	v->error_message = psprintf("%s", resp->curl_error ? resp->curl_error : "no response");
}

/*
 * Is body a JSON object with "requestId" equal to ours and a numeric
 * "timestamp"?  (answers.c reads it.)
 */
static bool
valid_firehose_answer(const char *request_id, FhResponse *resp, char **why)
{
	FhHttpAnswer a;

	if (resp->body.len == 0)
	{
		*why = "empty body";
		return false;
	}
	fh_http_answer(resp->body.data, resp->body.len, &a);
	if (!a.json)
	{
		*why = "body is not JSON";
		return false;
	}
	if (!fh_http_answer_matches(&a, request_id))
	{
		*why = "requestId missing or different from the request's";
		return false;
	}
	if (!a.has_timestamp)
	{
		*why = "timestamp missing or not a number";
		return false;
	}
	return true;
}

void
fh_http_classify(void *config, FhPartView *part, FhResponse *resp, FhVerdict *v)
{
	HttpConfig *c = config;
	const char *request_id = part->request_id;
	long		st = resp->status;

	v->error_code = NULL;
	v->error_message = NULL;
	if (st == 0)
	{
		no_response(resp, v);
		return;
	}
	if (resp->body_truncated)
	{
		v->outcome = FH_OUTCOME_RETRY;
		v->error_code = "HttpEndpoint.ResponseTooLarge";
		v->error_message = psprintf("The response body of status %ld exceeded 1 MiB.", st);
		return;
	}
	if (c->raw)
	{
		if (st >= 200 && st < 300)
			v->outcome = FH_OUTCOME_OK;
		else
		{
			v->outcome = (st >= 400 && st < 500 && st != 408 && st != 429) ?
				FH_OUTCOME_FAIL : FH_OUTCOME_RETRY;
			v->error_code = "HttpEndpoint.DestinationException";
			v->error_message = endpoint_said(resp);
		}
		return;
	}

	if (st == 200)
	{
		char	   *why = NULL;

		if (resp->content_type == NULL ||
			pg_strncasecmp(resp->content_type, "application/json", 16) != 0)
			why = "Content-Type is not application/json";
		else if (resp->has_content_encoding)
			why = "the response has a Content-Encoding";
		else if (resp->body.len > 0 && !resp->has_content_length)
			why = "Content-Length is missing";
		else
			(void) valid_firehose_answer(request_id, resp, &why);
		if (why == NULL)
		{
			v->outcome = FH_OUTCOME_OK;
			return;
		}
		v->outcome = FH_OUTCOME_RETRY;
		v->error_code = "HttpEndpoint.InvalidResponseFromDestination";
		v->error_message = psprintf("Invalid response from the endpoint (%s). %s",
									why, endpoint_said(resp));
		return;
	}
	v->error_code = "HttpEndpoint.DestinationException";
	v->error_message = endpoint_said(resp);
	if (st == 413 || (st >= 400 && st < 500 && st != 408 && st != 429))
		v->outcome = FH_OUTCOME_FAIL;
	else
		v->outcome = FH_OUTCOME_RETRY;
}

/* an error record's fields of the HTTP endpoint destination (firehose.md 3.8) */
void
fh_http_error_fields(void *config, const FhPartView *part, int i, StringInfo out)
{
	appendStringInfo(out, ",\"subsequenceNumber\":%d,\"dataId\":\"" INT64_FORMAT "\"",
					 i, part->records[i].id);
}

static char *
http_target(Jsonb *o)
{
	char	   *url = NULL;

	fh_jsonb_get_text(o, "url", &url);
	return url;
}

const FhSink fh_sink_http = {
	.name = "http",
	.options = http_options,
	.default_retry_duration_s = 300,
	.error_output_type = "http-endpoint-failed",
	.error_fields = fh_http_error_fields,
	.target = http_target,
	.validate = http_validate,
	.configure = fh_http_configure,
	.limits = fh_http_limits,
	.encode = fh_http_encode,
	.body_copies = fh_http_body_copies,
	.classify = fh_http_classify,
};
