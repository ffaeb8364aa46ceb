"""Criterion 13: network exposure of a campaign's Dask cluster.

A real ``surrogate-al run`` driver with a real LocalCluster (worker processes)
is held mid-campaign (``hold_sims``) while the test inspects, with psutil, every
listening TCP socket of the driver and its child processes (scheduler,
nannies, workers, dashboard), and, with TLS configured in the workflow, tries
to reach the scheduler without the campaign's certificates. Certificates are
made with ``openssl`` as docs/hpc.md tells users to (the ``cryptography``
package behind ``tls = "temporary"`` is not installed here).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from surrogate_al.store import CampaignStore

from .held import StderrLines, start_driver, write_held_workflow
from .helpers import assert_exactly_budget, reap

WORKERS = 2  # the held workflow's [cluster] workers


def _listening(driver_pid: int) -> list[tuple[int, str, int]]:
    """``(pid, ip, port)`` of every TCP socket in LISTEN state of the driver and its descendants."""
    pids = {driver_pid} | {p.pid for p in psutil.Process(driver_pid).children(recursive=True)}
    return sorted(
        (c.pid, c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    )


def _scheduler_address(lines: StderrLines) -> str | None:
    for line in lines.snapshot():
        found = re.search(r"Dask scheduler at (\S+)", line)
        if found:
            return found[1]
    return None


def _worker_pids(tmp_path: Path) -> set[int]:
    """Worker processes that are running a (held) simulation: ``hold_sims`` marks them."""
    return {int(p.name.rsplit("-", 1)[1]) for p in tmp_path.glob("hold.started-*")}


def _wait_for_cluster(driver: subprocess.Popen[str], lines: StderrLines, tmp_path: Path) -> tuple[str, list[tuple[int, str, int]]]:
    """Wait until the scheduler is logged and every busy worker process listens; return address and sockets."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if driver.poll() is not None:
            raise AssertionError(f"driver exited ({driver.returncode}): {lines.text(wait=5)[-3000:]}")
        address, workers = _scheduler_address(lines), _worker_pids(tmp_path)
        if address and len(workers) == WORKERS:
            sockets = _listening(driver.pid)
            if workers <= {pid for pid, _, _ in sockets}:
                return address, sockets
        time.sleep(0.1)
    raise AssertionError(f"cluster not up in time: {lines.text()[-3000:]}")


def _assert_all_on_loopback(sockets: list[tuple[int, str, int]], driver_pid: int, scheduler_port: int) -> None:
    exposed = [s for s in sockets if s[1] != "127.0.0.1"]
    assert not exposed, f"listening beyond loopback: {exposed}"
    assert (driver_pid, "127.0.0.1", scheduler_port) in sockets, "the scheduler socket was not seen"
    assert len({pid for pid, _, _ in sockets}) == 1 + WORKERS, f"expected the driver and {WORKERS} workers: {sockets}"


def _finish(driver: subprocess.Popen[str], hold: Path, lines: StderrLines) -> None:
    hold.unlink()
    driver.wait(300)
    assert driver.returncode == 0, lines.text(wait=10)[-3000:]


def test_every_listening_socket_of_a_default_local_campaign_is_on_loopback(tmp_path: Path) -> None:
    """Default [cluster]: the scheduler, the nannies (in the driver) and the worker processes listen on 127.0.0.1 only."""
    hold = tmp_path / "hold"
    hold.touch()
    workflow = write_held_workflow(tmp_path, name="net", budget=4, hold=hold)
    driver = start_driver(["-v", "run", str(workflow), "--no-progress"])
    lines = StderrLines(driver)
    try:
        address, sockets = _wait_for_cluster(driver, lines, tmp_path)
        print("listening:", sockets)
        assert address.startswith("tcp://127.0.0.1:")
        _assert_all_on_loopback(sockets, driver.pid, int(address.rsplit(":", 1)[1]))
        _finish(driver, hold, lines)
    finally:
        hold.unlink(missing_ok=True)
        reap(driver)
    assert_exactly_budget(tmp_path / "net.h5", 4)


