"""The report pages (``/ui``): sections and images, list, compare, login cookie, tenancy.

Jobs are real: a grait and a cor_rait job run once per session on the tiny toy world
(``tests/app/ui_jobs.py``); each test inserts succeeded ``Job`` rows for its own tenant and
copies the folders to ``store.root/jobs/<id>``. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from app.ui.auth import COOKIE
from app.ui.session import issue_token
from tests.app.helpers import new_key
from tests.app.ui_jobs import add_job, finished_jobs

SECTIONS = ("results", "plane", "curves", "correctness", "weights", "timeline", "config")
FIGURES = ("plane", "curves", "correctness", "weights", "timeline")


@pytest.fixture(scope="session")
def job_folders(tmp_path_factory: pytest.TempPathFactory, tiny_world: Any) -> dict[str, Path]:
    return finished_jobs(tmp_path_factory.getbasetemp() / "ui_jobs", tiny_world)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _section(html: str, name: str) -> str:
    match = re.search(rf'<section id="{name}">(.*?)</section>', html, re.S)
    assert match, f"section {name} missing"
    return match.group(1)


def _check_svgs(html: str) -> None:
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == len(FIGURES)
    for svg in svgs:
        root = ET.fromstring(svg)
        assert len(list(root.iter())) > 20


def _check_pngs(html: str) -> None:
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(uris) == len(FIGURES)
    for uri in uris:
        with Image.open(io.BytesIO(base64.b64decode(uri))) as image:
            image.load()
            assert image.format == "PNG" and image.width > 200 and image.height > 100


def test_job_page_shows_every_section(
    app: FastAPI, client: TestClient, job_folders: dict[str, Path]
) -> None:
    key, tenant = new_key(app)
    job_id = add_job(app, tenant, job_folders["grait"])
    response = client.get(f"/ui/jobs/{job_id}", headers=_bearer(key))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src" not in response.headers["content-security-policy"]
    html = response.text
    for name in SECTIONS:
        _section(html, name)
    _check_svgs(html)
    results = _section(html, "results")
    for column in ("Pc", "Pw", "Pr", "THS"):
        assert f"<th>{column}</th>" in results
    assert results.count("<tr>") == 1 + 2 * 3  # header + 2 test sets x 3 models
    # The selection note names the variant: the default is stratified.
    assert "tau" in _section(html, "correctness") and "stratified selection" in html
    assert "mean loss over the target tokens" in html and "answer features adam" in html
    assert "adaptive weights min" in html and "from 1 warmup checkpoint(s)" in html
    assert "method.type" in _section(html, "config")
    _check_pngs(client.get(f"/ui/jobs/{job_id}?images=png", headers=_bearer(key)).text)


def test_dynamic_weighting_is_named_on_the_job_page(
    app: FastAPI, client: TestClient, job_folders: dict[str, Path], tmp_path: Path
) -> None:
    """A job tuned with ``weighting: dynamic`` says its selection.json weights are the
    start (the fine-tune recomputed them)."""
    import json
    import shutil

    folder = tmp_path / "dynamic"
    shutil.copytree(job_folders["grait"], folder)
    report = json.loads((folder / "report.json").read_text())
    report["job"]["config"]["method"]["weighting"] = "dynamic"
    (folder / "report.json").write_text(json.dumps(report))
    key, tenant = new_key(app)
    job_id = add_job(app, tenant, folder)
    html = client.get(f"/ui/jobs/{job_id}", headers=_bearer(key)).text
    assert "dynamic (recomputed while training; at the start) weights min" in html


def test_job_without_selection_says_not_available(
    app: FastAPI, client: TestClient, job_folders: dict[str, Path]
) -> None:
    key, tenant = new_key(app)
    job_id = add_job(app, tenant, job_folders["cor_rait"])
    html = client.get(f"/ui/jobs/{job_id}", headers=_bearer(key)).text
    assert "not available for this method" in _section(html, "weights")
    _check_svgs(html)


def test_unfinished_job_says_report_not_ready(app: FastAPI, client: TestClient) -> None:
    key, tenant = new_key(app)
    job_id = add_job(app, tenant, None, status="running")
    response = client.get(f"/ui/jobs/{job_id}", headers=_bearer(key))
    assert response.status_code == 200
    status = _section(response.text, "status")
    assert "running" in status and "not ready" in status
    assert "<svg" not in response.text


def test_jobs_list_shows_status_and_headline_ths(
    app: FastAPI, client: TestClient, job_folders: dict[str, Path]
) -> None:
    key, tenant = new_key(app)
    done = add_job(app, tenant, job_folders["grait"])
    running = add_job(app, tenant, None, status="running")
    html = client.get("/ui/jobs", headers=_bearer(key)).text
    for job_id in (done, running):
        assert f'href="/ui/jobs/{job_id}"' in html
        assert f'name="ids" value="{job_id}"' in html
    assert 'action="/ui/compare"' in html and "running" in html and "succeeded" in html
    report = json.loads((job_folders["grait"] / "report.json").read_text())
    first = next(iter(report["eval"].values()))  # the tuned model's THS on a test set
    assert f"{float(first['tuned']['ths']):.1f}" in html


def test_compare_lists_config_differences(
    app: FastAPI, client: TestClient, job_folders: dict[str, Path]
) -> None:
    key, tenant = new_key(app)
    a = add_job(app, tenant, job_folders["grait"])
    b = add_job(app, tenant, job_folders["cor_rait"])
    for query in (f"ids={a},{b}", f"ids={a}&ids={b}"):
        response = client.get(f"/ui/compare?{query}", headers=_bearer(key))
        assert response.status_code == 200
        html = response.text
        differences = _section(html, "differences")
        assert "method.type" in differences and "cor_rait" in differences
        assert "seed" not in re.findall(r"<tr><td>([^<]*)</td>", differences)
        _check_svgs(html)
        assert "#1 grait" in _section(html, "results") and "#2 cor_rait" in html
    assert client.get(f"/ui/compare?ids={a}", headers=_bearer(key)).status_code == 400


def test_login_sets_cookie_and_pages_accept_it(app: FastAPI, client: TestClient) -> None:
    key, tenant = new_key(app)
    job_id = add_job(app, tenant, None, status="queued")
    assert 'name="api_key"' in client.get("/ui/login").text
    bad = client.post("/ui/login", data={"api_key": "grait_000000000000_" + "x" * 30})
    assert bad.status_code == 401 and COOKIE not in client.cookies
    response = client.post("/ui/login", data={"api_key": key}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui/jobs"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert client.get("/ui/jobs").status_code == 200
    assert client.get(f"/ui/jobs/{job_id}").status_code == 200
    client.post("/ui/logout")
    client.cookies.clear()
    assert client.get("/ui/jobs", follow_redirects=False).status_code == 303


def test_the_login_cookie_is_a_signed_expiring_token_not_the_key(
    app: FastAPI, client: TestClient
) -> None:
    key, _ = new_key(app)
    client.post("/ui/login", data={"api_key": key}, follow_redirects=False)
    token = client.cookies[COOKIE]
    secret = key[19:]  # after grait_<12 hex>_
    assert secret not in token and key not in token
    prefix, expires, signature = token.split(".")
    assert client.get("/ui/jobs", follow_redirects=False).status_code == 200
    # A changed expiry (or any other change) breaks the signature.
    client.cookies.clear()
    client.cookies.set(COOKIE, f"{prefix}.{int(expires) + 3600}.{signature}", path="/ui")
    assert client.get("/ui/jobs", follow_redirects=False).status_code == 303


def test_an_expired_login_goes_back_to_the_login_page(app: FastAPI, client: TestClient) -> None:
    key, _ = new_key(app)
    an_hour_ago = time.time() - 3600
    client.cookies.set(COOKIE, issue_token(app.state.ui_secret, key, an_hour_ago, 60), path="/ui")
    response = client.get("/ui/jobs", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    client.cookies.set(COOKIE, issue_token(app.state.ui_secret, key, time.time(), 60), path="/ui")
    assert client.get("/ui/jobs", follow_redirects=False).status_code == 200


def test_cross_site_login_is_refused(app: FastAPI, client: TestClient) -> None:
    key, _ = new_key(app)
    headers = {"Origin": "http://evil.example"}
    response = client.post("/ui/login", data={"api_key": key}, headers=headers)
    assert response.status_code == 403 and "set-cookie" not in response.headers


def test_another_tenants_job_answers_404(
    app: FastAPI, client: TestClient, job_folders: dict[str, Path]
) -> None:
    _, owner = new_key(app)
    job_id = add_job(app, owner, job_folders["grait"])
    other, other_tenant = new_key(app)
    mine = add_job(app, other_tenant, job_folders["grait"])
    assert client.get(f"/ui/jobs/{job_id}", headers=_bearer(other)).status_code == 404
    compare = client.get(f"/ui/compare?ids={mine},{job_id}", headers=_bearer(other))
    assert compare.status_code == 404
    assert job_id not in client.get("/ui/jobs", headers=_bearer(other)).text


@pytest.mark.parametrize("path", ["/ui/jobs", "/ui/jobs/job_x", "/ui/compare?ids=a,b"])
def test_without_auth_redirects_to_login(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    client.cookies.set(COOKIE, "grait_000000000000_" + "y" * 30, path="/ui")
    assert client.get(path, follow_redirects=False).status_code == 303
    client.cookies.clear()
    bearer = {"Authorization": "Bearer nope"}
    assert client.get(path, headers=bearer, follow_redirects=False).status_code == 401


def test_a_failed_job_page_never_shows_sql(app: FastAPI, client: TestClient) -> None:
    from app.db.models import Job
    from app.db.session import unit_of_work

    key, tenant = new_key(app)
    job_id = add_job(app, tenant, None, status="failed")
    with unit_of_work(app.state.session_factory) as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.error_code = "stage_error"
        job.error_message = "(OperationalError) [SQL: SELECT secret FROM t] [parameters: (1,)]"
    html = client.get(f"/ui/jobs/{job_id}", headers=_bearer(key)).text
    assert "stage_error" in html and "SELECT secret" not in html and "[SQL:" not in html
