/*-------------------------------------------------------------------------
 *
 * processor_lambda.c
 *	  The Lambda processor: Firehose's data transformation by a Lambda
 *	  function (firehose.md 4), over HTTP to a Lambda function URL or any
 *	  endpoint that speaks the same JSON.
 *
 * The records of a part go out in invocations of at most buffer_size bytes
 * of data (and 6 MB of request), one after the other:
 *	{"invocationId": "..", "deliveryStreamArn": "..", "region": "..",
 *	 "records": [{"recordId": "7", "approximateArrivalTimestamp": <ms>,
 *				  "data": "<base64>"}, ...]}
 * and each answer says of every record Ok (with its new data and partition
 * keys), Dropped or ProcessingFailed:
 *	{"records": [{"recordId": "7", "result": "Ok", "data": "<base64>",
 *				  "metadata": {"partitionKeys": {"k": "v"}}}, ...]}
 *
 * This file only makes the requests and reads the answers: the worker
 * sends them on its curl multi handle, outside any transaction, as it
 * sends a destination's requests; a part waiting for its answers is a
 * state of the part in the worker's loop.  An invocation that fails (no
 * answer, an HTTP error, an answer over 6 MB) is tried again
 * number_of_retries times, then every record of it fails with
 * Lambda.InvocationFailed.  A recordId that is missing or duplicated fails
 * that record (Lambda.MissingRecordId, Lambda.DuplicatedRecordId); an
 * answer that is not the documented JSON fails the invocation's records
 * with Lambda.JsonProcessingException, as Firehose does.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <curl/curl.h>

#include "answers.h"
#include "common/base64.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"

#define LAMBDA_MAX_REQUEST	(6 * 1024 * 1024)	/* Firehose's, each way */
#define LAMBDA_MAX_ANSWER	(6 * 1024 * 1024)
/* a record's JSON in a request besides its base64 data */
#define RECORD_JSON_OVERHEAD	96
#define ANSWER_SHOWN		512 /* bytes of an error answer in a message */

struct FhLambda
{
	char	   *url;
	List	   *headers;		/* "Name: value" strings */
	bool		sigv4;
	FhAwsTarget aws;			/* sigv4: service lambda */
	char	   *path;			/* of url, for the signature */
	char	   *region;
	int64		buffer_size;
	int			number_of_retries;
	int64		timeout_ms;
	bool		tls_verify;
};

struct FhLambdaRun
{
	FhLambda   *l;
	char	   *arn;			/* deliveryStreamArn */
	const FhRecord *records;
	FhProcessed *out;
	int			n;
	int			next;			/* the first record in no invocation yet */
	int			start;			/* the invocation under way: records */
	int			end;			/* [start, end) (start == end: none) */
	bool	   *sent;			/* records in the invocation under way */
	int			attempts;		/* of the invocation under way */
	char		invocation_id[40];
	int64		retry_base_ms;
	int64		retry_max_ms;
};

/* a table that only lends its options to the option checks */
static const FhSink lambda_checks = {
	.name = "lambda processor",
	.options = fh_lambda_options,
};

/*
 * Check processor p, {"type": "lambda", ...} (processor.c checked its
 * keys), and append it with every default filled in; see FhProcessorKind.
 * The option checks raise their own errors (a value out of range).
 */
static const char *
lambda_normalize(Jsonb *p, StringInfo out)
{
	Jsonb	   *norm;
	char	   *auth = "none";

	if (fh_jsonb_get(p, "url") == NULL)
		return "no \"url\": the URL of the function, such as \"https://abc.lambda-url.eu-west-1.on.aws/\".";
	norm = fh_options_normalize_sink(&lambda_checks, NULL, p, false);
	fh_jsonb_get_text(norm, "auth", &auth);
	if (strcmp(auth, "sigv4") == 0)
		fh_aws_validate_credentials(norm, "a lambda processor with \"auth\": \"sigv4\"");
	else if (fh_jsonb_get(norm, "access_key_id") || fh_jsonb_get(norm, "secret_access_key") ||
			 fh_jsonb_get(norm, "session_token") || fh_jsonb_get(norm, "credentials"))
		return "AWS credentials are given but \"auth\" is \"none\"; set \"auth\": \"sigv4\" to sign the invocations with them.";
	appendStringInfoString(out, JsonbToCString(NULL, &norm->root, VARSIZE(norm)));
	return NULL;
}

