/*-------------------------------------------------------------------------
 *
 * sink_opensearch.c
 *	  destination 'opensearch': the _bulk API of OpenSearch and
 *	  Elasticsearch 7/8, as Firehose uses it (firehose.md section 6).
 *
 *	POST <endpoint>/_bulk[?pipeline=<p>]
 *	Content-Type: application/x-ndjson
 *	{"index":{"_index":"<index><rotation suffix>","_id":"<id>"}}
 *	<the record, a JSON object on one line>
 *	...
 *
 * The answer lists one item per action, in order.  Items with 200/201 are
 * delivered, and so is 409 (the document is there already: a retried
 * create); 429 and 5xx items are sent again, alone, with the same ids;
 * other statuses fail their record for good with OpenSearch's error type
 * and reason.  The record states live in the part (rec_state), so a retry
 * sends only what is still pending.  A record that is not a JSON object is
 * never sent: it fails at once, the rest of its part goes on.
 *
 * Document ids ("firehose"): <stream>-<record id>, the same on every
 * retry and after a worker restart, so a retried document overwrites
 * instead of duplicating.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <curl/curl.h>

#include "answers.h"
#include "mb/pg_wchar.h"
#include "os_index.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonpath.h"
#include "utils/memutils.h"

#define OS_MAX_RECORDS		10000
#define OS_MAX_BODY			(100 * 1024 * 1024)	/* OpenSearch's default
												 * http.max_content_length */
#define OS_MAX_RESPONSE		(256 * 1024 * 1024)
#define ERROR_BODY_MAX		2048
#define OS_MAX_ID_BYTES		512		/* OpenSearch's limit on _id */

static const char *const rotations[] = {"none", "hour", "day", "week", "month", NULL};
static const char *const actions[] = {"index", "create", NULL};
static const char *const services[] = {"es", "aoss", NULL};
static const char *const credential_sources[] = {"static", "environment", NULL};

typedef struct OsConfig
{
	char	   *bulk_url;		/* <endpoint>/_bulk[?pipeline=...] */
	char	   *bulk_path;		/* path and query, for SigV4 */
	char	   *bulk_query;
	char	   *index;
	FhOsRotation rotation;
	char	   *type_name;
	bool		auto_id;		/* document_id 'none' */
	Datum		id_path;		/* jsonpath, or 0 for 'firehose' */
	Datum		routing_path;	/* jsonpath, or 0 */
	char	   *action;
	char	   *basic_auth;		/* "Authorization: Basic ..." */
	bool		sigv4;
	FhAwsTarget aws;
	bool		tls_verify;
	char	   *ca_file;
	char	   *stream;
} OsConfig;

/* the options with a field of their own are written into OsConfig */
#define OC(member) FH_FIELD(OsConfig, member)
static const FhOptionDef os_options[] = {
	{"endpoint", FH_OPT_URL, 0, 1000, NULL, NULL, false, true, .location = true},
	{"index", FH_OPT_STRING, 0, 255, NULL, NULL, false, true, OC(index)},
	{"index_rotation", FH_OPT_ENUM, 0, 0, "\"day\"", rotations},
	{"type_name", FH_OPT_STRING, 0, 100, NULL, OC(type_name)},
	{"document_id", FH_OPT_STRING, 0, 1000, "\"firehose\""},
	{"routing", FH_OPT_STRING, 0, 1000, NULL},
	{"pipeline", FH_OPT_STRING, 0, 512, NULL},
	{"action", FH_OPT_ENUM, 0, 0, "\"index\"", actions, OC(action)},
	{"username", FH_OPT_STRING, 0, 1024, NULL},
	{"password", FH_OPT_STRING, 0, 1024, NULL, NULL, true},
	{"aws_region", FH_OPT_STRING, 0, 64, NULL},
	{"aws_service", FH_OPT_ENUM, 0, 0, NULL, services},
	{"credentials", FH_OPT_ENUM, 0, 0, NULL, credential_sources},
	{"access_key_id", FH_OPT_STRING, 0, 128, NULL, NULL, true},
	{"secret_access_key", FH_OPT_STRING, 0, 256, NULL, NULL, true},
	{"session_token", FH_OPT_STRING, 0, 8192, NULL, NULL, true},
	{"tls_verify", FH_OPT_BOOL, 0, 0, "true", OC(tls_verify)},
	{"ca_file", FH_OPT_STRING, 0, 4096, NULL, OC(ca_file)},
	FH_BACKUP_OPTION,
	{NULL}
};
#undef OC


