/*-------------------------------------------------------------------------
 *
 * stream.c
 *	  Stream options: one table of the options every stream has, one per
 *	  destination (in its sink), and the validation that turns what a user
 *	  wrote into the normalized options stored in firehose.stream.
 *
 * Everything is checked when a stream is created or altered, so the worker
 * never meets an option it cannot use: an unknown option, a wrong type, a
 * value out of range, a malformed URL or an option that does not apply to
 * the destination is an ERROR that names the option and what is allowed.
 * The normalized form has every option with a default filled in, numbers
 * in their base unit (bytes, milliseconds, seconds).
 *
 * Also here: the SQL-callable helpers the install script uses around
 * streams (normalize, redact, changed) and flush().
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "parser/parse_func.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/syscache.h"
#include "utils/varlena.h"


#define KB 1024LL
#define MB (1024LL * 1024LL)
#define GB (1024LL * 1024LL * 1024LL)

static const FhOptionDef common_options[] = {
	{"buffer_size", FH_OPT_BYTES, 1, GB, "5242880"},
	{"buffer_interval", FH_OPT_MS, 0, 86400000LL, "60000"},
	{"retry_duration", FH_OPT_SECONDS, 0, 86400, NULL},	/* sink default */
	{"max_concurrency", FH_OPT_INT, 1, 64, "1"},
	{"max_record_size", FH_OPT_BYTES, 1, GB - 1, "1024000"},
	{"max_buffered_bytes", FH_OPT_BYTES, 0, INT64CONST(1) << 50, "0"},
	{"durable", FH_OPT_BOOL, 0, 0, "false"},
	{"request_timeout", FH_OPT_MS, 1, 3600000LL, "180000"},
	{"retry_base", FH_OPT_MS, 1, 3600000LL, "1000"},
	{"retry_max", FH_OPT_MS, 1, 86400000LL, "120000"},
	{NULL}
};

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
		case FH_OPT_BACKUP:
			return "an object such as {\"mode\": \"failed\", \"s3\": {\"bucket\": ...}}";
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
		case FH_OPT_BACKUP:
			if (v->type != jbvBinary)
				option_type_error(d, v);
			{
				Jsonb	   *j = fh_backup_normalize(JsonbValueToJsonb(v));

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
 * fh_options_normalize
 *		Merge changes into current (both may be NULL) and validate the
 *		result for the destination.  A key whose value in changes is JSON
 *		null goes back to its default.  Returns the normalized options.
 */
Jsonb *
fh_options_normalize(const char *destination, Jsonb *current, Jsonb *changes)
{
	return fh_options_normalize_sink(fh_sink_lookup(destination, false),
									 current, changes, true);
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

void
fh_config_from_options(Jsonb *o, FhStreamConfig *cfg)
{
	cfg->buffer_size = fh_jsonb_get_int(o, "buffer_size", 5 * MB);
	cfg->buffer_interval_ms = fh_jsonb_get_int(o, "buffer_interval", 60000);
	cfg->retry_duration_ms = fh_jsonb_get_int(o, "retry_duration", 300) * 1000;
	cfg->max_concurrency = (int) fh_jsonb_get_int(o, "max_concurrency", 1);
	cfg->max_record_size = fh_jsonb_get_int(o, "max_record_size", 1024000);
	cfg->max_buffered_bytes = fh_jsonb_get_int(o, "max_buffered_bytes", 0);
	cfg->durable = fh_jsonb_get_bool(o, "durable", false);
	cfg->request_timeout_ms = fh_jsonb_get_int(o, "request_timeout", 180000);
	cfg->retry_base_ms = fh_jsonb_get_int(o, "retry_base", 1000);
	cfg->retry_max_ms = fh_jsonb_get_int(o, "retry_max", 120000);
}

/* ---------- options only some roles may use ---------- */

/*
 * Is path, once ".." and symbolic links are resolved, a regular file under
 * one of the directories of firehose.allowed_ca_dirs?
 */
static bool
ca_file_allowed(const char *path)
{
	char		resolved[PATH_MAX];
	char	   *dirs;
	List	   *list;
	ListCell   *lc;
	struct stat st;

	if (fh_allowed_ca_dirs == NULL || fh_allowed_ca_dirs[0] == '\0' ||
		realpath(path, resolved) == NULL ||
		stat(resolved, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	dirs = pstrdup(fh_allowed_ca_dirs);
	if (!SplitDirectoriesString(dirs, ',', &list))
		return false;
	foreach(lc, list)
	{
		char		dir[PATH_MAX];
		size_t		len;

		if (realpath((char *) lfirst(lc), dir) == NULL)
			continue;
		len = strlen(dir);
		/* "/" itself ends in a slash; any other directory does not */
		if (strncmp(resolved, dir, len) == 0 &&
			(resolved[len] == '/' || (len > 0 && dir[len - 1] == '/')))
			return true;
	}
	return false;
}

/*
 * check_option_privileges
 *		Refuse options that reach beyond the stream to a caller who is not a
 *		superuser: "credentials": "environment" (the server's own AWS
 *		identity) and "ca_file" (a file of the server, unless it lies under
 *		firehose.allowed_ca_dirs).  opts are normalized options, as they will
 *		be stored: a stream that uses them can only be altered by a role that
 *		may use them.  prefix names where opts lie ("backup.s3." or "").
 */
static void
check_option_privileges(Jsonb *opts, Oid caller, const char *prefix)
{
	char	   *s;
	JsonbValue *backup;

	if (superuser_arg(caller))
		return;
	if (fh_jsonb_get_text(opts, "credentials", &s) && strcmp(s, "environment") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to use option \"%scredentials\": \"environment\"", prefix),
				 errdetail("They are the database server's own AWS credentials; only a superuser may give them to a stream."),
				 errhint("Give \"access_key_id\" and \"secret_access_key\" instead.")));
	if (fh_jsonb_get_text(opts, "ca_file", &s) && !ca_file_allowed(s))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to use option \"%sca_file\": \"%s\"", prefix, s),
				 errdetail("Only a superuser may name a file of the database server, unless it is a file under one of the directories of firehose.allowed_ca_dirs."),
				 errhint("Ask a superuser to set firehose.allowed_ca_dirs to the directory of your CA certificates.")));
	backup = fh_jsonb_get(opts, "backup");
	if (backup && backup->type == jbvBinary)
	{
		JsonbValue *s3 = fh_jsonb_get(JsonbValueToJsonb(backup), "s3");

		if (s3 && s3->type == jbvBinary)
			check_option_privileges(JsonbValueToJsonb(s3), caller, "backup.s3.");
	}
}

