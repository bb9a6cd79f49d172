"""A rebuild and the audit's seals (issue 17, item 5): a fresh rebuild of a derived store begins a new sealed epoch.

Before, `audit checkpoint`, `deadlines rebuild --fresh`, `audit verify` called every case broken (every rebuilt
event has new bytes), and `audit seal --full` did not help. Now the rebuilt store starts with a generation record,
the next seal begins a new epoch of its chains (the old epoch's links kept as history), and verify says "rebuilt
on D" and still names a real tampering: in the current store, in the intake store across the rebuild, in the old
epoch's sealed links or in an epoch's own record. A rebuild declared in a store that was not rebuilt, a store
without its record and an old store put back are not taken as rebuilds. Real SQLite stores, the real CLI.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shutil
import sqlite3
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from reintegration import operate
from reintegration.cli import app
from reintegration.recompute import recompute
from services.audit import Auditor, chain
from services.audit.chain import AuditStore
from services.benefits.application import build_benefits
from services.deadlines.application import build_deadlines
from services.intake.application import build_intake
from shared.infra.derived import StoreRebuilt
from shared.infra.settings import Settings
from shared.infra.store import read_only_env
from tests.factories import OHS_PARTY, assessment
from tests.integration.test_audit import DAY, START, apply_all, cli, record_cases, stored_rows, write_state
from tests.integration.test_audit_chain import Recorded, _tamper_version
from tests.integration.test_audit_chain import sealed as sealed  # the fixture: five cases applied and sealed
from tests.integration.test_derived_commands import run


@pytest.fixture(autouse=True)
def no_nats(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rebuild purges its output streams when NATS answers: none runs here (the command says what to purge)."""

    def unreachable(settings: Settings, service: str) -> list[str]:
        raise OSError("no NATS in this test")

    monkeypatch.setattr(operate, "purge_streams", unreachable)


