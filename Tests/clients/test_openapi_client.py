"""A client generated from flowd's own `/openapi.json` by openapi-python-client, as a user makes
one, drives every route of the real flowd binary; openapi-core checks every answer it gets
(status, content type, headers, body) against the same document.

Generation fails the test on any warning of the generator. The generator's post-hooks run
ruff, which openapi-python-client installs with itself: it must be on PATH, as in the
environment a user installed the generator into.
"""
import contextlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from io import BytesIO
from urllib.parse import parse_qsl

import httpx
import jsonschema
import pytest
import requests
from openapi_core import Config, OpenAPI
from openapi_core.deserializing.media_types.util import plain_loads
from openapi_core.testing import MockRequest, MockResponse

import flowd_process
from flowd_process import stop_flowd
PACKAGE = "flowd_openapi_client"  # the generated package: a name no other module has
API_KEY = "openapi-client-test-key"

# Flows that cannot fail: templates, and a mock that only a cancel stops.
AGENTS = {
    "analyst.yaml": 'kind: template\nprompt: "analysis of {{input}}"\n',
    "reader.yaml": 'kind: template\nprompt: "read: {{docs.brief}}"\n',
    "sleeper.yaml": 'kind: mock\ndelay_ms: 120000\noutput: "rested"\n',
    "flows.yaml": "default: [analyst]\nbriefed: [analyst, reader]\nslow: [analyst, sleeper]\n",
}


def start_flowd(api_key=None):
    return flowd_process.start_flowd(AGENTS, prefix="flowd-openapi-", api_key=api_key)


@contextlib.contextmanager
def generate(document, package):
    """Generates a client package from the document, as a user does, and imports it; then
    removes it. Any warning of the generator fails."""
    work = tempfile.mkdtemp(prefix="flowd-openapi-client-")
    source = os.path.join(work, "openapi.json")
    with open(source, "w") as f:
        json.dump(document, f)
    # The post-hooks' ruff is the one installed beside this Python's openapi-python-client.
    env = dict(os.environ, PATH=os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")]))
    result = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", source, "--meta", "none",
         "--output-path", os.path.join(work, package), "--fail-on-warning"],
        check=False, capture_output=True, text=True, env=env, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not re.search(r"warning|error", output, re.IGNORECASE), output
    sys.path.insert(0, work)
    try:
        yield importlib.import_module(package)
    finally:
        sys.path.remove(work)
        for name in [name for name in sys.modules if name == package or name.startswith(package + ".")]:
            del sys.modules[name]
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def flowd():
    url, process, work = start_flowd()
    yield url
    stop_flowd(process, work)


@pytest.fixture(scope="module")
def document(flowd):
    response = requests.get(f"{flowd}/openapi.json", timeout=10)
    assert response.status_code == 200
    return response.json()


@pytest.fixture(scope="module")
def generated(document):
    with generate(document, PACKAGE) as package:
        yield package


