"""flowd's event streams read by sseclient-py, a standards-following SSE client (the way a
browser's EventSource reads them), against the real flowd binary."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import httpx
import httpx_sse
import pytest
import requests
import sseclient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOWD = os.environ.get("FLOWD_BINARY", os.path.join(ROOT, ".build", "debug", "flowd"))


@pytest.fixture(scope="module")
def flowd():
    work = tempfile.mkdtemp(prefix="flowd-sse-")
    agents = os.path.join(work, "agents")
    os.makedirs(agents)
    with open(os.path.join(agents, "analyst.yaml"), "w") as f:
        f.write('kind: template\nprompt: "analysis of {{input}}"\n')
    with open(os.path.join(agents, "sleeper.yaml"), "w") as f:
        f.write('kind: mock\ndelay_ms: 300\noutput: "rested"\n')
    with open(os.path.join(agents, "napper.yaml"), "w") as f:
        f.write('kind: mock\ndelay_ms: 1000\noutput: "napped"\n')
    with open(os.path.join(agents, "flows.yaml"), "w") as f:
        f.write("default: [analyst, sleeper]\nnapping: [napper]\n")
    process = subprocess.Popen(
        [FLOWD, "serve", "--port", "0", "--agents", agents, "--docs", os.path.join(work, "docs"),
         "--data", os.path.join(work, "data"), "--heartbeat", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    url = re.search(r"http://\S+", line).group(0)
    yield url
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    shutil.rmtree(work, ignore_errors=True)


def events_of(response):
    return [(e.id, e.event, json.loads(e.data)) for e in sseclient.SSEClient(response).events()]


def test_a_run_streams_numbered_events_and_one_terminal_event(flowd):
    response = requests.post(f"{flowd}/run", json={"input": "hi", "story_id": "py-1"},
                             headers={"Accept": "text/event-stream"}, stream=True, timeout=30)
    assert response.headers["Content-Type"] == "text/event-stream"
    events = events_of(response)
    assert [e[0] for e in events] == [str(i) for i in range(1, len(events) + 1)]
    assert [(e[1], e[2].get("agent"), e[2].get("status")) for e in events] == [
        ("progress", "analyst", "started"), ("progress", "analyst", "completed"), ("result", "analyst", None),
        ("progress", "sleeper", "started"), ("progress", "sleeper", "completed"), ("result", "sleeper", None),
        ("done", None, None)]
    run_id = events[0][2]["run_id"]
    assert all(e[2]["run_id"] == run_id for e in events)
    assert events[-1][2] == {"result": "rested", "pending_docs": None, "run_id": run_id}


def test_replay_equals_the_live_stream_and_last_event_id_resumes(flowd):
    started = requests.post(f"{flowd}/runs", json={"input": "bg", "story_id": "py-2"}, timeout=10)
    assert started.status_code == 202
    run_id = started.json()["run_id"]
    live = events_of(requests.get(f"{flowd}/runs/{run_id}/events", stream=True, timeout=30))
    replay = events_of(requests.get(f"{flowd}/runs/{run_id}/events", stream=True, timeout=30))
    assert live == replay
    assert live[-1][1] == "done"
    rest = events_of(requests.get(f"{flowd}/runs/{run_id}/events", headers={"Last-Event-ID": "5"},
                                  stream=True, timeout=30))
    assert [e[0] for e in rest] == ["6", "7"]
    after_end = requests.get(f"{flowd}/runs/{run_id}/events", headers={"Last-Event-ID": "7"}, timeout=10)
    assert after_end.status_code == 204


def test_cancel_ends_the_stream_with_one_cancelled_event(flowd):
    started = requests.post(f"{flowd}/runs", json={"input": "x", "story_id": "py-3"}, timeout=10)
    run_id = started.json()["run_id"]
    stream = requests.get(f"{flowd}/runs/{run_id}/events", stream=True, timeout=30)
    client = sseclient.SSEClient(stream).events()
    first = next(client)
    assert first.event == "progress"
    time.sleep(0.05)
    assert requests.post(f"{flowd}/runs/{run_id}/cancel", timeout=10).status_code == 202
    rest = [(e.id, e.event) for e in client]
    assert rest[-1][1] in ("cancelled",)
    assert [name for _, name in rest].count("cancelled") == 1
    assert requests.get(f"{flowd}/runs/{run_id}", timeout=10).json()["status"] == "cancelled"


def test_heartbeats_are_not_events_to_sseclient_or_httpx_sse(flowd):
    """A quiet second of a run carries several `: ping` comments; neither library turns one
    into an event (a comment followed by a blank line reads as an empty `message` in httpx-sse)."""
    body = {"flow": "napping", "input": "x", "story_id": "py-ping-1"}
    raw = requests.post(f"{flowd}/run", json=body, headers={"Accept": "text/event-stream"}, timeout=30).text
    assert raw.count(": ping\n") >= 2, raw

    with httpx.Client(timeout=30) as client:
        with httpx_sse.connect_sse(client, "POST", f"{flowd}/run", json={**body, "story_id": "py-ping-2"}) as source:
            seen = [(e.event, e.data) for e in source.iter_sse()]
    assert [name for name, _ in seen] == ["progress", "progress", "result", "done"], seen
    assert all(data for _, data in seen)

    response = requests.post(f"{flowd}/run", json={**body, "story_id": "py-ping-3"},
                             headers={"Accept": "text/event-stream"}, stream=True, timeout=30)
    names = [e.event for e in sseclient.SSEClient(response).events()]
    assert names == ["progress", "progress", "result", "done"], names
