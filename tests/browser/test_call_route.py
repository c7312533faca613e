"""The call's route badge reads the live connection's statistics (peer.js): the
selected candidate pair's local candidate says relay or direct, whichever way the
browser reports the pair, and nothing is claimed before a pair is selected. A
call.transport refusal the switch controller knows always has a sentence to show."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Browsers, Server

pytestmark = pytest.mark.browser

READ_ROUTES = """async () => {
  const { selectedRoute } = await import("/peer.js");
  const local = (type) => ({ type: "local-candidate", candidateType: type });
  const reports = {
    transportRelay: [
      ["T", { type: "transport", selectedCandidatePairId: "P" }],
      ["P", { type: "candidate-pair", localCandidateId: "L", nominated: true, state: "succeeded" }],
      ["L", local("relay")],
    ],
    transportHost: [
      ["T", { type: "transport", selectedCandidatePairId: "P" }],
      ["P", { type: "candidate-pair", localCandidateId: "L" }],
      ["L", local("host")],
    ],
    nominatedPair: [
      ["P0", { type: "candidate-pair", localCandidateId: "L0", nominated: true, state: "failed" }],
      ["P", { type: "candidate-pair", localCandidateId: "L", nominated: true, state: "succeeded" }],
      ["L0", local("relay")],
      ["L", local("srflx")],
    ],
    selectedPair: [
      ["P", { type: "candidate-pair", localCandidateId: "L", selected: true }],
      ["L", local("relay")],
    ],
    noPair: [
      ["T", { type: "transport" }],
      ["P", { type: "candidate-pair", localCandidateId: "L", nominated: true, state: "waiting" }],
      ["L", local("relay")],
    ],
    noCandidateType: [
      ["T", { type: "transport", selectedCandidatePairId: "P" }],
      ["P", { type: "candidate-pair", localCandidateId: "L" }],
      ["L", { type: "local-candidate" }],
    ],
  };
  return Object.fromEntries(
    Object.entries(reports).map(([name, entries]) => [name, selectedRoute(new Map(entries))]),
  );
}"""

READ_REFUSALS = """async () => {
  const { isSwitchRefusal } = await import("/callswitch.js");
  const { SWITCH_REFUSED } = await import("/calltext.js");
  const codes = [
    "direct_not_allowed", "call_rate_limited", "call_state", "call_not_found", "toString",
  ];
  return {
    refusals: codes.filter((code) => isSwitchRefusal(code)),
    sentences: Object.keys(SWITCH_REFUSED).sort(),
  };
}"""


async def test_the_route_comes_from_the_selected_pairs_local_candidate(
    server: Server, browsers: Browsers
) -> None:
    page = await browsers.page("alice")
    await page.goto(server.url)
    assert await page.evaluate(READ_ROUTES) == {
        "transportRelay": "relay",
        "transportHost": "direct",
        "nominatedPair": "direct",
        "selectedPair": "relay",
        "noPair": None,
        "noCandidateType": None,
    }


async def test_every_switch_refusal_has_its_sentence(server: Server, browsers: Browsers) -> None:
    page = await browsers.page("alice")
    await page.goto(server.url)
    checked = await page.evaluate(READ_REFUSALS)
    assert checked["refusals"] == ["direct_not_allowed", "call_rate_limited", "call_state"]
    assert checked["sentences"] == sorted(checked["refusals"])
