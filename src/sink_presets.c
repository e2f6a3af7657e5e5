/*-------------------------------------------------------------------------
 *
 * sink_presets.c
 *	  Partner destinations: Datadog, New Relic, Honeycomb, Sumo Logic,
 *	  Coralogix, Elastic, LogicMonitor, Logz.io, MongoDB Atlas and
 *	  Dynatrace take Firehose's HTTP endpoint protocol at intake URLs of
 *	  their own (firehose.md section 8).  Each preset is the http sink in
 *	  Firehose format with the partner's URL, its key sent as
 *	  X-Amz-Firehose-Access-Key, gzip (Logz.io: none), the partner's
 *	  parameters as common attributes (Dynatrace's dt-url), and the
 *	  partner's recommended buffer size; "url" overrides the URL (a proxy,
 *	  a test receiver).
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include <curl/curl.h>

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"

#define MB (1024LL * 1024LL)

static const char *const encodings[] = {"none", "gzip", NULL};
static const char *const no_encoding[] = {"none", NULL};
static const char *const kinds[] = {"logs", "metrics", NULL};
static const char *const dd_sites[] = {"us1", "us3", "us5", "eu", "ap1", "gov", NULL};
static const char *const nr_regions[] = {"us", "eu", NULL};
static const char *const cx_regions[] = {"us1", "us2", "eu1", "eu2", "ap1", "ap2", "ap3", NULL};
static const char *const lz_regions[] = {"us", "eu", NULL};
static const char *const dt_regions[] = {"us", "eu", "global", NULL};

/*
 * options every preset has, after its own; the content encodings it offers
 * (the console's choice) and the default
 */
#define PRESET_OPTIONS_ENCODED(default_encoding, choices) \
	{"url", FH_OPT_URL, 0, 1000, NULL, .location = true}, \
	{"common_attributes", FH_OPT_STRMAP, 0, 0, NULL}, \
	{"content_encoding", FH_OPT_ENUM, 0, 0, default_encoding, choices}, \
	{"tls_verify", FH_OPT_BOOL, 0, 0, "true"}, \
	{"ca_file", FH_OPT_STRING, 0, 4096, NULL}, \
	FH_BACKUP_OPTION, \
	{NULL}
#define PRESET_COMMON_OPTIONS PRESET_OPTIONS_ENCODED("\"gzip\"", encodings)

/* ---------- the intake URLs ---------- */

static char *
opt(Jsonb *o, const char *name)
{
	char	   *s = NULL;

	fh_jsonb_get_text(o, name, &s);
	return s;
}

static char *
datadog_url(Jsonb *o)
{
	const char *site = opt(o, "site");
	bool		metrics = strcmp(opt(o, "kind"), "metrics") == 0;

	if (!metrics)
	{
		if (strcmp(site, "us1") == 0)
			return "https://aws-kinesis-http-intake.logs.datadoghq.com/v1/input";
		if (strcmp(site, "eu") == 0)
			return "https://aws-kinesis-http-intake.logs.datadoghq.eu/v1/input";
		if (strcmp(site, "gov") == 0)
			return "https://aws-kinesis-http-intake.logs.ddog-gov.com/v1/input";
		return psprintf("https://aws-kinesis-http-intake.logs.%s.datadoghq.com/api/v2/logs?dd-protocol=aws-kinesis-firehose",
						site);
	}
	if (strcmp(site, "us1") == 0)
		return "https://awsmetrics-intake.datadoghq.com/v1/input";
	if (strcmp(site, "eu") == 0)
		return "https://awsmetrics-intake.datadoghq.eu/v1/input";
	if (strcmp(site, "gov") == 0)
		return NULL;
	return psprintf("https://event-platform-intake.%s.datadoghq.com/api/v2/awsmetrics?dd-protocol=aws-kinesis-firehose",
					site);
}

static char *
newrelic_url(Jsonb *o)
{
	bool		eu = strcmp(opt(o, "region"), "eu") == 0;

	if (strcmp(opt(o, "kind"), "metrics") == 0)
		return eu ? "https://aws-api.eu01.nr-data.net/cloudwatch-metrics/v1" :
			"https://aws-api.newrelic.com/cloudwatch-metrics/v1";
	return eu ? "https://aws-api.eu.newrelic.com/firehose/v1" :
		"https://aws-api.newrelic.com/firehose/v1";
}

static char *
honeycomb_url(Jsonb *o)
{
	return psprintf("https://api.honeycomb.io/1/kinesis_events/%s", fh_url_escape(opt(o, "dataset")));
}

