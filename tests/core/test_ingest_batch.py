"""The batched ingest path: every submitted message is answered exactly once, whatever fails."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from helpers import HOSPITAL, FixedCrosswalk, eventually, numbered_dispense

from adapters.base import Outcome, ParsedMessage, Reply
from adapters.hl7v2 import HL7v2Adapter
from canonical.errors import StoreError
from gateway.ingest.pipeline import Ingestor
from gateway.metrics import Metrics
from gateway.store.base import CommitResult, Incoming

HL7 = HL7v2Adapter({"facilities": {"ZJSRMYY": HOSPITAL}})


class FlakyAdapter:
    """The HL7 v2 adapter, except that some messages break its parse or its replies."""

    name = "hl7v2"
    kinds = HL7.kinds
    config_model = HL7.config_model
    transport = "mllp"

    def parse(self, raw: bytes, *, received_at: datetime) -> ParsedMessage:
        if b"PARSE-BUG" in raw:
            raise RuntimeError("adapter defect")
        return HL7.parse(raw.replace(b"REPLY-BUG", b""), received_at=received_at)

    def reply(self, parsed: ParsedMessage | None, raw: bytes, outcome: Outcome, *,
              now: datetime) -> Reply:
        if b"REPLY-BUG" in raw:
            raise RuntimeError("cannot build any reply")
        return HL7.reply(parsed, raw, outcome, now=now)


class CallbackStore:
    """Commits in the next loop turn; fails the groups it is told to fail."""

    shared = False

    def __init__(self) -> None:
        self.fail = False
        self.committed: list[str] = []

    def commit_then(self, incoming: Incoming,
                    done: Callable[[CommitResult | BaseException], None]) -> None:
        def later() -> None:
            if self.fail:
                done(StoreError("disk full"))
                return
            self.committed.append(incoming.control_id)
            done(CommitResult(duplicate=False, message_id=len(self.committed),
                              event_seqs=tuple(range(len(incoming.events)))))
        asyncio.get_running_loop().call_soon(later)

    async def quarantine(self, raw: bytes, **kwargs: Any) -> int:
        return 1


async def _submit_all(ingestor: Ingestor, adapter: Any, raws: list[bytes]
                      ) -> list[list[Reply | None]]:
    answers: list[list[Reply | None]] = [[] for _ in raws]
    for i, raw in enumerate(raws):
        ingestor.submit(adapter, raw, "10.1.2.3:5000", answers[i].append)
    await eventually(lambda: all(answers), what="every message answered")
    return answers


def _msa(reply: Reply | None) -> str:
    assert reply is not None
    return reply.body.split(b"\rMSA|")[1][:2].decode()


async def test_a_defect_in_one_message_answers_it_ae_and_the_others_aa() -> None:
    store = CallbackStore()
    ingestor = Ingestor(store, FixedCrosswalk(), (), Metrics())  # type: ignore[arg-type]
    raws = [numbered_dispense(1), numbered_dispense(2) + b"PARSE-BUG", numbered_dispense(3),
            numbered_dispense(4) + b"REPLY-BUG", numbered_dispense(5)]
    answers = await _submit_all(ingestor, FlakyAdapter(), raws)
    assert [len(a) for a in answers] == [1, 1, 1, 1, 1]  # exactly once each
    assert _msa(answers[0][0]) == "AA" and _msa(answers[2][0]) == "AA"
    assert _msa(answers[4][0]) == "AA"
    # the adapter's defect: AE (the gateway's fault, not the message's), bytes quarantined
    assert _msa(answers[1][0]) == "AE" and b"internal error" in answers[1][0].body
    assert answers[3][0] is None  # no reply could be built: nothing is sent, it is resent
    assert store.committed == ["RDS000000000001", "RDS000000000003", "RDS000000000004",
                               "RDS000000000005"]


async def test_a_failed_group_commit_answers_every_member_ae() -> None:
    store = CallbackStore()
    store.fail = True
    ingestor = Ingestor(store, FixedCrosswalk(), (), Metrics())  # type: ignore[arg-type]
    answers = await _submit_all(ingestor, HL7, [numbered_dispense(n) for n in range(3)])
    assert [_msa(a[0]) for a in answers] == ["AE", "AE", "AE"]
    assert all(b"send it again" in a[0].body for a in answers if a[0] is not None)


async def test_a_failing_answer_callback_does_not_stop_the_rest() -> None:
    store = CallbackStore()
    ingestor = Ingestor(store, FixedCrosswalk(), (), Metrics())  # type: ignore[arg-type]
    heard: list[int] = []

    def broken(reply: Reply | None) -> None:
        raise ConnectionError("transport gone")

    ingestor.submit(HL7, numbered_dispense(1), "p", broken)
    ingestor.submit(HL7, numbered_dispense(2), "p", lambda r: heard.append(2))
    await eventually(lambda: heard, what="the second message answered")
    assert heard == [2]
    assert store.committed == ["RDS000000000001", "RDS000000000002"]



async def test_one_at_a_time_path_answers_ae_when_the_commit_fails() -> None:
    class FailingStore(CallbackStore):
        async def commit(self, incoming: Incoming) -> CommitResult:
            raise StoreError("database is locked")

    ingestor = Ingestor(FailingStore(), FixedCrosswalk(), (), Metrics())  # type: ignore[arg-type]
    reply = await ingestor.handle(HL7, numbered_dispense(9), "10.1.2.3:5000")
    assert _msa(reply) == "AE" and b"send it again" in reply.body
