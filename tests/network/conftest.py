"""Fixtures of the network suite: one topology of namespaces and one ``ringfence serve``
for every test in tests/network, and a summary table of packets between the homes.

The suite needs root, iproute2, nftables, tcpdump and coturn (scripts/test installs
them). Where namespaces cannot be made, each test skips and says why.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import PG_URL
from tests.network.harness import Figure, Network
from tests.network.netns import unavailable_reason

FIGURES = pytest.StashKey[list[Figure]]()
SKIPPED = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def network(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Network]:
    if PG_URL:
        # It starts `ringfence serve` on a SQLite data dir of its own and never touches
        # the test database: one run, in the SQLite pass, is the whole of it.
        reason = "it does not use the test database; it runs in the SQLite pass"
        request.config.stash[SKIPPED] = reason
        pytest.skip(reason)
    reason = unavailable_reason()
    if reason is not None:
        request.config.stash[SKIPPED] = reason
        pytest.skip(f"network namespaces unavailable: {reason}")
    net = Network(tmp_path_factory.mktemp("network"))
    request.config.stash[FIGURES] = net.figures
    net.start()
    try:
        yield net
    finally:
        net.stop()


@pytest.fixture
def net(network: Network) -> Network:
    """The shared network with both routers back to plain MASQUERADE and no UDP block,
    so no test depends on what the one before it set."""
    network.set_routers("masquerade", "masquerade")
    return network


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    figures = config.stash.get(FIGURES, None)
    skipped = config.stash.get(SKIPPED, None)
    if figures is None and skipped is None:
        return  # the suite did not run in this session
    write = terminalreporter.write_line
    terminalreporter.section("network namespaces: packets between the two homes")
    if skipped is not None:
        write(f"skipped: {skipped}")
        return
    if not figures:
        write("no call completed")
        return
    write("packets with an address of one home as source and one of the other as destination,")
    write("counted on each home's captured link to the public side (tcpdump):")
    width = max(len(f.case) for f in figures)
    write(f"{'case':<{width}}  {'NAT (A/B)':<22}  {'link A':>6}  {'link B':>6}  media route")
    for f in figures:
        write(f"{f.case:<{width}}  {f.nat:<22}  {f.link_a:>6}  {f.link_b:>6}  {f.route}")