/* per part: which records went into the request being answered */
typedef struct OsState
{
	int		   *sent;			/* record index of each action sent */
	int			nsent;
} OsState;

static Datum
parse_path(const char *option, const char *path)
{
	if (path[0] != '$')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" must be \"firehose\", \"none\" or a JSON path such as \"$.order_id\"",
						option)));
	return DirectFunctionCall1(jsonpath_in, CStringGetDatum(path));
}

static void
os_validate(Jsonb *o)
{
	char	   *s = NULL;
	const char *why = NULL;

	fh_jsonb_get_text(o, "index", &s);
	if (!fh_os_index_valid(s, &why))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"index\" is not a valid index name: \"%s\"", s),
				 errdetail("%s", why),
				 errhint("Index names are lowercase, 1 to 80 characters, without \\ / * ? \" < > | , # : or spaces.")));

	fh_jsonb_get_text(o, "document_id", &s);
	if (strcmp(s, "firehose") != 0 && strcmp(s, "none") != 0)
		(void) parse_path("document_id", s);
	if (fh_jsonb_get_text(o, "routing", &s))
		(void) parse_path("routing", s);
	if (fh_jsonb_get(o, "username") && !fh_jsonb_get(o, "password"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"username\" needs \"password\"")));
	if (fh_jsonb_get(o, "password") && !fh_jsonb_get(o, "username"))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"password\" needs \"username\"")));

	if (fh_jsonb_get(o, "aws_region"))
	{
		if (fh_jsonb_get(o, "username"))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("options \"username\" and \"aws_region\" exclude each other"),
					 errhint("Use basic authentication (username, password) or AWS Signature V4 (aws_region and AWS credentials), not both.")));
		fh_aws_validate_credentials(o, "AWS Signature V4 (option \"aws_region\")");
	}
	else
	{
		const char *aws_only[] = {"aws_service", "credentials", "access_key_id",
		"secret_access_key", "session_token"};

		for (int i = 0; i < lengthof(aws_only); i++)
			if (fh_jsonb_get(o, aws_only[i]))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"%s\" needs \"aws_region\"", aws_only[i]),
						 errhint("AWS Signature V4 is used when \"aws_region\" is set.")));
	}
}

static void *
os_configure(Jsonb *o, const char *stream, int32 version)
{
	OsConfig   *c = palloc0(sizeof(OsConfig));
	char	   *s = NULL;
	char	   *endpoint = NULL;
	char	   *pipeline = NULL;
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *path = NULL;
	size_t		plen;

	fh_options_load(os_options, o, c);
	fh_jsonb_get_text(o, "endpoint", &endpoint);
	fh_jsonb_get_text(o, "index_rotation", &s);
	if (!fh_os_rotation_parse(s, &c->rotation))
		elog(ERROR, "unknown index rotation \"%s\"", s);
	fh_jsonb_get_text(o, "document_id", &s);
	if (strcmp(s, "none") == 0)
		c->auto_id = true;
	else if (strcmp(s, "firehose") != 0)
		c->id_path = parse_path("document_id", s);
	if (fh_jsonb_get_text(o, "routing", &s))
		c->routing_path = parse_path("routing", s);
	c->stream = pstrdup(stream);

	fh_url_split(endpoint, &scheme, &host, &path);
	plen = fh_url_trimmed_len(path);
	c->bulk_path = psprintf("%.*s/_bulk", (int) plen, path);
	if (fh_jsonb_get_text(o, "pipeline", &pipeline))
		c->bulk_query = psprintf("pipeline=%s", fh_url_escape(pipeline));
	c->bulk_url = psprintf("%s://%s%s%s%s", scheme, host, c->bulk_path, c->bulk_query ? "?" : "",
						   c->bulk_query ? c->bulk_query : "");
	if (fh_jsonb_get(o, "aws_region"))
	{
		c->sigv4 = true;
		c->aws.scheme = scheme;
		c->aws.host = host;
		fh_jsonb_get_text(o, "aws_region", (char **) &c->aws.region);
		c->aws.service = "es";
		fh_jsonb_get_text(o, "aws_service", (char **) &c->aws.service);
		fh_aws_credentials(o, &c->aws);
	}

	if (fh_jsonb_get_text(o, "username", &s))
	{
		char	   *password = "";
		char	   *pair;
		StringInfoData hdr;

		fh_jsonb_get_text(o, "password", &password);
		pair = psprintf("%s:%s", s, password);
		initStringInfo(&hdr);
		appendStringInfoString(&hdr, "Authorization: Basic ");
		fh_base64_append(&hdr, pair, strlen(pair));
		c->basic_auth = hdr.data;
	}
	return c;
}

