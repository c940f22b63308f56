"""The suite's fixtures and hooks; what the tests share besides fixtures is in tests/support."""
import pathlib

import pytest
from playwright import sync_api as playwright

from opik_runners.app import create_app
from opik_runners.settings import load_settings
from opik_runners.store import db
from opik_runners.store.models import database
from tests.support import contract
from tests.support.browser import WatchedBrowser, launch
from tests.support.contract import ContractClient
from tests.support.databases import fresh_database_url
from tests.support.in_app import InApp

HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(items):
    """tests/acceptance starts real servers, the CLI, PostgreSQL or a browser: `slow`, so
    that `pytest -m "not slow"` runs the rest (domain, schemas, the API through Flask's
    test client) in well under a minute."""
    for item in items:
        if HERE / "acceptance" in item.path.parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def settings(tmp_path):
    """A fresh database, migrated and opened without an app, and the settings for it: what the
    domain rules take (tests/unit)."""
    url = fresh_database_url(tmp_path)
    backend = db.open_and_migrate(url)
    with database.connection_context():
        yield load_settings({}, DATABASE_URL=url)
    backend.shut()


_BUILT = {}  # apps by the settings they were built with (see make_app)


@pytest.fixture
def make_app(tmp_path):
    """An app on a fresh database (a new SQLite file, or the PostgreSQL test database wiped);
    keyword arguments override settings, by variable name.

    Building an app costs ~30 ms (werkzeug compiles every route), more than most tests take,
    so an app built for one set of overrides serves each later test with the same ones, on
    that test's own fresh database: the database is all the state an app holds. A test that
    names its DATABASE_URL gets an app built for it."""

    def make(**overrides):
        overrides.setdefault("OPIK_RUNNER_NEXT_JOB_POLL_TIMEOUT", "0.05")
        # No background reaper: a test runs a cycle when it means to (tests.support.in_app.reap).
        overrides.setdefault("OPIK_RUNNER_REAPER_INTERVAL", "0")
        if "DATABASE_URL" in overrides:
            return build(**overrides)
        url = fresh_database_url(tmp_path)
        key = tuple(sorted(overrides.items()))
        app = _BUILT.get(key)
        if app is None:
            app = _BUILT[key] = build(DATABASE_URL=url, **overrides)
        else:
            db.open_and_migrate(url).start_watcher()
            app.extensions["opik_runners"] = app.extensions["opik_runners"]._replace(database_url=url)
        return app

    def build(**overrides):
        app = create_app(**overrides)
        app.test_client_class = ContractClient
        app.config["TESTING"] = True
        return app

    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def in_app(client):
    """Steps through the test's client: in_app.pair(), in_app.create_job(project_id), ..."""
    return InApp(client)


@pytest.fixture
def endpoint_runner(in_app):
    """A paired endpoint runner with the `answer` agent: (runner_id, project_id)."""
    runner_id, project_id = in_app.pair()
    in_app.register(runner_id)
    return runner_id, project_id


@pytest.fixture
def browser():
    """Chromium for one test; the test fails if a page it opened reported a CSP violation."""
    with playwright.sync_playwright() as p:
        browser = WatchedBrowser(launch(p))
        try:
            yield browser
            browser.csp.flush(browser)
        finally:
            browser.close()
        reports = browser.csp.take()
        assert not reports, "the Content-Security-Policy refused something:\n" + "\n".join(reports)


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(
        f"contract: {contract.checked['validated']} responses validated against the contract, "
        f"{contract.checked['undocumented']} with statuses the contract omits (error shape checked); "
        f"{contract.checked['admin']} control-plane responses validated against admin-openapi.yaml"
    )