/* ---------- SQL-callable helpers ---------- */

/*
 * _normalize_options(destination, current, changes, caller): the options
 * to store, checked for the role caller (the one who called create_stream
 * or alter_stream, see fh_call_with_caller).
 */
PG_FUNCTION_INFO_V1(fh_normalize_options_sql);
Datum
fh_normalize_options_sql(PG_FUNCTION_ARGS)
{
	char	   *dest = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Jsonb	   *current = PG_ARGISNULL(1) ? NULL : PG_GETARG_JSONB_P(1);
	Jsonb	   *changes = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	Oid			caller = PG_ARGISNULL(3) ? InvalidOid : PG_GETARG_OID(3);
	Jsonb	   *result = fh_options_normalize(dest, current, changes);

	check_option_privileges(result, caller, "");
	PG_RETURN_JSONB_P(result);
}

/* ---------- stream ownership ---------- */

/*
 * The role fh_call_with_caller (or fh_owned_stream_id) passes to the
 * internal function it runs now; InvalidOid when none runs.
 */
static Oid	calling_role = InvalidOid;

/*
 * _check_caller(caller): refuse a caller other than the one passed by
 * fh_call_with_caller or fh_owned_stream_id.  The internal functions that
 * take a caller are executable by no one else; this keeps a role that was
 * granted EXECUTE on them anyway from passing for another role.
 */
PG_FUNCTION_INFO_V1(fh_check_caller_sql);
Datum
fh_check_caller_sql(PG_FUNCTION_ARGS)
{
	if (!OidIsValid(calling_role) || PG_ARGISNULL(0) ||
		PG_GETARG_OID(0) != calling_role)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("firehose's internal stream functions take the caller from firehose's own functions only"),
				 errhint("Call firehose.create_stream(), alter_stream() and the like, not the functions behind them.")));
	PG_RETURN_VOID();
}

