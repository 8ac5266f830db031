"""integration.validation - bad input is refused whole, and auth holds.

Two distributors share one database: d1 without a token, d2 with
--token. Every bad document, one per rule, must get 400 (413 for a body
over 1 MiB) with {"error": {"field": ..., "rule": ...}} naming the field at
fault, and nothing may be stored. d2 answers 401 without or with a wrong
token and stores nothing, 201 with the right one. Unknown ids and paths
are 404. A well-formed scenario asking for a plugin no executor has ends
"failed" with a reason naming the plugin.
"""

import copy
import http.client
import json
import os
import sys

sys.dont_write_bytecode = True   # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import j4harness as h  # noqa: E402

TOKEN = "s3cret-token"
MIB = 1 << 20


def base_doc(url):
    return {"name": "valid", "scenario": "http", "params": {"url": url},
            "target": 2, "rampup": {"step": 1, "interval": "1s"},
            "hold": "1s", "rampdown": {"step": 1, "interval": "1s"}}


def mutate(doc, path, value):
    """A copy of doc with the dotted path set to value, or removed when
    value is DELETE."""
    out = copy.deepcopy(doc)
    keys = path.split(".")
    node = out
    for k in keys[:-1]:
        node = node[k]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return out


DELETE = object()

# (what, dotted path to change, new value, field the error must name)
MUTATIONS = [
    ("name wrong type", "name", 12, "name"),
    ("name null", "name", None, "name"),
    ("name empty", "name", "", "name"),
    ("name too long", "name", "n" * 65, "name"),
    ("name with slash", "name", "../etc/passwd", "name"),
    ("name with space", "name", "home page", "name"),
    ("name with semicolon", "name", "x;rm", "name"),
    ("name not ascii", "name", "caf\u00e9", "name"),
    ("name missing", "name", DELETE, "name"),
    ("scenario missing", "scenario", DELETE, "scenario"),
    ("scenario wrong type", "scenario", ["http"], "scenario"),
    ("scenario is a path", "scenario", "../../tmp/evil", "scenario"),
    ("scenario absolute .so", "scenario", "/tmp/evil.so", "scenario"),
    ("scenario upper case", "scenario", "HTTP", "scenario"),
    ("scenario empty", "scenario", "", "scenario"),
    ("target missing", "target", DELETE, "target"),
    ("target string", "target", "10", "target"),
    ("target float", "target", 2.5, "target"),
    ("target bool", "target", True, "target"),
    ("target negative", "target", -1, "target"),
    ("target zero", "target", 0, "target"),
    ("target over max", "target", 1000001, "target"),
    ("target absurd", "target", 10 ** 15, "target"),
    ("hold missing", "hold", DELETE, "hold"),
    ("hold bare number", "hold", "10", "hold"),
    ("hold json number", "hold", 10, "hold"),
    ("hold negative", "hold", "-5s", "hold"),
    ("hold fraction", "hold", "1.5s", "hold"),
    ("hold with space", "hold", "5 s", "hold"),
    ("hold unknown unit", "hold", "3d", "hold"),
    ("hold too long", "hold", "200h", "hold"),
    ("grace bad", "grace", "forever", "grace"),
    ("grace too long", "grace", "11m", "grace"),
    ("params array", "params", [1, 2], "params"),
    ("params string", "params", "url=x", "params"),
    ("params too large", "params.pad", "p" * (70 * 1024), "params"),
    ("rampup string", "rampup", "fast", "rampup"),
    ("rampup array", "rampup", [2, "1s"], "rampup"),
    ("rampup.step missing", "rampup.step", DELETE, "rampup.step"),
    ("rampup.step string", "rampup.step", "two", "rampup.step"),
    ("rampup.step negative", "rampup.step", -2, "rampup.step"),
    ("rampup.step zero", "rampup.step", 0, "rampup.step"),
    ("rampup.interval missing", "rampup.interval", DELETE,
     "rampup.interval"),
    ("rampup.interval zero", "rampup.interval", "0s", "rampup.interval"),
    ("rampup.interval number", "rampup.interval", 1, "rampup.interval"),
    ("rampup.interval junk", "rampup.interval", "abc", "rampup.interval"),
    ("rampup.interval too long", "rampup.interval", "2h",
     "rampup.interval"),
    ("rampup.mode unknown", "rampup.mode", "quadratic", "rampup.mode"),
    ("rampup.mode number", "rampup.mode", 1, "rampup.mode"),
    ("rampup unknown field", "rampup.extra", 1, "rampup.extra"),
    ("rampdown number", "rampdown", 5, "rampdown"),
    ("rampdown.step zero", "rampdown.step", 0, "rampdown.step"),
    ("rampdown.step float", "rampdown.step", 1.5, "rampdown.step"),
    ("rampdown.interval number", "rampdown.interval", 5,
     "rampdown.interval"),
    ("rampdown unknown field", "rampdown.speed", "fast", "rampdown.speed"),
    ("unknown top-level field", "bogus", 1, "bogus"),
]

