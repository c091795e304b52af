"""The Ray a sweep runs on: an embedded local instance (DEFAULT) or an existing cluster.

The embedded instance accepts connections from this machine only. Measured with Ray 2.60: a
plain `ray.init()` listens on all interfaces; with `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` in the
environment before `ray.init`, a single-node instance binds 127.0.0.1 only, with token
authentication on. The dashboard stays off unless asked for, and then listens on 127.0.0.1.
Ray's own logs are silenced (trial output stays in the trial's log files).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

LOOPBACK = "127.0.0.1"
# How often, by the clock, Tune saves its experiment state (trial list + searcher): on local
# disk every 2 s, so a killed driver loses at most the trials asked for in the last 2 s (they
# are cleaned up on resume). On object storage each save is an upload of the state files
# (requests that grow with wall time), so every 60 s: Tune also saves, and uploads, the state
# after every trial checkpoint (CheckpointConfig(num_to_keep=1) forces it), which is what a
# resume needs (every trial's newest checkpoint is named); a trial that has not checkpointed
# yet is either in a save forced by another trial's checkpoint or re-run on resume, as on disk.
STATE_PERIOD_S = {False: 2.0, True: 60.0}  # remote storage?
USER_STATE_PERIOD = os.environ.get("TUNE_GLOBAL_CHECKPOINT_S")  # set before dipddpm: kept


def quiet_ray_logs() -> None:
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no CSV/JSON/TBX files
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", str(STATE_PERIOD_S[False]))
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # with verbose=0: no status tables at all
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1e9")
    for name in ("ray", "ray.tune", "ray.train", "ray.air", "ray.data"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # trial errors: our console


def set_state_period(remote: bool) -> None:
    """Tune's experiment-state save period for this sweep's storage (see STATE_PERIOD_S),
    unless TUNE_GLOBAL_CHECKPOINT_S was set before dipddpm started."""
    if USER_STATE_PERIOD is None:
        os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = str(STATE_PERIOD_S[remote])


def loopback_only() -> None:
    """Make this process start single-node Ray on 127.0.0.1 only. Ray reads the variable when
    `ray._private.ray_constants` is imported; if Ray is already imported, its constant is set
    too (it is read at call time by `services.get_node_ip_address`). Never for --address: a
    driver joining a multi-node cluster must be reachable from the other nodes."""

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    consts = sys.modules.get("ray._private.ray_constants")
    if consts is not None:
        consts.ENABLE_RAY_CLUSTER = False


def embedded_temp_dir() -> str:
    """The embedded Ray's session folder: <tmp>/dipddpm-ray-<uid> (short: socket paths)."""
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"dipddpm-ray-{os.getuid()}")


def start_local(num_cpus: int | None = None, num_gpus: int | None = None,
                dashboard: bool = False) -> None:
    """ray.init of a single-node instance bound to loopback, token auth on, no dashboard."""
    loopback_only()  # single node: bind 127.0.0.1 only, token authentication on
    import ray

    quiet_ray_logs()
    # a new instance even if RAY_ADDRESS points elsewhere. Not address="local": with it, Ray
    # 2.60 binds every interface again (measured; tests/test_sweep_security.py checks).
    os.environ.pop("RAY_ADDRESS", None)
    # Ray's own temp dir would also make ray.init() join the cluster a `ray start` named in
    # its ray_current_cluster file (a leftover of one not stopped cleanly: a hang), so the
    # embedded instance keeps its sessions in a folder of its own, which no `ray start` names
    ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=dashboard,
             _temp_dir=embedded_temp_dir(),
             dashboard_host=LOOPBACK, log_to_driver=False, logging_level=logging.ERROR,
             configure_logging=True)


AUTH_REFUSED = ("InvalidAuthToken", "Unauthenticated")  # what Ray's GCS client logs then
ENV_ADDRESS = "RAY_ADDRESS"
_ORIGIN: dict[str, tuple[str, str]] = {}  # address -> (its name in errors, how to drop it)


