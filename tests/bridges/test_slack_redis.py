"""Two Slack bridges on one Redis store: an event Slack gives both is answered once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from bridges.slack import UNMAPPED
from tests.bridges.test_slack import ALICE, STRANGER, Rig, buttons, make_rig  # noqa: F401
from tests.conftest import ServicesFactory
from tests.fake_slack import message_im
from tests.redis_server import delete_prefix, new_prefix, redis_url


async def two_instances(
    tmp_path: Path, rig_factory: Callable[..., Any], make_services: ServicesFactory
) -> tuple[str, str, list[Rig]]:
    url, prefix = redis_url(), new_prefix()
    shared: dict[str, Any] = dict(
        store=url, redis_prefix=prefix, secret_key=Fernet.generate_key().decode()
    )
    rigs = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        rigs.append(await rig_factory(await make_services(tmp_path / name, **shared)))
    await rigs[0].fake.wait_connected(count=2)
    return url, prefix, rigs


async def test_an_event_delivered_to_both_instances_is_answered_once(
    tmp_path: Path,
    make_rig: Callable[..., Any],  # noqa: F811 - the fixture
    make_services: ServicesFactory,
) -> None:
    url, prefix, (one, _) = await two_instances(tmp_path, make_rig, make_services)
    fake = one.fake
    try:
        assert sum(c.open for c in fake.connections) == 2
        for n, text in enumerate(("hi", "yes", "ALCL90ABCDEF", "status"), start=1):
            envelopes = await fake.send_event_to_all(message_im(ALICE, text))
            assert len({fake.envelope(e).connection for e in envelopes}) == 2
            await fake.wait_for(lambda: all(fake.envelope(e).acked for e in envelopes))  # noqa: B023
            await fake.wait_for(lambda: len(one.posts_to("D1")) >= n, what=text)  # noqa: B023
        # A later message of its own, so a doubled answer had its time to show.
        last = await one.say(ALICE, "status")
        posts = one.posts_to("D1")
        assert len(posts) == 5, [p["text"][:40] for p in posts]
        assert "ORD-1003" in posts[0]["text"] and buttons(posts[0]) == ["yes", "no"]
        assert "FSAN" in posts[1]["text"]
        assert "fsan=ALCL90ABCDEF" in last["text"]
    finally:
        delete_prefix(url, prefix)


async def test_a_strangers_message_delivered_to_both_instances_is_answered_once(
    tmp_path: Path,
    make_rig: Callable[..., Any],  # noqa: F811 - the fixture
    make_services: ServicesFactory,
) -> None:
    url, prefix, (one, _) = await two_instances(tmp_path, make_rig, make_services)
    fake = one.fake
    try:
        envelopes = await fake.send_event_to_all(message_im(STRANGER, "hello", channel="D7"))
        await fake.wait_for(lambda: all(fake.envelope(e).acked for e in envelopes))
        await fake.wait_for(lambda: one.posts_to("D7"), what="the answer to a stranger")
        await one.say(STRANGER, "anyone?", channel="D7")  # its answer comes after any double
        answers = [p["text"] for p in one.posts_to("D7")]
        assert answers == [UNMAPPED.format(user=STRANGER)] * 2
    finally:
        delete_prefix(url, prefix)
