"""Partner presets: 'datadog', 'newrelic', 'honeycomb', 'sumologic', 'coralogix',
'elastic', 'logicmonitor', 'logzio', 'mongodb', 'dynatrace' -- the http
destination's Firehose format with a preset URL and key.

With `url` overridden they deliver to the strict Firehose receiver of
test/receiver.py (the `receiver` fixture of conftest.py): the records arrive,
the preset's key option travels as X-Amz-Firehose-Access-Key, the body is
gzipped by default (Logz.io: not), common attributes are sent (Dynatrace's
api_url among them as dt-url).  Without `url`, the URL the
preset computes for each site/region/kind is checked: from firehose.streams
when the stream's options show it, else from the error of a delivery attempt
(no network beyond loopback here: the attempt fails resolving the partner's
host, and the error names it).  Surface: /work/issue4-spec.md ("partner
presets"); Firehose's behaviour: ../shared/reference/firehose.md section 8.
"""

import json
from urllib.parse import urlsplit

import psycopg2
import pytest

from helpers import FAST, flush, put_texts, stored_errors

MiB = 1024 * 1024

DT_ENV = "https://abc12345.live.dynatrace.com"
ATLAS_GATEWAY = "https://abc123defg.execute-api.us-east-1.amazonaws.com/prod"

# preset -> (its key option, other options it needs, buffer_size default)
PRESETS = {
    "datadog": ("api_key", {}, 4 * MiB),
    "newrelic": ("license_key", {}, 1 * MiB),
    "honeycomb": ("api_key", {"dataset": "my-dataset"}, 15 * MiB),
    "sumologic": ("access_token", {"deployment": "us2", "data_type": "logs"}, 1 * MiB),
    "coralogix": ("private_key", {"region": "eu1"}, 6 * MiB),
    "elastic": ("api_key", {"url": "https://my-deployment.es.eu-west-1.aws.elastic-cloud.com"},
                1 * MiB),
    "logicmonitor": ("api_key", {"account": "acme"}, 5 * MiB),
    "logzio": ("shipping_token", {}, 5 * MiB),
    "mongodb": ("api_key", {"api_gateway_url": ATLAS_GATEWAY}, 5 * MiB),
    "dynatrace": ("api_token", {"region": "us", "api_url": DT_ENV}, 5 * MiB),
}
# the content encoding each uses by default (Firehose's console offers Logz.io none)
ENCODING = dict({p: "gzip" for p in PRESETS}, logzio="none")
# the attributes each preset adds to the user's
OWN_ATTRIBUTES = {"dynatrace": {"dt-url": DT_ENV}}
KEY = "Pr3s3t-k3y/+=.0123456789abcdef"
ACCESS_KEY_IN_HEADER = [p for p in PRESETS if p != "sumologic"]   # sumologic: in the URL


def create(db, name, preset, opts):
    db.execute("SELECT firehose.create_stream(%s, %s, %s::jsonb)",
               (name, preset, json.dumps(opts)))


def preset_opts(preset, url=None, **extra):
    key, needed, _ = PRESETS[preset]
    o = dict(needed)
    o[key] = KEY
    if url is not None:
        o["url"] = url
    o.update(extra)
    return o


def header(req, name):
    for k, v in req["headers"].items():
        if k.lower() == name.lower():
            return v
    return None


def stream_options(db, name):
    return db.one("SELECT options FROM firehose.streams WHERE name = %s", (name,))


# -- delivery with url overridden ----------------------------------------------------------

@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_delivers_to_the_url_with_key_gzip_and_attributes(db, receiver, preset):
    key_in_header = preset in ACCESS_KEY_IN_HEADER
    r = receiver(access_key=KEY if key_in_header else None)
    attrs = {"env": "test", "service": "orders \u00e9"}
    create(db, "p", preset, preset_opts(preset, url=r.url, common_attributes=attrs, **FAST))
    recs = ["%s record %d " % (preset, i) + "x" * i for i in range(50)]
    put_texts(db, "p", recs)
    db.execute("SELECT firehose.put('p', %s::jsonb)", ('{"k": [1, 2]}',))
    flush(db, "p")
    assert r.records() == [x.encode() for x in recs] + [b'{"k": [1, 2]}']
    reqs = r.requests()
    assert reqs and all(q["status"] == 200 for q in reqs)
    for q in reqs:
        assert header(q, "Content-Encoding") == \
            ("gzip" if ENCODING[preset] == "gzip" else None)
        assert header(q, "X-Amz-Firehose-Protocol-Version") == "1.0"
        ca = header(q, "X-Amz-Firehose-Common-Attributes").encode("latin-1").decode("utf-8")
        assert json.loads(ca) == {"commonAttributes": dict(attrs, **OWN_ATTRIBUTES.get(preset, {}))}
        if key_in_header:
            assert header(q, "X-Amz-Firehose-Access-Key") == KEY
    r.assert_no_violations()
    assert r.stats()["rejected"] == 0
    assert db.one("SELECT delivered_records FROM firehose.stream_status "
                  "WHERE stream = 'p'") == 51


