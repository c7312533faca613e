"""Both clients speak one call-state vocabulary: the browser's table is the Python
client's (ringfence.wire.call_states), move for move, and its call engine refuses a
move the table does not list."""

from __future__ import annotations

from ringfence.wire.call_states import TRANSITIONS
from tests.browser.conftest import Browsers, Server

READ_TABLE = """async () => {
  const { TRANSITIONS } = await import("/callstates.js");
  return Object.fromEntries(Object.entries(TRANSITIONS).map(([k, v]) => [k, [...v]]));
}"""

ILLEGAL_MOVE = """async () => {
  const { CallSession } = await import("/call.js");
  const session = Object.create(CallSession.prototype);
  session.callId = "test";
  session.state = "incoming";
  session.onChange = () => {};
  const refused = [];
  for (const next of ["connected", "ringing", "reconnecting"]) {
    try { session.setState(next); } catch (e) { refused.push(next); }
  }
  session.setState("accepting");
  return { refused, state: session.state };
}"""


async def test_the_browser_uses_the_python_clients_state_table(
    server: Server, browsers: Browsers
) -> None:
    page = await browsers.page("alice")
    await page.goto(server.url)
    table = await page.evaluate(READ_TABLE)
    assert table == {
        state.value: sorted(s.value for s in moves) for state, moves in TRANSITIONS.items()
    }
    checked = await page.evaluate(ILLEGAL_MOVE)
    assert checked == {"refused": ["connected", "ringing", "reconnecting"], "state": "accepting"}
