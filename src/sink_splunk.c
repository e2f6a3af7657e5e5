/*-------------------------------------------------------------------------
 *
 * sink_splunk.c
 *	  destination 'splunk': Splunk's HTTP Event Collector (HEC), with
 *	  optional indexer acknowledgement, as Firehose uses it (firehose.md
 *	  section 7).
 *
 *	POST <endpoint>/services/collector/event            (endpoint_type event)
 *	  {"event":<record>,"time":<arrival, s.ms>,"host":..,...}\n...
 *	POST <endpoint>/services/collector/raw?channel=...  (endpoint_type raw)
 *	  <record>\n<record>\n...
 *	Authorization: Splunk <token>
 *	X-Splunk-Request-Channel: <channel>
 *
 * A success is 200 {"text":"Success","code":0}.  With ack, the answer
 * carries an ackId; the part then polls
 *	POST <endpoint>/services/collector/ack?channel=...  {"acks":[<id>]}
 * every ack_poll_interval until {"acks":{"<id>":true}}, or until
 * ack_timeout after the data was sent: then, as Firehose does, the data is
 * sent again (Splunk.AckTimeout) and its records are counted as possible
 * duplicates, since an ack timeout does not mean the data was not indexed.
 * The wait is left out of retry_duration (verdict.waited_ms), as Firehose
 * leaves ack waits out of its retry duration.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <curl/curl.h>

#include "answers.h"
#include "common/hashfn.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"

#define SPLUNK_MAX_RECORDS	100000
#define SPLUNK_MAX_BODY		(64 * 1024 * 1024)
#define ERROR_BODY_MAX		2048

static const char *const endpoint_types[] = {"raw", "event", NULL};

typedef struct SplunkConfig
{
	bool		event;
	char	   *data_url;
	char	   *ack_url;
	char	   *auth;			/* "Authorization: Splunk <token>" */
	char	   *channel_header;
	char	   *host;
	char	   *source;
	char	   *sourcetype;
	char	   *index;
	bool		ack;
	int64		ack_timeout_ms;
	int64		ack_poll_ms;
	int64		ack_wait_limit_ms;	/* all ack waits of a part, together */
	bool		tls_verify;
	char	   *ca_file;
} SplunkConfig;

/* the options with a field of their own are written into SplunkConfig */
#define SC(member) FH_FIELD(SplunkConfig, member)
static const FhOptionDef splunk_options[] = {
	{"endpoint", FH_OPT_URL, 0, 1000, NULL, NULL, false, true, .location = true},
	{"token", FH_OPT_STRING, 0, 2048, NULL, NULL, true, true},
	{"endpoint_type", FH_OPT_ENUM, 0, 0, "\"raw\"", endpoint_types},
	{"host", FH_OPT_STRING, 0, 1024, NULL, SC(host)},
	{"source", FH_OPT_STRING, 0, 1024, NULL, SC(source)},
	{"sourcetype", FH_OPT_STRING, 0, 1024, NULL, SC(sourcetype)},
	{"index", FH_OPT_STRING, 0, 1024, NULL, SC(index)},
	{"channel", FH_OPT_STRING, 0, 128, NULL},
	{"ack", FH_OPT_BOOL, 0, 0, "false", SC(ack)},
	{"ack_timeout", FH_OPT_SECONDS, 180, 600, "180"},
	{"ack_poll_interval", FH_OPT_MS, 10, 60000, "1000", SC(ack_poll_ms)},
	{"ack_wait_limit", FH_OPT_SECONDS, 1, 172800, NULL},
	{"tls_verify", FH_OPT_BOOL, 0, 0, "true", SC(tls_verify)},
	{"ca_file", FH_OPT_STRING, 0, 4096, NULL, SC(ca_file)},
	FH_BACKUP_OPTION,
	{NULL}
};
#undef SC


typedef struct SplunkState
{
	bool		polling;		/* waiting for the ack of ack_id */
	bool		unacked;		/* the last data sent was never acknowledged */
	int64		ack_id;
	TimestampTz sent_at;		/* when the data was accepted */
	int64		acks_waited_ms; /* ack waits of the earlier sends, together */
} SplunkState;

static void
splunk_validate(Jsonb *o)
{
	char	   *s = NULL;

	if (fh_jsonb_get_text(o, "channel", &s))
	{
		/* HEC refuses any other channel (code 11): 8-4-4-4-12 hex digits */
		bool		ok = strlen(s) == 36;

		for (int i = 0; ok && i < 36; i++)
			ok = (i == 8 || i == 13 || i == 18 || i == 23) ? s[i] == '-' :
				isxdigit((unsigned char) s[i]);
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"channel\" must be a GUID such as \"0aeeac95-ac74-4aa9-b30d-6c4c0ac581ba\""),
					 errdetail("The value given was \"%s\".", s)));
	}
	fh_jsonb_get_text(o, "token", &s);
	for (char *p = s; *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"token\" must not contain control characters")));
}

