"""The operator's commands on a PostgreSQL work-order database, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator_core.pg.migrate import latest
from tests.bot.live import techassist
from tests.orchestrator_core.workorders.backends import empty_postgres_url

__all__ = ["empty_postgres_url"]


def test_upgrade_seed_import_list_and_tokens_work_on_postgres(
    tmp_path: Path, empty_postgres_url: str
) -> None:
    env = {"TECHASSIST_DATABASE_URL": empty_postgres_url}

    before = techassist(tmp_path, "orders", "list", "--cuid", "AB1234", **env)
    assert before.returncode == 1 and "techassist db upgrade" in before.stderr
    assert "Traceback" not in before.stderr

    first = techassist(tmp_path, "db", "upgrade", **env)
    assert first.returncode == 0 and "Applied 001_initial" in first.stdout, first.stderr
    assert "002_sessions" in first.stdout and "003_owners" in first.stdout
    again = techassist(tmp_path, "db", "upgrade", **env)
    assert again.returncode == 0 and f"up to date (version {latest()})" in again.stdout

    seeded = techassist(tmp_path, "orders", "seed", **env)
    assert seeded.returncode == 0 and "Seeded the demo data" in seeded.stdout, seeded.stderr
    assert "already has data" in techassist(tmp_path, "orders", "seed", **env).stdout

    data = {
        "technicians": [{"cuid": "ZZ0001", "name": "Zed"}],
        "orders": [
            {
                "order_id": "ORD-9001",
                "cuid": "zz0001",
                "order_type": "installation",
                "status": "assigned",
                "scheduled_start": "2026-12-05T09:00:00Z",
                "created_at": "2026-11-20T10:00:00Z",
                "customer_name": "Edith Clarke",
                "address": "2 Grid Road",
                "service_tier": "GIG1",
            }
        ],
    }
    (tmp_path / "more.json").write_text(json.dumps(data))
    imported = techassist(tmp_path, "orders", "import", "more.json", **env)
    assert imported.returncode == 0 and "1 technicians, 1 orders" in imported.stdout
    bad = dict(data, orders=[dict(data["orders"][0], status="finished")])
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    refused = techassist(tmp_path, "orders", "import", "bad.json", **env)
    assert refused.returncode == 1 and "orders[0] (order_id=ORD-9001): status" in refused.stderr

    listed = techassist(tmp_path, "orders", "list", "--cuid", "zz0001", "--json", **env)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert (row["order_id"], row["status"], row["priority"]) == ("ORD-9001", "assigned", 1)

    issued = techassist(tmp_path, "tokens", "issue", "--cuid", "ZZ0001", **env)
    assert issued.returncode == 0 and issued.stdout.startswith("tat_"), issued.stderr
    revoked = techassist(tmp_path, "tokens", "revoke", issued.stdout.strip(), **env)
    assert revoked.returncode == 0 and "Revoked the token." in revoked.stdout
    assert techassist(tmp_path, "tokens", "revoke", issued.stdout.strip(), **env).returncode == 1
    # Nothing went to the SQLite file.
    assert not (tmp_path / "workorders.db").exists()
