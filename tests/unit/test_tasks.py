"""Background loops stop when told to, even if a cancellation is swallowed below them."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from ringfence.tasks import raise_if_cancelled, stop


async def swallowing_call(entered: asyncio.Event) -> None:
    """Like a library call that turns its cancellation into an ordinary error (seen
    with redis-py: a command cancelled as its own timeout fired)."""
    entered.set()
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        raise TimeoutError from None


async def careless_loop(entered: asyncio.Event) -> None:
    """A loop that catches its errors and goes back to sleep without asking whether it
    was cancelled: what the call sweeper did before raise_if_cancelled()."""
    while True:
        with contextlib.suppress(TimeoutError):
            await swallowing_call(entered)
        await asyncio.sleep(3600)


async def careful_loop(entered: asyncio.Event, rounds: list[int]) -> None:
    while True:
        rounds.append(1)
        try:
            await swallowing_call(entered)
        except TimeoutError:
            raise_if_cancelled()
        await asyncio.sleep(3600)


async def test_a_plain_cancel_and_await_would_hang_on_a_careless_loop() -> None:
    entered = asyncio.Event()
    task = asyncio.create_task(careless_loop(entered))
    await entered.wait()
    task.cancel()  # arrives inside the library call, which swallows it
    done, _ = await asyncio.wait({task}, timeout=0.2)
    assert not done  # the loop went back to sleep
    assert task.cancelling() == 1
    await stop(task, every_s=0.05)  # cancelled again, this time while it sleeps
    assert task.cancelled()


async def test_a_careful_loop_stops_at_the_first_cancel() -> None:
    entered, rounds = asyncio.Event(), []
    task = asyncio.create_task(careful_loop(entered, rounds))
    await entered.wait()
    await stop(task, every_s=3600)  # would wait an hour if a second cancel were needed
    assert task.cancelled()
    assert rounds == [1]


async def test_stopping_nothing_or_a_finished_task_is_fine() -> None:
    await stop(None)
    finished = asyncio.create_task(asyncio.sleep(0))
    await finished
    await stop(finished)
    assert finished.done()


async def test_the_caller_can_still_be_cancelled_while_it_waits() -> None:
    entered = asyncio.Event()
    stubborn = asyncio.create_task(careless_loop(entered))
    await entered.wait()
    stopper = asyncio.create_task(stop(stubborn, every_s=3600))
    await asyncio.sleep(0.05)
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert not stubborn.done()
    await stop(stubborn, every_s=0.05)
    assert stubborn.cancelled()