def choose_address(option: str | None) -> str | None:
    """The cluster to join: --address, else $RAY_ADDRESS (set for the driver of a `ray job
    submit`), else None (the embedded local Ray). --address wins when both are set; an error
    about the address names where it came from (the option, or the variable the user may not
    know is set)."""
    env = os.environ.get(ENV_ADDRESS) or None
    if option:
        _ORIGIN[option] = (f"--address {option}" + (f" (it overrides {ENV_ADDRESS}={env})"
                                                    if env and env != option else ""),
                           "omit --address")
        return option
    if env:
        _ORIGIN[env] = (f"the {ENV_ADDRESS} variable ({ENV_ADDRESS}={env})",
                        f"unset {ENV_ADDRESS}")
    return env


def address_origin(address: str) -> tuple[str, str]:
    """How an error names `address`, and how to drop it (as `choose_address` chose it)."""
    return _ORIGIN.get(address, (f"--address {address}", "omit --address"))


def connect(address: str) -> None:
    """Join an existing cluster: `auto` (the local head started with `ray start`) or ray://.
    Ray's C++ client logs each failed attempt to stderr (about 20 lines when the cluster wants
    a token this process lacks): that output is held back and only shown if the join works."""
    import ray

    from dipddpm.errors import DipddpmError, first_line

    reachable(address)
    quiet_ray_logs()
    with held_stderr() as held:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            error = None
        except (ConnectionError, ValueError, RuntimeError) as e:
            error = e
    if error is None:
        sys.stderr.write(held.text)
        return
    origin, drop = address_origin(address)
    if any(word in held.text for word in AUTH_REFUSED):
        raise DipddpmError(
            f"{origin}: the Ray cluster requires its authentication token and "
            f"this process has none or another; source the env file that "
            f"`cluster/local-cluster.sh env` prints, or set RAY_AUTH_MODE=token and "
            f"RAY_AUTH_TOKEN_PATH=FILE (the cluster's token)") from None
    raise DipddpmError(f"{origin}: cannot connect to a Ray cluster "
                       f"({first_line(error)}); start one with `ray start --head`, or "
                       f"{drop} for the embedded local Ray") from None


def reachable(address: str) -> None:
    """Refuse, in one line, an address of the form [ray://]HOST:PORT where nothing answers.
    Without this ray.init retries a refused GCS port for about two minutes before it fails.
    `auto` and forms without a port are left to Ray, which names its own error."""
    import socket

    from dipddpm.errors import DipddpmError

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        return
    timeout = float(os.environ.get("DIPDDPM_CONNECT_TIMEOUT", "10"))
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        origin, drop = address_origin(address)
        reason = e.strerror or type(e).__name__
        raise DipddpmError(
            f"{origin}: nothing answers at {host}:{port} ({reason.lower()}); start a head there "
            f"with `ray start --head --port {port}`, or {drop} for the embedded local "
            f"Ray") from None


class _Held:
    text = ""  # what was written to file descriptor 2, once the block has ended


@contextlib.contextmanager
def held_stderr() -> Iterator[_Held]:
    """Send file descriptor 2 (Python's and C++'s stderr alike) to a temporary file."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        held = _Held()
        try:
            yield held
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            held.text = tmp.read().decode(errors="replace")


@contextlib.contextmanager
def ray_session(address: str | None = None, dashboard: bool = False) -> Iterator[bool]:
    """Use the Ray already initialised in this process (tests), else connect or start one;
    shut down only what this call started. Yields whether it joined a cluster by address."""
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        quiet_ray_logs()
        yield address is not None
        return
    if not address:
        loopback_only()  # before this process imports Ray, where it can
    import ray

    if address:
        connect(address)
    else:
        start_local(dashboard=dashboard)
    try:
        yield address is not None
    finally:
        ray.shutdown()