def main(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> Any:
    """``reintegration ARGS --data-dir DIR`` in this process."""
    return CliRunner().invoke(app, [*args, "--data-dir", str(data_dir)], env={"COLUMNS": "250", **(env or {})})


def said(result: Any) -> str:
    return " ".join(result.output.split())


def digest_of(result: Any) -> str:
    return next(line.split("sha256:")[1] for line in result.stdout.splitlines() if line.startswith("digest"))


def rebuild(settings: Settings, service: str, fresh: bool = True) -> None:
    result = main(service, "rebuild", *(["--fresh"] if fresh else []), data_dir=settings.data_dir)
    assert result.exit_code == 0, result.output


def schedule(case: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(case, "deadlines")


def flip(path: Path, originator: uuid.UUID, version: int) -> None:
    """Change one byte of a stored event (still the same length)."""
    (state,) = (s for v, _, s in stored_rows(path, originator) if v == version)
    write_state(path, originator, version, state[:-2] + bytes([state[-2] ^ 1]) + state[-1:])


def test_a_fresh_rebuild_after_a_checkpoint_begins_a_new_epoch_instead_of_breaking_every_case(tmp_path: Path) -> None:
    """The issue's sequence through the real command line: every case was "broken" (exit 1) and `seal --full`
    did not recover it."""
    settings = Settings(data_dir=tmp_path / "data")
    record_cases(settings)
    apply_all(settings)
    today = datetime.now(UTC).date().isoformat()
    first = cli("checkpoint", data_dir=settings.data_dir)
    assert first.exit_code == 0
    rebuilt = run("deadlines", "rebuild", "--fresh", "--data-dir", str(settings.data_dir),
                  env={**settings.to_env(), "REINTEGRATION_NATS_URL": "nats://127.0.0.1:1"})
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "a new generation of the deadlines store" in " ".join(rebuilt.stdout.split())

    pending = cli("verify", data_dir=settings.data_dir)
    assert pending.exit_code == 0, pending.output
    assert f"deadlines rebuilt on {today}" in said(pending)
    assert "not sealed since: `reintegration audit seal` begins epoch 2 (epoch 1 kept as history)" in said(pending)
    assert "broken chain" not in said(pending) and "everything verifies" in said(pending)

    seal = cli("seal", "--full", data_dir=settings.data_dir)
    assert seal.exit_code == 0, seal.output
    assert "deadlines: epoch 2 begins (the store was rebuilt on" in said(seal)
    assert "epoch 1 (5 chains, 17 events) kept as history" in said(seal)

    verified = cli("verify", data_dir=settings.data_dir)
    assert verified.exit_code == 0, verified.output
    assert f"deadlines rebuilt on {today}" in said(verified) and "sealed in epoch 2 since seal #2" in said(verified)
    assert "everything verifies" in verified.stdout
    # the checkpoint handed out before the rebuild still matches, and so does the next one
    assert cli("verify", "--checkpoint", digest_of(first), data_dir=settings.data_dir).exit_code == 0
    second = cli("checkpoint", data_dir=settings.data_dir)
    assert cli("verify", "--checkpoint", digest_of(second), data_dir=settings.data_dir).exit_code == 0


def test_a_tampered_event_of_the_rebuilt_store_is_named_with_its_epoch(sealed: Recorded) -> None:
    settings, cases = sealed
    rebuild(settings, "deadlines")
    assert cli("seal", data_dir=settings.data_dir).exit_code == 0
    case = cases["open"]
    flip(settings.data_dir / "deadlines.sqlite", schedule(case), 2)
    result = cli("verify", data_dir=settings.data_dir)
    assert result.exit_code == 1
    assert (f"case {case}, deadlines event version 2 of epoch 2: the stored bytes differ from those sealed"
            in said(result))
    with Auditor(settings) as auditor:
        report = auditor.verify_all()
    assert {v.case_id: v.status for v in report.verdicts if v.status != "verified"} == {str(case): "broken"}


def test_an_intake_event_tampered_before_the_rebuild_is_still_named_after_it(sealed: Recorded) -> None:
    """The intake store is the record: never rebuilt, its chains run on across the derived stores' epochs (the
    rebuilt stores applied the altered event, so only its chain can tell)."""
    settings, cases = sealed
    case, path = cases["open"], settings.data_dir / "intake.sqlite"
    (state,) = (s for v, _, s in stored_rows(path, case) if v == 2)
    write_state(path, case, 2, state.replace(b'"2024-04-10"', b'"2024-04-11"'))
    for service in ("deadlines", "benefits"):
        rebuild(settings, service)
    assert cli("seal", data_dir=settings.data_dir).exit_code == 0
    result = cli("verify", data_dir=settings.data_dir)
    assert result.exit_code == 1
    assert f"case {case}, event" in said(result) and "(version 2): the stored bytes differ from those sealed" \
        in said(result)
    assert "deadlines rebuilt on" in said(result) and "benefits rebuilt on" in said(result)


def test_a_tampered_step_of_the_old_store_is_named_until_a_rebuild_replaces_it(sealed: Recorded) -> None:
    """A derived store is a function of the intake store: a rebuild writes the altered step again from the record,
    so nothing stays hidden, and the altered bytes go with the dropped store (what a rebuild cannot keep)."""
    settings, cases = sealed
    case = cases["closed"]
    flip(settings.data_dir / "deadlines.sqlite", schedule(case), 2)
    before = cli("verify", data_dir=settings.data_dir)
    assert before.exit_code == 1
    assert f"case {case}, deadlines event version 2: the stored bytes differ from those sealed" in said(before)
    rebuild(settings, "deadlines")
    assert cli("seal", data_dir=settings.data_dir).exit_code == 0
    after = cli("verify", data_dir=settings.data_dir)
    assert after.exit_code == 0, after.output
    assert "deadlines rebuilt on" in said(after) and "epoch 1 kept as history" in said(after)


def _audit_db(settings: Settings) -> sqlite3.Connection:
    db = sqlite3.connect(settings.data_dir / "audit.sqlite", isolation_level=None)
    for table in ("links", "epochs", "closed_chains"):
        db.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        db.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
    return db


@pytest.mark.parametrize("alteration", ["old link", "old digest", "old head", "old link deleted", "epoch record",
                                        "epoch deleted"])
def test_an_altered_link_or_record_of_the_old_epoch_is_named(sealed: Recorded, alteration: str) -> None:
    """The old epoch's events are gone with the old store; its sealed links stay, checked against what was
    recorded of them when the next epoch began, and the epoch records against their own chain and the
    checkpoints."""
    settings, cases = sealed
    rebuild(settings, "deadlines")
    digest = digest_of(cli("checkpoint", data_dir=settings.data_dir))
    assert cli("verify", "--checkpoint", digest, data_dir=settings.data_dir).exit_code == 0
    case = cases["open"]
    where = ("deadlines", str(schedule(case)))
    with _audit_db(settings) as db:
        if alteration == "old link":
            db.execute("UPDATE links SET link=? WHERE store=? AND originator_id=? AND version=2", (bytes(32), *where))
        elif alteration == "old digest":
            db.execute("UPDATE links SET state_digest=? WHERE store=? AND originator_id=? AND version=2",
                       (hashlib.sha256(b"forged").digest(), *where))
        elif alteration == "old head":
            db.execute("UPDATE links SET link=? WHERE store=? AND originator_id=? AND version=4", (bytes(32), *where))
        elif alteration == "old link deleted":
            db.execute("DELETE FROM links WHERE store=? AND originator_id=? AND version=3", where)
        elif alteration == "epoch record":
            db.execute("UPDATE epochs SET rebuilt_by='someone else' WHERE store='deadlines' AND number=2")
        else:
            db.execute("DELETE FROM epochs WHERE store='deadlines' AND number=2")
    result = cli("verify", "--checkpoint", digest, data_dir=settings.data_dir)
    assert result.exit_code == 1
    text = said(result)
    changed, old = "the sealed link differs from the one recorded when epoch 2 began", f"deadlines epoch 1, case {case}"
    expected = {
        "old link": f"{old}, version 2: {changed}",
        "old digest": f"{old}, version 2: {changed}",
        "old head": f"{old}, version 4: {changed}",
        "old link deleted": f"{old}, version 3: {changed}",  # versions 3 and 4 are one place earlier now
        "epoch record": "deadlines epoch 2: its record does not follow the epoch before it",
        "epoch deleted": "deadlines: links are recorded for an epoch 2 that no epoch record began",
    }[alteration]
    assert expected in text, text
    # a head or an epoch record gone also changes the digest handed out (the other alterations leave it as it was:
    # the epochs' own records name them)
    anchored = "checkpoint #1: the sealed heads now give" in text
    assert anchored == (alteration in {"old head", "epoch deleted"})
    if alteration == "epoch deleted":  # a seal does not begin the epoch again over the altered audit store
        seal = cli("seal", data_dir=settings.data_dir)
        assert seal.exit_code == 2 and "no record of epoch 2 is left: the audit store was altered" in said(seal)


def test_a_rebuild_declared_in_a_store_that_was_not_rebuilt_hides_no_tampering(sealed: Recorded) -> None:
    """A forger who alters a sealed step and adds a generation record to the store: a rebuilt store starts with
    its record, so this is no new epoch; the altered step is named, and sealing refuses the epoch (and seals
    nothing of the store)."""
    settings, cases = sealed
    case = cases["waiting"]
    flip(settings.data_dir / "deadlines.sqlite", schedule(case), 1)
    forger = build_deadlines(settings)
    forger.save(StoreRebuilt(originator_id=forger.generation_id(), originator_version=1,
                             timestamp=datetime.now(UTC), generation=uuid.uuid4(), rebuilt_by="operator", start=1))
    forger.close()
    for _ in range(2):
        result = cli("verify", data_dir=settings.data_dir)
        assert result.exit_code == 1
        text = said(result)
        assert "the deadlines store: it declares a rebuild on" in text and "does not start with that record" in text
        assert f"case {case}, deadlines event version 1: the stored bytes differ from those sealed" in text
        assert "rebuilt on" not in text
        seal = cli("seal", data_dir=settings.data_dir)
        assert seal.exit_code == 1 and "its new events are not sealed" in said(seal) and "begins" not in said(seal)


@pytest.mark.parametrize("how", ["record deleted", "old store put back"])
def test_a_rebuilt_store_replaced_afterwards_is_named(sealed: Recorded, how: str) -> None:
    settings, cases = sealed
    path = settings.data_dir / "deadlines.sqlite"
    rebuild(settings, "deadlines")
    assert cli("seal", data_dir=settings.data_dir).exit_code == 0
    if how == "record deleted":
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM stored_events WHERE originator_id=?",
                       (uuid.uuid5(uuid.NAMESPACE_URL, "reintegration:deadlines:generation").hex,))
        expected = "the deadlines store: it holds no generation record, but epoch 2 sealed the store rebuilt on"
    else:
        shutil.copy(path, settings.data_dir / "epoch-2.sqlite")
        rebuild(settings, "deadlines")
        assert "epoch 3 begins" in said(cli("seal", data_dir=settings.data_dir))
        shutil.copy(settings.data_dir / "epoch-2.sqlite", path)
        expected = "it is the store sealed in epoch 2 (generation"
    result = cli("verify", data_dir=settings.data_dir)
    assert result.exit_code == 1
    assert expected in said(result), said(result)
    if how == "old store put back":  # checked against epoch 3: every step of the old store is another one
        assert f"case {cases['open']}, deadlines event version 1 of epoch 3: the stored bytes differ" in said(result)


def test_a_recompute_appends_to_the_chains_and_needs_no_new_epoch(sealed: Recorded) -> None:
    """seal, recompute (under another policy), seal: the recomputations extend the sealed chains."""
    settings, _cases = sealed
    rolled = {"REINTEGRATION_ROLL_FORWARD": "yes"}
    recomputed = run("deadlines", "recompute", "--yes", "--data-dir", str(settings.data_dir),
                     env={**settings.to_env(), **rolled})
    assert recomputed.returncode == 0 and "5 changed" in " ".join(recomputed.stderr.split()), recomputed.stderr
    seal = cli("seal", data_dir=settings.data_dir)
    assert "seal #2: 5 new event(s) sealed in 5 chain(s)" in said(seal) and "epoch" not in said(seal)
    result = main("audit", "verify", data_dir=settings.data_dir, env=rolled)
    assert result.exit_code == 0, result.output
    assert "rebuilt" not in said(result)


def test_an_audit_store_sealed_before_epochs_existed_reads_on_and_takes_a_rebuild(sealed: Recorded) -> None:
    """Its checkpoints keep their digests (no epoch, nothing added to them); verify reads it as it is; the next
    seal adds the epoch tables."""
    settings, _cases = sealed
    digest = digest_of(cli("checkpoint", data_dir=settings.data_dir))
    with sqlite3.connect(settings.data_dir / "audit.sqlite") as db:
        db.execute("DROP TABLE epochs")
        db.execute("DROP TABLE closed_chains")
    assert cli("verify", "--checkpoint", digest, data_dir=settings.data_dir).exit_code == 0
    rebuild(settings, "benefits")
    assert "benefits rebuilt on" in said(cli("verify", data_dir=settings.data_dir))
    assert "benefits: epoch 2 begins" in said(cli("seal", data_dir=settings.data_dir))
    result = cli("verify", "--checkpoint", digest, data_dir=settings.data_dir)
    assert result.exit_code == 0 and "benefits rebuilt on" in said(result), result.output


def test_a_rebuild_begins_an_epoch_on_each_event_store(settings: Settings) -> None:
    """SQLite and PostgreSQL (whose fresh rebuild drops the service's schema)."""
    case = record_cases(settings)["open"]
    apply_all(settings)
    with Auditor(settings) as auditor:
        auditor.seal()
        audit = AuditStore(settings.data_dir, writable=False)
        chains = len(audit.epoch_links("benefits", 1))
        audit.close()
    operate.rebuild(build_benefits, settings, "benefits", fresh=True, start=1)
    with Auditor(settings) as auditor:
        [began] = auditor.seal().epochs
        assert (began.store, began.number, began.closed_chains) == ("benefits", 2, chains)
        report = auditor.verify_all()
        assert report.ok and [e.epoch for e in report.epochs] == [1, 2]
    _tamper_version(settings, case, 2)
    with Auditor(settings) as auditor:
        verdict = auditor.verify(case)
    assert verdict.status == "broken"
    assert [(c.store, c.broken.version) for c in verdict.chains if c.broken] == [("intake", 2)]
    assert any("benefits rebuilt on" in note for note in verdict.notes)


def _sealed_links(settings: Settings, store: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What the audit store holds of ``store``'s chains (every epoch's links) and of its sealing positions."""
    with sqlite3.connect(settings.data_dir / "audit.sqlite") as db:
        links = db.execute("SELECT store, originator_id, version, link FROM links WHERE store = ? OR store LIKE ? "
                           "ORDER BY 1, 2, 3", (store, f"{store}@%")).fetchall()
        positions = db.execute("SELECT store, notification_id FROM positions WHERE store = ? OR store LIKE ? "
                               "ORDER BY 1", (store, f"{store}@%")).fetchall()
    return links, positions


def _report_more(settings: Settings, case: uuid.UUID) -> None:
    """One more intake event (an assessment of the case), recorded after the others; nothing applied."""
    intake = build_intake(settings)
    intake.submit(OHS_PARTY, assessment(case, date(2024, 5, 3), "BE-2022", "A"), START + 60 * DAY)
    intake.close()


def copy_store(source: Path, target: Path) -> None:
    """A SQLite store copied whole (what its write-ahead log holds too), replacing the target's."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with contextlib.closing(sqlite3.connect(source)) as a, contextlib.closing(sqlite3.connect(target)) as b:
        a.backup(b)


@pytest.mark.parametrize("problem", ["record not first", "record deleted", "old store put back"])
def test_a_seal_does_not_extend_the_chains_of_a_store_whose_generation_is_no_rebuild(sealed: Recorded,
                                                                                    problem: str) -> None:
    """A store whose generation is not taken as a rebuild is suspect: its new events are not sealed (they would be
    sealed for good, and the right store, put back later, would show as broken forever). The seal names the store
    and its problem (exit 1) and seals the others; once the right store is back, sealing and verifying go on."""
    settings, cases = sealed
    path, right = settings.data_dir / "deadlines.sqlite", settings.data_dir / "right.sqlite"
    if problem == "record not first":
        copy_store(path, right)
        forger = build_deadlines(settings)
        forger.save(StoreRebuilt(originator_id=forger.generation_id(), originator_version=1,
                                 timestamp=datetime.now(UTC), generation=uuid.uuid4(), rebuilt_by="x", start=1))
        forger.close()
        expected = "the deadlines store: it declares a rebuild on"
    elif problem == "record deleted":
        rebuild(settings, "deadlines")
        assert cli("seal", data_dir=settings.data_dir).exit_code == 0
        copy_store(path, right)
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.execute("DELETE FROM stored_events WHERE originator_id=?",
                       (uuid.uuid5(uuid.NAMESPACE_URL, "reintegration:deadlines:generation").hex,))
        expected = "the deadlines store: it holds no generation record, but epoch 2 sealed the store rebuilt on"
    else:
        rebuild(settings, "deadlines")
        assert cli("seal", data_dir=settings.data_dir).exit_code == 0
        copy_store(path, settings.data_dir / "epoch-2.sqlite")
        rebuild(settings, "deadlines")
        assert "epoch 3 begins" in said(cli("seal", data_dir=settings.data_dir))
        copy_store(path, right)
        copy_store(settings.data_dir / "epoch-2.sqlite", path)
        expected = "the deadlines store: it is the store sealed in epoch 2 (generation"
    _report_more(settings, cases["waiting"])
    apply_all(settings)  # new steps in the suspect store (and in the benefits store)
    before = _sealed_links(settings, "deadlines")
    benefits = _sealed_links(settings, "benefits")
    for _ in range(2):
        seal = cli("seal", data_dir=settings.data_dir)
        assert seal.exit_code == 1, seal.output
        assert expected in said(seal) and "its new events are not sealed" in said(seal), said(seal)
        assert "sealed on" not in said(seal) and "begins" not in said(seal)
        assert _sealed_links(settings, "deadlines") == before
    assert len(_sealed_links(settings, "benefits")[0]) > len(benefits[0])  # the other stores are sealed
    checkpoint = cli("checkpoint", data_dir=settings.data_dir)
    assert checkpoint.exit_code == 1 and expected in said(checkpoint)
    assert _sealed_links(settings, "deadlines") == before
    # the right store back: caught up and sealed, nothing of the suspect one stays in its chains
    copy_store(right, path)
    apply_all(settings)
    seal = cli("seal", data_dir=settings.data_dir)
    assert seal.exit_code == 0, seal.output
    result = cli("verify", data_dir=settings.data_dir)
    assert result.exit_code == 0, result.output
    assert "everything verifies" in result.stdout


def test_a_store_rebuilt_while_sealing_is_not_sealed_into_the_old_epoch(sealed: Recorded,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A `rebuild --fresh` between the seal's reading of the store's generation and its reading of the events
    (simulated: the rebuild runs right after the epochs are read, and the seal's reader then sees the new store,
    as a PostgreSQL reader does after the schema is dropped): the new generation's events would be appended to the
    old epoch's chains. The seal re-reads the generation after its reads and leaves that store unsealed."""
    settings, cases = sealed
    _report_more(settings, cases["waiting"])  # a new event the rebuilt store applies (and the old one did not)
    before = _sealed_links(settings, "deadlines")
    original = chain.epoch_views

    def rebuilt_meanwhile(stores: Any, audit: AuditStore, *args: Any) -> Any:
        views = original(stores, audit, *args)
        operate.rebuild(build_deadlines, settings, "deadlines", fresh=True, start=1)
        stores.deadlines.close()
        stores.deadlines = build_deadlines(settings, None, **read_only_env(settings, "deadlines"))
        return views

    monkeypatch.setattr(chain, "epoch_views", rebuilt_meanwhile)
    with Auditor(settings) as auditor:
        report = auditor.seal()
    monkeypatch.undo()
    assert _sealed_links(settings, "deadlines") == before  # nothing of the new generation in epoch 1
    assert report.anomalies == ["the deadlines store was rebuilt while sealing; seal again"]
    assert report.epochs == []
    assert report.events == 1  # the intake event is sealed
    with Auditor(settings) as auditor:
        again = auditor.seal()
        assert again.anomalies == [] and [(e.store, e.number) for e in again.epochs] == [("deadlines", 2)]
    apply_all(settings)
    assert cli("seal", data_dir=settings.data_dir).exit_code == 0
    result = cli("verify", data_dir=settings.data_dir)
    assert result.exit_code == 0, result.output
    assert "deadlines rebuilt on" in said(result) and "everything verifies" in result.stdout


@pytest.mark.parametrize("value", ["deadlines@x", "deadlines@", "deadlines@02", "intake@2", "nowhere@2"])
def test_an_altered_label_of_sealed_links_is_a_finding_not_a_traceback(sealed: Recorded, value: str) -> None:
    """`audit verify` as an auditor runs it: the label is named, exit 1."""
    settings, _cases = sealed
    rebuild(settings, "deadlines")
    assert cli("seal", data_dir=settings.data_dir).exit_code == 0
    with _audit_db(settings) as db:
        db.execute("UPDATE links SET store=? WHERE store='deadlines@2'", (value,))
    result = run("audit", "verify", "--data-dir", str(settings.data_dir), env={**settings.to_env(), "COLUMNS": "250"})
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode == 1, output
    assert value in output, output
    assert "the audit store was altered" in output


# --- any sequence of seal, checkpoint, rebuild and recompute verifies -------------------------------------------


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("epochs") / "data"
    settings = Settings(data_dir=data)
    record_cases(settings)
    apply_all(settings)
    return data


@dataclasses.dataclass
class Model:
    """What the audit should say of each derived store: its epoch, whether a rebuild awaits a seal."""

    epoch: dict[str, int] = dataclasses.field(default_factory=lambda: {"deadlines": 1, "benefits": 1})
    pending: dict[str, bool] = dataclasses.field(default_factory=lambda: {"deadlines": False, "benefits": False})
    sealed: bool = False

    def seal(self) -> None:
        for store, pending in self.pending.items():
            if pending and self.sealed:
                self.epoch[store] += 1
            self.pending[store] = False
        self.sealed = True


OPERATIONS = ("seal", "checkpoint", "rebuild deadlines", "rebuild benefits", "rebuild deadlines in place",
              "recompute deadlines")


BUILD = {"deadlines": build_deadlines, "benefits": build_benefits}


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(operations=st.lists(st.sampled_from(OPERATIONS), min_size=1, max_size=6), seal_last=st.booleans())
def test_any_sequence_of_seals_rebuilds_and_recomputes_verifies(template: Path, tmp_path: Path,
                                                                operations: list[str], seal_last: bool) -> None:
    """Without tampering, verify is clean after any sequence; it says "rebuilt" exactly for a store rebuilt after
    it was first sealed, in the epoch expected; every checkpoint handed out on the way still matches."""
    data = tmp_path / uuid.uuid4().hex[:8]
    shutil.copytree(template, data)
    current = Settings(data_dir=data)
    model = Model()
    digests = []
    for operation in [*operations, *(["seal"] if seal_last else [])]:
        if operation in ("seal", "checkpoint"):
            with Auditor(current) as auditor:
                if operation == "seal":
                    assert auditor.seal().anomalies == []
                else:
                    digests.append(auditor.checkpoint()[1].digest)
            model.seal()
        elif operation.startswith("rebuild"):
            store, fresh = operation.split()[1], not operation.endswith("in place")
            operate.rebuild(BUILD[store], current, store, fresh=fresh, start=1)
            model.pending[store] = model.pending[store] or fresh
        else:  # the deployment's policy changes, and the schedules are recomputed under it
            current = dataclasses.replace(current, roll_forward=not current.roll_forward)
            assert recompute(current, "deadlines", dry_run=False) == 5
    with Auditor(current) as auditor:
        report = auditor.verify_all()
        assert report.ok, [v.notes for v in report.verdicts if v.status != "verified"]
        assert report.counts["verified"] == 5
        epochs = {e.store: (e.epoch, e.pending, e.rebuilt, e.problems) for e in report.epochs}
        expected = {}
        for store, epoch in model.epoch.items():
            number = epoch + (1 if model.pending[store] and model.sealed else 0)
            expected[store] = (number, model.pending[store], number > 1, [])
        assert epochs == expected
        for digest in digests:
            assert auditor.verify_all(outside_digest=digest).checkpoints.ok
