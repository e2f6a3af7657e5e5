/*-------------------------------------------------------------------------
 *
 * sink.c
 *	  The table of destinations.  Adding one is a new sink_*.c file and a
 *	  line here.
 *
 *-------------------------------------------------------------------------
 */
#include "firehose.h"

static const FhSink *const sinks[] = {
	&fh_sink_http,
	&fh_sink_s3,
	&fh_sink_opensearch,
	&fh_sink_splunk,
	&fh_sink_postgres,
	&fh_sink_redshift,
	&fh_sink_datadog,
	&fh_sink_newrelic,
	&fh_sink_honeycomb,
	&fh_sink_sumologic,
	&fh_sink_coralogix,
	&fh_sink_elastic,
	&fh_sink_logicmonitor,
	&fh_sink_logzio,
	&fh_sink_mongodb,
	&fh_sink_dynatrace,
	NULL
};

const FhSink *
fh_sink_lookup(const char *name, bool missing_ok)
{
	for (int i = 0; sinks[i]; i++)
		if (strcmp(sinks[i]->name, name) == 0)
			return sinks[i];
	if (!missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown destination \"%s\"", name),
				 errhint("Supported destinations are: %s.", fh_sink_names())));
	return NULL;
}

const char *
fh_sink_names(void)
{
	StringInfoData s;

	initStringInfo(&s);
	for (int i = 0; sinks[i]; i++)
		appendStringInfo(&s, "%s%s", i ? ", " : "", sinks[i]->name);
	return s.data;
}