static char *
sumologic_url_with(Jsonb *o, const char *token)
{
	return psprintf("https://%s.sumologic.net/receiver/v1/kinesis/%s/%s",
					opt(o, "deployment"), opt(o, "data_type"), token);
}

static char *
sumologic_url(Jsonb *o)
{
	return sumologic_url_with(o, fh_url_escape(opt(o, "access_token")));
}

static char *
coralogix_url(Jsonb *o)
{
	static const char *const urls[][2] = {
		{"us1", "https://ingress.coralogix.us/aws/firehose"},
		{"us2", "https://ingress.cx498.coralogix.com/aws/firehose"},
		{"eu1", "https://ingress.coralogix.com/aws/firehose"},
		{"eu2", "https://ingress.eu2.coralogix.com/aws/firehose"},
		{"ap1", "https://ingress.coralogix.in/aws/firehose"},
		{"ap2", "https://ingress.coralogixsg.com/aws/firehose"},
		{"ap3", "https://ingress.ap3.coralogix.com/aws/firehose"},
	};
	const char *region = opt(o, "region");

	for (int i = 0; i < lengthof(urls); i++)
		if (strcmp(urls[i][0], region) == 0)
			return (char *) urls[i][1];
	return NULL;
}

static char *
elastic_url(Jsonb *o)
{
	return NULL;				/* every deployment has its own: "url" */
}

static char *
logicmonitor_url(Jsonb *o)
{
	return psprintf("https://%s.logicmonitor.com", opt(o, "account"));
}

static char *
logzio_url(Jsonb *o)
{
	return psprintf("https://listener-aws-metrics-stream-%s.logz.io/", opt(o, "region"));
}

static char *
mongodb_url(Jsonb *o)
{
	return opt(o, "api_gateway_url");	/* the user's own gateway */
}

static char *
dynatrace_url(Jsonb *o)
{
	const char *region = opt(o, "region");

	/*
	 * The console's logs ingestion posts somewhere our reference does not
	 * document; rather than guess a path, logs need "url".
	 */
	if (strcmp(opt(o, "kind"), "logs") == 0)
		return NULL;
	if (strcmp(region, "global") == 0)
		return "https://aws.cloud.dynatrace.com";
	return psprintf("https://%s.aws.cloud.dynatrace.com", region);
}

/* ---------- checks of the partners' own options ---------- */

/* a DNS label: 1-63 letters, digits and hyphens, no hyphen at either end */
static bool
is_hostname_label(const char *s)
{
	size_t		len = strlen(s);

	if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (const char *c = s; *c; c++)
		if (!(isalnum((unsigned char) *c) || *c == '-'))
			return false;
	return true;
}

/*
 * The host and path of an https:// URL, in palloc'd memory; false if url
 * is not one (another scheme, no host, not a URL).
 */
static bool
https_url_parts(const char *url, char **host, char **path)
{
	CURLU	   *h = curl_url();
	char	   *scheme = NULL;
	char	   *hs = NULL;
	char	   *ps = NULL;
	bool		ok;

	ok = curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
		strncmp(url, "https://", 8) == 0 &&
		curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		pg_strcasecmp(scheme, "https") == 0 &&
		curl_url_get(h, CURLUPART_HOST, &hs, 0) == CURLUE_OK &&
		hs[0] != '\0' &&
		curl_url_get(h, CURLUPART_PATH, &ps, 0) == CURLUE_OK;
	if (ok)
	{
		*host = pstrdup(hs);
		*path = pstrdup(ps);
	}
	if (scheme)
		curl_free(scheme);
	if (hs)
		curl_free(hs);
	if (ps)
		curl_free(ps);
	curl_url_cleanup(h);
	return ok;
}

static void
logicmonitor_check(Jsonb *o)
{
	const char *account = opt(o, "account");

	/* it becomes the first label of the intake's host name */
	if (!is_hostname_label(account))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"account\" is not a valid LogicMonitor account name: \"%s\"", account),
				 errdetail("The account is the first label of the host name ACCOUNT.logicmonitor.com."),
				 errhint("Give 1 to 63 letters, digits and hyphens, not beginning or ending with a hyphen.")));
}

/*
 * MongoDB Atlas receives Firehose at an API Gateway the user deploys
 * (https://<id>.execute-api.<region>.amazonaws.com/<stage>), or at the
 * older Realm webhooks host.  Anything else is most likely a URL copied
 * from the wrong place; a proxy is what "url" is for.
 */
