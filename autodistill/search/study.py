"""The Optuna side of the search: storage, sampler, resume checks and stale trials.

Optuna stays in search/; everything below it sees plain values.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy.engine
import sqlalchemy.exc
from optuna.trial import TrialState

from autodistill.config.run import RunConfig
from autodistill.errors import ConfigError
from autodistill.fingerprint import hash_json

WORKER_ATTR = "worker"
WARM_START_ATTR = "warm_start"  # on a trial queued from another study's front: "STUDY:NUMBER"
HEARTBEAT_ATTR = "alive_at"  # wall-clock seconds of the worker's last sign of life


SQLITE = "sqlite:///"


def default_storage(output_dir: str | Path) -> str:
    return f"{SQLITE}{Path(output_dir).resolve() / 'study.db'}"


def sqlite_file(storage: str) -> Path | None:
    """The database file of a SQLite storage URL; None for other storages."""
    return Path(storage[len(SQLITE) :]) if storage.startswith(SQLITE) else None


SQLITE_MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
_T = TypeVar("_T")


def _check_database(db: Path, name: str) -> None:
    """Refuse, before SQLite touches it, a study file that is not a SQLite database (a text file,
    another program's file): named, with what to do, instead of a SQLAlchemy traceback. An empty
    file is a valid empty database."""
    if not db.is_file() or db.stat().st_size == 0:
        return
    with db.open("rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head != SQLITE_MAGIC:
        raise ConfigError(_not_a_study(db, name, "is not a SQLite database"))


def _not_a_study(db: Path, name: str, what: str) -> str:
    return (
        f"The study database {str(db)!r} (study {name!r}) {what}. It was left as it is: move it away if it "
        "holds anything you need, then run again to start a new study there, or point --storage / "
        "search.storage / output_dir at the study you ran."
    )


def _on_database(storage: str, name: str, call: Callable[[], _T]) -> _T:
    """Run an Optuna call on ``storage``, turning a SQLite file that is no (or a damaged) database
    into a ConfigError that names it. Locks and other operational errors pass through as they are."""
    db = sqlite_file(storage)
    if db is not None:
        _check_database(db, name)
    try:
        return call()
    except sqlalchemy.exc.OperationalError:
        raise
    except sqlalchemy.exc.DatabaseError as err:
        if db is None:
            raise
        reason = str(err.orig) if err.orig is not None else str(err).splitlines()[0]
        raise ConfigError(_not_a_study(db, name, f"cannot be read as a study ({reason})")) from None


def shown_url(storage: str) -> str:
    """The storage URL with its password hidden, for messages."""
    try:
        return sqlalchemy.engine.make_url(storage).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: said as given, cut short
        return storage[:200]


def open_storage(storage: str, **options: Any) -> str | optuna.storages.RDBStorage:
    """What Optuna opens for ``storage``: a SQLite URL as it is, another database as an
    ``RDBStorage`` with ``options`` (its heartbeat). It connects here, so that a missing driver,
    a malformed URL or a server that refuses is a message naming the storage, not a traceback."""
    if sqlite_file(storage) is not None:
        return storage
    where = f"The study storage {shown_url(storage)!r} (--storage / search.storage)"
    try:
        return _creating_tables(lambda: optuna.storages.RDBStorage(storage, **options))
    except ImportError as err:  # Optuna re-raises the driver's ModuleNotFoundError as a plain ImportError
        missing = err if isinstance(err, ModuleNotFoundError) else err.__cause__
        raise ConfigError(
            f"{where} needs the database driver {getattr(missing, 'name', None) or '(unknown)'!r}, which is not "
            "installed. For PostgreSQL: pip install 'autodistill-kd[postgres]'; for another database, "
            "its SQLAlchemy driver."
        ) from None
    except sqlalchemy.exc.ArgumentError as err:  # not a URL, or a dialect SQLAlchemy does not know
        raise ConfigError(
            f"{where} is not a database URL Optuna can open ({err}). "
            "Use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE."
        ) from None
    except sqlalchemy.exc.SQLAlchemyError as err:
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        raise ConfigError(
            f"{where} cannot be opened: {reason}. Check that the database server runs and accepts "
            "this host, port, user, password and database."
        ) from None


def _creating_tables(make: Callable[[], _T], tries: int = 5) -> _T:
    """``make()``, again after a moment when another worker was creating the same tables in an
    empty database at the same instant (workers started together): PostgreSQL then refuses the
    second CREATE TABLE or version row with a duplicate key, and the tables exist on the next try."""
    for attempt in range(tries):
        try:
            return make()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as err:
            racing = isinstance(err, sqlalchemy.exc.IntegrityError) or "already exists" in str(err)
            if not racing or attempt == tries - 1:
                raise
            time.sleep(0.2 + 0.3 * random.random())
    raise AssertionError("unreachable")


def worker_seed(seed: int) -> int:
    """A sampler seed for a worker joining a study: the run's seed hashed with this worker's
    identity (host, process and a random id), so that workers sharing one study, or started
    together from one config, do not draw the same points."""
    identity = f"{seed}:{worker_id()}:{uuid.uuid4().hex}"
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:4], "big")


def make_sampler(cfg: RunConfig, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The configured sampler, seeded by ``seed`` (default: the run's seed)."""
    from autodistill.search.samplers import SAMPLERS

    seed = cfg.seed if seed is None else seed
    return SAMPLERS.get(cfg.search.sampler)(seed, cfg.search.startup_trials)


def directions(objectives: list[str]) -> list[str]:
    return ["maximize" if o == "quality" else "minimize" for o in objectives]


def study_identity(cfg: RunConfig, space_dict: dict[str, Any], teacher_fp: str, data_fp: str) -> dict[str, Any]:
    """What must match for a study to be continued."""
    return {
        "objectives": list(cfg.search.objectives),
        "space": hash_json(space_dict)[:16],
        "teacher": teacher_fp[:16],
        "data": data_fp[:16],
        # constraints are stored per trial: a resumed study under another budget would mix two; unset
        # limits and the default runtime stay out, so studies made before a key existed keep their identity
        "budget": {k: v for k, v in vars(cfg.budget).items() if v is not None and (k, v) != ("runtime", "pytorch")},
        # proxies prune on this many examples: trials scored on another number would not compare
        "calibration_examples": cfg.search.calibration_examples,
        # teacher.extra changes what every student learns from; absent when unset, as before it existed
        **({"extra": [asdict(t) for t in cfg.teacher.extra]} if cfg.teacher.extra else {}),
    }


def open_study(
    cfg: RunConfig, storage: str | optuna.storages.BaseStorage, name: str, identity: dict[str, Any]
) -> optuna.Study:
    """Create the study, or continue it after checking it was made for the same search.
    ``storage``: a URL, or the storage ``search.workers.make_storage`` opened for it."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage if isinstance(storage, str) else storage.url
    db = sqlite_file(url)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    # The worker that creates the study samples with the run's own seed, so a fresh search by one
    # worker draws the same trials each time it is run. Any worker that finds the study already
    # there (another worker started beside it, or a resumed run, whose seed-0 sampler would replay
    # the first worker's startup points) derives its own seed instead.
    try:
        study = _on_database(
            url,
            name,
            lambda: optuna.create_study(
                storage=storage,
                study_name=name,
                directions=directions(cfg.search.objectives),
                sampler=make_sampler(cfg),
            ),
        )
    except optuna.exceptions.DuplicatedStudyError:
        sampler = make_sampler(cfg, worker_seed(cfg.seed))
        study = _on_database(url, name, lambda: optuna.load_study(study_name=name, storage=storage, sampler=sampler))
    old = study.user_attrs.get("identity")
    if old is None:
        study.set_user_attr("identity", identity)
        return study
    names = {"objectives": "search.objectives", "space": "search.space", "teacher": "teacher", "data": "data"}
    later = {"budget": "budget", "calibration_examples": "search.calibration_examples"}
    for key, what in {**names, **later}.items():
        if key in later and key not in old:  # a study made before this was part of its identity
            continue
        if old.get(key) != identity.get(key):
            raise ConfigError(
                f"The study {name!r} in {shown_url(url)} was made with a different {what} ({key}: {old.get(key)!r}, "
                f"now {identity.get(key)!r}). Continue it with the same settings, or start a new one with "
                "--study-name or another output_dir."
            )
    return study


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_stale_trials(study: optuna.Study, stale_after: float = 600.0) -> list[int]:
    """Fail the RUNNING trials of dead workers (a killed run), so a resumed search does not wait for them.

    A worker on this host is dead when its process is gone. A worker on another machine (sharing a
    PostgreSQL study) is taken as dead when its trial has shown no heartbeat for ``stale_after``
    seconds; a trial with no worker recorded at all is judged by its start time the same way.
    """
    host, now = socket.gethostname(), time.time()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get(WORKER_ATTR, "")
        w_host, _, pid = worker.rpartition(":")
        if worker and w_host == host and pid.isdigit():
            dead = not _alive(int(pid))
        else:
            started = t.datetime_start.timestamp() if t.datetime_start else 0.0
            dead = now - float(t.user_attrs.get(HEARTBEAT_ATTR, started)) > stale_after
        if dead:
            try:
                study.tell(t.number, state=TrialState.FAIL)
            except (ValueError, RuntimeError):  # another worker failed it first, or its own ended it
                continue
            failed.append(t.number)
    return failed


class Heartbeat:
    """While a trial runs, record the time in its user attributes every ``interval`` seconds, so
    workers on other machines can tell a live trial from one whose worker died; or call ``beat``
    instead (Optuna's own heartbeat record, see ``search/workers.py``)."""

    def __init__(self, trial: optuna.Trial, interval: float, beat: Callable[[], None] | None = None) -> None:
        self.trial, self.interval = trial, interval
        self.beat = beat or (lambda: trial.set_user_attr(HEARTBEAT_ATTR, time.time()))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="autodistill-heartbeat", daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception:  # the trial has just finished, or the storage is busy: the next beat retries
                continue

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def running_elsewhere(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """RUNNING trials of other live workers (processes sharing the storage): trials in flight."""
    me = worker_id()
    return [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.user_attrs.get(WORKER_ATTR) != me
    ]


def trained_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that trained a student (complete or pruned), not the refused ones."""
    states = (TrialState.COMPLETE, TrialState.PRUNED)
    return [t for t in study.get_trials(deepcopy=False, states=states) if t.user_attrs.get("trained")]


def feasible(t: optuna.trial.FrozenTrial) -> bool:
    return all(v <= 0 for v in (t.constraints or {}).values())


def open_existing(storage: str, name: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = sqlite_file(storage)
    if db is not None and not db.is_file():
        # checked here: opening a missing SQLite file makes an empty one, or fails with a bare
        # "unable to open database file" where its folder is missing too
        raise ConfigError(
            f"No study database at {db} (study {name!r}). Run `autodistill search CONFIG` first, "
            "or point --storage / output_dir at the study you ran."
        )
    opened = open_storage(storage)
    try:
        return _on_database(storage, name, lambda: optuna.load_study(study_name=name, storage=opened))
    except KeyError:
        raise ConfigError(
            f"No study named {name!r} in {shown_url(storage)}. Run `autodistill search CONFIG` first."
        ) from None


def warm_start(study: optuna.Study, storage: Any, source: str, identity: dict[str, Any]) -> list[int]:
    """Enqueue the front of study ``source`` (same storage) as a new study's first trials; returns
    their numbers there. Done once, while the study has no trial; the source must have been made
    for the same teacher, data and search space, so its students mean the same here."""
    from autodistill.search.front import pareto_front

    if study.trials:
        return []
    url = storage if isinstance(storage, str) else storage.url
    try:
        other = optuna.load_study(study_name=source, storage=storage)
    except KeyError:
        raise ConfigError(
            f"The 'search.warm_start' parameter names study {source!r}, which {shown_url(url)} does not hold."
        ) from None
    theirs = other.user_attrs.get("identity") or {}
    for key in ("teacher", "data", "space"):
        if theirs.get(key) != identity.get(key):
            raise ConfigError(
                f"The 'search.warm_start' study {source!r} was made with a different {key} ({theirs.get(key)!r}, "
                f"here {identity.get(key)!r}): its students would not mean the same here. Warm-start from a study "
                "of the same teacher, data and space."
            )
    front = pareto_front(other, list(theirs.get("objectives") or ["quality", "parameters"]))
    for r in front:
        study.enqueue_trial(r["params"], user_attrs={WARM_START_ATTR: f"{source}:{r['number']}"}, skip_if_exists=True)
    study.set_user_attr("warm_start", {"study": source, "trials": [r["number"] for r in front]})
    return [r["number"] for r in front]
