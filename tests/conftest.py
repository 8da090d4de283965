from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared_home(tmp_path_factory) -> Path:
    """One autodistill home for all slow tests, so the real teacher is fine-tuned once per run."""
    return Path(os.environ.get("AUTODISTILL_TEST_HOME") or tmp_path_factory.mktemp("shared-home"))


@pytest.fixture(autouse=True)
def _isolated_home(request, tmp_path_factory, monkeypatch):
    """Fast tests get their own home; slow tests share one (set AUTODISTILL_TEST_HOME to keep it)."""
    if request.node.get_closest_marker("slow"):
        home = request.getfixturevalue("shared_home")
    else:
        home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("AUTODISTILL_HOME", str(home))


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server on 127.0.0.1 for the whole session (tests/pg.py), started at first use
    and stopped at the end. scripts/test.sh sets AUTODISTILL_REQUIRE_POSTGRES=1, so that in CI a
    missing server or driver fails instead of skipping."""
    from pg import postgres, server_bin

    missing = "PostgreSQL's server (initdb, pg_ctl)" if server_bin() is None else None
    try:
        import psycopg2  # noqa: F401  (tests/pg.py makes its databases with it)
        from sqlalchemy.dialects import postgresql

        postgresql.dialect.import_dbapi()  # the driver that postgresql:// URLs open with
    except ImportError:
        missing = "a PostgreSQL driver (the 'postgres' extra)"
    if missing:
        reason = f"{missing} is not installed; scripts/setup.sh and scripts/test.sh install both"
        if os.environ.get("AUTODISTILL_REQUIRE_POSTGRES"):
            pytest.fail(reason)
        pytest.skip(reason)
    with postgres() as server:
        yield server
