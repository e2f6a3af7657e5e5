/*-------------------------------------------------------------------------
 *
 * options.c
 *	  Option tables: one of the options every stream has, one per
 *	  destination (in its sink), nested ones for options that are objects
 *	  (backup); the validation that turns what a user wrote into the
 *	  normalized options stored in firehose.stream, and the loading of
 *	  normalized options into typed config structs.
 *
 * Everything is checked when a stream is created or altered, so the worker
 * never meets an option it cannot use: an unknown option, a wrong type, a
 * value out of range, a malformed URL or an option that does not apply to
 * the destination is an ERROR that names the option and what is allowed.
 * The normalized form has every option with a default filled in, numbers
 * in their base unit (bytes, milliseconds, seconds).
 *
 * This file knows option tables, not destinations: a sink's table, checks
 * and nested tables come in through pointers, so that the sinks, stream.c
 * and the worker call in here and it calls none of them.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <stdlib.h>

#include <curl/curl.h>

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/numeric.h"

#define KB 1024LL
#define MB (1024LL * 1024LL)
#define GB (1024LL * 1024LL * 1024LL)

static const char *const lambda_auths[] = {"none", "sigv4", NULL};
static const char *const lambda_credentials[] = {"static", "environment", NULL};

/*
 * The keys of a Lambda processor (processor_lambda.c checks a processor
 * with this table).  It lives here, as the nested table of "processors",
 * so that the secrets in a processor are redacted like any option's; the
 * keys of other processors are not in it and hold no secret.
 */
const FhOptionDef fh_lambda_options[] = {
	{"type", FH_OPT_STRING, 0, 64},
	{"url", FH_OPT_URL, 0, 1000, .required = true, .location = true},
	{"headers", FH_OPT_STRMAP, .secret = true},
	{"auth", FH_OPT_ENUM, 0, 0, "\"none\"", lambda_auths},
	{"region", FH_OPT_STRING, 0, 64, "\"us-east-1\""},
	{"credentials", FH_OPT_ENUM, 0, 0, NULL, lambda_credentials},
	{"access_key_id", FH_OPT_STRING, 0, 128, .secret = true},
	{"secret_access_key", FH_OPT_STRING, 0, 256, .secret = true},
	{"session_token", FH_OPT_STRING, 0, 8192, .secret = true},
	/* Firehose's BufferSizeInMBs, 0.2 to 3 MB (1 MB), NumberOfRetries (3) */
	{"buffer_size", FH_OPT_BYTES, 209715, 3 * MB, "1048576"},
	{"number_of_retries", FH_OPT_INT, 0, 300, "3"},
	/* Firehose waits up to 5 minutes for an invocation */
	{"timeout", FH_OPT_MS, 1, 300000, "300000"},
	{"tls_verify", FH_OPT_BOOL, 0, 0, "true"},
	{NULL}
};

/*
 * The options every stream has, whatever its destination.  The defaults
 * here are the only ones: fh_config_from_options() reads them from this
 * table too.
 */
#define SC(member) FH_FIELD(FhStreamConfig, member)
static const FhOptionDef common_options[] = {
	{"buffer_size", FH_OPT_BYTES, 1, GB, "5242880", SC(buffer_size)},
	{"buffer_interval", FH_OPT_MS, 0, 86400000LL, "60000", SC(buffer_interval_ms)},
	/* no default here: the sink's (default_retry_duration_s) */
	{"retry_duration", FH_OPT_SECONDS, 0, 86400, NULL, SC(retry_duration_s)},
	{"max_concurrency", FH_OPT_INT, 1, 64, "1", SC(max_concurrency)},
	{"max_record_size", FH_OPT_BYTES, 1, GB - 1, "1024000", SC(max_record_size)},
	{"max_buffered_bytes", FH_OPT_BYTES, 0, INT64CONST(1) << 50, "0", SC(max_buffered_bytes)},
	{"durable", FH_OPT_BOOL, 0, 0, "false", SC(durable)},
	{"request_timeout", FH_OPT_MS, 1, 3600000LL, "180000", SC(request_timeout_ms)},
	{"retry_base", FH_OPT_MS, 1, 3600000LL, "1000", SC(retry_base_ms)},
	{"retry_max", FH_OPT_MS, 1, 86400000LL, "120000", SC(retry_max_ms)},
	/* checked by stream.c before (fh_processors_normalize) */
	{"processors", FH_OPT_ARRAY, .nested = fh_lambda_options,
		.what = "an array of processors such as [{\"type\": \"function\", \"function\": \"myschema.transform\"}]",
	SC(processors)},
	{NULL}
};
#undef SC