static void
mongodb_check(Jsonb *o)
{
	const char *url = opt(o, "api_gateway_url");
	char	   *host;
	char	   *path;
	bool		ok = false;

	if (url == NULL)
	{
		if (!fh_jsonb_get(o, "url"))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"api_gateway_url\" is required for destination \"mongodb\""),
					 errhint("Give the URL of the API Gateway that MongoDB Atlas set up for Firehose, such as \"https://abc123defg.execute-api.us-east-1.amazonaws.com/prod\".")));
		return;
	}
	if (https_url_parts(url, &host, &path))
	{
		char	   *labels[6];
		int			n = 0;

		for (char *tok = strtok(host, "."); tok && n < lengthof(labels); tok = strtok(NULL, "."))
			labels[n++] = tok;
		if (n == 5 && strcmp(labels[1], "execute-api") == 0 &&
			strcmp(labels[3], "amazonaws") == 0 && strcmp(labels[4], "com") == 0)
			ok = is_hostname_label(labels[0]) && is_hostname_label(labels[2]) &&
				strlen(path) > 1;	/* the stage */
		else if (n == 3 && strcmp(labels[0], "webhooks") == 0 &&
				 strcmp(labels[1], "mongodb-realm") == 0 && strcmp(labels[2], "com") == 0)
			ok = true;
	}
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"api_gateway_url\" is not a MongoDB Atlas API Gateway URL: \"%s\"",
						fh_url_redact(url)),
				 errdetail("It must be an https:// URL of the form \"https://<id>.execute-api.<region>.amazonaws.com/<stage>\", or of the older \"https://webhooks.mongodb-realm.com/...\"."),
				 errhint("To send through a proxy, give its URL as \"url\".")));
}

/*
 * Dynatrace's intake forwards to the user's environment, named by the
 * common attribute dt-url: the option api_url, not something to set twice.
 */
static void
dynatrace_check(Jsonb *o)
{
	const char *api_url = opt(o, "api_url");
	char	   *host;
	char	   *path;
	JsonbValue *ca = fh_jsonb_get(o, "common_attributes");

	if (!https_url_parts(api_url, &host, &path))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"api_url\" is not an https:// URL: \"%s\"", fh_url_redact(api_url)),
				 errhint("Give the URL of your Dynatrace environment, such as \"https://abc12345.live.dynatrace.com\".")));
	if (ca && ca->type == jbvBinary &&
		getKeyJsonValueFromContainer(ca->val.binary.data, "dt-url", 6, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("option \"common_attributes\" must not set \"dt-url\""),
				 errdetail("Destination \"dynatrace\" sends option \"api_url\" as the attribute dt-url."),
				 errhint("Give the environment URL as \"api_url\".")));
}

/* ---------- the presets ---------- */

typedef struct Preset
{
	const char *name;
	const char *key_option;		/* sent as the access key */
	char	   *(*url) (Jsonb *o);	/* the intake, or NULL: "url" needed */
	const char *url_hint;		/* how to find "url" when it is needed */
	void		(*check) (Jsonb *o);	/* checks of its own options, or NULL */
	const char *attr_option;	/* an option sent as a common attribute */
	const char *attr_name;		/* ... under this name */
} Preset;

static const Preset datadog = {"datadog", "api_key", datadog_url};
static const Preset newrelic = {"newrelic", "license_key", newrelic_url};
static const Preset honeycomb = {"honeycomb", "api_key", honeycomb_url};
static const Preset sumologic = {"sumologic", NULL, sumologic_url};
static const Preset coralogix = {"coralogix", "private_key", coralogix_url};
static const Preset elastic = {"elastic", "api_key", elastic_url,
	"Give your deployment's Firehose endpoint, such as \"https://<deployment>.es.<region>.aws.elastic-cloud.com\"."};
static const Preset logicmonitor = {"logicmonitor", "api_key", logicmonitor_url,
	NULL, logicmonitor_check};
static const Preset logzio = {"logzio", "shipping_token", logzio_url};
static const Preset mongodb = {"mongodb", "api_key", mongodb_url,
	NULL, mongodb_check};
static const Preset dynatrace = {"dynatrace", "api_token", dynatrace_url,
	"Firehose's documentation does not give the path of Dynatrace's logs intake; give the intake URL your Dynatrace documentation names.",
dynatrace_check, "api_url", "dt-url"};

static void
preset_validate(const Preset *p, Jsonb *o)
{
	if (p->check)
		p->check(o);
	if (!fh_jsonb_get(o, "url") && p->url(o) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("destination \"%s\" needs \"url\" here", p->name),
				 errhint("%s", p->url_hint ? p->url_hint :
						 "There is no preset intake for these options; give the intake URL.")));
}

/*
 * The common attributes as JSON text: the user's, and the preset's own
 * (Dynatrace's dt-url); NULL if none.
 */
