"""The directory as a user meets it: a CSV imported with the real command, an identity
provider and a kiosk talking to a real ``openlocker serve`` with two workers, and the
recipient's message in the outbox and then in the demo mailbox."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from openlocker.core.context import Context
from tests.directory.helpers import building
from tests.factories import Factory
from tests.servers import serving

_OPENLOCKER = Path(sys.executable).parent / "openlocker"


def test_import_then_open_deposit_through_a_real_server(
    factory: Factory, ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = building(factory, sizes="SSM")
    admin = factory.operator()
    residents = tmp_path / "residents.csv"
    residents.write_text(
        "display_name;unit;email;phone;external_id\n"
        "Łucja Żółć;12A;lucja@example.com;600 100 200;R-1\n"
        "Jan Nowak;14;jan@example.com;;R-2\n"
    )
    env = {
        **os.environ,
        "OPENLOCKER_DATABASE_URL": ctx.settings.database_url,
        "OPENLOCKER_SECRET_KEY": ctx.settings.secret_key or "",
        "OPENLOCKER_DATA_DIR": str(ctx.settings.data_folder),
    }
    imported = subprocess.run(
        [str(_OPENLOCKER), "directory", "import", here.site_id, str(residents)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    assert "2 created" in imported.stderr

    monkeypatch.setenv("OPENLOCKER_MAILBOX", "1")
    with serving(ctx, workers=2) as base, httpx.Client(base_url=base, timeout=10) as http:
        scim = http.post(
            "/scim/v2/Users",
            json={"userName": "eve@example.com", "displayName": "Ewa Kowalska"},
            headers={**here.keeper.headers, "Content-Type": "application/scim+json"},
        )
        assert scim.status_code == 201, scim.text

        found = http.get(
            f"/v1/sites/{here.site_id}/directory",
            params={"q": "zolc 12"},
            headers=here.kiosk.headers,
        )
        assert found.status_code == 200, found.text
        [lucja] = found.json()["items"]
        assert lucja["display_name"] == "Łucja Żółć" and set(lucja) == {
            "id",
            "display_name",
            "unit",
        }

        deposit = http.post(
            f"/v1/sites/{here.site_id}/open-deposits",
            json={"entry_id": lucja["id"], "size": "S"},
            headers={**here.kiosk.headers, "Idempotency-Key": "drop-1"},
        )
        assert deposit.status_code == 201, deposit.text
        parcel_id = deposit.json()["parcel_id"]

        outbox = http.get(
            "/v1/outbox",
            params={"parcel_id": parcel_id, "topic": "recipient.pickup_ready"},
            headers=admin.headers,
        ).json()["items"]
        assert len(outbox) == 1
        deadline = time.monotonic() + 20
        while outbox[0]["state"] != "sent" and time.monotonic() < deadline:
            time.sleep(0.2)
            outbox = http.get(f"/v1/outbox/{outbox[0]['id']}", headers=admin.headers).json()
            outbox = [outbox]
        assert outbox[0]["state"] == "sent", outbox
        mailbox = http.get("/demo/mailbox")
        assert mailbox.status_code == 200 and "lucja@example.com" in mailbox.text

        # Couriers at once for the two compartments left (an S and an M, which an S fits):
        # the two worker processes never hand one out twice.
        def drop(n: int) -> httpx.Response:
            body = {"entry_id": lucja["id"], "size": "S", "tracking_number": f"RUSH-{n}"}
            return http.post(
                f"/v1/sites/{here.site_id}/open-deposits", json=body, headers=here.kiosk.headers
            )

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(drop, range(8)))
        won = [a.json()["compartment"]["id"] for a in answers if a.status_code == 201]
        assert sorted(a.json().get("code", "ok") for a in answers) == ["ok"] * 2 + ["site_full"] * 6
        assert len(set(won)) == 2 and deposit.json()["compartment"]["id"] not in won

    with ctx.db.engine.connect() as conn:
        sent_to = (
            conn.execute(text("SELECT recipient FROM mailbox_messages ORDER BY seq"))
            .scalars()
            .all()
        )
    assert set(sent_to) == {"lucja@example.com", "+48600100200"}