static char *
query_param(const char *name, const char *value)
{
	return psprintf("&%s=%s", name, fh_url_escape(value));
}

static void *
splunk_configure(Jsonb *o, const char *stream, int32 version)
{
	SplunkConfig *c = palloc0(sizeof(SplunkConfig));
	char	   *endpoint = NULL;
	char	   *token = NULL;
	char	   *s = NULL;
	char	   *channel = NULL;
	size_t		len;

	fh_options_load(splunk_options, o, c);
	fh_jsonb_get_text(o, "endpoint", &endpoint);
	len = fh_url_trimmed_len(endpoint);
	fh_jsonb_get_text(o, "token", &token);
	fh_jsonb_get_text(o, "endpoint_type", &s);
	c->event = strcmp(s, "event") == 0;
	if (!fh_jsonb_get_text(o, "channel", &channel))
	{
		/* stable per stream: a UUID from the stream's name */
		uint64		h1 = hash_bytes_extended((const unsigned char *) stream, strlen(stream), 1);
		uint64		h2 = hash_bytes_extended((const unsigned char *) stream, strlen(stream), 2);

		channel = palloc(40);
		fh_uuid_from(h1, h2, 0x53504c554e4bULL, channel);
	}
	c->channel_header = psprintf("X-Splunk-Request-Channel: %s", channel);
	c->auth = psprintf("Authorization: Splunk %s", token);
	c->ack_timeout_ms = fh_jsonb_get_int(o, "ack_timeout", 180) * 1000;

	/*
	 * Ack waits are left out of retry_duration; without a bound of their
	 * own, an endpoint that never acknowledges would hold a part (and the
	 * stream behind it) forever.
	 */
	c->ack_wait_limit_ms = fh_jsonb_get_int(o, "ack_wait_limit",
											fh_jsonb_get_int(o, "retry_duration", 3600) +
											c->ack_timeout_ms / 1000) * 1000;

	if (c->event)
		c->data_url = psprintf("%.*s/services/collector/event", (int) len, endpoint);
	else
	{
		StringInfoData u;

		initStringInfo(&u);
		appendStringInfo(&u, "%.*s/services/collector/raw?channel=%s", (int) len, endpoint, channel);
		if (c->host)
			appendStringInfoString(&u, query_param("host", c->host));
		if (c->source)
			appendStringInfoString(&u, query_param("source", c->source));
		if (c->sourcetype)
			appendStringInfoString(&u, query_param("sourcetype", c->sourcetype));
		if (c->index)
			appendStringInfoString(&u, query_param("index", c->index));
		c->data_url = u.data;
	}
	c->ack_url = psprintf("%.*s/services/collector/ack?channel=%s", (int) len, endpoint, channel);
	return c;
}

static void
splunk_limits(void *config, int *max_records, int64 *max_bytes)
{
	*max_records = SPLUNK_MAX_RECORDS;
	*max_bytes = SPLUNK_MAX_BODY / 2;	/* room for the event wrapping */
}

/* is the record a JSON value (sent as is in "event"), else a string */
static bool
is_json(const char *data, int len)
{
	if (!pg_verifymbstr(data, len, true) || memchr(data, '\0', len))
		return false;
	return fh_is_json(data, len);
}

static void
append_meta(StringInfo b, const char *key, const char *value)
{
	if (value == NULL)
		return;
	appendStringInfo(b, ",\"%s\":", key);
	escape_json(b, value);
}

/*
 * HEC refuses a blank event ("", null: codes 12 and 13), and with it the
 * events after it in the request: such records fail alone, unsent.
 */
static void
fail_blank_events(FhPartView *part)
{
	for (int i = 0; i < part->nrecords; i++)
	{
		char	   *data = VARDATA_ANY(part->records[i].data);
		int			len = VARSIZE_ANY_EXHDR(part->records[i].data);
		int			a = 0,
					b = len;

		while (a < b && isspace((unsigned char) data[a]))
			a++;
		while (b > a && isspace((unsigned char) data[b - 1]))
			b--;
		if (b == a || (b - a == 2 && memcmp(data + a, "\"\"", 2) == 0) ||
			(b - a == 4 && memcmp(data + a, "null", 4) == 0 && is_json(data, len)))
		{
			fh_view_fail(part, i, "Splunk.InvalidDataFormat",
								"The record is an empty event (empty, \"\" or null), which HEC refuses.");
		}
	}
}