/*
 * fh_owned_stream_id
 *		The id of the named stream if role may manage it (its owner, a role
 *		with the owner's privileges, a superuser); ERROR 42501 if not, 42704
 *		if there is no such stream.  The policy is firehose._owned_stream_id.
 */
int32
fh_owned_stream_id(text *name, Oid role)
{
	FhCatalogAccess ca;
	Oid			types[2] = {TEXTOID, REGROLEOID};
	Datum		values[2] = {PointerGetDatum(name), ObjectIdGetDatum(role)};
	Oid			save_role = calling_role;
	bool		isnull;
	int32		id = 0;

	fh_catalog_access_begin(&ca);
	SPI_connect();
	calling_role = role;
	PG_TRY();
	{
		if (SPI_execute_with_args("SELECT firehose._owned_stream_id($1, $2)",
								  2, types, values, NULL, true, 1) != SPI_OK_SELECT ||
			SPI_processed != 1)
			elog(ERROR, "could not check the owner of a firehose stream");
		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
										 SPI_tuptable->tupdesc, 1, &isnull));
	}
	PG_FINALLY();
	{
		calling_role = save_role;
	}
	PG_END_TRY();
	SPI_finish();
	fh_catalog_access_end(&ca);
	return id;
}

/*
 * _check_owner(stream): the stream's id if the calling role may manage it.
 * For capture_table(), which runs as its caller.
 */
PG_FUNCTION_INFO_V1(fh_check_owner_sql);
Datum
fh_check_owner_sql(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream name must not be NULL")));
	PG_RETURN_INT32(fh_owned_stream_id(PG_GETARG_TEXT_PP(0), GetUserId()));
}

/*
 * fh_call_with_caller
 *		The C body of a user-facing function such as firehose.create_stream:
 *		calls firehose._create_stream with the same arguments and one more,
 *		the role that called (a regrole).
 *
 * The internal function is SECURITY DEFINER, to work on the catalog that
 * the caller may not touch; inside it, current_user is the extension's
 * owner and session_user may be anyone (a SECURITY DEFINER function of a
 * third role may call us), so neither tells who called.  Here, still in
 * the caller's rights, GetUserId() does.  The internal function is not
 * executable by PUBLIC, so no one passes a role of their choosing; this
 * call goes through fmgr, which checks no privilege, as PostgreSQL checked
 * EXECUTE on this function already.
 */
#define FH_CALL_MAX_ARGS 8

PG_FUNCTION_INFO_V1(fh_call_with_caller);
Datum
fh_call_with_caller(PG_FUNCTION_ARGS)
{
	FmgrInfo   *inner = fcinfo->flinfo->fn_extra;
	LOCAL_FCINFO(call, FH_CALL_MAX_ARGS);
	Datum		result;
	Oid			save_role;

	if (inner == NULL)
	{
		HeapTuple	tup = SearchSysCache1(PROCOID,
										  ObjectIdGetDatum(fcinfo->flinfo->fn_oid));
		Form_pg_proc proc;
		Oid			argtypes[FH_CALL_MAX_ARGS];
		List	   *name;

		if (!HeapTupleIsValid(tup))
			elog(ERROR, "cache lookup failed for function %u", fcinfo->flinfo->fn_oid);
		proc = (Form_pg_proc) GETSTRUCT(tup);
		if (proc->pronargs >= FH_CALL_MAX_ARGS)
			elog(ERROR, "too many arguments for fh_call_with_caller");
		memcpy(argtypes, proc->proargtypes.values, proc->pronargs * sizeof(Oid));
		argtypes[proc->pronargs] = REGROLEOID;
		name = list_make2(makeString(get_namespace_name(proc->pronamespace)),
						  makeString(psprintf("_%s", NameStr(proc->proname))));
		inner = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(FmgrInfo));
		fmgr_info_cxt(LookupFuncName(name, proc->pronargs + 1, argtypes, false),
					  inner, fcinfo->flinfo->fn_mcxt);
		ReleaseSysCache(tup);
		fcinfo->flinfo->fn_extra = inner;
	}

	InitFunctionCallInfoData(*call, inner, fcinfo->nargs + 1,
							 fcinfo->fncollation, NULL, NULL);
	for (int i = 0; i < fcinfo->nargs; i++)
		call->args[i] = fcinfo->args[i];
	call->args[fcinfo->nargs].value = ObjectIdGetDatum(GetUserId());
	call->args[fcinfo->nargs].isnull = false;
	save_role = calling_role;
	calling_role = GetUserId();
	PG_TRY();
	{
		result = FunctionCallInvoke(call);
	}
	PG_FINALLY();
	{
		calling_role = save_role;
	}
	PG_END_TRY();
	fcinfo->isnull = call->isnull;
	return result;
}

