"""Certificates for a campaign's Dask traffic: a private CA and one certificate signed by it.

``surrogate-al tls DIR`` makes them with the ``openssl`` program (argument
lists, no shell), so that a batch-queue cluster can run on ``tls://`` with
files only the user's account can read. The driver, the scheduler and every
worker present the same certificate; a connection without a certificate
signed by this CA is refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from surrogate_al.errors import ConfigError

__all__ = ["TLSFiles", "make_certificates"]

OPENSSL_TIMEOUT = 300  # seconds; a 4096-bit key takes a few seconds on a slow node
_KEPT = ("ca.pem", "ca.key", "dask.pem", "dask.key")  # what make_certificates leaves, mode 600
_SCRATCH = ("dask.csr", "ca.srl")  # what openssl leaves on the way


@dataclass(frozen=True)
class TLSFiles:
    """The three files ``cluster.tls`` names.

    Attributes:
        ca_file: the CA certificate (PEM).
        cert: the certificate every party presents (PEM), signed by the CA.
        key: its private key (PEM, mode 600).
    """

    ca_file: Path
    cert: Path
    key: Path

    def workflow_line(self) -> str:
        """The ``tls = {...}`` line for the workflow's ``[cluster]`` section."""
        return f'tls = {{ ca_file = "{self.ca_file}", cert = "{self.cert}", key = "{self.key}" }}'


def make_certificates(directory: Path, *, days: int = 365, bits: int = 4096, force: bool = False) -> TLSFiles:
    """Make a private CA and one certificate signed by it in ``directory``.

    Every file is created readable by its owner only (the CA's key too, which
    signs nothing after this; keep it or delete it). The certificate signing
    request is removed.

    Args:
        directory: where the files go (``ca.pem``, ``ca.key``, ``dask.pem``,
            ``dask.key``); created with mode 700 when missing.
        days: validity of both certificates.
        bits: RSA key size.
        force: replace existing files of those names.

    Returns:
        The paths ``cluster.tls`` needs.

    Raises:
        ConfigError: ``openssl`` is not on PATH, a file exists and ``force``
            is not set, ``days`` or ``bits`` is out of range, or ``openssl``
            fails (its last line is in the message).
    """
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ConfigError(f"days = {days!r}; expected a whole number of days >= 1, e.g. 365")
    if bits not in (2048, 3072, 4096):
        raise ConfigError(f"bits = {bits!r}; expected 2048, 3072 or 4096")
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ConfigError("openssl is not on PATH; install it (Debian: apt-get install openssl) and run this again")
    directory = directory.expanduser().resolve()
    existing = [n for n in _KEPT if (directory / n).exists()]
    if existing and not force:
        raise ConfigError(
            f"{directory}: {', '.join(existing)} already exist; use them as they are, or pass --force to replace them"
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    old_umask = os.umask(0o077)  # every file openssl writes is the owner's alone
    try:
        for name in _KEPT + _SCRATCH:
            (directory / name).unlink(missing_ok=True)

        def run(*args: str) -> None:
            done = subprocess.run([openssl, *args], cwd=directory, capture_output=True, text=True,
                                  timeout=OPENSSL_TIMEOUT, check=False)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                raise ConfigError(f"openssl {args[0]} failed in {directory} (exit {done.returncode}): {last}")

        key = f"rsa:{bits}"
        run("req", "-x509", "-newkey", key, "-nodes", "-days", str(days), "-subj", "/CN=surrogate-al-ca",
            "-keyout", "ca.key", "-out", "ca.pem")
        run("req", "-newkey", key, "-nodes", "-subj", "/CN=surrogate-al", "-keyout", "dask.key", "-out", "dask.csr")
        run("x509", "-req", "-in", "dask.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", str(days), "-out", "dask.pem")
    finally:
        os.umask(old_umask)
        (directory / "dask.csr").unlink(missing_ok=True)
    for name in _KEPT:
        os.chmod(directory / name, 0o600)
    return TLSFiles(ca_file=directory / "ca.pem", cert=directory / "dask.pem", key=directory / "dask.key")