static void
splunk_encode(void *config, FhPartView *part, FhRequest *req, FhVerdict *verdict)
{
	SplunkConfig *c = config;
	SplunkState *st = part->state;
	StringInfoData body;

	if (st == NULL)
	{
		part->state = st = palloc0(sizeof(SplunkState));
		if (c->event)
			fail_blank_events(part);
	}
	if (!st->polling && st->unacked)
	{
		/* sending again what may have been indexed */
		part->possible_duplicates += part->nrecords;
		st->unacked = false;
	}
	initStringInfo(&body);
	if (st->polling)
	{
		appendStringInfo(&body, "{\"acks\":[" INT64_FORMAT "]}", st->ack_id);
		req->url = c->ack_url;
		req->headers = curl_slist_append(req->headers, "Content-Type: application/json");
	}
	else if (c->event)
	{
		bool		first = true;
		int			pending = 0;

		for (int i = 0; i < part->nrecords; i++)
			pending += fh_view_pending(part, i);
		if (pending == 0)
		{
			/* nothing to send: the part is done, its failures recorded */
			fh_verdict_set(verdict, FH_OUTCOME_OK, NULL, NULL);
			return;
		}

		for (int i = 0; i < part->nrecords; i++)
		{
			const FhRecord *r = &part->records[i];
			char	   *data = VARDATA_ANY(r->data);
			int			len = VARSIZE_ANY_EXHDR(r->data);
			int64		ms = fh_epoch_ms(r->arrival);

			if (!fh_view_pending(part, i))
				continue;
			if (!first)
				appendStringInfoChar(&body, '\n');
			first = false;
			appendStringInfoString(&body, "{\"event\":");
			if (is_json(data, len))
				appendBinaryStringInfo(&body, data, len);
			else
			{
				/* text (invalid UTF-8 replaced by its escape) as a string */
				char	   *text = pnstrdup(data, len);

				if (!pg_verifymbstr(data, len, true))
					text = DatumGetCString(DirectFunctionCall1(byteaout, PointerGetDatum(r->data)));
				escape_json(&body, text);
			}
			appendStringInfo(&body, ",\"time\":" INT64_FORMAT ".%03d", ms / 1000, (int) (ms % 1000));
			append_meta(&body, "host", c->host);
			append_meta(&body, "source", c->source);
			append_meta(&body, "sourcetype", c->sourcetype);
			append_meta(&body, "index", c->index);
			appendStringInfoChar(&body, '}');
		}
		req->url = c->data_url;
		req->headers = curl_slist_append(req->headers, "Content-Type: application/json");
	}
	else
	{
		for (int i = 0; i < part->nrecords; i++)
		{
			appendBinaryStringInfo(&body, VARDATA_ANY(part->records[i].data),
								   VARSIZE_ANY_EXHDR(part->records[i].data));
			appendStringInfoChar(&body, '\n');
		}
		req->url = c->data_url;
		req->headers = curl_slist_append(req->headers, "Content-Type: text/plain");
	}
	req->body = body;
	req->headers = curl_slist_append(req->headers, c->auth);
	req->headers = curl_slist_append(req->headers, c->channel_header);
	req->tls_verify = c->tls_verify;
	req->ca_file = c->ca_file;
}

/* HEC's error codes (Splunk docs, "Troubleshoot HTTP Event Collector") */
static const char *
error_code_of(int code, long status, bool *retry)
{
	*retry = false;
	switch (code)
	{
		case 1:
			return "Splunk.DisabledToken";
		case 2:
		case 3:
		case 4:
			return "Splunk.InvalidToken";
		case 5:
		case 6:
		case 10:
		case 11:
		case 12:
		case 13:
			return "Splunk.InvalidDataFormat";
		case 7:
			return "Splunk.InvalidIndex";
		case 8:
		case 9:
			*retry = true;
			return "Splunk.ServerError";
		case 14:
			return "Splunk.DisabledAck";
		default:
			break;
	}
	*retry = status >= 500 || status == 408 || status == 429;
	if (status >= 500)
		return "Splunk.ServerError";
	return "Splunk.InvalidEndpoint";
}