def _make_certificates(directory: Path) -> dict[str, Path]:
    """The campaign's CA and certificate (``surrogate-al tls``), plus an intruder's certificate from another CA."""
    directory.mkdir()
    made = subprocess.run([sys.executable, "-m", "surrogate_al.cli", "tls", str(directory), "--days", "2"],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=120)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=other-ca",
            "-keyout", "other-ca.key", "-out", "other-ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=intruder", "-keyout", "intruder.key",
            "-out", "intruder.csr")
    openssl("x509", "-req", "-in", "intruder.csr", "-CA", "other-ca.pem", "-CAkey", "other-ca.key",
            "-CAcreateserial", "-days", "2", "-out", "intruder.pem")
    return {name: directory / name for name in ("ca.pem", "dask.pem", "dask.key", "intruder.pem", "intruder.key")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_with_tls_only_the_campaigns_certificates_reach_the_scheduler(tmp_path: Path) -> None:
    """[cluster] tls = {ca_file, cert, key} (and a dashboard): every socket on loopback; a client without the
    campaign's certificates cannot connect (no security, no client certificate, another CA's certificate, plain
    tcp://), a client with them can, and the campaign itself runs to its budget over tls://.
    """
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test certificates (as docs/hpc.md does)")
    certs = _make_certificates(tmp_path / "tls")
    dashboard = _free_port()
    hold = tmp_path / "hold"
    hold.touch()
    workflow = write_held_workflow(
        tmp_path, name="tls", budget=4, hold=hold,
        cluster_extra=(
            f'dashboard = "127.0.0.1:{dashboard}"\n'
            f'tls = {{ ca_file = "{certs["ca.pem"]}", cert = "{certs["dask.pem"]}", key = "{certs["dask.key"]}" }}\n'
        ),
    )
    driver = start_driver(["-v", "run", str(workflow), "--no-progress"])
    lines = StderrLines(driver)
    try:
        address, sockets = _wait_for_cluster(driver, lines, tmp_path)
        print("scheduler:", address, "listening:", sockets)
        assert address.startswith("tls://127.0.0.1:")
        port = int(address.rsplit(":", 1)[1])
        _assert_all_on_loopback(sockets, driver.pid, port)
        assert (driver.pid, "127.0.0.1", dashboard) in sockets, "the dashboard is not where the workflow put it"
        with urllib.request.urlopen(f"http://127.0.0.1:{dashboard}/health", timeout=10) as page:
            assert page.read() == b"ok"  # it is the live dashboard, on loopback

        # Outsiders try to connect from another process (see tls_probe for why not from this one).
        probe = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("tls_probe.py")), address, str(certs["ca.pem"]),
             str(certs["dask.pem"]), str(certs["dask.key"]), str(certs["intruder.pem"]), str(certs["intruder.key"])],
            capture_output=True, text=True, timeout=180, check=False,
        )
        assert probe.returncode == 0, probe.stderr[-3000:]
        outcome = json.loads(probe.stdout.strip().splitlines()[-1])
        print("outsiders:", json.dumps(outcome, indent=1))
        # No security at all: the client cannot even start a TLS connection.
        assert outcome["no_security"].startswith("TypeError: TLS expects a `ssl_context`")
        # TLS that trusts the campaign's CA but shows no certificate: the scheduler demands one.
        # (normally the TLS 1.3 alert "certificate required"; a reset if the server closes first)
        assert outcome["tls_without_certificate"].startswith(
            ("SSLError", "SSLEOFError", "ConnectionResetError", "ConnectionClosed")
        ), outcome["tls_without_certificate"]
        # A certificate from another CA is refused in the handshake; plain TCP to the TLS port too.
        refused = re.compile(r"^(Fatal)?CommClosedError: |^OSError: |^TimeoutError: ")  # distributed's refusals
        assert refused.match(outcome["certificate_of_another_ca"]), outcome["certificate_of_another_ca"]
        assert refused.match(outcome["plain_tcp"]), outcome["plain_tcp"]
        # The campaign's certificates do connect (so the refusals above are about certificates).
        workers = outcome["campaign_certificates"]
        assert isinstance(workers, list) and len(workers) == WORKERS, workers
        assert all(w.startswith("tls://127.0.0.1:") for w in workers), workers

        _finish(driver, hold, lines)
    finally:
        hold.unlink(missing_ok=True)
        reap(driver)
    store = tmp_path / "tls.h5"
    assert_exactly_budget(store, 4)
    with CampaignStore.open(store, "r") as st:  # every run went through the campaign's own tls:// client
        assert all(r.worker.startswith("tls://127.0.0.1:") for r in st.final_runs())