/* ---------- jsonb accessors ---------- */

JsonbValue *
fh_jsonb_get(Jsonb *obj, const char *key)
{
	if (obj == NULL || !JB_ROOT_IS_OBJECT(obj))
		return NULL;
	return getKeyJsonValueFromContainer(&obj->root, key, strlen(key), NULL);
}

bool
fh_jsonb_get_text(Jsonb *obj, const char *key, char **out)
{
	JsonbValue *v = fh_jsonb_get(obj, key);

	if (v == NULL || v->type != jbvString)
		return false;
	*out = pnstrdup(v->val.string.val, v->val.string.len);
	return true;
}

bool
fh_jsonb_get_bool(Jsonb *obj, const char *key, bool def)
{
	JsonbValue *v = fh_jsonb_get(obj, key);

	if (v == NULL || v->type != jbvBool)
		return def;
	return v->val.boolean;
}

int64
fh_jsonb_get_int(Jsonb *obj, const char *key, int64 def)
{
	JsonbValue *v = fh_jsonb_get(obj, key);

	if (v == NULL || v->type != jbvNumeric)
		return def;
	return DatumGetInt64(DirectFunctionCall1(numeric_int8,
											 NumericGetDatum(v->val.numeric)));
}

/* ---------- validation ---------- */

static const FhOptionDef *
find_option(const FhOptionDef *defs, const char *name)
{
	for (; defs->name; defs++)
		if (strcmp(defs->name, name) == 0)
			return defs;
	return NULL;
}

static char *
option_names(const FhSink *sink)
{
	StringInfoData s;
	const FhOptionDef *d;

	initStringInfo(&s);
	for (d = common_options; d->name; d++)
		appendStringInfo(&s, "%s%s", s.len ? ", " : "", d->name);
	for (d = sink->options; d->name; d++)
		appendStringInfo(&s, "%s%s", s.len ? ", " : "", d->name);
	return s.data;
}

static char *
jsonb_value_text(JsonbValue *v)
{
	Jsonb	   *j = JsonbValueToJsonb(v);

	return JsonbToCString(NULL, &j->root, VARSIZE(j));
}

static const char *
type_description(const FhOptionDef *d)
{
	switch (d->type)
	{
		case FH_OPT_INT:
			return "an integer";
		case FH_OPT_BYTES:
			return "a number of bytes or a size string such as '5MB'";
		case FH_OPT_MS:
			return "a number of milliseconds or an interval string such as '5 seconds'";
		case FH_OPT_SECONDS:
			return "a number of seconds or an interval string such as '5 minutes'";
		case FH_OPT_BOOL:
			return "a boolean";
		case FH_OPT_STRING:
		case FH_OPT_ENUM:
		case FH_OPT_URL:
			return "a string";
		case FH_OPT_STRMAP:
			return "an object whose values are strings";
		case FH_OPT_OBJECT:
			return d->what ? d->what : "an object";
		case FH_OPT_ARRAY:
			return d->what ? d->what : "an array";
	}
	return "?";
}

static void
option_type_error(const FhOptionDef *d, JsonbValue *v)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("option \"%s\" must be %s", d->name, type_description(d)),
			 errdetail("The value given was %s.", jsonb_value_text(v))));
}

static int64
numeric_to_int64_exact(const FhOptionDef *d, JsonbValue *v)
{
	char	   *s = DatumGetCString(DirectFunctionCall1(numeric_out,
														NumericGetDatum(v->val.numeric)));
	char	   *end;
	int64		r;

	errno = 0;
	r = strtoll(s, &end, 10);
	if (*end != '\0' || errno != 0)
		option_type_error(d, v);
	return r;
}