# (what, raw body) refused as a whole: the error names no field.
RAW = [
    ("malformed JSON", b'{"name": "x", "target":'),
    ("trailing garbage", b'{"name": "x"} {"name": "y"}'),
    ("empty body", b""),
    ("array document", b"[1, 2, 3]"),
    ("string document", b'"homepage"'),
    ("null document", b"null"),
    ("invalid UTF-8", b'{"name": "\xff\xfe", "scenario": "http"}'),
]


def expect_error(c, what, status, body, want_status, want_field,
                 failures):
    ok = h.check(status == want_status, "%s: status %s, expected %s (%r)"
                 % (what, status, want_status, body), failures)
    if not ok:
        return
    err = body.get("error") if isinstance(body, dict) else None
    if not h.check(isinstance(err, dict), "%s: no error object in %r"
                   % (what, body), failures):
        return
    if want_status == 400:
        h.check(isinstance(err.get("rule"), str) and err["rule"],
                "%s: no rule in %r" % (what, err), failures)
        h.check(err.get("field") == want_field, "%s: field %r, expected %r"
                % (what, err.get("field"), want_field), failures)


def check_bad_documents(c, failures):
    base = base_doc(c.target_url)
    for what, path, value, field in MUTATIONS:
        doc = mutate(base, path, value)
        status, _, body = c.api("POST", "/scenarios", doc, dist=0)
        expect_error(c, what, status, body, 400, field, failures)
    for what, raw in RAW:
        status, _, body = c.api("POST", "/scenarios", raw=raw, dist=0)
        expect_error(c, what, status, body, 400, None, failures)
    h.log("%d bad documents sent" % (len(MUTATIONS) + len(RAW)))


def post_chunked(c, chunks):
    """POSTs a chunked body (no Content-Length) to d1."""
    conn = http.client.HTTPConnection("127.0.0.1", c.distributors[0].port,
                                      timeout=10)
    try:
        try:
            conn.request("POST", "/scenarios", body=iter(chunks),
                         headers={"Content-Type": "application/json"},
                         encode_chunked=True)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def check_big_bodies(c, failures):
    big = b'{"name": "' + b"x" * MIB + b'", "scenario": "http"}'
    status, _, body = c.api("POST", "/scenarios", raw=big, dist=0,
                            timeout=10)
    expect_error(c, "1 MiB body", status, body, 413, None, failures)
    status = post_chunked(c, [b'{"name": "'] + [b"y" * 65536] * 40
                          + [b'"}'])
    h.check(status == 413, "2.5 MiB chunked body: status %s, expected 413"
            % status, failures)


def check_content_types(c, failures):
    """Only a JSON content type is accepted: a browser can send text/plain
    or a form across origins without a preflight."""
    raw = json.dumps(base_doc(c.target_url)).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded",
                  "application/jsonx", ""):
        status, _, body = c.api("POST", "/scenarios", raw=raw, dist=0,
                                headers={"Content-Type": ctype})
        h.check(status == 415, "POST as %r: %s %r, expected 415"
                % (ctype, status, body), failures)


