"""The web console (`GET /`) in a real browser: Debian's headless chromium driven by selenium,
against the real flowd binary. Each state the page goes through is saved as a screenshot in
$FLOWD_SCREENSHOTS (default .build/screenshots).

Skipped, saying why, only where chromium, chromedriver or selenium is not installed
(`scripts/test` installs them); a browser that is installed but fails is a failure."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

import flowd_process
from flowd_process import ROOT, stop_flowd
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOTS = os.environ.get("FLOWD_SCREENSHOTS", os.path.join(ROOT, ".build", "screenshots"))
API_KEY = "console-test-key"
WAIT = 30  # seconds: generous for a debug build on a busy machine; waits end as soon as the page is there

AGENTS = {
    "analyst.yaml": 'kind: template\ndescription: Analyses the input.\nprompt: "analysis of {{input}}"\n',
    "summarizer.yaml": 'kind: template\ndescription: Sums up the analysis.\nprompt: "summary of {{outputs.analyst}}"\n',
    "reader.yaml": 'kind: template\ndescription: Reads the brief.\nprompt: "read: {{docs.brief}}"\n',
    # Long enough that only a cancel ends it within the test.
    "sleeper.yaml": 'kind: mock\ndescription: A slow agent.\ndelay_ms: 120000\noutput: "rested"\n',
    # Long enough to cut the stream while it runs; short enough to wait for.
    "napper.yaml": 'kind: mock\ndescription: A nap.\ndelay_ms: 4000\noutput: "woke up"\n',
    "boom.yaml": 'kind: mock\ndescription: Always fails.\nfail: "out of ideas"\n',
    "writer.yaml": 'kind: template\ndescription: Writes a draft.\nprompt: "draft of {{input}}"\n',
    # Slow enough to be seen running; approves, so the loop back to the writer is drawn, not taken.
    "reviewer.yaml": 'kind: mock\ndescription: Reviews the draft.\ndelay_ms: 5000\noutput: "APPROVED"\n'
                     'routes:\n  - {match: "APPROVED", action: approve}\n',
    "flows.yaml": "default: [analyst, summarizer]\nbriefed: [analyst, reader]\nslow: [analyst, sleeper]\n"
                  "napping: [analyst, napper, summarizer]\nfailing: [analyst, boom]\n"
                  "review:\n  start: writer\n  transitions:\n    writer: {default: reviewer}\n"
                  "    reviewer: {revise: writer, approve: end}\n",
}
FLOWS = 6
DURATION = r"< 1 ms|\d+ ms|\d+\.\d\d s"  # as a step shows it


def start_flowd(api_key=None):
    return flowd_process.start_flowd(AGENTS, prefix="flowd-console-", api_key=api_key)


@pytest.fixture(scope="module")
def flowd():
    url, process, work = start_flowd()
    yield url
    stop_flowd(process, work)


@pytest.fixture(scope="module")
def flowd_with_key():
    url, process, work = start_flowd(api_key=API_KEY)
    yield url
    stop_flowd(process, work)


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed: `pip install selenium` (scripts/test does)")
    for program, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(program, os.X_OK):
            pytest.skip(f"{program} is missing: install Debian's {package} "
                        "(scripts/test does; it could not here)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    os.makedirs(SCREENSHOTS, exist_ok=True)
    yield driver
    driver.quit()


# Helpers

class CuttableProxy:
    """A TCP proxy in front of flowd that cuts every open connection on demand, as a network
    does, and keeps what the browser sent, so a test can see the Last-Event-ID it resumes with."""

    def __init__(self, upstream_url):
        host, port = re.match(r"http://([^:/]+):(\d+)", upstream_url).groups()
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sent = bytearray()
        self.lock = threading.Lock()
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source, target, record):
        try:
            while data := source.recv(65536):
                if record:
                    with self.lock:
                        self.sent += data
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def last_event_ids(self):
        with self.lock:
            return [int(n) for n in re.findall(rb"(?im)^last-event-id: *(\d+)", bytes(self.sent))]

    def close(self):
        self.listener.close()
        self.cut()


def by_css(selector):
    from selenium.webdriver.common.by import By
    return (By.CSS_SELECTOR, selector)


def wait_for(driver, condition, message):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, WAIT).until(condition, message)


def wait_visible(driver, selector):
    from selenium.webdriver.support import expected_conditions as ec
    return wait_for(driver, ec.visibility_of_element_located(by_css(selector)), f"{selector} never showed")


def find(driver, selector):
    return driver.find_element(*by_css(selector))


def find_all(driver, selector):
    return driver.find_elements(*by_css(selector))


def run_status(driver):
    return find(driver, "#run-status").get_attribute("data-status")


def wait_status(driver, status):
    wait_for(driver, lambda d: run_status(d) == status,
             f"the run never became {status} (it is {run_status(driver)!r})")


def steps(driver):
    return [(step.get_attribute("data-agent"), step.get_attribute("data-status"))
            for step in find_all(driver, "#steps li.step")]


def open_console(driver, url, flows=FLOWS):
    driver.get(url + "/")
    wait_for(driver, lambda d: len(find_all(d, "#flows li")) == flows, "the flows never showed")


def fill_run_form(driver, flow, story, text):
    from selenium.webdriver.support.ui import Select
    Select(find(driver, "#flow")).select_by_value(flow)
    for selector, value in (("#story", story), ("#input", text)):
        field = find(driver, selector)
        field.clear()
        field.send_keys(value)


def screenshot(driver, name):
    """The whole page (the window is grown to its height for the shot)."""
    width, height = driver.get_window_size()["width"], driver.get_window_size()["height"]
    page_height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, max(height, page_height + 140))
    path = os.path.join(SCREENSHOTS, name)
    assert driver.save_screenshot(path)
    driver.set_window_size(width, height)
    assert os.path.getsize(path) > 0
    return path


def assert_clean_log(driver, allowed=()):
    """No CSP or Trusted Types violation, no script error, nothing refused: the browser's log
    has no error but those `allowed` (substrings, e.g. the expected 401 before the key)."""
    entries = driver.get_log("browser")
    violations = [e["message"] for e in entries
                  if "Content Security Policy" in e["message"] or "Trusted Type" in e["message"]]
    assert not violations, violations
    errors = [e["message"] for e in entries
              if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)]
    assert not errors, errors


# Tests

def test_the_default_flow_runs_by_keyboard_and_shows_both_agents_and_the_result(browser, flowd):
    from selenium.webdriver.common.keys import Keys
    open_console(browser, flowd)
    flows = {li.get_attribute("data-flow"): li.text for li in find_all(browser, "#flows li")}
    assert "analyst → summarizer" in flows["default"]
    assert "Requires: brief" in flows["briefed"]
    assert "Requires: no documents" in flows["default"]

    fill_run_form(browser, "default", "console-1", "a notes app")
    find(browser, "#story").send_keys(Keys.ENTER)  # submits the form, as a keyboard user would

    wait_status(browser, "succeeded")
    assert steps(browser) == [("analyst", "completed"), ("summarizer", "completed")]
    for step in find_all(browser, "#steps li.step"):
        assert re.fullmatch(DURATION, step.find_element(*by_css(".duration")).text)
    outputs = [pre.text for pre in find_all(browser, "#steps pre.output")]
    assert outputs == ["analysis of a notes app", "summary of analysis of a notes app"]
    assert find(browser, "#result").is_displayed()
    assert find(browser, "#result-text").text == "summary of analysis of a notes app"
    assert not find(browser, "#error").is_displayed()
    assert not find(browser, "#retry").is_displayed()  # only a failed or cancelled run is retried
    assert not find(browser, "#run-meta").is_displayed()  # neither resumed nor a retry
    screenshot(browser, "console-1-succeeded.png")

    # The story's memory, as the run left it.
    assert find(browser, "#memory-story").get_attribute("value") == "console-1"
    find(browser, "#memory-form button").click()
    wait_for(browser, lambda d: len(find_all(d, "#memory .memory-entry")) == 2, "the memory never showed")
    keys = [entry.get_attribute("data-key") for entry in find_all(browser, "#memory .memory-entry")]
    assert sorted(keys) == ["analyst:console-1", "summarizer:console-1"]
    assert '"status": "completed"' in find(browser, "#memory").text
    screenshot(browser, "console-2-memory.png")
    assert_clean_log(browser)


def test_a_missing_document_is_uploaded_from_the_page_and_the_run_again_completes(browser, flowd):
    open_console(browser, flowd)
    fill_run_form(browser, "briefed", "console-2", "a notes app")
    find(browser, "#run").click()

    wait_visible(browser, "#pending")
    wait_status(browser, "pending_docs")
    assert [li.get_attribute("data-doc") for li in find_all(browser, "#pending-list li.doc")] == ["brief"]
    assert steps(browser) == []  # no agent ran
    box = find(browser, "#doc-brief")
    assert browser.switch_to.active_element == box  # focus went to the first upload box
    screenshot(browser, "console-3-pending-docs.png")

    box.send_keys("# Brief\nA notes app for the terminal.")
    find(browser, "#pending-list li.doc button").click()
    wait_visible(browser, '#pending-list li.doc[data-uploaded="true"]')
    assert "Uploaded (37 bytes)" in find(browser, "#pending-list .doc-status").text
    assert requests.get(f"{flowd}/docs/brief", timeout=10).text == "# Brief\nA notes app for the terminal."

    find(browser, "#run-again").click()
    wait_status(browser, "succeeded")
    assert steps(browser) == [("analyst", "completed"), ("reader", "completed")]
    assert find(browser, "#result-text").text == "read: # Brief\nA notes app for the terminal."
    assert not find(browser, "#pending").is_displayed()
    screenshot(browser, "console-4-uploaded-and-completed.png")
    assert_clean_log(browser)


def test_a_slow_run_is_cancelled_from_the_page(browser, flowd):
    from selenium.webdriver.common.keys import Keys
    open_console(browser, flowd)
    fill_run_form(browser, "slow", "console-3", "a notes app")
    find(browser, "#run").click()

    wait_visible(browser, '#steps li.step[data-agent="sleeper"][data-status="running"]')
    wait_for(browser, lambda d: re.fullmatch(DURATION, find(d, '#steps li[data-agent="sleeper"] .duration').text),
             "the running step shows no elapsed time")
    run_id = find(browser, "#run-id").text
    assert requests.get(f"{flowd}/runs/{run_id}", timeout=10).json()["status"] == "running"

    find(browser, "#cancel").send_keys(Keys.ENTER)  # a keyboard user's activation of the button
    wait_status(browser, "cancelled")
    assert steps(browser) == [("analyst", "completed"), ("sleeper", "cancelled")]
    assert not find(browser, "#cancel").is_enabled()
    assert not find(browser, "#result").is_displayed()
    assert requests.get(f"{flowd}/runs/{run_id}", timeout=10).json()["status"] == "cancelled"
    screenshot(browser, "console-5-cancelled.png")
    assert_clean_log(browser)


def test_a_failed_run_shows_the_servers_detail(browser, flowd):
    open_console(browser, flowd)
    fill_run_form(browser, "failing", "console-6", "a notes app")
    find(browser, "#run").click()
    wait_status(browser, "failed")
    assert steps(browser) == [("analyst", "completed"), ("boom", "failed")]
    assert find(browser, "#error").is_displayed()
    assert find(browser, "#error").text == "Flow execution failed: boom: out of ideas"
    assert find(browser, "#error").get_attribute("role") == "alert"
    assert not find(browser, "#result").is_displayed()
    screenshot(browser, "console-6-failed.png")
    assert_clean_log(browser)


def wait_record(url, run_id, done):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        record = requests.get(f"{url}/runs/{run_id}", timeout=10).json()
        if done(record):
            return record
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never got there: {record}")


def test_a_run_opens_from_a_link_and_its_events_are_replayed(browser, flowd):
    run_id = requests.post(f"{flowd}/runs", json={"story_id": "console-link", "input": "a link"}, timeout=10).json()["run_id"]
    wait_record(flowd, run_id, lambda record: record["status"] == "succeeded")
    open_console(browser, flowd)
    browser.get(f"{flowd}/#run={run_id}")  # the address of a run, as the page links to one
    wait_for(browser, lambda d: find(d, "#run-id").text == run_id, "the linked run never opened")
    wait_status(browser, "succeeded")
    assert steps(browser) == [("analyst", "completed"), ("summarizer", "completed")]
    assert find(browser, "#result-text").text == "summary of analysis of a link"
    assert browser.switch_to.active_element == find(browser, "#run-heading")
    assert not find(browser, "#cancel").is_enabled()
    assert not find(browser, "#run-meta").is_displayed()
    browser.get("about:blank")
    assert_clean_log(browser)


def test_a_failed_run_is_retried_from_its_failed_step_and_links_to_the_original(browser, flowd):
    from selenium.webdriver.common.keys import Keys
    open_console(browser, flowd)
    fill_run_form(browser, "failing", "console-retry", "a notes app")
    find(browser, "#run").click()
    wait_status(browser, "failed")
    original = find(browser, "#run-id").text
    retry = find(browser, "#retry")
    assert retry.is_displayed() and retry.text == "Retry from the failed step"
    screenshot(browser, "console-10-failed-with-retry.png")

    retry.send_keys(Keys.ENTER)  # a keyboard user's activation of the button
    wait_for(browser, lambda d: find(d, "#run-id").text not in ("", original), "no new run after Retry")
    retried = find(browser, "#run-id").text
    assert browser.switch_to.active_element == find(browser, "#run-heading")
    wait_status(browser, "failed")  # boom fails again: it is the step that is retried
    # The analyst's step is the original's, journaled: it is not run again and sends no event.
    assert steps(browser) == [("boom", "failed")]
    assert find(browser, "#error").text == "Flow execution failed: boom: out of ideas"
    assert find(browser, "#run-retry-of").is_displayed()
    assert find(browser, "#retry-of-id").text == original
    assert not find(browser, "#run-resumed").is_displayed()
    assert find(browser, "#retry").is_displayed()  # a retry that failed can be retried in turn
    record = requests.get(f"{flowd}/runs/{retried}", timeout=10).json()
    assert (record["retry_of"], record["status"], record["resumed"]) == (original, "failed", 0)
    screenshot(browser, "console-11-retried.png")

    find(browser, "#retry-of-link").click()  # opens the original, replaying its events
    wait_for(browser, lambda d: find(d, "#run-id").text == original, "the original never opened")
    wait_status(browser, "failed")
    assert steps(browser) == [("analyst", "completed"), ("boom", "failed")]
    assert not find(browser, "#run-meta").is_displayed()
    assert_clean_log(browser)


def serve(work, port=0):
    """flowd on the folders of `work` (as `start_flowd` made them): the same data after a restart."""
    process = subprocess.Popen(
        [flowd_process.FLOWD, "serve", "--port", str(port), "--agents", os.path.join(work, "agents"),
         "--docs", os.path.join(work, "docs"), "--data", os.path.join(work, "data"), "--drain-timeout", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={k: v for k, v in os.environ.items() if k != "FLOWD_API_KEY"})
    match = re.search(r"http://\S+", process.stdout.readline())
    assert match, "flowd did not start"
    return match.group(0), process


def test_a_run_resumed_after_a_crash_says_so(browser):
    url, process, work = start_flowd()
    try:
        run_id = requests.post(f"{url}/runs", json={"flow": "napping", "story_id": "console-crash", "input": "a nap"},
                               timeout=10).json()["run_id"]
        with requests.get(f"{url}/runs/{run_id}/events", stream=True, timeout=WAIT) as events:
            for line in events.iter_lines(decode_unicode=True):
                if '"agent":"napper"' in line.replace(" ", "") and '"started"' in line:
                    break  # killed during the napper's 4 s
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        url, process = serve(work)
        record = wait_record(url, run_id, lambda record: record["status"] != "running" or record.get("resumed"))
        assert record.get("resumed") == 1, record

        browser.get(f"{url}/#run={run_id}")
        wait_for(browser, lambda d: find(d, "#run-id").text == run_id, "the run never opened")
        wait_status(browser, "succeeded")
        assert find(browser, "#run-resumed").is_displayed()
        assert find(browser, "#run-resumed").get_attribute("data-count") == "1"
        assert find(browser, "#run-resumed").text == "Resumed once after a restart"
        notes = [li.text for li in find_all(browser, "#steps li.resumed")]
        assert len(notes) == 1 and notes[0].startswith("Resumed after a restart, going on with ")
        assert [agent for agent, status in steps(browser) if status != "interrupted"][-2:] == ["napper", "summarizer"]
        assert find(browser, "#result-text").text == "summary of analysis of a nap"
        screenshot(browser, "console-12-resumed.png")
        browser.get("about:blank")
        assert_clean_log(browser)
    finally:
        stop_flowd(process, work)


def test_on_a_narrow_screen_nothing_overflows_and_every_control_is_labelled(browser, flowd):
    size = browser.get_window_size()
    browser.set_window_size(360, 780)
    try:
        open_console(browser, flowd)
        fill_run_form(browser, "default", "console-4", "a notes app for the terminal")
        find(browser, "#run").click()
        wait_status(browser, "succeeded")
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0
        unlabelled = browser.execute_script("""
            return [...document.querySelectorAll('input, select, textarea, button')]
              .filter((c) => !(c.labels && c.labels.length) && !c.getAttribute('aria-label') && !c.textContent.trim())
              .map((c) => c.outerHTML)""")
        assert unlabelled == []
        screenshot(browser, "console-7-narrow.png")
    finally:
        browser.set_window_size(size["width"], size["height"])
    assert_clean_log(browser)


@pytest.mark.parametrize("keyed", [False, True], ids=["eventsource", "fetch"])
def test_a_cut_stream_resumes_after_the_last_event_it_showed(browser, flowd, flowd_with_key, keyed):
    proxy = CuttableProxy(flowd_with_key if keyed else flowd)
    try:
        browser.get(proxy.url + "/")
        if keyed:
            wait_visible(browser, "#key-panel")
            find(browser, "#key-input").send_keys(API_KEY)
            find(browser, "#key-form button").click()
        wait_for(browser, lambda d: len(find_all(d, "#flows li")) == FLOWS, "the flows never showed")
        fill_run_form(browser, "napping", "console-cut-" + ("fetch" if keyed else "eventsource"), "a nap")
        find(browser, "#run").click()
        wait_visible(browser, '#steps li.step[data-agent="napper"][data-status="running"]')
        assert proxy.last_event_ids() == []
        proxy.cut()  # after events 1-4: analyst started, completed, its result; napper started

        wait_status(browser, "succeeded")
        assert steps(browser) == [("analyst", "completed"), ("napper", "completed"), ("summarizer", "completed")]
        assert [pre.text for pre in find_all(browser, "#steps pre.output")] == [
            "analysis of a nap", "woke up", "summary of analysis of a nap"]
        assert proxy.last_event_ids()[:1] == [4]
    finally:
        proxy.close()
    browser.execute_script("sessionStorage.clear()")
    assert_clean_log(browser, allowed=("net::ERR_", "status of 401"))


def test_with_an_api_key_the_page_asks_for_it_once_and_sends_it(browser, flowd_with_key):
    url = flowd_with_key
    assert requests.get(f"{url}/", timeout=10).status_code == 200
    assert requests.get(f"{url}/flows", timeout=10).status_code == 401

    browser.get(url + "/")
    wait_visible(browser, "#key-panel")
    assert browser.switch_to.active_element == find(browser, "#key-input")
    screenshot(browser, "console-8-api-key.png")
    find(browser, "#key-input").send_keys(API_KEY)
    find(browser, "#key-form button").click()
    wait_for(browser, lambda d: len(find_all(d, "#flows li")) == FLOWS, "the flows never showed after the key")
    assert not find(browser, "#key-panel").is_displayed()
    assert find(browser, "#key-status").is_displayed()
    assert browser.execute_script("return sessionStorage.getItem('flowd.apiKey')") == API_KEY

    # Asked once: a reload keeps the key for this tab. Events are read through fetch here.
    open_console(browser, url)
    assert not find(browser, "#key-panel").is_displayed()
    fill_run_form(browser, "default", "console-5", "a keyed run")
    find(browser, "#run").click()
    wait_status(browser, "succeeded")
    assert steps(browser) == [("analyst", "completed"), ("summarizer", "completed")]
    assert find(browser, "#result-text").text == "summary of analysis of a keyed run"
    screenshot(browser, "console-9-api-key-run.png")
    # The one refused request is the page's first, before it had the key.
    assert_clean_log(browser, allowed=("/flows - Failed to load resource: the server responded with a status of 401",))
    browser.execute_script("sessionStorage.clear()")


# Flow graphs, live tokens, a story's runs

def graph_edges(driver, selector):
    """(from, action, to, back) of each edge the SVG at `selector` draws, with its label."""
    return [(e.get_attribute("data-from"), e.find_element(*by_css("text")).text, e.get_attribute("data-to"),
             e.get_attribute("data-back")) for e in find_all(driver, selector + " g.edge")]


def node_states(driver):
    return {n.get_attribute("data-agent"): n.get_attribute("data-state") for n in find_all(driver, "#run-graph g.node")}


def test_each_flow_is_drawn_as_a_graph_and_a_run_lights_its_running_agent(browser, flowd):
    open_console(browser, flowd)
    # Every flow has its graph; the review flow's loop goes from the reviewer back to the writer.
    assert len(find_all(browser, "#flows li svg.flow-graph")) == FLOWS
    review = '#flows li[data-flow="review"] svg'
    assert graph_edges(browser, review) == [
        ("writer", "default", "reviewer", "false"), ("reviewer", "revise", "writer", "true"),
        ("reviewer", "approve", "end", "false")]
    loop = find(browser, review + ' g.edge[data-from="reviewer"][data-to="writer"] path').get_attribute("d")
    assert " C" in loop  # a curve, not a straight line
    assert [n.get_attribute("data-agent") for n in find_all(browser, review + " g.node")] == ["writer", "reviewer", "end"]
    assert "reviewer goes to writer on revise" in find(browser, review + " title").get_attribute("textContent")
    assert graph_edges(browser, '#flows li[data-flow="default"] svg') == [("analyst", "default", "summarizer", "false")]

    fill_run_form(browser, "review", "console-graph", "a notes app")
    find(browser, "#run").click()
    wait_visible(browser, '#run-graph g.node[data-agent="reviewer"][data-state="running"]')
    assert node_states(browser) == {"writer": "completed", "reviewer": "running", "end": "idle"}
    assert find(browser, '#run-graph g.node[data-agent="writer"] .mark').get_attribute("textContent") == "✓"
    taken = {(e.get_attribute("data-from"), e.get_attribute("data-to")): e.get_attribute("data-taken")
             for e in find_all(browser, "#run-graph g.edge")}
    assert taken == {("writer", "reviewer"): "true", ("reviewer", "writer"): "false", ("reviewer", "end"): "false"}
    assert run_status(browser) == "running"
    screenshot(browser, "console-13-graph.png")

    wait_status(browser, "succeeded")
    assert node_states(browser) == {"writer": "completed", "reviewer": "completed", "end": "completed"}
    assert find(browser, '#run-graph g.edge[data-from="reviewer"][data-to="end"]').get_attribute("data-taken") == "true"
    assert steps(browser) == [("writer", "completed"), ("reviewer", "completed")]
    screenshot(browser, "console-14-graph-done.png")
    assert_clean_log(browser)


class StreamingProvider:
    """An OpenAI-compatible chat-completions endpoint that streams its answer a word at a time
    (`"stream": true`, with usage at the end), or answers it whole as plain JSON, slowly."""

    WORDS = ["Roses ", "are ", "red, ", "tokens ", "arrive ", "one ", "by ", "one."]
    DELAY = 0.4  # seconds between words

    def __init__(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                usage = {"prompt_tokens": 7, "completion_tokens": len(provider.WORDS)}
                if not request.get("stream"):
                    time.sleep(provider.DELAY * len(provider.WORDS))
                    body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(provider.WORDS)},
                                                    "finish_reason": "stop"}], "usage": usage}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for word in provider.WORDS:
                    chunk = {"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(provider.DELAY)
                self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())
                self.wfile.flush()
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def sse_names(response):
    """The event names of an SSE answer, in order."""
    return [line[len("event:"):].strip() for line in response.iter_lines(decode_unicode=True) if line.startswith("event:")]


def test_an_llm_agents_tokens_appear_as_they_come(browser):
    provider = StreamingProvider()
    agents = dict(AGENTS, **{"poet.yaml": "kind: llm\ndescription: Writes a poem.\nmodel: stub\nprompt: \"{{input}}\"\n",
                             "flows.yaml": "default: [poet]\n"})
    saved = os.environ.get("FLOWD_LLM_BASE_URL")
    os.environ["FLOWD_LLM_BASE_URL"] = provider.url  # start_flowd passes the environment on
    try:
        url, process, work = flowd_process.start_flowd(agents, prefix="flowd-console-")
    finally:
        if saved is None:
            os.environ.pop("FLOWD_LLM_BASE_URL")
        else:
            os.environ["FLOWD_LLM_BASE_URL"] = saved
    try:
        with requests.post(f"{url}/run?tokens=true", json={"story_id": "console-tokens-probe", "input": "a poem"},
                           headers={"Accept": "text/event-stream"}, stream=True, timeout=WAIT) as probe:
            names = sse_names(probe)
        assert names[-1] == "done", names
        assert "token" in names, names
        open_console(browser, url, flows=1)
        fill_run_form(browser, "default", "console-tokens", "a poem")
        find(browser, "#run").click()
        # Some words are there while the agent still runs, and the rest is still to come.
        wait_for(browser, lambda d: len(find_all(d, '#steps li[data-agent="poet"] pre.tokens')) == 1
                 and find(d, '#steps li[data-agent="poet"] pre.tokens').text.count(" ") >= 2, "no tokens while the agent ran")
        partial = find(browser, '#steps li[data-agent="poet"] pre.tokens').text
        assert run_status(browser) == "running"
        full = "".join(StreamingProvider.WORDS)
        # Tokens are not replayed: the page shows those sent since it followed the run.
        assert partial.strip() and partial in full and partial != full
        screenshot(browser, "console-16-tokens.png")
        wait_status(browser, "succeeded")
        assert find_all(browser, "#steps pre.tokens") == []  # the result replaced them
        assert [pre.text for pre in find_all(browser, "#steps pre.output")] == [full]
        assert find(browser, "#result-text").text == full
        assert_clean_log(browser)
    finally:
        stop_flowd(process, work)
        provider.close()


def test_a_storys_runs_are_listed_and_any_of_them_is_replayed(browser, flowd):
    from selenium.webdriver.common.keys import Keys
    story = "console-history"
    listed = requests.get(f"{flowd}/runs", params={"story_id": story}, timeout=10)
    assert listed.status_code == 200, listed.text
    ids = []
    for flow, text in (("default", "first"), ("failing", "second"), ("default", "third")):
        run_id = requests.post(f"{flowd}/runs", json={"flow": flow, "story_id": story, "input": text}, timeout=10).json()["run_id"]
        wait_record(flowd, run_id, lambda record: record["finished_at"] is not None)
        ids.append(run_id)

    open_console(browser, flowd)
    field = find(browser, "#history-story")
    field.clear()
    field.send_keys(story, Keys.ENTER)
    wait_for(browser, lambda d: len(find_all(d, "#history li")) == 3, "the story's runs never showed")
    items = find_all(browser, "#history li")
    assert [li.get_attribute("data-run") for li in items] == ids[::-1]  # newest first
    assert [li.get_attribute("data-status") for li in items] == ["succeeded", "failed", "succeeded"]
    for li in items:
        meta = li.find_element(*by_css(".meta")).text
        assert re.search(r"took (" + DURATION + ")", meta), meta
        assert "0 prompt + 0 completion tokens" in meta, meta  # template and mock agents use none
    assert find(browser, "#history-status").text == f"3 runs of story {story}, newest first."
    screenshot(browser, "console-15-history.png")

    # Opened by keyboard: the failed run's events are replayed, its graph shows where it failed.
    items[1].find_element(*by_css("a")).send_keys(Keys.ENTER)
    wait_for(browser, lambda d: find(d, "#run-id").text == ids[1], "the listed run never opened")
    wait_status(browser, "failed")
    assert steps(browser) == [("analyst", "completed"), ("boom", "failed")]
    assert node_states(browser) == {"analyst": "completed", "boom": "failed"}
    assert find(browser, '#history li[aria-current="true"]').get_attribute("data-run") == ids[1]
    assert browser.switch_to.active_element == find(browser, "#run-heading")
    assert_clean_log(browser)