static void
os_limits(void *config, int *max_records, int64 *max_bytes)
{
	*max_records = OS_MAX_RECORDS;
	*max_bytes = OS_MAX_BODY / 2;	/* room for the action lines */
}

/*
 * Check record i; append its action and document lines to body, or fail
 * it for good.  Returns whether it was appended.
 */
static bool
append_document(OsConfig *c, FhPartView *part, int i, StringInfo body)
{
	const FhRecord *r = &part->records[i];
	char	   *data = VARDATA_ANY(r->data);
	int			len = VARSIZE_ANY_EXHDR(r->data);
	char	   *text;
	int			k;
	Jsonb	   *doc = NULL;
	char		index[FH_OS_INDEX_BUFSIZE];
	char	   *id = NULL;
	char	   *routing = NULL;

	if (pg_verifymbstr(data, len, true) == false || memchr(data, '\0', len))
	{
		fh_view_fail(part, i, "OpenSearch.InvalidDocument",
					"The record is not valid UTF-8 text.");
		return false;
	}
	text = pnstrdup(data, len);
	for (k = 0; k < len && isspace((unsigned char) text[k]); k++)
		;
	if (!fh_is_json(text, len) || k == len || text[k] != '{')
	{
		fh_view_fail(part, i, "OpenSearch.InvalidDocument",
					"The record is not a JSON object; OpenSearch indexes JSON objects only.");
		return false;
	}
	if (c->id_path || c->routing_path)
	{
		/* jsonb refuses some valid JSON (\u0000, huge numbers): fail alone */
		char	   *why;

		doc = fh_jsonb_parse(text, &why);
		if (doc == NULL)
		{
			fh_view_fail(part, i, "OpenSearch.InvalidDocument",
						psprintf("The document_id or routing path cannot be applied to the record: %s",
								 why));
			return false;
		}
	}
	if (c->id_path)
	{
		id = fh_jsonb_path_scalar(doc, c->id_path, false, NULL);
		if (id == NULL)
		{
			fh_view_fail(part, i, "OpenSearch.MissingDocumentId",
						"The record has no string or number at the document_id path.");
			return false;
		}
		if (id[0] == '\0' || strlen(id) > OS_MAX_ID_BYTES)
		{
			fh_view_fail(part, i, "OpenSearch.InvalidDocumentId",
						psprintf("The document id at the document_id path has %d bytes; OpenSearch takes 1 to 512.",
								 (int) strlen(id)));
			return false;
		}
	}
	else if (!c->auto_id)
		id = psprintf("%s-" INT64_FORMAT, c->stream, r->id);
	if (c->routing_path)
		routing = fh_jsonb_path_scalar(doc, c->routing_path, false, NULL);
	if (fh_os_index_name(c->index, c->rotation, fh_epoch_ms(r->arrival), index, sizeof(index)) == 0)
	{
		fh_view_fail(part, i, "OpenSearch.InvalidIndex",
					"No index name could be made for the record's arrival time.");
		return false;
	}

	appendStringInfo(body, "{\"%s\":{\"_index\":", c->action);
	escape_json(body, index);
	if (id)
	{
		appendStringInfoString(body, ",\"_id\":");
		escape_json(body, id);
	}
	if (c->type_name)
	{
		appendStringInfoString(body, ",\"_type\":");
		escape_json(body, c->type_name);
	}
	if (routing)
	{
		appendStringInfoString(body, ",\"routing\":");
		escape_json(body, routing);
	}
	appendStringInfoString(body, "}}\n");
	/*
	 * NDJSON: one line.  In valid JSON a line break can only be whitespace
	 * between tokens (inside strings it is escaped), so a space replaces it
	 * without changing the document.
	 */
	for (k = 0; k < len; k++)
		if (text[k] == '\n' || text[k] == '\r')
			text[k] = ' ';
	appendBinaryStringInfo(body, text, len);
	appendStringInfoChar(body, '\n');
	pfree(text);
	return true;
}