class Checker:
    """An httpx response hook: checks each answer against the document with openapi-core, and
    keeps which operations were driven. A mismatch raises where the client made the call."""

    def __init__(self, document):
        # Event streams and documents are text; openapi-core reads unknown media types as bytes.
        config = Config(extra_media_type_deserializers={
            "text/event-stream": plain_loads, "text/markdown": plain_loads})
        self.openapi = OpenAPI.from_dict(document, config=config)
        self.templates = [(method, path, re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"))
                          for path, item in document["paths"].items()
                          for method in item if method != "parameters"]
        self.driven = set()
        self.checked = 0

    def __call__(self, response):
        response.read()
        request = response.request
        url = request.url
        path = url.path
        openapi_request = MockRequest(
            f"{url.scheme}://{url.netloc.decode('ascii')}", request.method, path,
            args=dict(parse_qsl(url.query.decode("ascii"))), headers=dict(request.headers),
            content_type=request.headers.get("Content-Type", ""))
        openapi_response = MockResponse(
            response.content, status_code=response.status_code, headers=dict(response.headers),
            content_type=response.headers.get("Content-Type", ""))
        result = self.openapi.unmarshal_response(openapi_request, openapi_response)
        if result.errors:
            causes = [f"{error!r} <- {error.__cause__!r}" for error in result.errors]
            raise AssertionError(f"{request.method} {path} answered {response.status_code} "
                                 f"{response.headers.get('Content-Type')} {response.content[:300]!r}, "
                                 f"not as the document says: {causes}")
        self.checked += 1
        # The operation: the template that matches with the most literal segments.
        matches = [(method, template) for method, template, pattern in self.templates
                   if method == request.method.lower() and pattern.match(path)]
        if matches:
            self.driven.add(max(matches, key=lambda m: len(re.sub(r"\{[^/]+\}", "", m[1]))))


@pytest.fixture(scope="module")
def checker(document):
    return Checker(document)


@pytest.fixture(scope="module")
def client(generated, flowd, checker):
    return generated.Client(base_url=flowd, raise_on_unexpected_status=True, timeout=httpx.Timeout(30.0),
                            httpx_args={"event_hooks": {"response": [checker]}})


def api(generated, tag, name):
    return importlib.import_module(f"{generated.__name__}.api.{tag}.{name}")


def models(generated):
    return importlib.import_module(f"{generated.__name__}.models")


def sse_events(text):
    """(id, event, data as JSON) of each event of an SSE body; comments are skipped."""
    events = []
    for block in text.split("\n\n"):
        fields = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        if fields:
            events.append((fields.get("id"), fields.get("event"), json.loads(fields["data"])))
    return events


def check_event_data(document, generated, events):
    """Each event's data matches its schema in the document and parses into the generated model."""
    m = models(generated)
    names = {"progress": "ProgressEvent", "result": "ResultEvent", "done": "DoneEvent", "error": "ErrorEvent",
             "cancelled": "CancelledEvent", "token": "TokenEvent"}
    for _, event, data in events:
        schema = dict(document, **{"$ref": f"#/components/schemas/{names[event]}"})
        jsonschema.Draft202012Validator(schema).validate(data)
        model = getattr(m, names[event]).from_dict(data)
        assert model.run_id == data["run_id"]


# Runs


def test_a_run_answers_its_result_as_a_run_answer(generated, client):
    m = models(generated)
    answer = api(generated, "runs", "run_flow").sync_detailed(
        client=client, body=m.RunRequest(input_="hi", story_id="oc-1"))
    assert answer.status_code == 200
    assert isinstance(answer.parsed, m.RunAnswer)
    assert answer.parsed.result == "analysis of hi"
    assert answer.parsed.pending_docs is None
    assert answer.headers["X-Run-ID"] == answer.parsed.run_id


def test_a_run_missing_documents_answers_pending_docs_in_the_same_model(generated, client):
    m = models(generated)
    answer = api(generated, "runs", "run_flow").sync(
        client=client, body=m.RunRequest(input_="hi", story_id="oc-2", flow=m.RunRequestFlow.BRIEFED))
    assert isinstance(answer, m.RunAnswer)
    assert answer.result is None
    assert answer.pending_docs == ["brief"]


def test_a_bad_story_id_is_a_validation_error(generated, client):
    m = models(generated)
    answer = api(generated, "runs", "run_flow").sync_detailed(
        client=client, body=m.RunRequest(input_="hi", story_id="not an id"))
    assert answer.status_code == 422
    assert isinstance(answer.parsed, m.ValidationError)
    assert [issue.loc for issue in answer.parsed.detail] == [["body", "story_id"]]


def test_a_run_asked_for_events_streams_them(document, generated, client):
    # openapi-python-client parses one media type per status, the first it knows: `run_flow`
    # reads the JSON answer. The stream is the same request (built by the generated module)
    # with `Accept: text/event-stream`, sent through the generated client's httpx client.
    m = models(generated)
    kwargs = api(generated, "runs", "run_flow")._get_kwargs(body=m.RunRequest(input_="go", story_id="oc-3"))
    kwargs["headers"]["Accept"] = "text/event-stream"
    response = client.get_httpx_client().request(**kwargs)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    events = sse_events(response.text)
    assert [(e[1], e[2].get("agent"), e[2].get("status")) for e in events] == [
        ("progress", "analyst", "started"), ("progress", "analyst", "completed"), ("result", "analyst", None),
        ("done", None, None)]
    assert [e[0] for e in events] == ["1", "2", "3", "4"]
    assert events[-1][2] == {"result": "analysis of go", "pending_docs": None, "run_id": response.headers["X-Run-ID"]}
    check_event_data(document, generated, events)


def test_a_background_run_is_followed_by_its_events_and_record(document, generated, client):
    m = models(generated)
    started = api(generated, "runs", "start_run").sync_detailed(
        client=client, body=m.RunRequest(input_="bg", story_id="oc-4", flow=m.RunRequestFlow.DEFAULT))
    assert started.status_code == 202
    assert isinstance(started.parsed, m.RunAccepted)
    run_id = started.parsed.run_id
    assert started.headers["Location"] == f"/runs/{run_id}"

    follow = api(generated, "runs", "follow_run_events")
    text = follow.sync(run_id, client=client)
    assert isinstance(text, str)
    events = sse_events(text)
    assert [e[1] for e in events] == ["progress", "progress", "result", "done"]
    assert all(e[2]["run_id"] == run_id for e in events)
    check_event_data(document, generated, events)
    rest = follow.sync_detailed(run_id, client=client, last_event_id="2")
    assert rest.status_code == 200
    assert [e[0] for e in sse_events(rest.parsed)] == ["3", "4"]
    after_end = follow.sync_detailed(run_id, client=client, last_event_id="4")
    assert after_end.status_code == 204

    record = api(generated, "runs", "get_run").sync(run_id, client=client)
    assert isinstance(record, m.RunRecord)
    assert (record.run_id, record.flow, record.story_id) == (run_id, "default", "oc-4")
    assert record.status == m.RunRecordStatus.SUCCEEDED
    assert record.result == "analysis of bg"
    assert record.pending_docs is None and record.error is None
    assert record.finished_at >= record.created_at


def test_unknown_and_malformed_run_ids(generated, client):
    m = models(generated)
    for name in ("get_run", "follow_run_events", "cancel_run"):
        operation = api(generated, "runs", name)
        unknown = operation.sync_detailed("no-such-run", client=client)
        assert unknown.status_code == 404, name
        assert isinstance(unknown.parsed, m.Detail), name
        malformed = operation.sync_detailed("not an id", client=client)
        assert malformed.status_code == 422, name
        assert malformed.parsed.detail[0].loc == ["path", "id"], name
        empty = operation.sync_detailed("", client=client)
        assert empty.status_code == 404, name


def test_a_cancelled_run_ends_with_one_cancelled_event(document, generated, client):
    m = models(generated)
    run_id = api(generated, "runs", "start_run").sync(
        client=client, body=m.RunRequest(input_="zz", story_id="oc-5", flow=m.RunRequestFlow.SLOW)).run_id
    cancelled = api(generated, "runs", "cancel_run").sync_detailed(run_id, client=client)
    assert cancelled.status_code == 202
    assert isinstance(cancelled.parsed, m.CancelAccepted)
    events = sse_events(api(generated, "runs", "follow_run_events").sync(run_id, client=client))
    assert events[-1][1] == "cancelled"
    assert [e[1] for e in events].count("cancelled") == 1
    check_event_data(document, generated, events)
    record = api(generated, "runs", "get_run").sync(run_id, client=client)
    assert record.status == m.RunRecordStatus.CANCELLED
    again = api(generated, "runs", "cancel_run").sync(run_id, client=client)
    assert again.status == m.CancelAcceptedStatus.CANCELLED

    finished = api(generated, "runs", "run_flow").sync(client=client, body=m.RunRequest(input_="x", story_id="oc-6"))
    conflict = api(generated, "runs", "cancel_run").sync_detailed(finished.run_id, client=client)
    assert conflict.status_code == 409
    assert isinstance(conflict.parsed, m.Detail)


def test_a_cancelled_run_is_retried_from_its_step_once_per_key(document, generated, client, flowd):
    m = models(generated)
    retry = api(generated, "runs", "retry_run")
    unknown = retry.sync_detailed("no-such-run", client=client)  # driven whatever the server has
    assert unknown.status_code == 404 and isinstance(unknown.parsed, m.Detail)
    malformed = retry.sync_detailed("not an id", client=client)
    assert malformed.status_code == 422 and malformed.parsed.detail[0].loc == ["path", "id"]
    empty = retry.sync_detailed("", client=client)
    assert empty.status_code == 404

    run_id = api(generated, "runs", "start_run").sync(
        client=client, body=m.RunRequest(input_="zz", story_id="oc-retry", flow=m.RunRequestFlow.SLOW)).run_id
    assert api(generated, "runs", "cancel_run").sync_detailed(run_id, client=client).status_code == 202
    bad_key = retry.sync_detailed(run_id, client=client, idempotency_key="two words")
    assert bad_key.status_code == 422 and bad_key.parsed.detail[0].loc == ["header", "idempotency-key"]

    first = retry.sync_detailed(run_id, client=client, idempotency_key="oc-retry-1")
    assert first.status_code == 202 and isinstance(first.parsed, m.RunAccepted)
    retried = first.parsed.run_id
    assert retried != run_id
    assert (first.headers["Location"], first.headers["X-Run-ID"]) == (f"/runs/{retried}", retried)
    assert "Idempotent-Replayed" not in first.headers
    again = retry.sync_detailed(run_id, client=client, idempotency_key="oc-retry-1")
    assert (again.status_code, again.parsed.run_id, again.headers["Idempotent-Replayed"]) == (202, retried, "true")

    record = api(generated, "runs", "get_run").sync(retried, client=client)
    assert (record.retry_of, record.resumed, record.story_id, record.flow) == (run_id, 0, "oc-retry", "slow")
    assert api(generated, "runs", "get_run").sync(run_id, client=client).resumed == 0
    # It goes on at the sleeper: the analyst's step was the original's. Cancelled once it started.
    with requests.get(f"{flowd}/runs/{retried}/events", stream=True, timeout=30) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data:") and json.loads(line[5:]).get("status") == "started":
                break
    assert api(generated, "runs", "cancel_run").sync_detailed(retried, client=client).status_code == 202
    events = sse_events(api(generated, "runs", "follow_run_events").sync(retried, client=client))
    assert [(e[1], e[2].get("agent"), e[2].get("status")) for e in events] == [
        ("progress", "sleeper", "started"), ("cancelled", None, None)]
    check_event_data(document, generated, events)

    finished = api(generated, "runs", "run_flow").sync(client=client, body=m.RunRequest(input_="x", story_id="oc-retry-2"))
    conflict = retry.sync_detailed(finished.run_id, client=client)
    assert conflict.status_code == 409 and isinstance(conflict.parsed, m.Detail)


def test_a_request_sent_again_with_its_idempotency_key_starts_nothing(generated, client, flowd):
    m = models(generated)
    run_flow, start_run = api(generated, "runs", "run_flow"), api(generated, "runs", "start_run")
    body = m.RunRequest(input_="once", story_id="oc-key")
    first = run_flow.sync_detailed(client=client, body=body, idempotency_key="oc-key-run")
    again = run_flow.sync_detailed(client=client, body=body, idempotency_key="oc-key-run")
    assert first.status_code == again.status_code == 200
    assert again.parsed.to_dict() == first.parsed.to_dict()
    assert again.headers["X-Run-ID"] == first.headers["X-Run-ID"] == first.parsed.run_id
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers

    started = start_run.sync_detailed(client=client, body=body, idempotency_key="oc-key-runs")
    replayed = start_run.sync_detailed(client=client, body=body, idempotency_key="oc-key-runs")
    assert (started.status_code, replayed.status_code) == (202, 202)
    assert replayed.parsed.run_id == started.parsed.run_id != first.parsed.run_id
    assert replayed.headers["Idempotent-Replayed"] == "true"

    # The same key with another request (another input; another route) starts nothing.
    for call in (lambda: start_run.sync_detailed(client=client, body=m.RunRequest(input_="twice", story_id="oc-key"),
                                                 idempotency_key="oc-key-runs"),
                 lambda: run_flow.sync_detailed(client=client, body=body, idempotency_key="oc-key-runs")):
        reused = call()
        assert reused.status_code == 422
        assert [(issue.loc, issue.type_) for issue in reused.parsed.detail] == [
            (["header", "idempotency-key"], "idempotency_key_reused")]


def test_the_flows_are_listed(generated, client):
    flows = api(generated, "runs", "list_flows").sync(client=client)
    assert [(f.name, f.agents, f.requires, f.start) for f in flows.flows] == [
        ("briefed", ["analyst", "reader"], ["brief"], "analyst"), ("default", ["analyst"], [], "analyst"),
        ("slow", ["analyst", "sleeper"], [], "analyst")]
    assert [[(e.from_, e.action, e.to) for e in f.edges] for f in flows.flows] == [
        [("analyst", "default", "reader")], [], [("analyst", "default", "sleeper")]]


def test_tokens_are_asked_for_on_the_streams(document, generated, client):
    # With template and mock agents there are no tokens to send: the streams are the usual ones.
    m = models(generated)
    answer = api(generated, "runs", "run_flow").sync_detailed(
        client=client, body=m.RunRequest(input_="t", story_id="oc-tokens"), tokens=True)
    assert answer.status_code == 200 and answer.parsed.result == "analysis of t"
    events = api(generated, "runs", "follow_run_events").sync(answer.parsed.run_id, client=client, tokens=True)
    assert [e[1] for e in sse_events(events)] == ["progress", "progress", "result", "done"]
    check_event_data(document, generated, sse_events(events))
    off = api(generated, "runs", "follow_run_events").sync_detailed(answer.parsed.run_id, client=client, tokens=False)
    assert off.status_code == 200
    bad = client.get_httpx_client().get(f"/runs/{answer.parsed.run_id}/events", params={"tokens": "yes"})
    assert bad.status_code == 422


def test_a_storys_runs_are_listed_newest_first_a_page_at_a_time(generated, client, flowd):
    m = models(generated)
    list_runs = api(generated, "runs", "list_runs")
    ids = [api(generated, "runs", "run_flow").sync(client=client, body=m.RunRequest(input_=str(n), story_id="oc-list")).run_id
           for n in range(3)]
    first = list_runs.sync(client=client, story_id="oc-list", limit=2)
    assert isinstance(first, m.RunList)
    assert [r.run_id for r in first.runs] == ids[:0:-1]
    assert all((r.usage.prompt_tokens, r.usage.completion_tokens) == (0, 0) for r in first.runs)
    assert isinstance(first.next_cursor, str)
    rest = list_runs.sync(client=client, story_id="oc-list", limit=2, cursor=first.next_cursor)
    assert [r.run_id for r in rest.runs] == ids[:1] and rest.next_cursor is None
    filtered = list_runs.sync(client=client, story_id="oc-list", flow="default", status=m.ListRunsStatus.SUCCEEDED)
    assert [r.run_id for r in filtered.runs] == ids[::-1]
    assert list_runs.sync(client=client, flow="removed-long-ago").runs == []
    invalid = list_runs.sync_detailed(client=client, limit=0)
    assert invalid.status_code == 422 and isinstance(invalid.parsed, m.ValidationError)
    assert list_runs.sync_detailed(client=client, cursor="not a cursor").status_code == 422
    assert api(generated, "runs", "list_runs_head").sync_detailed(client=client).status_code == 200


# Documents


def test_a_document_is_put_as_bytes_and_read_back(generated, client):
    m = models(generated)
    types = importlib.import_module(f"{generated.__name__}.types")
    put = api(generated, "documents", "put_document")
    text = "# Brief\n\nCafé, naïve — 1 ≤ 2\n"
    created = put.sync_detailed("brief", client=client, body=types.File(payload=BytesIO(text.encode())))
    assert created.status_code == 201
    assert isinstance(created.parsed, m.DocumentInfo)
    assert (created.parsed.id, created.parsed.bytes_) == ("brief", len(text.encode()))
    replaced = put.sync_detailed("brief", client=client, body=types.File(payload=BytesIO(text.encode())))
    assert replaced.status_code == 200
    empty = put.sync_detailed("empty", client=client)
    assert (empty.status_code, empty.parsed.bytes_) == (201, 0)

    assert api(generated, "documents", "get_document").sync("brief", client=client) == text
    assert api(generated, "documents", "get_document_compatible").sync("brief", client=client) == text
    assert api(generated, "documents", "get_document_status").sync("brief", client=client).exists is True
    listed = api(generated, "documents", "list_documents").sync(client=client)
    assert [(d.id, d.bytes_) for d in listed.docs] == [("brief", len(text.encode())), ("empty", 0)]

    # The flow that waited for it runs now.
    answer = api(generated, "runs", "run_flow").sync(
        client=client, body=m.RunRequest(input_="hi", story_id="oc-2", flow=m.RunRequestFlow.BRIEFED))
    assert answer.result == f"read: {text}"

    saved = api(generated, "documents", "put_document_compatible").sync(
        "old", client=client, body=m.CompatibleDocument(content="kept"))
    assert isinstance(saved, m.DocumentSaved)
    assert saved.id == "old"
    delete = api(generated, "documents", "delete_document")
    assert delete.sync_detailed("old", client=client).status_code == 204
    gone = delete.sync_detailed("old", client=client)
    assert gone.status_code == 404 and isinstance(gone.parsed, m.Detail)
    assert api(generated, "documents", "get_document").sync_detailed("old", client=client).status_code == 404
    assert api(generated, "documents", "get_document_status").sync("old", client=client).exists is False
    assert put.sync_detailed("not an id", client=client).status_code == 422
    assert put.sync_detailed("", client=client).status_code == 404


# Memory


def test_memory_is_written_read_listed_and_deleted(generated, client):
    m = models(generated)
    # The run of story oc-1 left its agent's context.
    context = api(generated, "memory", "get_memory").sync(m.Scope.ISOLATED, "analyst:oc-1", client=client)
    assert isinstance(context, m.MemoryEntry)
    assert context.value["status"] == "completed" and context.value["last_output"] == "analysis of hi"

    put = api(generated, "memory", "put_memory")
    entry = put.sync(m.Scope.SHARED, "oc-7", client=client, body=m.MemoryWrite(value={"n": [1, "two", None]}))
    assert (entry.scope, entry.key, entry.value) == (m.Scope.SHARED, "oc-7", {"n": [1, "two", None]})
    assert put.sync_detailed(m.Scope.SHARED, "bad key", client=client, body=m.MemoryWrite(value=1)).status_code == 422
    listed = api(generated, "memory", "list_memory").sync(m.Scope.SHARED, client=client, prefix="oc-")
    assert [(e.key, e.value) for e in listed.entries] == [("oc-7", {"n": [1, "two", None]})]
    delete = api(generated, "memory", "delete_memory")
    assert delete.sync_detailed(m.Scope.SHARED, "oc-7", client=client).status_code == 204
    assert delete.sync_detailed(m.Scope.SHARED, "oc-7", client=client).status_code == 404
    assert api(generated, "memory", "get_memory").sync_detailed(m.Scope.SHARED, "oc-7", client=client).status_code == 404


# Operations


def test_the_operations_routes(generated, client):
    m = models(generated)
    assert api(generated, "operations", "health").sync(client=client).status == "ok"
    assert api(generated, "operations", "readiness").sync(client=client).status == "ready"
    metrics = api(generated, "operations", "metrics").sync(client=client)
    assert isinstance(metrics, str) and "# TYPE" in metrics
    console = api(generated, "operations", "console").sync_detailed(client=client)
    assert console.status_code == 200 and console.parsed.lower().startswith("<!doctype html>")
    assert "Content-Security-Policy" in console.headers
    document = api(generated, "operations", "open_api").sync(client=client)
    assert document.additional_properties["openapi"] == "3.1.0"
    assert isinstance(document, m.OpenApiResponse200)


def test_head_answers_every_get_with_its_status_and_no_body(generated, client):
    run_id = api(generated, "runs", "run_flow").sync(
        client=client, body=models(generated).RunRequest(input_="h", story_id="oc-8")).run_id
    scope = models(generated).Scope
    calls = [
        ("runs", "get_run_head", (run_id,), {}, 200), ("runs", "get_run_head", ("nope",), {}, 404),
        ("runs", "follow_run_events_head", (run_id,), {}, 200),
        ("runs", "follow_run_events_head", (run_id,), {"last_event_id": "4"}, 204),
        ("runs", "list_flows_head", (), {}, 200),
        ("documents", "list_documents_head", (), {}, 200),
        ("documents", "get_document_head", ("brief",), {}, 200), ("documents", "get_document_head", ("nope",), {}, 404),
        ("documents", "get_document_compatible_head", ("brief",), {}, 200),
        ("documents", "get_document_status_head", ("brief",), {}, 200),
        ("memory", "list_memory_head", (scope.ISOLATED,), {"prefix": "analyst"}, 200),
        ("memory", "get_memory_head", (scope.ISOLATED, "analyst:oc-1"), {}, 200),
        ("operations", "health_head", (), {}, 200), ("operations", "readiness_head", (), {}, 200),
        ("operations", "metrics_head", (), {}, 200), ("operations", "console_head", (), {}, 200),
        ("operations", "open_api_head", (), {}, 200),
    ]
    for tag, name, args, kwargs, status in calls:
        answer = api(generated, tag, name).sync_detailed(*args, client=client, **kwargs)
        assert (answer.status_code, answer.content, answer.parsed) == (status, b"", None), name


def test_with_an_api_key_the_generated_authenticated_client_is_let_in():
    url, process, work = start_flowd(api_key=API_KEY)
    try:
        document = requests.get(f"{url}/openapi.json", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10).json()
        assert document["security"] == [{"bearerAuth": []}]
        with generate(document, PACKAGE + "_keyed") as keyed:
            checker = Checker(document)
            hooks = {"event_hooks": {"response": [checker]}}
            anonymous = keyed.Client(base_url=url, raise_on_unexpected_status=True, httpx_args=hooks)
            authenticated = keyed.AuthenticatedClient(base_url=url, token=API_KEY, raise_on_unexpected_status=True,
                                                      httpx_args=hooks)
            flows = api(keyed, "runs", "list_flows")
            refused = flows.sync_detailed(client=anonymous)
            assert refused.status_code == 401
            assert isinstance(refused.parsed, models(keyed).Detail)
            assert refused.headers["WWW-Authenticate"] == "Bearer"
            assert flows.sync_detailed(client=authenticated).status_code == 200
            assert api(keyed, "operations", "health").sync(client=anonymous).status == "ok"
            assert api(keyed, "operations", "readiness_head").sync_detailed(client=anonymous).status_code == 200
            assert api(keyed, "documents", "get_document_head").sync_detailed("x", client=anonymous).status_code == 401
            assert checker.checked == 5
    finally:
        stop_flowd(process, work)


def test_every_operation_was_driven_and_every_answer_checked(request, document, checker, flowd):
    module_tests = {name for name, value in globals().items() if name.startswith("test_") and callable(value)}
    ran = {item.name for item in request.session.items if item.module.__name__ == __name__}
    if ran != module_tests:
        pytest.skip("only some of this module's tests ran")
    declared = {(method, path) for path, item in document["paths"].items() for method in item if method != "parameters"}
    assert declared - checker.driven == set()
    assert checker.checked >= len(declared)