def test_preset_content_encoding_none(db, receiver):
    r = receiver(access_key=KEY)
    create(db, "nogz", "datadog", preset_opts("datadog", url=r.url, content_encoding="none",
                                              **FAST))
    put_texts(db, "nogz", ["plain"])
    flush(db, "nogz")
    (q,) = r.requests()
    assert header(q, "Content-Encoding") is None
    assert r.records() == [b"plain"]


def test_preset_wrong_key_is_refused_by_the_endpoint(db, receiver):
    r = receiver(access_key="the-right-key")
    create(db, "wk", "newrelic", preset_opts("newrelic", url=r.url, **FAST))
    put_texts(db, "wk", ["w"])
    flush(db, "wk")
    assert r.records() == []
    row = db.q("SELECT data, error_code FROM firehose.failed_records WHERE stream = 'wk'")
    assert [(bytes(x[0]), x[1]) for x in row] == [(b"w", "HttpEndpoint.DestinationException")]


# -- defaults, secrets, validation -------------------------------------------------------------

@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_defaults_and_secret_key(db, preset):
    create(db, "d", preset, preset_opts(preset))
    o = stream_options(db, "d")
    key = PRESETS[preset][0]
    assert KEY not in json.dumps(o), "the key must not be shown"
    assert o[key] == "********"
    assert o["buffer_size"] == PRESETS[preset][2]
    assert o["content_encoding"] == ENCODING[preset]
    assert db.one("SELECT destination FROM firehose.streams WHERE name = 'd'") == preset


@pytest.mark.parametrize("preset,retry", [("datadog", 60), ("logzio", 60), ("newrelic", 300),
                                          ("logicmonitor", 300), ("mongodb", 300),
                                          ("dynatrace", 300)])
def test_buffer_and_retry_defaults(db, preset, retry):
    create(db, "dd", preset, preset_opts(preset))
    o = stream_options(db, "dd")
    assert (o["buffer_size"], o["buffer_interval"], o["retry_duration"]) == \
        (PRESETS[preset][2], 60000, retry)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_requires_its_key(db, preset):
    key = PRESETS[preset][0]
    o = preset_opts(preset)
    del o[key]
    with pytest.raises(psycopg2.Error) as e:
        create(db, "nokey", preset, o)
    assert key in str(e.value)


@pytest.mark.parametrize("preset,opts,name", [
    ("datadog", {"site": "us2"}, "site"),
    ("datadog", {"kind": "traces"}, "kind"),
    ("newrelic", {"region": "ap"}, "region"),
    ("newrelic", {"kind": "events"}, "kind"),
    ("sumologic", {"data_type": "traces"}, "data_type"),
    ("coralogix", {"region": "mars1"}, "region"),
    ("datadog", {"endpoint": "http://x"}, "endpoint"),
    ("logicmonitor", {"account": "acme.evil.example"}, "account"),
    ("logzio", {"region": "au"}, "region"),
    ("logzio", {"content_encoding": "gzip"}, "content_encoding"),
    ("mongodb", {"api_gateway_url": "https://evil.example/prod"}, "api_gateway_url"),
    ("dynatrace", {"region": "ap"}, "region"),
    ("dynatrace", {"api_url": "http://abc12345.live.dynatrace.com"}, "api_url"),
    ("dynatrace", {"kind": "logs"}, "url"),
    ("dynatrace", {"common_attributes": {"dt-url": "https://x.live.dynatrace.com"}}, "dt-url"),
    ("datadog", {"url": "ftp://127.0.0.1/"}, "url"),
])
def test_preset_invalid_options_are_refused(db, preset, opts, name):
    with pytest.raises(psycopg2.Error) as e:
        create(db, "bad", preset, preset_opts(preset, **opts))
    assert name in str(e.value)