static char *
preset_attributes(const Preset *p, Jsonb *o)
{
	JsonbValue *ca = fh_jsonb_get(o, "common_attributes");
	Jsonb	   *attrs = NULL;

	if (ca && ca->type == jbvBinary)
		attrs = JsonbValueToJsonb(ca);
	if (p->attr_option && fh_jsonb_get(o, p->attr_option))
	{
		StringInfoData a;
		Jsonb	   *own;

		initStringInfo(&a);
		appendStringInfoChar(&a, '{');
		escape_json(&a, p->attr_name);
		appendStringInfoString(&a, ": ");
		escape_json(&a, opt(o, p->attr_option));
		appendStringInfoChar(&a, '}');
		own = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(a.data)));
		attrs = attrs ? DatumGetJsonbP(DirectFunctionCall2(jsonb_concat,
														   JsonbPGetDatum(attrs),
														   JsonbPGetDatum(own))) : own;
	}
	return attrs ? JsonbToCString(NULL, &attrs->root, VARSIZE(attrs)) : NULL;
}

/* the http sink's configuration: Firehose format, the URL, the key */
static void *
preset_configure(const Preset *p, Jsonb *o, const char *stream, int32 version)
{
	StringInfoData h;
	char	   *url = NULL;
	char	   *attrs;
	Jsonb	   *http;

	if (!fh_jsonb_get_text(o, "url", &url))
		url = p->url(o);
	initStringInfo(&h);
	appendStringInfoString(&h, "{\"format\": \"firehose\", \"url\": ");
	escape_json(&h, url);
	if (p->key_option && fh_jsonb_get(o, p->key_option))
	{
		appendStringInfoString(&h, ", \"access_key\": ");
		escape_json(&h, opt(o, p->key_option));
	}
	appendStringInfoString(&h, ", \"content_encoding\": ");
	escape_json(&h, opt(o, "content_encoding"));
	appendStringInfo(&h, ", \"tls_verify\": %s", fh_jsonb_get_bool(o, "tls_verify", true) ? "true" : "false");
	if (fh_jsonb_get(o, "ca_file"))
	{
		appendStringInfoString(&h, ", \"ca_file\": ");
		escape_json(&h, opt(o, "ca_file"));
	}
	attrs = preset_attributes(p, o);
	if (attrs)
		appendStringInfo(&h, ", \"common_attributes\": %s", attrs);
	appendStringInfoChar(&h, '}');
	http = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(h.data)));
	return fh_http_configure(http, stream, version);
}

/* the URL in use, the Sumo Logic token in it masked */
static char *
preset_target(const Preset *p, Jsonb *o)
{
	char	   *url = NULL;

	if (fh_jsonb_get_text(o, "url", &url))
		return url;
	if (p == &sumologic)
		return sumologic_url_with(o, "********");
	return p->url(o);
}

#define DEFINE_PRESET(p) \
static void p##_validate(Jsonb *o) { preset_validate(&p, o); } \
static void *p##_configure(Jsonb *o, const char *s, int32 v) \
{ return preset_configure(&p, o, s, v); } \
static char *p##_target(Jsonb *o) { return preset_target(&p, o); }

DEFINE_PRESET(datadog)
DEFINE_PRESET(newrelic)
DEFINE_PRESET(honeycomb)
DEFINE_PRESET(sumologic)
DEFINE_PRESET(coralogix)
DEFINE_PRESET(elastic)
DEFINE_PRESET(logicmonitor)
DEFINE_PRESET(logzio)
DEFINE_PRESET(mongodb)
DEFINE_PRESET(dynatrace)