/* convert a string through a PostgreSQL input function, naming the option on failure */
static int64
string_to_quantity(const FhOptionDef *d, JsonbValue *v)
{
	char	   *s = pnstrdup(v->val.string.val, v->val.string.len);
	MemoryContext cxt = CurrentMemoryContext;
	int64		result = 0;

	PG_TRY();
	{
		if (d->type == FH_OPT_BYTES)
			result = DatumGetInt64(DirectFunctionCall1(pg_size_bytes,
													   CStringGetTextDatum(s)));
		else
		{
			Interval   *iv = DatumGetIntervalP(DirectFunctionCall3(interval_in,
																   CStringGetDatum(s),
																   ObjectIdGetDatum(InvalidOid),
																   Int32GetDatum(-1)));
			int64		us = iv->time + (int64) iv->day * USECS_PER_DAY +
				(int64) iv->month * DAYS_PER_MONTH * USECS_PER_DAY;

			/* round up: "500 ms" of retry_duration must not mean no retry */
			result = d->type == FH_OPT_MS ? (us + 999) / 1000 :
				(us + USECS_PER_SEC - 1) / USECS_PER_SEC;
		}
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		option_type_error(d, v);
	}
	PG_END_TRY();
	return result;
}

static void
check_url(const FhOptionDef *d, const char *url)
{
	CURLU	   *h = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	CURLUcode	rc;
	bool		ok;

	rc = curl_url_set(h, CURLUPART_URL, url, 0);
	/* curl reads "http:/host" leniently; ask for the form people mean */
	ok = rc == CURLUE_OK && strstr(url, "://") != NULL &&
		curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
		(pg_strcasecmp(scheme, "http") == 0 || pg_strcasecmp(scheme, "https") == 0) &&
		host[0] != '\0';
	if (scheme)
		curl_free(scheme);
	curl_url_cleanup(h);
	if (!ok)
	{
		if (host)
			curl_free(host);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"%s\" is not a valid URL: \"%s\"", d->name, fh_url_redact(url)),
				 errhint("Give an absolute http:// or https:// URL with a host, such as \"https://example.com/ingest\".")));
	}
	/* the worker checks again, the addresses the name resolves to included */
	ok = fh_netacl_allows_host(FH_ALLOWED_DESTINATIONS(), host);
	if (!ok)
	{
		char	   *shown = pstrdup(host);

		curl_free(host);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("option \"%s\": destination \"%s\" is not allowed", d->name, shown),
				 errdetail("firehose.allowed_destinations is \"%s\".", FH_ALLOWED_DESTINATIONS()),
				 errhint("A superuser decides which hosts and addresses streams may send to, with firehose.allowed_destinations.")));
	}
	curl_free(host);
}

/*
 * A header name or value (headers, and the secrets that are sent as
 * headers) with a line break would end its header and start another of the
 * user's choosing; NUL would cut it.  what: "a key" or "a value".
 */
static void
check_no_line_break(const FhOptionDef *d, const char *s, int len, const char *what)
{
	for (int i = 0; i < len; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" has %s with a line break or NUL character", d->name, what),
					 errdetail("Carriage returns, line feeds and NUL characters are not allowed in what is sent as an HTTP header.")));
}

/*
 * Check one value against its definition; append its normalized JSON form.
 */