/* append a copy of s (len bytes) to *secrets, when it is long enough to scrub */
static void
add_secret(List **secrets, const char *s, size_t len)
{
	if (secrets && len >= FH_MIN_SECRET_LEN)
		*secrets = lappend(*secrets, pnstrdup(s, len));
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
	const FhOptionDef *cur = NULL;
	const FhOptionDef *top = NULL;
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
				res = pushJsonbValue(&state, tok, NULL);
				break;
			case WJB_END_OBJECT:
			case WJB_END_ARRAY:
				depth--;
				res = pushJsonbValue(&state, tok, NULL);
				break;
			case WJB_KEY:
				if (depth == 1)
				{
					char	   *key = pnstrdup(kv.val.string.val, kv.val.string.len);

					cur = top = find_option(sink->options, key);
				}
				else if (top && top->type == FH_OPT_BACKUP)
				{
					/* backup: {mode, s3: {<the S3 store's options>}} */
					char	   *key = pnstrdup(kv.val.string.val, kv.val.string.len);

					cur = depth == 3 ? find_option(fh_sink_s3.options, key) : top;
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
				else if (cur && cur->type == FH_OPT_URL && kv.type == jbvString)
				{
					char	   *url = pnstrdup(kv.val.string.val, kv.val.string.len);
					size_t		start;
					size_t		len;

					if (fh_url_userinfo(url, &start, &len))
					{
						size_t		colon = strcspn(url + start, ":");

						add_secret(secrets, url + start, len);
						add_secret(secrets, url + start, Min(colon, len));
						if (colon < len)
							add_secret(secrets, url + start + colon + 1, len - colon - 1);
						kv.val.string.val = fh_url_redact(url);
						kv.val.string.len = strlen(kv.val.string.val);
					}
				}
				res = pushJsonbValue(&state, tok, &kv);
				break;
			default:
				break;
		}
	}
	return JsonbValueToJsonb(res);
}

/*
 * _target(destination, options): where the stream's records go, as a URL
 * without secrets (firehose.streams.target): the sink's target() of the
 * redacted options.
 */
PG_FUNCTION_INFO_V1(fh_target_sql);
Datum
fh_target_sql(PG_FUNCTION_ARGS)
{
	const FhSink *sink = fh_sink_lookup(text_to_cstring(PG_GETARG_TEXT_PP(0)), true);
	char	   *t;

	if (sink == NULL || sink->target == NULL)
		PG_RETURN_NULL();
	t = sink->target(fh_options_redact(sink, PG_GETARG_JSONB_P(1), NULL));
	if (t == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(t));
}

/* _redact_options(destination, options): fh_options_redact, for the view */
PG_FUNCTION_INFO_V1(fh_redact_options_sql);
Datum
fh_redact_options_sql(PG_FUNCTION_ARGS)
{
	const FhSink *sink = fh_sink_lookup(text_to_cstring(PG_GETARG_TEXT_PP(0)), true);

	PG_RETURN_JSONB_P(fh_options_redact(sink, PG_GETARG_JSONB_P(1), NULL));
}

/*
 * _stream_changed(stream_id): after create/alter/drop/pause/resume, at
 * commit: backends drop their cached stream lookups, the worker reloads.
 */
