"""Run coturn as a supervised child process of Ringfence.

Calls must go through the relay, so for the single-machine setup Ringfence
starts coturn itself rather than trusting an operator to keep a second
service alive. A start only counts once coturn is *verified*: it answers
STUN, and then proves over UDP, TCP and TLS that it runs the configuration
Ringfence wrote (:mod:`ringfence.turn.probe`): it challenges an Allocate
without credentials, accepts fresh credentials, refuses a denied peer, and
holds sockets only where it was told to (:mod:`ringfence.turn.sockets`).
A coturn that missed its config file answers STUN too, as an open relay on
every interface; that must stop Ringfence, not serve its users.

A watchdog repeats the verification periodically and restarts coturn (with
exponential backoff) if it dies or fails, because a dead or foreign relay
means no calls, or calls through a relay that serves anyone, and nothing
else would notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
import signal
import socket
from collections import deque
from dataclasses import replace
from pathlib import Path

from ringfence.tasks import raise_if_cancelled, stop
from ringfence.turn.coturn_config import CoturnOptions, render
from ringfence.turn.probe import RelayBusy, RelayCheckFailed
from ringfence.turn.verify import stun_answers, target_for, verify_relay

logger = logging.getLogger(__name__)
# coturn's own output mentions client addresses, so it is only passed on at DEBUG.
coturn_output_logger = logging.getLogger("ringfence.turn.coturn")

TURN_UNAVAILABLE_MESSAGE = (
    "coturn's `turnserver` was not found; install it (Debian/Ubuntu: `apt-get install coturn`) "
    "or point Ringfence at an external TURN server with RINGFENCE_TURN_URLS and "
    "RINGFENCE_TURN_SECRET (or RINGFENCE_TURN_SECRET_FILE)"
)
OUTPUT_LINES_KEPT = 40
# A child that stayed up this long crashed for a new reason; start backing off afresh.
STABLE_AFTER_S = 60.0
# Checks that got no answer at all, in a row, before a running coturn counts as hung:
# one slow moment must not cut every call in progress.
UNANSWERED_CHECKS_LIMIT = 3
_BAD_CONFIG_MARKER = "Bad configuration format"


class TurnUnavailable(RuntimeError):
    """coturn cannot be run here, so calls need an external TURN server instead."""

    def __init__(self, message: str = TURN_UNAVAILABLE_MESSAGE) -> None:
        super().__init__(message)


class CoturnStartError(RuntimeError):
    """coturn was started but never became a working relay."""


class RelayNotVerified(CoturnStartError):
    """coturn runs, but it did not prove that it runs Ringfence's configuration."""

    def __init__(self, message: str, failure: RelayCheckFailed) -> None:
        super().__init__(message)
        self.failure = failure