static void
normalize_value(const FhOptionDef *d, JsonbValue *v, StringInfo out)
{
	int64		n = 0;

	switch (d->type)
	{
		case FH_OPT_INT:
		case FH_OPT_BYTES:
		case FH_OPT_MS:
		case FH_OPT_SECONDS:
			if (v->type == jbvNumeric)
				n = numeric_to_int64_exact(d, v);
			else if (v->type == jbvString && d->type != FH_OPT_INT)
				n = string_to_quantity(d, v);
			else
				option_type_error(d, v);
			if (n < d->min || n > d->max)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"%s\" is out of range", d->name),
						 errdetail("The value given was %s; allowed is " INT64_FORMAT " to " INT64_FORMAT "%s.",
								   jsonb_value_text(v), d->min, d->max,
								   d->type == FH_OPT_BYTES ? " bytes" :
								   d->type == FH_OPT_MS ? " milliseconds" :
								   d->type == FH_OPT_SECONDS ? " seconds" : "")));
			appendStringInfo(out, INT64_FORMAT, n);
			break;
		case FH_OPT_BOOL:
			if (v->type != jbvBool)
				option_type_error(d, v);
			appendStringInfoString(out, v->val.boolean ? "true" : "false");
			break;
		case FH_OPT_STRING:
		case FH_OPT_ENUM:
		case FH_OPT_URL:
			{
				char	   *s;

				if (v->type != jbvString)
					option_type_error(d, v);
				s = pnstrdup(v->val.string.val, v->val.string.len);
				if (d->max > 0 && v->val.string.len > d->max)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("option \"%s\" is too long", d->name),
							 errdetail("It has %d bytes; at most " INT64_FORMAT " are allowed.",
									   v->val.string.len, d->max)));
				if (d->type == FH_OPT_ENUM)
				{
					const char *const *c;
					StringInfoData allowed;

					for (c = d->choices; *c; c++)
						if (strcmp(*c, s) == 0)
							break;
					if (*c == NULL)
					{
						initStringInfo(&allowed);
						for (c = d->choices; *c; c++)
							appendStringInfo(&allowed, "%s%s", allowed.len ? ", " : "", *c);
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								 errmsg("invalid value for option \"%s\": \"%s\"", d->name, s),
								 errhint("Allowed values are: %s.", allowed.data)));
					}
				}
				if (d->type == FH_OPT_URL)
					check_url(d, s);
				if (d->secret)
					check_no_line_break(d, v->val.string.val, v->val.string.len, "a value");
				escape_json(out, s);
				break;
			}
		case FH_OPT_OBJECT:
		case FH_OPT_ARRAY:
			if (v->type != jbvBinary ||
				(d->type == FH_OPT_ARRAY) != JsonContainerIsArray(v->val.binary.data))
				option_type_error(d, v);
			{
				Jsonb	   *j = JsonbValueToJsonb(v);

				/* without its own check, checked by the caller already */
				if (d->normalize)
					j = d->normalize(j);

				appendStringInfoString(out, JsonbToCString(NULL, &j->root, VARSIZE(j)));
			}
			break;
		case FH_OPT_STRMAP:
			{
				JsonbIterator *it;
				JsonbValue	kv;
				JsonbIteratorToken tok;
				Jsonb	   *j;

				if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
					option_type_error(d, v);
				it = JsonbIteratorInit(v->val.binary.data);
				while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
				{
					if (tok == WJB_VALUE && kv.type != jbvString)
						option_type_error(d, v);
					if (tok == WJB_KEY || tok == WJB_VALUE)
						check_no_line_break(d, kv.val.string.val, kv.val.string.len,
											tok == WJB_KEY ? "a key" : "a value");
					if (tok == WJB_KEY && kv.val.string.len == 0)
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								 errmsg("option \"%s\" has an empty key", d->name)));
				}
				j = JsonbValueToJsonb(v);
				appendStringInfoString(out, JsonbToCString(NULL, &j->root, VARSIZE(j)));
				break;
			}
	}
}

/*
 * The value an option has after changes are merged into current, as
 * normalized JSON text; "" when it has none.
 */
static char *
merged_value_text(const FhOptionDef *d, Jsonb *current, Jsonb *changes)
{
	JsonbValue *v = fh_jsonb_get(changes, d->name);
	StringInfoData out;

	if (v == NULL)
		v = fh_jsonb_get(current, d->name);
	else if (v->type == jbvNull)
		return d->default_value ? pstrdup(d->default_value) : "";
	if (v == NULL)
		return "";
	initStringInfo(&out);
	normalize_value(d, v, &out);
	return out.data;
}

/*
 * The first option of the sink that says where records go (url, endpoint,
 * bucket, region, ...) whose value changes from current to the merged
 * options; NULL if none does.
 */
static const char *
changed_location(const FhSink *sink, Jsonb *current, Jsonb *changes)
{
	for (const FhOptionDef *d = sink->options; d->name; d++)
	{
		if (!d->location || fh_jsonb_get(changes, d->name) == NULL)
			continue;
		if (strcmp(merged_value_text(d, current, NULL),
				   merged_value_text(d, current, changes)) != 0)
			return d->name;
	}
	return NULL;
}