/*
 * A Lambda processor of its normalized options, in CurrentMemoryContext;
 * see FhProcessorKind.
 */
static void *
lambda_configure(Jsonb *p)
{
	FhLambda   *l = palloc0(sizeof(FhLambda));
	JsonbValue *h = fh_jsonb_get(p, "headers");
	char	   *auth = "none";
	char	   *scheme;
	char	   *hostport;

	fh_jsonb_get_text(p, "url", &l->url);
	l->region = "us-east-1";
	fh_jsonb_get_text(p, "region", &l->region);
	l->buffer_size = fh_jsonb_get_int(p, "buffer_size", 1048576);
	l->number_of_retries = (int) fh_jsonb_get_int(p, "number_of_retries", 3);
	l->timeout_ms = fh_jsonb_get_int(p, "timeout", 300000);
	l->tls_verify = fh_jsonb_get_bool(p, "tls_verify", true);
	if (h && h->type == jbvBinary)
	{
		JsonbIterator *it = JsonbIteratorInit(h->val.binary.data);
		JsonbValue	kv;
		JsonbIteratorToken tok;
		char	   *name = NULL;

		while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
				name = pnstrdup(kv.val.string.val, kv.val.string.len);
			else if (tok == WJB_VALUE && kv.type == jbvString)
				l->headers = lappend(l->headers,
									 psprintf("%s: %.*s", name, kv.val.string.len,
											  kv.val.string.val));
		}
	}
	fh_jsonb_get_text(p, "auth", &auth);
	l->sigv4 = strcmp(auth, "sigv4") == 0;
	fh_url_split(l->url, &scheme, &hostport, &l->path);
	l->aws.scheme = scheme;
	l->aws.host = hostport;
	l->aws.region = l->region;
	l->aws.service = "lambda";
	if (l->sigv4)
		fh_aws_credentials(p, &l->aws);
	return l;
}

/* a copy of s in CurrentMemoryContext, or NULL */
static char *
copy_or_null(const char *s)
{
	return s ? pstrdup(s) : NULL;
}

/*
 * fh_lambda_copy
 *		A copy of l in CurrentMemoryContext: a part keeps one while it waits
 *		for answers, since the stream's configuration may be replaced
 *		meanwhile.
 */
FhLambda *
fh_lambda_copy(FhLambda *l)
{
	FhLambda   *c = palloc(sizeof(FhLambda));
	ListCell   *lc;

	*c = *l;
	c->url = pstrdup(l->url);
	c->headers = NIL;
	foreach(lc, l->headers)
		c->headers = lappend(c->headers, pstrdup(lfirst(lc)));
	c->aws.scheme = pstrdup(l->aws.scheme);
	c->aws.host = pstrdup(l->aws.host);
	c->aws.region = pstrdup(l->aws.region);
	c->aws.access_key_id = copy_or_null(l->aws.access_key_id);
	c->aws.secret_access_key = copy_or_null(l->aws.secret_access_key);
	c->aws.session_token = copy_or_null(l->aws.session_token);
	c->path = pstrdup(l->path);
	c->region = pstrdup(l->region);
	return c;
}

/*
 * fh_lambda_start
 *		One part's way through Lambda processor l (which must live as long:
 *		the part's copy): the n records (out[i] their state so far; those Ok
 *		are sent), in CurrentMemoryContext (the part's).
 */
FhLambdaRun *
fh_lambda_start(FhLambda *l, const char *stream, const FhRecord *records, int n,
				FhProcessed *out, int64 retry_base_ms, int64 retry_max_ms)
{
	FhLambdaRun *run = palloc0(sizeof(FhLambdaRun));

	run->l = l;
	run->arn = psprintf("arn:aws:firehose:%s:000000000000:deliverystream/%s",
						l->region, stream);
	run->records = records;
	run->out = out;
	run->n = n;
	run->sent = palloc0(sizeof(bool) * Max(n, 1));
	run->retry_base_ms = retry_base_ms;
	run->retry_max_ms = retry_max_ms;
	return run;
}

static void
fail_record(FhLambdaRun *run, int i, const char *code, char *message)
{
	fh_processed_fail(&run->out[i], code, message);
}

/* the invocation under way is settled: on to the next */
static void
invocation_done(FhLambdaRun *run)
{
	for (int i = run->start; i < run->end; i++)
		run->sent[i] = false;
	run->next = run->end;
	run->start = run->end;
	run->attempts = 0;
}

