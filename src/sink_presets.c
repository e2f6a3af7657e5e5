/*-------------------------------------------------------------------------
 *
 * sink_presets.c
 *	  Partner destinations: Datadog, New Relic, Honeycomb, Sumo Logic,
 *	  Coralogix and Elastic take Firehose's HTTP endpoint protocol at
 *	  intake URLs of their own (firehose.md section 8).  Each preset is the
 *	  http sink in Firehose format with the partner's URL, its key sent as
 *	  X-Amz-Firehose-Access-Key, gzip, and the partner's recommended
 *	  buffer size; "url" overrides the URL (a proxy, a test receiver).
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"

#define MB (1024LL * 1024LL)

static const char *const encodings[] = {"none", "gzip", NULL};
static const char *const kinds[] = {"logs", "metrics", NULL};
static const char *const dd_sites[] = {"us1", "us3", "us5", "eu", "ap1", "gov", NULL};
static const char *const nr_regions[] = {"us", "eu", NULL};
static const char *const cx_regions[] = {"us1", "us2", "eu1", "eu2", "ap1", "ap2", "ap3", NULL};

/* options every preset has, after its own */
#define PRESET_COMMON_OPTIONS \
	{"url", FH_OPT_URL, 0, 1000, NULL, .location = true}, \
	{"common_attributes", FH_OPT_STRMAP, 0, 0, NULL}, \
	{"content_encoding", FH_OPT_ENUM, 0, 0, "\"gzip\"", encodings}, \
	{"tls_verify", FH_OPT_BOOL, 0, 0, "true"}, \
	{"ca_file", FH_OPT_STRING, 0, 4096, NULL}, \
	FH_BACKUP_OPTION, \
	{NULL}

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

/* ---------- the presets ---------- */

typedef struct Preset
{
	const char *name;
	const char *key_option;		/* sent as the access key */
	char	   *(*url) (Jsonb *o);	/* the intake, or NULL: "url" needed */
} Preset;

static const Preset datadog = {"datadog", "api_key", datadog_url};
static const Preset newrelic = {"newrelic", "license_key", newrelic_url};
static const Preset honeycomb = {"honeycomb", "api_key", honeycomb_url};
static const Preset sumologic = {"sumologic", NULL, sumologic_url};
static const Preset coralogix = {"coralogix", "private_key", coralogix_url};
static const Preset elastic = {"elastic", "api_key", elastic_url};

static void
preset_validate(const Preset *p, Jsonb *o)
{
	if (!fh_jsonb_get(o, "url") && p->url(o) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("destination \"%s\" needs \"url\" here", p->name),
				 errhint(strcmp(p->name, "elastic") == 0 ?
						 "Give your deployment's Firehose endpoint, such as \"https://<deployment>.es.<region>.aws.elastic-cloud.com\"." :
						 "There is no preset intake for these options; give the intake URL.")));
}

/* the http sink's configuration: Firehose format, the URL, the key */
static void *
preset_configure(const Preset *p, Jsonb *o, const char *stream, int32 version)
{
	StringInfoData h;
	char	   *url = NULL;
	JsonbValue *ca;
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
	ca = fh_jsonb_get(o, "common_attributes");
	if (ca && ca->type == jbvBinary)
		appendStringInfo(&h, ", \"common_attributes\": %s",
						 JsonbToCString(NULL, ca->val.binary.data, -1));
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