def stored(c):
    return int(c.psql("select count(*) from scenarios"))


def check_nothing_stored(c, failures):
    status, _, body = c.api("GET", "/scenarios", dist=0)
    h.check(status == 200 and body == {"scenarios": []},
            "GET /scenarios after bad input: %s %r" % (status, body),
            failures)
    h.check(stored(c) == 0, "scenarios table holds %d rows after bad input"
            % stored(c), failures)


def check_token(c, failures):
    doc = base_doc(c.target_url)
    doc.update({"name": "tokened", "target": 1, "hold": "1s"})
    del doc["rampup"], doc["rampdown"]
    for what, tok in (("no token", ""), ("wrong token", "nope"),
                      ("token prefix", TOKEN[:-1])):
        status, _, body = c.api("POST", "/scenarios", doc, dist=1,
                                token=tok)
        h.check(status == 401, "POST with %s: %s %r" % (what, status, body),
                failures)
    status, _, _ = c.api("GET", "/scenarios", dist=1, token="")
    h.check(status == 401, "GET /scenarios without token: %s" % status,
            failures)
    status, _, _ = c.api("POST", "/scenarios", doc, dist=1,
                         headers={"Authorization": "Basic " + TOKEN})
    h.check(status == 401, "POST with a Basic header: %s" % status,
            failures)
    h.check(stored(c) == 0, "401 requests stored %d rows" % stored(c),
            failures)
    status, hdrs, body = c.api("POST", "/scenarios", doc, dist=1,
                               headers={"Authorization": "bearer " + TOKEN})
    if not h.check(status == 201, "POST with the token: %s %r"
                   % (status, body), failures):
        return None
    h.check(stored(c) == 1, "after one 201 the table holds %d rows"
            % stored(c), failures)
    return body.get("id")


def check_not_found(c, failures):
    for path in ("/scenarios/999999", "/nope", "/scenarios/999999/stop"):
        method = "POST" if path.endswith("/stop") else "GET"
        status, _, _ = c.api(method, path, dist=0)
        h.check(status == 404, "%s %s: %s, expected 404"
                % (method, path, status), failures)


def check_unknown_plugin(c, failures):
    doc = {"name": "noplugin", "scenario": "nosuch", "target": 2,
           "hold": "2s"}
    sid = c.submit(doc, dist=0)
    s = c.wait_final(sid, 15, dist=0)
    h.log("unknown plugin: state %r reason %r"
          % (s.get("state"), s.get("reason")))
    h.check(s.get("state") == "failed", "unknown plugin ended %r"
            % s.get("state"), failures)
    h.check("nosuch" in str(s.get("reason")),
            "reason %r does not name the plugin" % s.get("reason"),
            failures)


def check_token_run(c, sid, failures):
    s = c.wait_final(sid, 15, dist=0)
    h.check(s.get("state") == "finished", "token scenario ended %r (%r)"
            % (s.get("state"), s.get("reason")), failures)
    status, _, body = c.api("POST", "/scenarios/%s/stop" % sid, dist=0)
    h.check(status == 409, "stop of a finished scenario: %s %r"
            % (status, body), failures)


def main():
    h.set_deadline(int(os.environ.get("J4_TEST_DEADLINE", "50")))
    failures = []
    with h.Cluster(distributors=2, executors=1,
                   dist_opts=[{}, {"token": TOKEN}]) as c:
        check_bad_documents(c, failures)
        check_big_bodies(c, failures)
        check_content_types(c, failures)
        check_nothing_stored(c, failures)
        sid = check_token(c, failures)
        check_not_found(c, failures)
        check_unknown_plugin(c, failures)
        if sid is not None:
            check_token_run(c, sid, failures)
        return h.finish(failures, c)


if __name__ == "__main__":
    sys.exit(main())