/*
 * fh_lambda_fail
 *		Fail every record of the invocation under way and of those to come
 *		(an ERROR in this file, caught by the worker).
 */
void
fh_lambda_fail(FhLambdaRun *run, const char *code, const char *message)
{
	for (int i = run->start; i < run->n; i++)
		if ((i < run->end && run->sent[i]) ||
			(i >= run->next && run->out[i].result == FH_PROC_OK))
			fail_record(run, i, code, pstrdup(message));
	run->end = run->n;
	invocation_done(run);
}

/* the bytes record i takes in a request, with its JSON */
static int64
record_request_bytes(const FhProcessed *o)
{
	return pg_b64_enc_len(VARSIZE_ANY_EXHDR(o->data)) + RECORD_JSON_OVERHEAD;
}

/*
 * Choose the records of the next invocation: those Ok from run->next, up
 * to buffer_size bytes of data and 6 MB of request (at least one).  A
 * record that alone makes a request over 6 MB fails.  False when none is
 * left.
 */
static bool
next_invocation(FhLambdaRun *run)
{
	int64		data = 0;
	int64		request = 256;	/* the event's own members */
	int			i;
	int			count = 0;
	uint8		id[16];

	for (i = run->next; i < run->n; i++)
	{
		FhProcessed *o = &run->out[i];
		int64		len;

		if (o->result != FH_PROC_OK)
			continue;
		len = VARSIZE_ANY_EXHDR(o->data);
		if (count == 0 && request + record_request_bytes(o) > LAMBDA_MAX_REQUEST)
		{
			fail_record(run, i, "Lambda.RequestTooLarge",
						psprintf("The record makes a Lambda request of more than %d bytes.",
								 LAMBDA_MAX_REQUEST));
			continue;
		}
		if (count > 0 && (data + len > run->l->buffer_size ||
						  request + record_request_bytes(o) > LAMBDA_MAX_REQUEST))
			break;
		data += len;
		request += record_request_bytes(o);
		run->sent[i] = true;
		if (count++ == 0)
			run->start = i;
	}
	if (count == 0)
	{
		run->start = run->end = run->next = run->n;
		return false;
	}
	run->end = i;
	run->attempts = 0;
	/* the same id for the retries of one invocation */
	if (!pg_strong_random(id, sizeof(id)))
		elog(ERROR, "could not generate a random invocation id");
	id[6] = (id[6] & 0x0f) | 0x40;
	id[8] = (id[8] & 0x3f) | 0x80;
	snprintf(run->invocation_id, sizeof(run->invocation_id),
			 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7], id[8], id[9],
			 id[10], id[11], id[12], id[13], id[14], id[15]);
	return true;
}

/*
 * fh_lambda_encode
 *		The request of the invocation under way (a new one when none is),
 *		in CurrentMemoryContext (the part's), and its timeout; false when
 *		every record is settled.
 */
bool
fh_lambda_encode(FhLambdaRun *run, FhRequest *req, int64 *timeout_ms)
{
	FhLambda   *l = run->l;
	StringInfoData body;
	bool		first = true;
	ListCell   *lc;

	if (run->start == run->end && !next_invocation(run))
		return false;
	initStringInfo(&body);
	appendStringInfoString(&body, "{\"invocationId\":");
	escape_json(&body, run->invocation_id);
	appendStringInfoString(&body, ",\"deliveryStreamArn\":");
	escape_json(&body, run->arn);
	appendStringInfoString(&body, ",\"region\":");
	escape_json(&body, l->region);
	appendStringInfoString(&body, ",\"records\":[");
	for (int i = run->start; i < run->end; i++)
	{
		bytea	   *d = run->out[i].data;

		if (!run->sent[i])
			continue;
		/* recordId: the record's place in the part, unique in the invocation */
		appendStringInfo(&body, "%s{\"recordId\":\"%d\",\"approximateArrivalTimestamp\":" INT64_FORMAT ",\"data\":\"",
						 first ? "" : ",", i, fh_epoch_ms(run->records[i].arrival));
		fh_base64_append(&body, VARDATA_ANY(d), VARSIZE_ANY_EXHDR(d));
		appendStringInfoString(&body, "\"}");
		first = false;
	}
	appendStringInfoString(&body, "]}");

	foreach(lc, l->headers)
		req->headers = curl_slist_append(req->headers, lfirst(lc));
	if (l->sigv4)
		fh_aws_sign_request(&l->aws, req, "POST", l->path, NULL, body.data, body.len,
							NULL, 0, "application/json");
	else
	{
		req->url = pstrdup(l->url);
		req->headers = curl_slist_append(req->headers, "Content-Type: application/json");
		req->data = body.data;
		req->len = body.len;
	}
	req->max_response = LAMBDA_MAX_ANSWER;
	req->tls_verify = l->tls_verify;
	*timeout_ms = l->timeout_ms;
	return true;
}