def pick_free_port(listen_ip: str) -> int:
    """Find a port that is free for both UDP and TCP on ``listen_ip``.

    TURN listens on the same port number for both transports, so a port
    that is only free for one of them would make coturn fail half-way.
    """
    family = socket.AF_INET6 if ipaddress.ip_address(listen_ip).version == 6 else socket.AF_INET
    for _ in range(100):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((listen_ip, 0))
            port: int = udp.getsockname()[1]
            with socket.socket(family, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((listen_ip, port))
                except OSError:
                    continue
                return port
    raise OSError(f"no port is free for both UDP and TCP on {listen_ip}")


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


class CoturnSupervisor:
    """Owns one coturn child: starts it, proves it works, restarts it, stops it.

    ``production`` selects :func:`ringfence.turn.coturn_config.render`'s
    production mode. It defaults to True so that forgetting it can only make
    the relay stricter; a single-machine development or test setup passes
    ``production=False`` together with ``allow_loopback_peers``.
    """

    def __init__(
        self,
        options: CoturnOptions,
        workdir: Path,
        binary: str | None = None,
        *,
        production: bool = True,
        advertised_host: str | None = None,
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        verify_every_s: float = 30.0,
        verify_timeout_s: float = 5.0,
    ) -> None:
        resolved = shutil.which(binary or "turnserver")
        if resolved is None:
            raise TurnUnavailable()
        listen = ipaddress.ip_address(options.listen_ip)
        if advertised_host is None and options.external_ip is None and listen.is_unspecified:
            raise ValueError(
                "coturn listens on every address, so Ringfence cannot guess the host clients "
                "should use: set external_ip or advertised_host"
            )
        self._binary = os.path.abspath(resolved)  # coturn runs in workdir, not here
        self._options = options
        # coturn runs in workdir and is handed paths inside it: all must be absolute,
        # or coturn looks for a relative config path from inside that folder, misses it
        # and runs on built-in defaults.
        workdir = workdir.resolve()
        self._workdir = workdir
        self._production = production
        self._advertised_host = advertised_host
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._verify_every_s = verify_every_s
        self._verify_timeout_s = verify_timeout_s
        self._probe_host = (
            ("::1" if listen.version == 6 else "127.0.0.1")
            if listen.is_unspecified
            else str(listen)
        )
        self._config_path = self._workdir / "turnserver.conf"
        self._config_text = ""
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._output: deque[str] = deque(maxlen=OUTPUT_LINES_KEPT)
        self._rejected_config: list[str] = []
        self._serving = asyncio.Event()
        self._started = False
        self._stopping = False
        self._started_at = 0.0
        self.restarts = 0

    @property
    def options(self) -> CoturnOptions:
        """The effective options, with the chosen port once started."""
        return self._options

    @property
    def config_path(self) -> Path:
        """Where the generated config (which holds the secret, mode 0600) is written."""
        return self._config_path

    @property
    def port(self) -> int:
        return self._options.port

    @property
    def pid(self) -> int | None:
        """The current child's pid, or None while no child is running."""
        if self._process is None or self._process.returncode is not None:
            return None
        return self._process.pid

    @property
    def urls(self) -> list[str]:
        """TURN URLs for :class:`ringfence.turn.credentials.TurnCredentialIssuer`."""
        if not self._started:
            raise RuntimeError("the coturn port is only known once the supervisor has started")
        host = self._advertised_host or self._options.external_ip or self._options.listen_ip
        if ":" in host:
            host = f"[{host}]"
        port = self._options.port
        urls = [f"turn:{host}:{port}?transport=udp", f"turn:{host}:{port}?transport=tcp"]
        if self._options.tls_port is not None:
            urls.append(f"turns:{host}:{self._options.tls_port}?transport=tcp")
        return urls

    def last_output(self) -> list[str]:
        """coturn's most recent output lines, for error reports."""
        return list(self._output)

    async def start(self) -> None:
        """Start coturn and return once it is verified; raise CoturnStartError if it is not.

        :class:`RelayNotVerified` (a CoturnStartError) says that coturn runs but not as
        configured; its message names what the relay did wrong."""
        if self._started:
            raise RuntimeError("CoturnSupervisor.start() was already called")
        self._workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        port = self._options.port or pick_free_port(self._options.listen_ip)
        self._options = replace(
            self._options,
            port=port,
            pid_file=self._workdir / "turnserver.pid",
            cert_file=None
            if self._options.cert_file is None
            else self._options.cert_file.resolve(),
            pkey_file=None
            if self._options.pkey_file is None
            else self._options.pkey_file.resolve(),
        )
        # Render before anything runs so that bad options fail without a child to clean up.
        self._config_text = render(self._options, production=self._production)
        await self._spawn_until_serving()
        self._started = True
        self._watchdog = asyncio.create_task(self._watch(), name="coturn-watchdog")

    async def wait_serving(self) -> None:
        """Wait until a coturn child is up and answering (again, after a restart)."""
        await self._serving.wait()

    async def stop(self) -> None:
        """Stop the watchdog and coturn: SIGTERM first, SIGKILL if it lingers."""
        if self._stopping:
            return
        self._stopping = True
        self._serving.clear()
        await stop(self._watchdog)
        if self._process is not None:
            await self._terminate(self._process)
        await self._drain_output()

    def _write_config(self) -> None:
        # The file holds the shared secret: create it private, and fix the
        # mode of a file left over from an earlier run.
        fd = os.open(self._config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as config:
            os.fchmod(config.fileno(), 0o600)
            config.write(self._config_text)

    async def _spawn_until_serving(self) -> None:
        self._write_config()
        self._output.clear()
        self._rejected_config.clear()
        process = await asyncio.create_subprocess_exec(
            self._binary,
            "-c",
            str(self._config_path),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self._workdir,
            # Keep terminal signals (Ctrl-C) away from coturn: its lifetime is
            # ours to manage, and the watchdog must not mistake them for a crash.
            start_new_session=True,
        )
        self._process = process
        self._reader = asyncio.create_task(self._pump_output(process), name="coturn-output")
        try:
            await self._wait_until_answering(process)
            await self._verify_at_start(process)
        except BaseException:
            await self._terminate(process)
            await self._drain_output()
            raise
        self._started_at = asyncio.get_running_loop().time()
        self._serving.set()
        logger.info(
            "coturn (pid %d) is serving on %s:%d, verified%s",
            process.pid,
            self._probe_host,
            self.port,
            "" if self._options.tls_port is None else f" (TLS on {self._options.tls_port})",
        )

    async def verify(self) -> None:
        """Prove that the running coturn is the relay Ringfence configured.

        Raises :class:`ringfence.turn.probe.RelayCheckFailed` naming the problem."""
        pid = self.pid
        if pid is None:
            raise RelayCheckFailed("coturn is not running", definite=False)
        await verify_relay(target_for(self._options, self._probe_host), pid, self._verify_timeout_s)

    async def _verify_at_start(self, process: asyncio.subprocess.Process) -> None:
        try:
            await self.verify()
        except RelayCheckFailed as failure:
            if process.returncode is not None:
                await self._drain_output()
                raise CoturnStartError(
                    f"coturn {_describe_exit(process.returncode)} while Ringfence verified it; "
                    f"its last output:\n{self._tail()}"
                ) from failure
            if failure.definite:
                verdict = (
                    "coturn is not running the configuration Ringfence wrote "
                    f"({self._config_path}), so Ringfence will not use it"
                )
            else:
                verdict = "Ringfence could not verify the relay, so it will not use it"
            # The output goes to the log, not into the message: the message is what the
            # operator reads first, and it must be one plain sentence.
            logger.warning(
                "coturn (pid %d) failed verification; its last output:\n%s",
                process.pid,
                self._tail(),
            )
            raise RelayNotVerified(f"{failure.problem}: {verdict}", failure) from None

    async def _wait_until_answering(self, process: asyncio.subprocess.Process) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout_s
        where = f"{self._probe_host}:{self.port}"
        while True:
            if process.returncode is not None:
                await self._drain_output()
                raise CoturnStartError(
                    f"coturn {_describe_exit(process.returncode)} before it answered STUN on "
                    f"{where}; its last output:\n{self._tail()}"
                )
            if await stun_answers(self._probe_host, self.port):
                break
            if loop.time() >= deadline:
                raise CoturnStartError(
                    f"coturn did not answer STUN on {where} within {self._start_timeout_s:g}s; "
                    f"its last output:\n{self._tail()}"
                )
        # coturn skips config lines it does not understand, which could
        # silently drop a peer denial; treat that as a failed start.
        if self._rejected_config:
            raise CoturnStartError(
                "coturn rejected lines of the generated configuration "
                f"(is this coturn too old or too new?):\n{self._rejected_config[0]}"
            )

    async def _pump_output(self, process: asyncio.subprocess.Process) -> None:
        # Always drain the pipe: a child blocked on a full stdout stops relaying.
        assert process.stdout is not None
        while True:
            try:
                raw = await process.stdout.readline()
            except ValueError:  # an absurdly long line; drop it
                continue
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._output.append(line)
                if _BAD_CONFIG_MARKER in line:
                    self._rejected_config.append(line)
                coturn_output_logger.debug("%s", line)

    async def _drain_output(self) -> None:
        """Wait for the output of an exited child, so error reports show its last words."""
        if self._reader is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), self._stop_timeout_s)
        except TimeoutError:
            self._reader.cancel()

    async def _terminate(self, process: asyncio.subprocess.Process) -> None:
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), self._stop_timeout_s)
        except TimeoutError:
            logger.warning(
                "coturn (pid %d) ignored SIGTERM for %gs; sending SIGKILL",
                process.pid,
                self._stop_timeout_s,
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = self._backoff_initial_s
        while True:
            process = self._process
            assert process is not None
            reason, level = await self._until_unfit(process)
            self._serving.clear()
            await self._terminate(process)
            await self._drain_output()
            ran_for = loop.time() - self._started_at
            if ran_for >= STABLE_AFTER_S:
                backoff = self._backoff_initial_s
            logger.log(
                level,
                "coturn (pid %d) %s (it ran for %.0fs); restarting it in %gs. Its last output:\n%s",
                process.pid,
                reason,
                ran_for,
                backoff,
                self._tail(),
            )
            while True:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max_s)
                try:
                    await self._spawn_until_serving()
                except Exception as exc:
                    # Keep trying whatever went wrong: a watchdog that dies
                    # leaves Ringfence without a relay and nobody noticing.
                    logger.error(
                        "restarting coturn failed, next try in %gs: %s",
                        backoff,
                        exc,
                        exc_info=not isinstance(exc, CoturnStartError | OSError),
                    )
                    raise_if_cancelled()
                    continue
                self.restarts += 1
                break

    async def _until_unfit(self, process: asyncio.subprocess.Process) -> tuple[str, int]:
        """Wait until ``process`` exits or fails verification; say why, and how loudly."""
        exited = asyncio.ensure_future(process.wait())
        unanswered = 0
        try:
            while True:
                await asyncio.wait({exited}, timeout=self._verify_every_s)
                if exited.done():
                    return _describe_exit(exited.result()), logging.WARNING
                try:
                    await self.verify()
                except RelayBusy as busy:
                    logger.warning("coturn (pid %d) could not be verified: %s", process.pid, busy)
                    raise_if_cancelled()
                    continue
                except RelayCheckFailed as failure:
                    if process.returncode is not None:
                        return _describe_exit(process.returncode), logging.WARNING
                    if failure.definite:
                        return (
                            f"failed verification, so it is not running the configuration "
                            f"Ringfence wrote: {failure.problem}",
                            logging.ERROR,
                        )
                    unanswered += 1
                    logger.warning(
                        "coturn (pid %d) failed check %d of %d: %s",
                        process.pid,
                        unanswered,
                        UNANSWERED_CHECKS_LIMIT,
                        failure,
                    )
                    if unanswered >= UNANSWERED_CHECKS_LIMIT:
                        return (
                            f"failed verification {unanswered} times in a row: {failure.problem}",
                            logging.ERROR,
                        )
                    continue
                unanswered = 0
        finally:
            exited.cancel()

    def _tail(self) -> str:
        return "\n".join(self._output) or "(no output)"