/*
 * The stored secret options that changes does not give again, as a list
 * for a message ("\"access_key\", \"headers\""); NULL if none.
 */
static char *
secrets_not_given(const FhSink *sink, Jsonb *current, Jsonb *changes)
{
	StringInfoData names;

	initStringInfo(&names);
	for (const FhOptionDef *d = sink->options; d->name; d++)
		if (d->secret && fh_jsonb_get(current, d->name) &&
			fh_jsonb_get(changes, d->name) == NULL)
			appendStringInfo(&names, "%s\"%s\"", names.len ? ", " : "", d->name);
	return names.len ? names.data : NULL;
}

/*
 * Merge, check defaults and required options, and validate; with
 * drop_secrets, the stored secret options are left out unless changes
 * gives them again.
 */
static Jsonb *
build_options(const FhSink *sink, Jsonb *current, Jsonb *changes,
			  bool with_common, bool drop_secrets)
{
	StringInfoData out;
	int			pass;
	Jsonb	   *result;

	initStringInfo(&out);
	appendStringInfoChar(&out, '{');
	for (pass = with_common ? 0 : 1; pass < 2; pass++)
	{
		const FhOptionDef *d = pass == 0 ? common_options : sink->options;

		for (; d->name; d++)
		{
			JsonbValue *v = fh_jsonb_get(changes, d->name);
			StringInfoData val;

			if (v && v->type == jbvNull)
				v = NULL;		/* reset to default */
			else if (v == NULL && !(drop_secrets && d->secret))
				v = fh_jsonb_get(current, d->name);

			initStringInfo(&val);
			if (v)
				normalize_value(d, v, &val);
			else if (pass == 0 && strcmp(d->name, "buffer_interval") == 0 &&
					 sink->default_buffer_interval_ms > 0)
				appendStringInfo(&val, INT64_FORMAT, sink->default_buffer_interval_ms);
			else if (pass == 0 && strcmp(d->name, "buffer_size") == 0 &&
					 sink->default_buffer_size > 0)
				appendStringInfo(&val, INT64_FORMAT, sink->default_buffer_size);
			else if (d->default_value)
				appendStringInfoString(&val, d->default_value);
			else if (strcmp(d->name, "retry_duration") == 0)
				appendStringInfo(&val, INT64_FORMAT, sink->default_retry_duration_s);
			else if (d->required)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"%s\" is required for destination \"%s\"",
								d->name, sink->name)));
			else
				continue;
			if (out.len > 1)
				appendStringInfoString(&out, ", ");
			escape_json(&out, d->name);
			appendStringInfo(&out, ": %s", val.data);
		}
	}
	appendStringInfoChar(&out, '}');

	result = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
	if (sink->validate)
		sink->validate(result);
	return result;
}

/*
 * fh_options_normalize_sink
 *		The same for a sink, and with with_common false its own options
 *		only (an S3 backup store's options).
 *
 * Secrets belong to the place they were given for: when changes moves the
 * stream elsewhere (a location option such as url changes), the stored
 * secrets are dropped unless changes gives them again, so that they never
 * reach the new place.  A NOTICE names them; an error the new options
 * raise for lack of them says they were dropped.  ("backup" is replaced as
 * a whole, its secrets with it.)
 */