/* record i of the invocation, whose id is the answer's id, or -1 */
static int
record_of_id(FhLambdaRun *run, const FhLambdaItem *it)
{
	char	   *end;
	long		i;

	if (it->record_id == NULL || it->record_id_len > 10 ||
		it->record_id[0] < '0' || it->record_id[0] > '9' ||
		(it->record_id[0] == '0' && it->record_id_len > 1))
		return -1;
	i = strtol(it->record_id, &end, 10);
	if (*end != '\0' || i < run->start || i >= run->end || !run->sent[i])
		return -1;
	return (int) i;
}

/* the partition keys of an answer's record, as a jsonb object; NULL if none */
static Jsonb *
partition_keys(const FhLambdaItem *it)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;

	if (it->nkeys == 0)
		return NULL;
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int k = 0; k < it->nkeys; k++)
	{
		JsonbValue	v;

		v.type = jbvString;
		v.val.string.val = it->keys[k];
		v.val.string.len = strlen(it->keys[k]);
		pushJsonbValue(&state, WJB_KEY, &v);
		v.val.string.val = it->values[k];
		v.val.string.len = strlen(it->values[k]);
		pushJsonbValue(&state, WJB_VALUE, &v);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}

/* the outcome of record i from its item of the answer */
static void
settle_record(FhLambdaRun *run, int i, const FhLambdaItem *it)
{
	FhProcessed *o = &run->out[i];

	if (it->result == NULL)
		fail_record(run, i, "Lambda.JsonProcessingException",
					pstrdup("The Lambda answer's record has no \"result\"."));
	else if (strcmp(it->result, "Dropped") == 0)
	{
		o->result = FH_PROC_DROPPED;
		o->data = NULL;
	}
	else if (strcmp(it->result, "ProcessingFailed") == 0)
		fail_record(run, i, "Lambda.ProcessingFailed",
					pstrdup("The Lambda function returned ProcessingFailed for the record."));
	else if (strcmp(it->result, "Ok") != 0)
		fail_record(run, i, "Lambda.JsonProcessingException",
					psprintf("The Lambda answer's record has result \"%s\"; expected Ok, Dropped or ProcessingFailed.",
							 it->result));
	else if (it->data == NULL)
		fail_record(run, i, "Lambda.JsonProcessingException",
					pstrdup("The Lambda answer's record is Ok without \"data\" (a base64 string)."));
	else if (it->bad_metadata)
		fail_record(run, i, "Lambda.JsonProcessingException",
					psprintf("The Lambda answer's record has a \"metadata\" that is not {\"partitionKeys\": {..}} with at most %d keys of string values.",
							 FH_LAMBDA_MAX_KEYS));
	else
	{
		int			max = pg_b64_dec_len(it->data_len);
		bytea	   *d = palloc(VARHDRSZ + max);
		int			len = pg_b64_decode(it->data, it->data_len, VARDATA(d), max);

		if (len < 0)
		{
			pfree(d);
			fail_record(run, i, "Lambda.JsonProcessingException",
						pstrdup("The Lambda answer's record has \"data\" that is not base64."));
			return;
		}
		SET_VARSIZE(d, VARHDRSZ + len);
		o->data = d;
		/* a later processor's keys replace an earlier one's */
		if (it->nkeys > 0)
			o->partition_keys = partition_keys(it);
	}
}

/*
 * The invocation failed as a whole (why); again after a backoff while
 * retries are left (returns the delay), else its records fail.
 */
static int64
invocation_failed(FhLambdaRun *run, char *why)
{
	if (run->attempts++ < run->l->number_of_retries)
		return fh_backoff_ms(run->attempts, run->retry_base_ms, run->retry_max_ms);
	for (int i = run->start; i < run->end; i++)
		if (run->sent[i])
			fail_record(run, i, "Lambda.InvocationFailed",
						psprintf("The Lambda invocation failed after %d attempts: %s",
								 run->attempts, why));
	invocation_done(run);
	return 0;
}