@pytest.mark.parametrize("preset,missing", [("honeycomb", "dataset"), ("elastic", "url"),
                                            ("sumologic", "deployment"),
                                            ("logicmonitor", "account"),
                                            ("mongodb", "api_gateway_url"),
                                            ("dynatrace", "region"), ("dynatrace", "api_url")])
def test_preset_required_options(db, preset, missing):
    o = preset_opts(preset)
    del o[missing]
    with pytest.raises(psycopg2.Error) as e:
        create(db, "req", preset, o)
    assert missing in str(e.value)


# -- the URL each preset computes ------------------------------------------------------------

DD_V2_LOGS = "https://aws-kinesis-http-intake.logs.%s.datadoghq.com/api/v2/logs" \
             "?dd-protocol=aws-kinesis-firehose"
DD_V2_METRICS = "https://event-platform-intake.%s.datadoghq.com/api/v2/awsmetrics" \
                "?dd-protocol=aws-kinesis-firehose"
URLS = [
    ("datadog", {}, "https://aws-kinesis-http-intake.logs.datadoghq.com/v1/input"),
    ("datadog", {"site": "us1", "kind": "logs"},
     "https://aws-kinesis-http-intake.logs.datadoghq.com/v1/input"),
    ("datadog", {"site": "us3"}, DD_V2_LOGS % "us3"),
    ("datadog", {"site": "us5"}, DD_V2_LOGS % "us5"),
    ("datadog", {"site": "eu"}, "https://aws-kinesis-http-intake.logs.datadoghq.eu/v1/input"),
    ("datadog", {"site": "ap1"}, DD_V2_LOGS % "ap1"),
    ("datadog", {"site": "gov"}, "https://aws-kinesis-http-intake.logs.ddog-gov.com/v1/input"),
    ("datadog", {"kind": "metrics"}, "https://awsmetrics-intake.datadoghq.com/v1/input"),
    ("datadog", {"kind": "metrics", "site": "eu"}, "https://awsmetrics-intake.datadoghq.eu/v1/input"),
    ("datadog", {"kind": "metrics", "site": "us3"}, DD_V2_METRICS % "us3"),
    ("datadog", {"kind": "metrics", "site": "us5"}, DD_V2_METRICS % "us5"),
    ("datadog", {"kind": "metrics", "site": "ap1"}, DD_V2_METRICS % "ap1"),
    ("newrelic", {}, "https://aws-api.newrelic.com/firehose/v1"),
    ("newrelic", {"region": "us", "kind": "logs"}, "https://aws-api.newrelic.com/firehose/v1"),
    ("newrelic", {"region": "eu"}, "https://aws-api.eu.newrelic.com/firehose/v1"),
    ("newrelic", {"kind": "metrics"}, "https://aws-api.newrelic.com/cloudwatch-metrics/v1"),
    ("newrelic", {"kind": "metrics", "region": "eu"},
     "https://aws-api.eu01.nr-data.net/cloudwatch-metrics/v1"),
    ("honeycomb", {"dataset": "prod-events"},
     "https://api.honeycomb.io/1/kinesis_events/prod-events"),
    ("sumologic", {"deployment": "us2", "data_type": "logs"},
     "https://us2.sumologic.net/receiver/v1/kinesis/logs/" + KEY),
    ("sumologic", {"deployment": "eu", "data_type": "metrics"},
     "https://eu.sumologic.net/receiver/v1/kinesis/metrics/" + KEY),
    ("logicmonitor", {"account": "acme-eu"}, "https://acme-eu.logicmonitor.com"),
    ("logzio", {}, "https://listener-aws-metrics-stream-us.logz.io/"),
    ("logzio", {"region": "eu"}, "https://listener-aws-metrics-stream-eu.logz.io/"),
    ("mongodb", {"api_gateway_url": ATLAS_GATEWAY}, ATLAS_GATEWAY),
    ("mongodb", {"api_gateway_url": "https://webhooks.mongodb-realm.com/api/client/v2.0/app/x/in"},
     "https://webhooks.mongodb-realm.com/api/client/v2.0/app/x/in"),
    ("dynatrace", {"region": "us"}, "https://us.aws.cloud.dynatrace.com"),
    ("dynatrace", {"region": "eu", "kind": "metrics"}, "https://eu.aws.cloud.dynatrace.com"),
    ("dynatrace", {"region": "global"}, "https://aws.cloud.dynatrace.com"),
]


