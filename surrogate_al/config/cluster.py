"""``[cluster]``: where runs execute (Dask): a local cluster, an address, or a batch queue."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializationInfo,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from surrogate_al.config.messages import FieldError, error_parts, only_when, show
from surrogate_al.config.values import MODEL_CONFIG, ExistingFile, FrozenMap, PlainTable

__all__ = ["JOBQUEUE_KINDS", "AdaptSpec", "ClusterSpec", "TLSFiles", "check_job_script_options"]

#: Cluster kinds served by dask-jobqueue.
JOBQUEUE_KINDS: tuple[str, ...] = ("slurm", "pbs", "sge", "lsf", "htcondor")
_MEMORY = re.compile(r"^(auto|\d+(\.\d+)?\s*([kmgtp]i?)?b?)$", re.IGNORECASE | re.ASCII)
_ADDRESS = re.compile(r"^(?P<scheme>tcp|tls|ucx|ws|wss)://(?P<host>\[[^\]]+\]|[^:/\s]+):(?P<port>[0-9]{1,5})$")


class AdaptSpec(BaseModel):
    """``[cluster.adapt]``: let dask-jobqueue scale the number of jobs with the load."""

    model_config = MODEL_CONFIG

    minimum: StrictInt = Field(default=0, ge=0, description="fewest jobs")
    maximum: StrictInt = Field(ge=1, description="most jobs")

    @model_validator(mode="after")
    def _check_order(self) -> AdaptSpec:
        if self.minimum > self.maximum:
            raise FieldError(
                f"minimum = {self.minimum} is larger than maximum = {self.maximum}; "
                "use 0 <= minimum <= maximum",
                ("minimum",),
            )
        return self


class TLSFiles(BaseModel):
    """``[cluster.tls]``: certificate files for encrypted Dask connections."""

    model_config = MODEL_CONFIG

    ca_file: ExistingFile = Field(description="certificate authority file")
    cert: ExistingFile = Field(description="certificate file")
    key: ExistingFile = Field(description="private key file")


def _validate_tls(value: Any, info: ValidationInfo) -> TLSFiles | str | None:
    """``None``, the string 'temporary', or a table of files (one validator: no union noise in errors)."""
    if value is None or value == "temporary" or isinstance(value, TLSFiles):
        return value
    if isinstance(value, Mapping):
        # Imported here: the whole-workflow model holds this section, so it imports this module first.
        from surrogate_al.config.spec import WorkflowSpec

        try:
            return TLSFiles.model_validate(value, context=info.context)
        except ValidationError as exc:
            loc, message = error_parts(exc.errors()[0], WorkflowSpec, prefix=("cluster", "tls"))
            raise FieldError(message, loc) from exc
    raise FieldError(
        f"wrong value (got {show(value)}); expected a table {{ca_file, cert, key}} of certificate files, "
        "or 'temporary' for in-memory certificates on a local cluster"
    )


def _serialize_tls(value: TLSFiles | str | None, info: SerializationInfo) -> Any:
    # Explicit: pydantic's union serializer cannot infer the member after a PlainValidator.
    return value.model_dump(mode=info.mode) if isinstance(value, TLSFiles) else value


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


def _validate_dashboard(value: Any) -> bool | str:
    """``false``, or 'HOST:PORT'."""
    if value is False:
        return False
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        if sep and host.strip("[]") and re.fullmatch(r"[0-9]{1,5}", port) and int(port) <= 65535:
            return value
    raise FieldError(
        f"wrong value (got {show(value)}); expected false (no dashboard) or 'HOST:PORT', e.g. '127.0.0.1:8787'"
    )


_LOCAL_ONLY = (
    "workers",
    "threads_per_worker",
    "processes",
    "memory_limit",
    "dashboard",
    "host",
    "allow_remote",
    "worker_gpus",
)
_JOBQUEUE_ONLY = ("jobs", "adapt", "options", "gpus_per_worker", "insecure")
# dask-jobqueue keywords that other cluster keys control; two sources of truth would disagree.
_MANAGED_JOBQUEUE_OPTIONS = {"n_workers": "cluster.jobs", "security": "cluster.tls", "protocol": "cluster.tls"}
# Any C0 control character or DEL: in a job script a newline or carriage return starts a new line of shell.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# dask-jobqueue options written as one word of a batch directive ("#SBATCH -p %s", "#PBS -A %s", ...).
_DIRECTIVE_WORDS = (
    "job_name", "queue", "account", "project", "walltime", "memory", "job_mem", "job_cpu", "resource_spec",
    "interface", "log_directory",
)
# Options written unquoted into the worker's shell command; "$NAME" and "${NAME}" stay (expanded in the job).
_SHELL_WORDS = ("python", "local_directory")
_SHELL_WORD_LISTS = ("worker_extra_args",)
_SHELL_SPECIAL = re.compile(r"[\s'\"`;&|<>()\\*?!#]")


class ClusterSpec(BaseModel):
    """``[cluster]``: where runs execute (Dask). Everything binds to localhost unless told otherwise.

    After validation ``workers`` is set for ``kind = 'local'`` (default: campaign.concurrency)
    and None for other kinds.
    """

    model_config = MODEL_CONFIG

    kind: Literal["local", "address", "slurm", "pbs", "sge", "lsf", "htcondor"] = Field(
        default="local", description="cluster kind"
    )
    workers: StrictInt | None = Field(default=None, ge=1, description="local workers (default: concurrency)")
    threads_per_worker: StrictInt = Field(default=1, ge=1, description="threads per local worker")
    processes: StrictBool = Field(default=True, description="local workers are processes (not threads)")
    memory_limit: StrictStr | None = Field(default=None, description="memory per local worker, e.g. '4GB'")
    dashboard: Annotated[bool | str, PlainValidator(_validate_dashboard)] = Field(
        default=False, description="false or 'HOST:PORT'"
    )
    host: StrictStr = Field(default="127.0.0.1", description="interface the local scheduler binds to")
    allow_remote: StrictBool = Field(default=False, description="allow non-loopback host/dashboard")
    worker_gpus: StrictInt = Field(default=0, ge=0, description="GPU resource on each local worker")
    address: StrictStr | None = Field(default=None, description="scheduler address (kind = 'address')")
    jobs: StrictInt = Field(default=1, ge=1, description="batch jobs to submit (jobqueue kinds)")
    adapt: AdaptSpec | None = Field(default=None, description="adaptive scaling {minimum, maximum}")
    options: PlainTable = Field(default_factory=FrozenMap, description="dask-jobqueue keyword arguments")
    gpus_per_worker: StrictInt = Field(default=0, ge=0, description="GPU resource per jobqueue worker")
    tls: Annotated[TLSFiles | str | None, PlainValidator(_validate_tls), PlainSerializer(_serialize_tls)] = Field(
        default=None, description="{ca_file, cert, key} or 'temporary'"
    )
    insecure: StrictBool = Field(default=False, description="allow a batch-queue cluster on plain TCP")

    @model_validator(mode="after")
    def _check_kind(self) -> ClusterSpec:
        if self.kind != "local":
            only_when(self, _LOCAL_ONLY, "kind = 'local'")
            if self.tls == "temporary":
                raise FieldError(
                    "'temporary' certificates only work for kind = 'local'; give {ca_file, cert, key} files",
                    ("tls",),
                )
        else:
            self._check_local()
        if self.kind == "address":
            self._check_address()
        else:
            only_when(self, ("address",), "kind = 'address'")
        if self.kind in JOBQUEUE_KINDS:
            if self.adapt is not None:
                only_when(self, ("jobs",), "[cluster.adapt] is absent (adapt decides the number of jobs)",
                           "either jobs or adapt, not both")
            for name in self.options:
                if name in _MANAGED_JOBQUEUE_OPTIONS:
                    raise FieldError(
                        f"is set by {_MANAGED_JOBQUEUE_OPTIONS[name]}; remove it from cluster.options",
                        ("options", name),
                    )
            check_job_script_options(self.options)
            self._check_encryption()
        else:
            only_when(
                self,
                _JOBQUEUE_ONLY,
                f"kind is a batch-queue kind ({', '.join(JOBQUEUE_KINDS)})",
                "kind = 'slurm' (or another batch-queue kind)",
            )
        return self

    def _check_encryption(self) -> None:
        """A batch-queue cluster is encrypted (``tls``) or says ``insecure = true``, not both."""
        if self.tls is None and not self.insecure:
            raise FieldError(
                f"kind = {self.kind!r} without TLS would run the scheduler on plain TCP, where anyone on the "
                "cluster network can run code as you through it; give certificate files "
                "tls = {ca_file, cert, key} (docs/hpc.md, 'TLS on a shared cluster'), or set "
                "insecure = true if the network is yours alone",
                ("tls",),
            )
        if self.tls is not None and self.insecure:
            raise FieldError("insecure = true contradicts the certificates in cluster.tls; remove one", ("insecure",))

    def _check_local(self) -> None:
        if not self.host.strip():
            raise FieldError("is empty; give the interface to bind, e.g. '127.0.0.1'", ("host",))
        if not self.allow_remote:
            if not _is_loopback(self.host):
                raise FieldError(
                    f"{show(self.host)} is not a loopback address, so the scheduler would be reachable from "
                    "other machines; use '127.0.0.1', or set allow_remote = true if you mean it",
                    ("host",),
                )
            if isinstance(self.dashboard, str) and not _is_loopback(self.dashboard.rpartition(":")[0]):
                raise FieldError(
                    f"{show(self.dashboard)} is not on a loopback address, so the dashboard would be reachable "
                    "from other machines; use '127.0.0.1:8787', or set allow_remote = true if you mean it",
                    ("dashboard",),
                )
        if self.memory_limit is not None and not _MEMORY.match(self.memory_limit.strip()):
            raise FieldError(
                f"{show(self.memory_limit)} is not a memory size; write e.g. '4GB', '512MiB' or 'auto'",
                ("memory_limit",),
            )

    def _check_address(self) -> None:
        if self.address is None:
            raise FieldError(
                "required for kind = 'address'; give the scheduler address, e.g. 'tcp://127.0.0.1:8786'",
                ("address",),
            )
        match = _ADDRESS.match(self.address)
        if match is None or int(match["port"]) > 65535:
            raise FieldError(
                f"{show(self.address)} is not a scheduler address; write PROTOCOL://HOST:PORT, "
                "e.g. 'tcp://127.0.0.1:8786' or 'tls://scheduler.example.org:8786'",
                ("address",),
            )
        encrypted = match["scheme"] in ("tls", "wss")
        if encrypted and not isinstance(self.tls, TLSFiles):
            raise FieldError(
                f"{show(self.address)} is encrypted; give certificate files in [cluster.tls] "
                "(ca_file, cert, key)",
                ("tls",),
            )
        if not encrypted and self.tls is not None:
            raise FieldError(
                f"certificates are given but {show(self.address)} is not encrypted; use a tls:// address "
                "or remove [cluster.tls]",
                ("address",),
            )


def check_job_script_options(options: Mapping[str, Any]) -> None:
    """Refuse ``cluster.options`` values that would add or split a line of the batch job script.

    dask-jobqueue writes ``job_extra_directives`` items and the directive
    options (:data:`_DIRECTIVE_WORDS`) into ``#SBATCH``-style lines, each
    ``job_script_prologue`` item as a line of shell, and ``python``,
    ``local_directory`` and ``worker_extra_args`` unquoted into the worker's
    shell command. So: no value anywhere in the options holds a control
    character (a newline is a new line of shell), a directive word holds no
    whitespace, and a shell word holds no whitespace, quote or shell
    character (``$NAME`` stays allowed: the job expands it).

    Raises:
        FieldError: the first such value, located below ``options``.
    """
    for path, value in _strings(options, ("options",)):
        if _CONTROL.search(value):
            raise FieldError(
                f"{show(value)} holds a control character (newline, carriage return, tab, ...); this value is "
                "written into the batch job script, where a line break starts a new shell line; write it on "
                "one line",
                path,
            )
    for name in _DIRECTIVE_WORDS:
        value = options.get(name)
        if isinstance(value, str) and re.search(r"[\s'\"]", value):
            raise FieldError(
                f"{show(value)} holds a space or a quote; it is written as one word of a batch directive "
                "(e.g. '#SBATCH -e DIR/...'), which a space would split; use a value without spaces or quotes",
                ("options", name),
            )
    shell_words = [(("options", name), options.get(name)) for name in _SHELL_WORDS]
    for name in _SHELL_WORD_LISTS:
        items = options.get(name)
        if isinstance(items, (list, tuple)):
            shell_words += [(("options", name, i), item) for i, item in enumerate(items)]
    for path, value in shell_words:
        if isinstance(value, str) and (bad := _SHELL_SPECIAL.search(value)):
            raise FieldError(
                f"{show(value)} holds {bad.group()!r}, which the shell running the job script would act on "
                "(it is written unquoted into the worker's command); use a value without spaces, quotes or "
                "shell characters ($NAME for an environment variable is fine)",
                path,
            )


def _strings(value: Any, path: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    """Every string in nested tables and arrays, with its path (table keys count: they are written too)."""
    if isinstance(value, str):
        return [(path, value)]
    found: list[tuple[tuple[str | int, ...], str]] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            found += [(path + (key,), key)] if isinstance(key, str) and _CONTROL.search(key) else []
            found += _strings(item, path + (key,))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found += _strings(item, path + (i,))
    return found