static void
splunk_classify(void *config, FhPartView *part, FhResponse *resp, FhVerdict *v)
{
	SplunkConfig *c = config;
	SplunkState *st = part->state;
	long		s = resp->status;
	FhHecAnswer a;
	TimestampTz now = GetCurrentTimestamp();
	int64		waited;

	v->error_code = NULL;
	v->error_message = NULL;
	v->delay_ms = 0;
	/* HEC's JSON answer (answers.c); polls look for our ackId in "acks" */
	fh_hec_answer(resp->body.data, resp->body.len, st->polling ? st->ack_id : 0, &a);
	if (st->polling)
	{
		if (s == 400 && a.code == 14)
		{
			v->outcome = FH_OUTCOME_FAIL;
			v->error_code = "Splunk.DisabledAck";
			v->error_message = psprintf("Splunk answered 400: %s",
										a.has_text ? a.text : "ACK is disabled");
			return;
		}
		if (s == 200 && a.acked)
		{
			v->outcome = FH_OUTCOME_OK;
			return;
		}
		waited = TimestampDifferenceMilliseconds(st->sent_at, now);
		if (st->acks_waited_ms + waited >= c->ack_wait_limit_ms)
		{
			v->outcome = FH_OUTCOME_FAIL;
			v->error_code = "Splunk.AckTimeout";
			v->error_message = psprintf("No indexer acknowledgement for ackId " INT64_FORMAT " after waiting %d seconds in all (ack_wait_limit); Splunk may have indexed the data all the same.",
										st->ack_id,
										(int) ((st->acks_waited_ms + waited) / 1000));
			return;
		}
		if (waited >= c->ack_timeout_ms)
		{
			/* send the data again: it may be indexed twice */
			st->polling = false;
			st->unacked = true;
			st->acks_waited_ms += waited;
			v->outcome = FH_OUTCOME_RETRY;
			v->waited_ms = waited;
			v->error_code = "Splunk.AckTimeout";
			v->error_message = psprintf("No indexer acknowledgement for ackId " INT64_FORMAT " within %d seconds; Splunk may have indexed the data all the same, so a retry may index it twice.",
										st->ack_id, (int) (c->ack_timeout_ms / 1000));
			return;
		}
		v->outcome = FH_OUTCOME_NEXT;	/* poll again */
		v->delay_ms = c->ack_poll_ms;
		return;
	}

	if (s == 0)
	{
		v->outcome = FH_OUTCOME_RETRY;
		v->error_code = resp->curl_code == CURLE_OPERATION_TIMEDOUT ? "Splunk.ConnectionTimeout" :
			(resp->curl_code == CURLE_SSL_CONNECT_ERROR ||
			 resp->curl_code == CURLE_PEER_FAILED_VERIFICATION) ? "Splunk.SSLHandshake" :
			"Splunk.ConnectionClosed";
		v->error_message = pstrdup(resp->curl_error ? resp->curl_error : "no response");
		return;
	}
	if (s == 200 && a.code == 0)
	{
		if (!c->ack)
		{
			v->outcome = FH_OUTCOME_OK;
			return;
		}
		if (!a.has_ack_id)
		{
			v->outcome = FH_OUTCOME_FAIL;
			v->error_code = "Splunk.DisabledAck";
			v->error_message = "Splunk accepted the data without an ackId: indexer acknowledgement is disabled for this token; enable it, or set \"ack\": false.";
			return;
		}
		st->ack_id = a.ack_id;
		st->sent_at = now;
		st->polling = true;
		v->outcome = FH_OUTCOME_NEXT;
		v->delay_ms = c->ack_poll_ms;
		return;
	}
	{
		bool		retry;

		v->error_code = error_code_of(a.code, s, &retry);
		v->outcome = retry ? FH_OUTCOME_RETRY : FH_OUTCOME_FAIL;
		v->error_message = psprintf("Splunk answered %ld: %.*s", s,
									Min(resp->body.len, ERROR_BODY_MAX),
									resp->body.data ? resp->body.data : "");
	}
}

/* an error record's fields of Splunk (firehose.md 3.8) */
static void
splunk_error_fields(void *config, const FhPartView *part, int i, StringInfo out)
{
	appendStringInfo(out, ",\"EventId\":\"" INT64_FORMAT "\"", part->records[i].id);
}

static char *
splunk_target(Jsonb *o)
{
	char	   *endpoint = NULL;
	char	   *type = "raw";
	size_t		len;

	fh_jsonb_get_text(o, "endpoint", &endpoint);
	fh_jsonb_get_text(o, "endpoint_type", &type);
	len = fh_url_trimmed_len(endpoint);
	return psprintf("%.*s/services/collector/%s", (int) len, endpoint, type);
}

const FhSink fh_sink_splunk = {
	.name = "splunk",
	.options = splunk_options,
	.default_retry_duration_s = 3600,
	.default_buffer_interval_ms = 60000,
	.error_output_type = "splunk-failed",
	.validate = splunk_validate,
	.configure = splunk_configure,
	.limits = splunk_limits,
	.encode = splunk_encode,
	.classify = splunk_classify,
	.error_fields = splunk_error_fields,
	.target = splunk_target,
};
