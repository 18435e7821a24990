"""The real flowd binary as the client tests start it: a debug build (or $FLOWD_BINARY)
serving agents written to a temporary folder, on a free port."""
import os
import re
import shutil
import signal
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOWD = os.environ.get("FLOWD_BINARY", os.path.join(ROOT, ".build", "debug", "flowd"))


def start_flowd(agents, prefix="flowd-client-", api_key=None):
    """Writes `agents` (file name -> text) and serves them; returns (url, process, work dir)."""
    work = tempfile.mkdtemp(prefix=prefix)
    folder = os.path.join(work, "agents")
    os.makedirs(folder)
    for name, text in agents.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    env = {k: v for k, v in os.environ.items() if k != "FLOWD_API_KEY"}
    if api_key:
        env["FLOWD_API_KEY"] = api_key
    process = subprocess.Popen(
        [FLOWD, "serve", "--port", "0", "--agents", folder, "--docs", os.path.join(work, "docs"),
         "--data", os.path.join(work, "data"), "--drain-timeout", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = process.stdout.readline()
    match = re.search(r"http://\S+", line)
    assert match, f"flowd did not start: {line!r}"
    return match.group(0), process, work


def stop_flowd(process, work):
    """SIGTERM: flowd drains and exits 0; then its files go."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    shutil.rmtree(work, ignore_errors=True)