static void
os_encode(void *config, FhPartView *part, FhRequest *req, FhVerdict *verdict)
{
	OsConfig   *c = config;
	OsState    *st = part->state;
	StringInfoData body;

	if (c->sigv4 && fh_aws_missing_credentials(&c->aws, verdict, "OpenSearch.MissingCredentials"))
		return;					/* req->url stays NULL: fails at once */
	if (st == NULL)
	{
		st = palloc0(sizeof(OsState));
		st->sent = palloc(sizeof(int) * part->nrecords);
		part->state = st;
	}
	initStringInfo(&body);
	st->nsent = 0;
	for (int i = 0; i < part->nrecords; i++)
		if (fh_view_pending(part, i) && append_document(c, part, i, &body))
			st->sent[st->nsent++] = i;
	if (st->nsent == 0)
	{
		/* nothing (left) to send: the part is done, its failures recorded */
		fh_verdict_set(verdict, FH_OUTCOME_OK, NULL, NULL);
		return;
	}

	req->body = body;
	req->max_response = OS_MAX_RESPONSE;
	req->tls_verify = c->tls_verify;
	req->ca_file = c->ca_file;
	if (c->sigv4)
	{
		fh_aws_sign_request(&c->aws, req, "POST", c->bulk_path, c->bulk_query,
							req->body.data, req->body.len, NULL, 0,
							"application/x-ndjson");
		req->data = NULL;		/* the body is req->body */
	}
	else
	{
		req->url = c->bulk_url;
		req->headers = curl_slist_append(req->headers, "Content-Type: application/x-ndjson");
		if (c->basic_auth)
			req->headers = curl_slist_append(req->headers, c->basic_auth);
	}
}

/* ---------- responses ---------- */

static char *
said(FhResponse *resp)
{
	return psprintf("OpenSearch answered %ld: %.*s", resp->status,
					Min(resp->body.len, ERROR_BODY_MAX), resp->body.data ? resp->body.data : "");
}

/* the items of a 2xx bulk answer: per record outcomes; verdict for the rest */
static void
judge_items(FhPartView *part, OsState *st, FhResponse *resp, FhVerdict *v)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "firehose bulk answer",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	FhBulkAnswer b;
	bool		parsed;
	int			pending = 0;
	const char *first_code = NULL;
	char	   *first_message = NULL;

	/*
	 * Read by answers.c without building jsonb: jsonb of a large answer
	 * costs ten times its size, and an answer can be hundreds of MiB (a
	 * reason per failed item).  What it allocates goes with cxt.
	 */
	parsed = fh_bulk_answer(resp->body.data, resp->body.len, st->nsent, &b);
	/* verdicts outlive the answer: they are made in the part's context */
	MemoryContextSwitchTo(old);
	if (!parsed)
	{
		v->outcome = FH_OUTCOME_RETRY;
		v->error_code = "OpenSearch.InvalidResponse";
		v->error_message = psprintf("The _bulk answer is not JSON. %s", said(resp));
	}
	else if (!b.items_seen || b.items != st->nsent)
	{
		v->outcome = FH_OUTCOME_RETRY;
		v->error_code = "OpenSearch.InvalidResponse";
		v->error_message = psprintf("The _bulk answer has no \"items\" for the %d documents sent. %s",
									st->nsent, said(resp));
	}
	else if (b.errors == 0)
	{
		/* as OpenSearch says when no item failed: all went in */
		for (int k = 0; k < st->nsent; k++)
			fh_view_deliver(part, st->sent[k]);
		v->outcome = FH_OUTCOME_OK;
	}
	else
	{
		for (int k = 0; k < st->nsent; k++)
		{
			FhBulkItem *it = &b.item[k];
			long		s = it->status;
			char	   *code;
			char	   *message;

			if (s < 0)
			{
				pending++;		/* cannot tell: send it again */
				continue;
			}
			if ((s >= 200 && s < 300) || s == 409)
			{
				fh_view_deliver(part, st->sent[k]);
				continue;
			}
			code = psprintf("OpenSearch.%s", it->type ? it->type : psprintf("HTTP%ld", s));
			message = psprintf("%ld %s: %s", s, it->type ? it->type : "",
							   it->reason ? it->reason : "");
			if (s == 429 || s >= 500)
			{
				pending++;
				if (first_code == NULL)
				{
					first_code = code;
					first_message = message;
				}
			}
			else
				fh_view_fail(part, st->sent[k], code, message);
		}
		if (pending == 0)
			v->outcome = FH_OUTCOME_OK;
		else
		{
			v->outcome = FH_OUTCOME_RETRY;
			v->error_code = first_code ? first_code : "OpenSearch.InvalidResponse";
			v->error_message = first_message ? first_message :
				psprintf("%d items of the _bulk answer have no status.", pending);
		}
	}
	MemoryContextDelete(cxt);
}

