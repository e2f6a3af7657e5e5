"""TLS to the endpoint: verification is on by default, ca_file trusts a
private CA, tls_verify => false turns verification off explicitly.

The receiver serves the Firehose protocol over TLS with a self-signed
certificate made here with the openssl command line tool.
"""

import os
import subprocess
import tempfile
import time

import pytest

from helpers import make_stream


@pytest.fixture(scope="module")
def certificate():
    d = tempfile.mkdtemp(prefix="firehose-tls-")
    os.chmod(d, 0o755)                     # the server (user postgres) reads ca_file
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    os.chmod(cert, 0o644)
    yield cert, key


@pytest.fixture
def tls_receiver(receiver, certificate):
    cert, key = certificate
    portfile = tempfile.mktemp(prefix="firehose-tls-port-")
    r = receiver(extra_args=["--tls-cert", cert, "--tls-key", key,
                             "--tls-portfile", portfile])
    deadline = time.monotonic() + 10
    while not os.path.exists(portfile):
        assert time.monotonic() < deadline, "TLS listener did not start"
        time.sleep(0.02)
    with open(portfile) as f:
        r.https_url = "https://127.0.0.1:%d/firehose" % int(f.read())
    return r




def test_self_signed_endpoint_is_refused_by_default(db, tls_receiver):
    make_stream(db, "s", tls_receiver.https_url, retry_duration=1)
    db.execute("SELECT firehose.put('s', 'secret payload')")
    assert db.flush("s") is True
    row = db.q("SELECT error_code, attempts_made, convert_from(data, 'UTF8') "
               "FROM firehose.failed_records")
    assert len(row) == 1
    assert row[0][0] == "HttpEndpoint.SSLHandshakeFailure", row
    assert row[0][1] >= 2                  # retried until retry_duration ran out
    assert row[0][2] == "secret payload"
    assert tls_receiver.records() == []


def test_ca_file_trusts_the_certificate(db, tls_receiver, certificate):
    make_stream(db, "s", tls_receiver.https_url, ca_file=certificate[0])
    db.execute("SELECT firehose.put('s', 'over tls')")
    assert db.flush("s") is True
    assert tls_receiver.records() == [b"over tls"]
    assert db.one("SELECT count(*) FROM firehose.failed_records") == 0


def test_tls_verify_false_skips_verification(db, tls_receiver):
    make_stream(db, "s", tls_receiver.https_url, tls_verify=False)
    db.execute("SELECT firehose.put('s', 'unverified')")
    assert db.flush("s") is True
    assert tls_receiver.records() == [b"unverified"]
    opts = db.one("SELECT options FROM firehose.streams WHERE name = 's'")
    assert opts["tls_verify"] is False
