"""Try to reach a campaign's TLS scheduler the ways an outsider would; print one JSON line of outcomes.

Run as a script by ``test_network_exposure.py``, in its own process: a
``distributed.Client`` whose connection failed is closed by the garbage
collector, and that ``__del__`` can deadlock on the client loop's lock when it
runs while another client holds it (seen in the test process). Here every
attempt is followed by ``gc.collect()`` at a safe point, and the process ends
with ``os._exit`` after printing, so no late finalizer can hang it.

Usage::

    python tls_probe.py ADDRESS CA_FILE CERT KEY INTRUDER_CERT INTRUDER_KEY

Outcome of each attempt: ``"connected"`` (or the workers' addresses for the
campaign's own certificates), else ``"<ExceptionType>: <message>"``.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import ssl
import sys
from collections.abc import Callable
from typing import Any


def _attempt(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except Exception as exc:  # noqa: BLE001 - the outcome is what this probe reports
        return f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    finally:
        gc.collect()  # finalize a half-made Client here, not at an arbitrary later point


def main(argv: list[str]) -> dict[str, Any]:
    """Run every attempt against ``argv[0]`` and return their outcomes."""
    from distributed import Client
    from distributed.security import Security

    address, ca, cert, key, bad_cert, bad_key = argv
    port = int(address.rsplit(":", 1)[1])

    def connect(addr: str, security: Security | None) -> Any:
        client = Client(addr, security=security, timeout="5s") if security else Client(addr, timeout="5s")
        try:
            return sorted(client.scheduler_info(n_workers=-1)["workers"]) or "connected"
        finally:
            client.close()

    def tls_without_certificate() -> str:
        context = ssl.create_default_context(cafile=ca)
        context.check_hostname = False
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, context.wrap_socket(raw) as tls:
            data = tls.recv(16)  # TLS 1.3: the server's verdict on our (missing) certificate arrives here
        return "connected" if data else "ConnectionClosed: the server closed the connection"

    def security(c: str, k: str) -> Security:
        return Security(tls_ca_file=ca, tls_client_cert=c, tls_client_key=k, require_encryption=True)

    return {
        "no_security": _attempt(lambda: connect(address, None)),
        "tls_without_certificate": _attempt(tls_without_certificate),
        "certificate_of_another_ca": _attempt(lambda: connect(address, security(bad_cert, bad_key))),
        "plain_tcp": _attempt(lambda: connect(address.replace("tls://", "tcp://"), None)),
        "campaign_certificates": _attempt(lambda: connect(address, security(cert, key))),
    }


if __name__ == "__main__":
    outcomes = main(sys.argv[1:])
    print(json.dumps(outcomes), flush=True)
    os._exit(0)
