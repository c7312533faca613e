"""Calls between two homes behind NAT, through ``ringfence serve`` on a public address,
between worst-case peers that gather and send every candidate whatever the server says.

What each test checks, from the outside only: tcpdump on each home's link to the
public side, and every HTTP body and WebSocket frame each device received.
"""

from __future__ import annotations

import pytest

from tests.network.harness import (
    CALLEE_TONE_HZ,
    CALLER_TONE_HZ,
    Network,
    assert_private,
    assert_relayed_with_audio,
    foreign_addresses,
    record,
    run_call,
)
from tests.network.netns import SERVER_ADDRESS, NatKind

pytestmark = pytest.mark.integration


def test_default_settings_relay_both_ends_through_the_embedded_coturn(net: Network) -> None:
    """Cases 1 and 5: nobody changed a setting. The call connects relay to relay on
    the embedded coturn, listening on the server's documentation ("public") address,
    and neither home learns anything of the other."""
    result = run_call(net, "default")
    record(net, "1+5 default settings", "masquerade/masquerade", result)
    assert_relayed_with_audio(result)
    assert_private(result, net)
    # The relay that carried it is the embedded one, over UDP on the server's address.
    for device in (result.caller, result.callee):
        assert device.call["turn_url_used"] == f"turn:{SERVER_ADDRESS}:3478?transport=udp"
        assert device.call["selected_pair"]["local_relay_transport"] == "udp"
    relayed = [
        p for p in result.packets["A"] if p.protocol == "udp" and SERVER_ADDRESS in (p.src, p.dst)
    ]
    assert len(relayed) > 100, "the capture saw no relayed media: is it capturing at all?"


@pytest.mark.parametrize("nat", ["masquerade", "full-cone"])
def test_one_sided_consent_relays_both_ends(net: Network, nat: NatKind) -> None:
    """Case 2: Alice allows direct connections with everyone, Bob does not. Both ends
    are relayed and nothing of either home reaches the other, even behind full-cone
    NATs where any packet to a NAT address would get through."""
    net.set_routers(nat, nat)
    result = run_call(net, f"one-sided-{nat}", caller_direct="everyone")
    record(net, "2 only A allows direct", f"{nat}/{nat}", result)
    assert_relayed_with_audio(result)
    assert_private(result, net)


@pytest.mark.parametrize("nat", ["masquerade", "full-cone"])
def test_mutual_consent_is_seen_by_the_captures(net: Network, nat: NatKind) -> None:
    """Case 3, the positive control: both allow direct connections, so the server hands
    each side the other's addresses and the peers dial them. The same captures and the
    same frame checks that find nothing above do find this: proof they can see a leak.
    Behind full-cone NATs the call then runs direct, home to home."""
    net.set_routers(nat, nat)
    result = run_call(net, f"mutual-{nat}", caller_direct="everyone", callee_direct="everyone")
    crossing = record(net, "3 both allow direct", f"{nat}/{nat}", result)
    for device in (result.caller, result.callee):
        assert device.call["policy_from_server"] == "all"
        assert device.call["connected"], device.call["errors"]
    assert foreign_addresses(result.caller, net.b) >= {net.b.host, net.b.wan}
    assert foreign_addresses(result.callee, net.a) >= {net.a.host, net.a.wan}
    assert crossing["A"], crossing
    assert crossing["B"], crossing
    if nat == "full-cone":
        for device, tone in ((result.caller, CALLEE_TONE_HZ), (result.callee, CALLER_TONE_HZ)):
            pair = device.call["selected_pair"]
            assert "relay" not in (pair["local"]["type"], pair["remote"]["type"]), pair
            audio = device.call["audio"]
            assert audio["dominant_hz"] is not None, audio
            assert abs(audio["dominant_hz"] - tone) < 10, audio
        assert len(crossing["A"]) > 100, crossing
        assert len(crossing["B"]) > 100, crossing


def test_udp_blocked_in_one_home_connects_over_turn_tcp(net: Network) -> None:
    """Case 4: Bob's home lets no UDP out. His client gets no relay over UDP, takes the
    server's turn:…?transport=tcp URL, and the call connects through the relay over TCP
    (with the same privacy checks)."""
    net.set_routers("masquerade", "masquerade", block_udp_b=True)
    dropped_before = net.topology.udp_dropped(net.b)
    result = run_call(net, "udp-blocked")
    record(net, "4 UDP blocked in home B", "masquerade/masquerade", result)
    assert_relayed_with_audio(result)
    assert_private(result, net)
    callee = result.callee.call
    assert callee["turn_url_used"] == f"turn:{SERVER_ADDRESS}:3478?transport=tcp"
    assert callee["selected_pair"]["local_relay_transport"] == "tcp"
    assert result.caller.call["selected_pair"]["local_relay_transport"] == "udp"
    # Home B's link carried no UDP at all: its router dropped every UDP packet...
    assert [p for p in result.packets["B"] if p.protocol == "udp"] == []
    assert net.topology.udp_dropped(net.b) > dropped_before
    # ...and the media went over TCP to the relay's port.
    media = [p for p in result.packets["B"] if p.protocol == "tcp" and 3478 in (p.sport, p.dport)]
    assert len(media) > 100, len(media)
