"""Fixtures: the quiver CLI, example projects made by `quiver init`, real redis-server and
`quiver serve` processes on free loopback ports, each stopped by pid."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator, List

import pytest

REPO = Path(__file__).resolve().parents[2]


def _quiver_bin() -> Path:
    path = Path(os.environ.get("QUIVER_BIN", REPO / "target" / "debug" / "quiver"))
    if not path.is_file():
        pytest.fail(
            f"the quiver CLI is not built at {path}: run `cargo build -p quiver-cli` "
            "(or set QUIVER_BIN)"
        )
    return path


@pytest.fixture(scope="session")
def quiver_bin() -> Path:
    return _quiver_bin()


def run_cli(quiver_bin: Path, project: Path, *args: str) -> str:
    """Runs `quiver --project PROJECT ARGS...`; its stdout, or a failure with its stderr."""
    done = subprocess.run(
        [str(quiver_bin), "--project", str(project), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"quiver {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_project(quiver_bin: Path, path: Path) -> Path:
    done = subprocess.run(
        [str(quiver_bin), "init", str(path), "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"quiver init exited {done.returncode}:\n{done.stderr}")
    return path


@pytest.fixture(scope="session")
def example_template(quiver_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `quiver init` per session; tests copy it (the sample data takes a moment)."""
    return init_project(quiver_bin, tmp_path_factory.mktemp("template") / "demo")


@pytest.fixture
def project(example_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the example project (embedded online store, Parquet offline store)."""
    dest = tmp_path / "demo"
    shutil.copytree(example_template, dest)
    return dest


class RedisServer:
    def __init__(self, tmp: Path):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"redis-server did not answer on port {self.port}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def use_redis(project: Path, url: str) -> None:
    """Points the project's online store at Redis (`QUIVER__*` overrides are per process, so
    the file itself is edited: the CLI and the library both read it)."""
    config = project / "quiver.yaml"
    text = config.read_text()
    start = text.index("online_store:")
    rest = text[start:].split("\n")
    end = 1
    while end < len(rest) and (rest[end].startswith(" ") or not rest[end].strip()):
        end += 1
    block = f"online_store:\n  type: redis\n  url: {url}\n"
    config.write_text(text[:start] + block + "\n".join(rest[end:]))


class Server:
    def __init__(self, quiver_bin: Path, project: Path, extra: List[str]):
        self.port = free_port()
        self.log = open(project / "serve.log", "w")
        self.proc = subprocess.Popen(
            [str(quiver_bin), "--project", str(project), "serve", "--host", "127.0.0.1",
             "--port", str(self.port), *extra],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"quiver serve exited: {(project / 'serve.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail("quiver serve did not become ready in 60 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()


@pytest.fixture
def serve(quiver_bin: Path):
    """Starts `quiver serve` for a project; every server started is killed at teardown."""
    started: List[Server] = []

    def start(project: Path, *extra: str) -> Server:
        server = Server(quiver_bin, project, list(extra))
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()


def cli_get(quiver_bin: Path, project: Path, features: List[str], entities: List[str]) -> dict:
    """`quiver get --json`: Feast's response shape."""
    args = ["get", *features, "--json"]
    for e in entities:
        args += ["--entity", e]
    return json.loads(run_cli(quiver_bin, project, *args))