static const FhOptionDef datadog_options[] = {
	{"api_key", FH_OPT_STRING, 0, 4096, NULL, NULL, true, true},
	{"site", FH_OPT_ENUM, 0, 0, "\"us1\"", dd_sites, .location = true},
	{"kind", FH_OPT_ENUM, 0, 0, "\"logs\"", kinds},
	PRESET_COMMON_OPTIONS
};
static const FhOptionDef newrelic_options[] = {
	{"license_key", FH_OPT_STRING, 0, 4096, NULL, NULL, true, true},
	{"region", FH_OPT_ENUM, 0, 0, "\"us\"", nr_regions, .location = true},
	{"kind", FH_OPT_ENUM, 0, 0, "\"logs\"", kinds},
	PRESET_COMMON_OPTIONS
};
static const FhOptionDef honeycomb_options[] = {
	{"api_key", FH_OPT_STRING, 0, 4096, NULL, NULL, true, true},
	{"dataset", FH_OPT_STRING, 0, 1024, NULL, NULL, false, true},
	PRESET_COMMON_OPTIONS
};
static const FhOptionDef sumologic_options[] = {
	{"access_token", FH_OPT_STRING, 0, 4096, NULL, NULL, true, true},
	{"deployment", FH_OPT_ENUM, 0, 0, NULL,
	(const char *const[]) {"au", "ca", "ch", "de", "eu", "fed", "in", "jp", "kr", "us1", "us2", NULL}, false, true,
	.location = true},
	{"data_type", FH_OPT_ENUM, 0, 0, "\"logs\"", kinds},
	PRESET_COMMON_OPTIONS
};
static const FhOptionDef coralogix_options[] = {
	{"private_key", FH_OPT_STRING, 0, 4096, NULL, NULL, true, true},
	{"region", FH_OPT_ENUM, 0, 0, "\"eu1\"", cx_regions, .location = true},
	PRESET_COMMON_OPTIONS
};
static const FhOptionDef elastic_options[] = {
	{"api_key", FH_OPT_STRING, 0, 4096, NULL, NULL, true, true},
	PRESET_COMMON_OPTIONS
};
static const FhOptionDef logicmonitor_options[] = {
	{"api_key", FH_OPT_STRING, 0, 4096, NULL, NULL, true, true},
	{"account", FH_OPT_STRING, 0, 63, NULL, NULL, false, true, .location = true},
	PRESET_COMMON_OPTIONS
};

/* the Firehose console offers Logz.io no content encoding ("Disabled") */
static const FhOptionDef logzio_options[] = {
	{"shipping_token", FH_OPT_STRING, 0, 4096, NULL, NULL, true, true},
	{"region", FH_OPT_ENUM, 0, 0, "\"us\"", lz_regions, .location = true},
	PRESET_OPTIONS_ENCODED("\"none\"", no_encoding)
};
static const FhOptionDef mongodb_options[] = {
	{"api_key", FH_OPT_STRING, 0, 4096, NULL, NULL, true, true},
	/* required unless "url" is given: mongodb_check() */
	{"api_gateway_url", FH_OPT_URL, 0, 1000, NULL, .location = true},
	PRESET_COMMON_OPTIONS
};
static const FhOptionDef dynatrace_options[] = {
	{"api_token", FH_OPT_STRING, 0, 4096, NULL, NULL, true, true},
	{"region", FH_OPT_ENUM, 0, 0, NULL, dt_regions, false, true, .location = true},

	/*
	 * The intake forwards what it gets, the token too, to this environment:
	 * where records go, so a change of it drops the stored token.  Not an
	 * FH_OPT_URL: firehose never connects to it, so
	 * firehose.allowed_destinations has no say (dynatrace_check() checks
	 * it); but its user information is redacted as any URL option's.
	 */
	{"api_url", FH_OPT_STRING, 0, 1024, NULL, NULL, false, true, .location = true,
	.redact = fh_url_option_redact},
	{"kind", FH_OPT_ENUM, 0, 0, "\"metrics\"", kinds},
	PRESET_COMMON_OPTIONS
};

#define PRESET_SINK(p, buffer, retry) \
const FhSink fh_sink_##p = { \
	.name = #p, \
	.options = p##_options, \
	.default_retry_duration_s = retry, \
	.default_buffer_interval_ms = 60000, \
	.default_buffer_size = buffer, \
	.error_output_type = "http-endpoint-failed", \
	.validate = p##_validate, \
	.configure = p##_configure, \
	.limits = fh_http_limits, \
	.encode = fh_http_encode, \
	.body_copies = fh_http_body_copies, \
	.classify = fh_http_classify, \
	.error_fields = fh_http_error_fields, \
	.target = p##_target, \
}

/* buffer sizes: the partners' recommendations (firehose.md section 2, 8) */
PRESET_SINK(datadog, 4 * MB, 60);
PRESET_SINK(newrelic, 1 * MB, 300);
PRESET_SINK(honeycomb, 15 * MB, 300);
PRESET_SINK(sumologic, 1 * MB, 300);
PRESET_SINK(coralogix, 6 * MB, 300);
PRESET_SINK(elastic, 1 * MB, 300);
/* Dynatrace's 5 MiB is in the reference; the others' are unconfirmed: the
 * generic HTTP endpoint's, as the retry (Logz.io: its own recommendation) */
PRESET_SINK(logicmonitor, 5 * MB, 300);
PRESET_SINK(logzio, 5 * MB, 60);
PRESET_SINK(mongodb, 5 * MB, 300);
PRESET_SINK(dynatrace, 5 * MB, 300);