PG_FUNCTION_INFO_V1(fh_stream_changed_sql);
Datum
fh_stream_changed_sql(PG_FUNCTION_ARGS)
{
	Oid			stream_rel = get_relname_relid("stream",
											   get_namespace_oid(FH_SCHEMA, false));

	CacheInvalidateRelcacheByRelid(stream_rel);
	fh_reload_at_commit();

	/*
	 * The launcher gives this database a worker after commit; tell now if it
	 * cannot (the commit itself must not fail for it).
	 */
	if (fh_shared && fh_db_slots_full(MyDatabaseId))
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("no firehose worker can run for this database now"),
				 errdetail("All %d database slots are taken by other databases that use firehose.",
						   FH_MAX_DATABASES),
				 errhint("Records are kept, and delivered once another database drops the extension or is dropped.")));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(fh_forget_slot_sql);
Datum
fh_forget_slot_sql(PG_FUNCTION_ARGS)
{
	fh_stream_slot_release(MyDatabaseId, PG_GETARG_INT32(0));
	PG_RETURN_VOID();
}

/*
 * _slot_status(stream_id): the shared counters of one stream.
 *
 * firehose.stream_status calls it, and a view's functions run with the
 * rights of the role querying the view, so it is executable by PUBLIC.  It
 * therefore answers only roles that may read that view: to others it would
 * show what the view hides from them.
 */
/* the words of stream_status.blocked_reason */
const char *
fh_blocked_text(FhBlocked reason)
{
	switch (reason)
	{
		case FH_BLOCKED_NONE:
			break;
		case FH_BLOCKED_ROW_LOCK:
			return "another session holds a lock on the stream's row of firehose.stream";
		case FH_BLOCKED_RETRYING:
			return "a request is being retried; later batches wait for it";
		case FH_BLOCKED_BATCHES:
			return "too many batches wait behind the oldest one";
		case FH_BLOCKED_MEMORY:
			return "waiting for firehose.worker_memory";
	}
	return NULL;
}

PG_FUNCTION_INFO_V1(fh_slot_status_sql);
Datum
fh_slot_status_sql(PG_FUNCTION_ARGS)
{
	int32		stream_id = PG_GETARG_INT32(0);
	Oid			view = get_relname_relid("stream_status",
										 get_namespace_oid(FH_SCHEMA, false));
	FhStreamSlot *slot;
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8] = {false};
	uint64		blocked_since = 0;
	FhBlocked	blocked = FH_BLOCKED_NONE;
	uint64		committed_r = 0,
				committed_b = 0,
				cut_r = 0,
				cut_b = 0,
				done_r = 0,
				done_b = 0,
				oldest = 0;

	if (!OidIsValid(view) ||
		pg_class_aclcheck(view, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for function _slot_status"),
				 errdetail("It shows what firehose.stream_status shows, to roles that may read that view."),
				 errhint("Grant SELECT on firehose.stream_status, and query the view.")));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	slot = fh_shared ? fh_stream_slot(MyDatabaseId, stream_id, false) : NULL;
	if (slot)
	{
		/* read in this order so that no difference goes negative */
		done_r = pg_atomic_read_u64(&slot->done_records);
		done_b = pg_atomic_read_u64(&slot->done_bytes);
		pg_read_barrier();
		cut_r = pg_atomic_read_u64(&slot->cut_records);
		cut_b = pg_atomic_read_u64(&slot->cut_bytes);
		pg_read_barrier();
		committed_r = pg_atomic_read_u64(&slot->committed_records);
		committed_b = pg_atomic_read_u64(&slot->committed_bytes);
		oldest = pg_atomic_read_u64(&slot->oldest_inflight);
		if (oldest == 0)
			oldest = pg_atomic_read_u64(&slot->first_pending);
		blocked = (FhBlocked) pg_atomic_read_u32(&slot->blocked_reason);
		blocked_since = pg_atomic_read_u64(&slot->blocked_since);
	}
	values[0] = Int64GetDatum(committed_r > cut_r ? committed_r - cut_r : 0);
	values[1] = Int64GetDatum(committed_b > cut_b ? committed_b - cut_b : 0);
	values[2] = Int64GetDatum(cut_r > done_r ? cut_r - done_r : 0);
	values[3] = Int64GetDatum(cut_b > done_b ? cut_b - done_b : 0);
	if (oldest)
		values[4] = TimestampTzGetDatum((TimestampTz) oldest);
	else
		nulls[4] = true;
	{
		FhDbSlot   *db = fh_shared ? fh_db_slot(MyDatabaseId) : NULL;

		values[5] = BoolGetDatum(db != NULL && db->worker_pid != 0);
	}
	if (blocked != FH_BLOCKED_NONE && blocked_since != 0)
	{
		values[6] = TimestampTzGetDatum((TimestampTz) blocked_since);
		values[7] = CStringGetTextDatum(fh_blocked_text(blocked));
	}
	else
		nulls[6] = nulls[7] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * flush(stream, wait, timeout): ask the worker to cut a batch now; with
 * wait, return once everything committed before the call was delivered or
 * failed (true), or when the timeout passed (false).  For the streams the
 * caller may manage: one (else 42501), or with stream NULL all of those.
 */