Jsonb *
fh_options_normalize_sink(const FhSink *sink, Jsonb *current, Jsonb *changes,
						  bool with_common)
{
	const char *moved;
	char	   *dropped = NULL;
	Jsonb	   *result = NULL;
	MemoryContext cxt = CurrentMemoryContext;

	if (changes && !JB_ROOT_IS_OBJECT(changes))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stream options must be a JSON object"),
				 errhint("Pass options such as '{\"url\": \"https://example.com\"}'::jsonb.")));

	/* unknown options first: they are the likeliest mistake */
	if (changes)
	{
		JsonbIterator *it = JsonbIteratorInit(&changes->root);
		JsonbValue	kv;
		JsonbIteratorToken tok;

		while ((tok = JsonbIteratorNext(&it, &kv, true)) != WJB_DONE)
		{
			char	   *key;

			if (tok != WJB_KEY)
				continue;
			key = pnstrdup(kv.val.string.val, kv.val.string.len);
			if ((!with_common || !find_option(common_options, key)) &&
				!find_option(sink->options, key))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown option \"%s\" for destination \"%s\"", key, sink->name),
						 errhint("Valid options are: %s.", option_names(sink))));
		}
	}

	moved = current ? changed_location(sink, current, changes) : NULL;
	if (moved)
		dropped = secrets_not_given(sink, current, changes);
	if (dropped == NULL)
		return build_options(sink, current, changes, with_common, false);

	PG_TRY();
	{
		result = build_options(sink, current, changes, with_common, true);
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
				(errcode(e->sqlerrcode),
				 errmsg_internal("%s", e->message),
				 errdetail("%s%sChanging option \"%s\" dropped the stored secret options %s.",
						   e->detail ? e->detail : "", e->detail ? " " : "",
						   moved, dropped),
				 errhint("Give the secrets the new destination needs again in the same call.")));
	}
	PG_END_TRY();
	ereport(NOTICE,
			(errmsg("changing option \"%s\" dropped the stored secret options %s",
					moved, dropped),
			 errdetail("Secrets given for one destination are not sent to another."),
			 errhint("Give them again in the same call if the new destination needs them.")));
	return result;
}

/*
 * fh_options_load
 *		Write the options of the table defs that have a field (FH_FIELD) into
 *		config, a struct of the type the table names: integers as int64,
 *		booleans as bool, strings (and enums) as char * (NULL when unset),
 *		objects and arrays as Jsonb * (NULL when unset).  opts are normalized options;
 *		an option they lack takes the table's default, or leaves its field
 *		as the caller set it when there is none.  Allocates in
 *		CurrentMemoryContext.
 */
void
fh_options_load(const FhOptionDef *defs, Jsonb *opts, void *config)
{
	for (const FhOptionDef *d = defs; d->name; d++)
	{
		char	   *field = (char *) config + d->offset;
		JsonbValue *v;
		Jsonb	   *dflt = NULL;

		if (!d->has_field)
			continue;
		v = fh_jsonb_get(opts, d->name);
		if (v == NULL && d->default_value)
		{
			/* a scalar default: read it back through the array it makes */
			dflt = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
													  CStringGetDatum(psprintf("[%s]", d->default_value))));
			v = getIthJsonbValueFromContainer(&dflt->root, 0);
		}
		if (v == NULL || v->type == jbvNull)
			continue;
		switch (d->type)
		{
			case FH_OPT_INT:
			case FH_OPT_BYTES:
			case FH_OPT_MS:
			case FH_OPT_SECONDS:
				Assert(v->type == jbvNumeric);
				*(int64 *) field =
					DatumGetInt64(DirectFunctionCall1(numeric_int8,
													  NumericGetDatum(v->val.numeric)));
				break;
			case FH_OPT_BOOL:
				Assert(v->type == jbvBool);
				*(bool *) field = v->val.boolean;
				break;
			case FH_OPT_STRING:
			case FH_OPT_ENUM:
			case FH_OPT_URL:
				Assert(v->type == jbvString);
				*(char **) field = pnstrdup(v->val.string.val, v->val.string.len);
				break;
			case FH_OPT_STRMAP:
			case FH_OPT_OBJECT:
			case FH_OPT_ARRAY:
				*(Jsonb **) field = JsonbValueToJsonb(v);
				break;
		}
	}
}

/*
 * fh_config_from_options
 *		The common options of a stream's normalized options, with the
 *		common table's defaults for any it lacks.
 */
void
fh_config_from_options(Jsonb *o, FhStreamConfig *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	fh_options_load(common_options, o, cfg);
	cfg->retry_duration_ms = cfg->retry_duration_s * 1000;
}

/* append a copy of s (len bytes) to *secrets, when it is long enough to scrub */
static void
add_secret(List **secrets, const char *s, size_t len)
{
	if (secrets && len >= FH_MIN_SECRET_LEN)
		*secrets = lappend(*secrets, pnstrdup(s, len));
}