def url_of(db, name):
    """The URL the stream delivers to, as firehose.streams.target shows it."""
    return db.one("SELECT target FROM firehose.streams WHERE name = %s", (name,))


def attempt_error(db, name):
    """Deliver one record to the real (unreachable) URL; return the error text recorded."""
    db.execute("SELECT firehose.alter_stream(%s, %s::jsonb)",
               (name, json.dumps(dict(FAST, retry_duration=0, request_timeout=2000))))
    put_texts(db, name, ["probe"])
    flush(db, name)
    rows = db.q("SELECT error_code, error_message FROM firehose.failed_records "
                "WHERE stream = %s", (name,))
    assert len(rows) == 1, rows
    err = db.one("SELECT error FROM firehose.deliveries WHERE stream = %s", (name,))
    return "%s %s %s" % (rows[0][0], rows[0][1], err)


@pytest.mark.parametrize("preset,opts,expected", URLS,
                         ids=["%s-%s" % (p, "-".join("%s" % v for v in o.values()) or "default")
                              for p, o, _ in URLS])
def test_computed_url(db, preset, opts, expected):
    o = preset_opts(preset, **opts)
    create(db, "u", preset, o)
    shown = url_of(db, "u")
    if preset == "sumologic":
        # the access token is part of the URL, and secret: never shown
        assert KEY not in shown
        assert shown == expected.replace(KEY, "********")
    else:
        assert shown == expected
    # and the worker really goes there: the host is in the connection error
    # (no network beyond loopback here); the key never appears in errors
    err = attempt_error(db, "u")
    host = urlsplit(expected).hostname
    assert host in err, "expected the host %s in %r" % (host, err)
    assert KEY not in err, "the key must not appear in errors"


@pytest.mark.parametrize("region", ["us1", "eu1", "eu2", "ap1", "ap2"])
def test_coralogix_regions(db, region):
    create(db, "c", "coralogix", preset_opts("coralogix", region=region))
    shown = url_of(db, "c")
    assert urlsplit(shown).scheme == "https" and "coralogix" in urlsplit(shown).hostname
    err = attempt_error(db, "c")
    assert urlsplit(shown).hostname in err, err


def test_dynatrace_api_url_user_information_is_never_shown(db, receiver):
    """The user information of api_url is redacted as any URL option's: in
    firehose.streams, and in the error texts stored when the destination
    quotes it back; the intake still gets api_url whole as dt-url."""
    r = receiver(access_key=KEY)
    api_url = DT_ENV.replace("https://", "https://dtuser:DTPASSWORD-42@")
    r.faults([{"status": 400, "error_message": "unknown environment %s" % api_url}])
    create(db, "dtp", "dynatrace", preset_opts("dynatrace", url=r.url, api_url=api_url, **FAST))
    shown = db.one("SELECT s::text FROM firehose.streams s WHERE name = 'dtp'")
    assert "DTPASSWORD" not in shown and "dtuser" not in shown, shown
    assert stream_options(db, "dtp")["api_url"] == \
        DT_ENV.replace("https://", "https://********@")
    put_texts(db, "dtp", ["d"])
    flush(db, "dtp")
    (q,) = r.requests()
    ca = json.loads(header(q, "X-Amz-Firehose-Common-Attributes"))
    assert ca["commonAttributes"]["dt-url"] == api_url
    texts = stored_errors(db, "dtp")
    assert len(texts) == 3                  # one delivery, one record, the status
    for t in texts:
        assert "unknown environment https://[redacted]@abc12345" in t, t
        assert "DTPASSWORD" not in t and "dtuser" not in t, t


def test_url_override_wins_and_is_kept(db, receiver):
    r = receiver(access_key=KEY)
    create(db, "ov", "datadog", preset_opts("datadog", url=r.url, site="eu", kind="metrics",
                                            **FAST))
    assert stream_options(db, "ov")["url"] == r.url
    put_texts(db, "ov", ["o"])
    flush(db, "ov")
    assert r.records() == [b"o"]