PG_FUNCTION_INFO_V1(fh_flush_sql);
Datum
fh_flush_sql(PG_FUNCTION_ARGS)
{
	bool		wait = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	Interval   *timeout = PG_ARGISNULL(2) ? NULL : PG_GETARG_INTERVAL_P(2);
	int64		timeout_ms = 30000;
	List	   *ids = NIL;
	int			n;
	FhStreamSlot **slots;
	uint64	   *targets;
	TimestampTz deadline;
	bool		done = true;

	if (timeout)
		timeout_ms = (timeout->time + (int64) timeout->day * USECS_PER_DAY +
					  (int64) timeout->month * DAYS_PER_MONTH * USECS_PER_DAY) / 1000;

	if (!PG_ARGISNULL(0))
	{
		bool		paused;
		int32		id;

		(void) fh_owned_stream_id(PG_GETARG_TEXT_PP(0), GetUserId());
		id = fh_stream_id_by_name(PG_GETARG_TEXT_PP(0), &paused);

		if (paused)
		{
			ereport(NOTICE,
					(errmsg("stream \"%s\" is paused; nothing is delivered until it is resumed",
							text_to_cstring(PG_GETARG_TEXT_PP(0)))));
			PG_RETURN_BOOL(false);
		}
		ids = lappend_int(ids, id);
	}
	else
	{
		FhCatalogAccess ca;
		MemoryContext outer = CurrentMemoryContext;
		Oid			argtypes[1] = {OIDOID};
		Datum		args[1] = {ObjectIdGetDatum(GetUserId())};

		/* all streams: those the caller may manage, as for one */
		fh_catalog_access_begin(&ca);
		SPI_connect();
		SPI_execute_with_args("SELECT id FROM firehose.stream "
							  "WHERE status OPERATOR(pg_catalog.=) 'ACTIVE' "
							  "AND firehose._may_manage(owner, $1)",
							  1, argtypes, args, NULL, true, 0);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			int32		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 1, &isnull));
			MemoryContext spi = MemoryContextSwitchTo(outer);

			ids = lappend_int(ids, id);
			MemoryContextSwitchTo(spi);
		}
		SPI_finish();
		fh_catalog_access_end(&ca);
	}

	n = list_length(ids);
	slots = palloc(sizeof(FhStreamSlot *) * (n + 1));
	targets = palloc(sizeof(uint64) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		slots[i] = fh_stream_slot(MyDatabaseId, list_nth_int(ids, i), true);
		targets[i] = pg_atomic_add_fetch_u64(&slots[i]->flush_requested, 1);
	}
	fh_request_worker(MyDatabaseId);
	fh_wake_worker(MyDatabaseId, true);

	if (!wait || n == 0)
		PG_RETURN_BOOL(true);

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	ConditionVariablePrepareToSleep(&fh_shared->flush_cv);
	for (;;)
	{
		long		remaining;

		done = true;
		for (int i = 0; i < n; i++)
		{
			/* a stream dropped meanwhile has nothing left to wait for */
			if (slots[i]->dbid != MyDatabaseId ||
				slots[i]->stream_id != list_nth_int(ids, i))
				continue;
			if (pg_atomic_read_u64(&slots[i]->flush_done) < targets[i])
				done = false;
		}
		if (done)
			break;
		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
			break;
		/* wake now and then even without a broadcast, to recheck */
		ConditionVariableTimedSleep(&fh_shared->flush_cv, Min(remaining, 1000),
									PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	PG_RETURN_BOOL(done);
}