/*
 * fh_url_option_redact
 *		A URL shown without its user information ("********", as
 *		fh_url_redact); the user information whole, and its user and
 *		password, are appended to *secrets when secrets is not NULL.  How
 *		every FH_OPT_URL option is redacted, and the redact() of an option
 *		that holds a URL firehose never connects to, which must not be
 *		checked as a destination (Dynatrace's api_url).
 */
char *
fh_url_option_redact(const char *url, List **secrets)
{
	size_t		start;
	size_t		len;

	if (fh_url_userinfo(url, &start, &len))
	{
		size_t		colon = strcspn(url + start, ":");

		add_secret(secrets, url + start, len);
		add_secret(secrets, url + start, Min(colon, len));
		if (colon < len)
			add_secret(secrets, url + start + colon + 1, len - colon - 1);
	}
	return fh_url_redact(url);
}

/*
 * fh_options_redact
 *		opts with every secret value replaced by "********" (and every header
 *		value, which may carry credentials), and the user information of
 *		URLs too.  With secrets not NULL, the secret values are appended to
 *		*secrets (the user information whole, and its user and password).
 */
Jsonb *
fh_options_redact(const FhSink *sink, Jsonb *opts, List **secrets)
{
	JsonbIterator *it;
	JsonbValue	kv;
	JsonbIteratorToken tok;
	JsonbParseState *state = NULL;
	JsonbValue *res = NULL;
	/* the option of the key at each depth of nested objects */
	const FhOptionDef *path[FH_MAX_OPTION_DEPTH + 1] = {NULL};
	const FhOptionDef *cur = NULL;
	int			depth = 0;

	if (sink == NULL || !JB_ROOT_IS_OBJECT(opts))
		return opts;

	it = JsonbIteratorInit(&opts->root);
	while ((tok = JsonbIteratorNext(&it, &kv, false)) != WJB_DONE)
	{
		switch (tok)
		{
			case WJB_BEGIN_OBJECT:
			case WJB_BEGIN_ARRAY:
				depth++;
				/* the elements of an array belong to its option (processors) */
				if (tok == WJB_BEGIN_ARRAY)
					path[Min(depth, FH_MAX_OPTION_DEPTH)] = cur;
				res = pushJsonbValue(&state, tok, NULL);
				break;
			case WJB_END_OBJECT:
			case WJB_END_ARRAY:
				depth--;
				res = pushJsonbValue(&state, tok, NULL);
				break;
			case WJB_KEY:
				{
					/*
					 * A key of a nested table (backup's "s3", its keys) is
					 * that table's option; any other key inside an option
					 * (a header's name) is part of that option.
					 */
					const FhOptionDef *outer = depth > 1 ?
						path[Min(depth - 1, FH_MAX_OPTION_DEPTH)] : NULL;
					const FhOptionDef *table = depth == 1 ? sink->options :
						outer && outer->nested ? outer->nested : NULL;

					if (table)
					{
						char	   *key = pnstrdup(kv.val.string.val, kv.val.string.len);

						cur = find_option(table, key);
						/* processors, which may hold a Lambda's secrets */
						if (cur == NULL && depth == 1)
							cur = find_option(common_options, key);
					}
					else
						cur = outer;
					path[Min(depth, FH_MAX_OPTION_DEPTH)] = cur;
				}
				res = pushJsonbValue(&state, tok, &kv);
				break;
			case WJB_VALUE:
			case WJB_ELEM:
				if (cur && cur->secret && kv.type == jbvString)
				{
					add_secret(secrets, kv.val.string.val, kv.val.string.len);
					kv.val.string.val = "********";
					kv.val.string.len = 8;
				}
				else if (cur && (cur->redact || cur->type == FH_OPT_URL) &&
						 kv.type == jbvString)
				{
					char	   *(*redact) (const char *value, List **secrets) =
						cur->redact ? cur->redact : fh_url_option_redact;

					kv.val.string.val = redact(pnstrdup(kv.val.string.val,
														kv.val.string.len),
											   secrets);
					kv.val.string.len = strlen(kv.val.string.val);
				}
				res = pushJsonbValue(&state, tok, &kv);
				break;
			default:
				break;
		}
	}
	return JsonbValueToJsonb(res);
}