/* why an answer that is no answer is not: its status and some of its body */
static char *
answer_problem(const FhResponse *resp)
{
	StringInfoData s;

	initStringInfo(&s);
	if (resp->status == 0)
		appendStringInfo(&s, "No answer from the Lambda endpoint: %s.",
						 resp->curl_error && resp->curl_error[0] ? resp->curl_error : "no response");
	else if (resp->body_truncated)
		appendStringInfo(&s, "The Lambda endpoint's answer exceeded %d bytes.",
						 LAMBDA_MAX_ANSWER);
	else
	{
		appendStringInfo(&s, "The Lambda endpoint answered HTTP %ld.", resp->status);
		fh_append_answer(&s, resp, ANSWER_SHOWN);
	}
	return s.data;
}

/*
 * fh_lambda_judge
 *		Judge the answer to the invocation under way: settle its records, or
 *		leave it to be sent again.  Returns how long to wait before the next
 *		request (fh_lambda_encode): a backoff, or 0.
 */
int64
fh_lambda_judge(FhLambdaRun *run, const FhResponse *resp)
{
	FhLambdaAnswer a;
	int			sent = 0;
	int		   *seen;
	int		   *item_of;
	int			unknown = 0;

	if (resp->status == 0 && resp->refused[0] != '\0')
	{
		/* the policy said no: nothing was sent, and trying again won't help */
		char	   *why = psprintf("firehose.allowed_destinations does not allow %s%s.",
								   resp->refused_host ? "host " : "address ", resp->refused);

		for (int i = run->start; i < run->end; i++)
			if (run->sent[i])
				fail_record(run, i, "Firehose.DestinationNotAllowed", why);
		invocation_done(run);
		return 0;
	}
	if (resp->status < 200 || resp->status > 299 || resp->body_truncated)
		return invocation_failed(run, answer_problem(resp));

	for (int i = run->start; i < run->end; i++)
		sent += run->sent[i];
	/* room for every answer a sane function gives; more is nonsense */
	if (!fh_lambda_answer(resp->body.data, resp->body.len, 2 * sent + 16, &a) ||
		!a.records_seen || a.items > a.max_items)
	{
		char	   *why = psprintf("The Lambda answer is not {\"records\": [...]} with at most one element per record sent.%s",
								   "");
		StringInfoData s;

		initStringInfo(&s);
		appendStringInfoString(&s, why);
		fh_append_answer(&s, resp, ANSWER_SHOWN);
		for (int i = run->start; i < run->end; i++)
			if (run->sent[i])
				fail_record(run, i, "Lambda.JsonProcessingException", s.data);
		fh_lambda_answer_free(&a);
		invocation_done(run);
		return 0;
	}

	seen = palloc0(sizeof(int) * (run->end - run->start));
	item_of = palloc0(sizeof(int) * (run->end - run->start));
	for (int k = 0; k < a.items; k++)
	{
		int			i = record_of_id(run, &a.item[k]);

		if (i < 0)
			unknown++;
		else if (seen[i - run->start]++ == 0)
			item_of[i - run->start] = k;
	}
	for (int i = run->start; i < run->end; i++)
	{
		int			times = seen[i - run->start];

		if (!run->sent[i])
			continue;
		if (times == 0)
			fail_record(run, i, "Lambda.MissingRecordId",
						psprintf("The Lambda answer has no record with recordId \"%d\"%s.", i,
								 unknown ? psprintf(" (it has %d records with recordIds that were not sent)",
													unknown) : ""));
		else if (times > 1)
			fail_record(run, i, "Lambda.DuplicatedRecordId",
						psprintf("The Lambda answer has %d records with recordId \"%d\".",
								 times, i));
		else
			settle_record(run, i, &a.item[item_of[i - run->start]]);
	}
	fh_lambda_answer_free(&a);
	pfree(seen);
	pfree(item_of);
	invocation_done(run);
	return 0;
}

static const char *const lambda_keys[] = {"type", "url", "headers", "auth", "region",
	"credentials", "access_key_id", "secret_access_key", "session_token", "buffer_size",
"number_of_retries", "timeout", "tls_verify", NULL};

/* no run(): the worker sends the invocations (see processor.c) */
const FhProcessorKind fh_processor_lambda = {
	.type = "lambda",
	.keys = lambda_keys,
	.normalize = lambda_normalize,
	.configure = lambda_configure,
};
