"""What a new user meets first: the README's commands, run as written against the real binary,
and the container image's configuration (its command, environment and health check), checked
without Docker. `scripts/check-dockerfile` checks the image's release build in full."""
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOWD = os.environ.get("FLOWD_BINARY", os.path.join(ROOT, ".build", "debug", "flowd"))


def read(name):
    with open(os.path.join(ROOT, name)) as f:
        return f.read()


def start(args, env=None, cwd=None):
    process = subprocess.Popen([FLOWD, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env=env, cwd=cwd)
    line = process.stdout.readline()
    match = re.search(r"http://(\S+?):(\d+)", line)
    assert match, f"flowd did not start: {line!r}"
    return process, match.group(1), int(match.group(2))


def stop(process):
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


@pytest.fixture
def workdir():
    work = tempfile.mkdtemp(prefix="flowd-readme-")
    yield work
    shutil.rmtree(work, ignore_errors=True)


def test_the_readmes_try_it_commands_work_as_written(workdir):
    """Every command of "Try it" exits 0 against a server of the shipped agents, and the
    document it uploads is the one written in the README, not an empty body."""
    block = re.search(r"## Try it.*?```sh\n(.*?)```", read("README.md"), re.S).group(1)
    assert "@brief.md" not in block
    process, host, port = start(["serve", "--port", "0", "--agents", os.path.join(ROOT, "agents"),
                                 "--docs", os.path.join(workdir, "docs"), "--data", os.path.join(workdir, "data")])
    try:
        script = block.replace("localhost:8080", f"{host}:{port}")
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60,
                                cwd=workdir)
        assert result.returncode == 0, result.stderr
        brief = requests.get(f"http://{host}:{port}/docs/project-brief", timeout=10)
        assert brief.status_code == 200 and "Notes CLI" in brief.text
    finally:
        stop(process)


def test_the_readmes_flowd_run_example_reads_what_the_server_wrote(workdir):
    """`scripts/serve` keeps its files in .flowd/; the README's `flowd run` names those folders,
    so it sees the documents and memory the server left there."""
    example = re.search(r"```sh\n(\.build/release/flowd run .*?)\n```", read("README.md"), re.S).group(1)
    args = shlex.split(example.replace("\\\n", " "))[1:]
    os.symlink(os.path.join(ROOT, "agents"), os.path.join(workdir, "agents"))
    # What scripts/serve would have left: a story's first run, and the flow's document.
    process, host, port = start(["serve", "--port", "0", "--agents", "agents", "--docs", ".flowd/docs", "--data", ".flowd/data"],
                                cwd=workdir)
    try:
        first = requests.post(f"http://{host}:{port}/run", json={"input": "first", "story_id": "story-1"}, timeout=30)
        assert first.status_code == 200
    finally:
        stop(process)
    result = subprocess.run([FLOWD, *args], capture_output=True, text=True, timeout=60, cwd=workdir)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["pending_docs"] is None
    # The analyst carried the server's run of that story forward ({{memory.last_output}}).
    assert "Previous analysis: Analysis of: first" in answer["result"], answer["result"]


def test_the_readme_links_only_files_of_the_repository():
    for target in re.findall(r"\]\(([^)#]+)\)", read("README.md")):
        if target.startswith("http"):
            continue
        assert not target.startswith(".."), f"README links outside the repository: {target}"
        assert os.path.exists(os.path.join(ROOT, target)), f"README links a missing file: {target}"


def dockerfile_runtime_stage():
    return read("Dockerfile").split("\nFROM ")[-1]


def test_the_image_is_configured_by_environment_alone():
    stage = dockerfile_runtime_stage()
    assert re.search(r'^CMD \["serve"\]$', stage, re.M), "the image's command carries flags that beat FLOWD_*"
    assert re.search(r"FLOWD_HOST=0\.0\.0\.0", stage)
    assert "libmimalloc2.0" in stage
    assert "libmimalloc2.0" in read("docs/operations.md")


def test_the_image_build_is_reproducible_and_fetches_dependencies_in_a_layer_of_their_own():
    manifest = read("Package.swift")
    packages = re.findall(r"\.package\(url: \"[^\"]+\", (\w+):", manifest)
    assert packages and set(packages) == {"exact"}, f"dependencies not pinned exactly: {packages}"
    build = read("Dockerfile").split("\nFROM ")[1]
    assert build.index("swift package resolve") < build.index("COPY Sources"), "resolve must come before the sources"
    assert build.index("COPY Package.swift") < build.index("swift package resolve")


@pytest.mark.parametrize("how", ["environment", "flag", "flag="])
def test_the_health_check_follows_the_port_flowd_listens_on(workdir, how):
    """The HEALTHCHECK's own command, run by bash as Docker runs it, with the PID of the flowd
    started here in place of the container's PID 1."""
    health = re.search(r'^HEALTHCHECK .*\n\s+CMD \["/bin/bash", "-c", "(.*)"\]$', read("Dockerfile"), re.M).group(1)
    health = health.replace("\\\\", "\\")
    env = {"PATH": os.environ["PATH"], "FLOWD_HOST": "127.0.0.1", "FLOWD_AGENTS": os.path.join(ROOT, "agents"),
           "FLOWD_DOCS": os.path.join(workdir, "docs"), "FLOWD_DATA": os.path.join(workdir, "data")}
    free = socket_port()
    if how == "environment":
        process, _, port = start(["serve"], env={**env, "FLOWD_PORT": str(free)})
    elif how == "flag":
        process, _, port = start(["serve", "--port", str(free)], env={**env, "FLOWD_PORT": "1"})
    else:
        process, _, port = start(["serve", f"--port={free}"], env={**env, "FLOWD_PORT": "1"})
    try:
        assert port == free
        command = health.replace("/proc/1/", f"/proc/{process.pid}/")
        check_env = {"PATH": os.environ["PATH"], "FLOWD_PORT": str(free) if how == "environment" else "1"}
        assert subprocess.run(["/bin/bash", "-c", command], env=check_env, timeout=5).returncode == 0
    finally:
        stop(process)


def socket_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