static void
os_classify(void *config, FhPartView *part, FhResponse *resp, FhVerdict *v)
{
	OsState    *st = part->state;
	long		s = resp->status;

	v->error_code = NULL;
	v->error_message = NULL;
	if (s == 0)
	{
		v->outcome = FH_OUTCOME_RETRY;
		v->error_code = resp->curl_code == CURLE_OPERATION_TIMEDOUT ?
			"OpenSearch.RequestTimeout" : "OpenSearch.ConnectionFailed";
		v->error_message = pstrdup(resp->curl_error ? resp->curl_error : "no response");
		return;
	}
	if (resp->body_truncated)
	{
		v->outcome = FH_OUTCOME_RETRY;
		v->error_code = "OpenSearch.ResponseTooLarge";
		v->error_message = psprintf("The answer of status %ld exceeded 256 MiB, or the half of firehose.worker_memory that answers in flight share.", s);
		return;
	}
	if (s >= 200 && s < 300)
	{
		judge_items(part, st, resp, v);
		return;
	}
	v->error_code = psprintf("OpenSearch.HTTP%ld", s);
	v->error_message = said(resp);
	v->outcome = (s == 408 || s == 429 || s >= 500) ? FH_OUTCOME_RETRY : FH_OUTCOME_FAIL;
}

/* an error record's fields of OpenSearch (firehose.md 3.8) */
static void
os_error_fields(void *config, const FhPartView *part, int i, StringInfo out)
{
	OsConfig   *c = config;
	char		index[FH_OS_INDEX_BUFSIZE];

	appendStringInfoString(out, ",\"esDocumentId\":");
	if (c->auto_id || c->id_path)
		appendStringInfoString(out, "null");
	else
		escape_json(out, psprintf("%s-" INT64_FORMAT, c->stream, part->records[i].id));
	appendStringInfoString(out, ",\"esIndexName\":");
	if (fh_os_index_name(c->index, c->rotation, fh_epoch_ms(part->records[i].arrival),
						 index, sizeof(index)) > 0)
		escape_json(out, index);
	else
		appendStringInfoString(out, "null");
	appendStringInfoString(out, ",\"esTypeName\":");
	if (c->type_name)
		escape_json(out, c->type_name);
	else
		appendStringInfoString(out, "null");
}

static char *
os_target(Jsonb *o)
{
	char	   *endpoint = NULL;
	char	   *pipeline = NULL;
	size_t		len;

	fh_jsonb_get_text(o, "endpoint", &endpoint);
	len = fh_url_trimmed_len(endpoint);
	if (fh_jsonb_get_text(o, "pipeline", &pipeline))
		return psprintf("%.*s/_bulk?pipeline=%s", (int) len, endpoint, pipeline);
	return psprintf("%.*s/_bulk", (int) len, endpoint);
}

const FhSink fh_sink_opensearch = {
	.name = "opensearch",
	.options = os_options,
	.default_retry_duration_s = 300,
	.default_buffer_interval_ms = 300000,
	.error_output_type = "AmazonOpenSearchService-failed",
	.validate = os_validate,
	.configure = os_configure,
	.limits = os_limits,
	.encode = os_encode,
	.classify = os_classify,
	.error_fields = os_error_fields,
	.target = os_target,
};
