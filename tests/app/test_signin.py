"""A lab server: sign in to run, everyone else looks. A real OpenID Connect provider
(oidc-provider-mock) on the loopback, `streamlit run app.py` configured against it, Chromium."""
import shutil
import socket

import pytest

from tests.app.test_browser import _free_port, _serve, browser, sync_api  # noqa: F401 - the browser fixture

oidc = pytest.importorskip("oidc_provider_mock")

USERS = [oidc.User(sub="alice", claims={"email": "alice@lab.org", "email_verified": True}),      # a runner
         oidc.User(sub="bob", claims={"email": "bob@elsewhere.org", "email_verified": True}),    # not on the list
         oidc.User(sub="carol", claims={"email": "carol@lab.org", "email_verified": True}),      # an admin
         oidc.User(sub="eve", claims={"email": "eve@lab.org", "email_verified": False}),         # e-mail not verified
         oidc.User(sub="mdname", claims={"email": "[md](http://127.0.0.1:9/x) ![i](http://127.0.0.1:9/i.png)",
                                         "email_verified": True})]                                # Markdown as a name
CHECKPOINT = "resnet18.a1_in1k"


def _secrets(folder, app_port: int, metadata_url: str, **drop) -> str:
    values = {"redirect_uri": f"http://localhost:{app_port}/oauth2callback",
              "cookie_secret": "matchup-test-cookie-secret-0123456789", "client_id": "matchup",
              "client_secret": "matchup-secret", "server_metadata_url": metadata_url}
    for key in drop:
        values.pop(key)
    path = folder / "secrets.toml"
    path.write_text("[auth]\n" + "".join(f'{k} = "{v}"\n' for k, v in values.items()))
    return str(path)


@pytest.fixture(scope="module")
def provider():
    with oidc.run_server_in_thread(user_claims=USERS) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture(scope="module")
def lab_server(provider, catalog_db, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lab")
    db = folder / "lab.duckdb"
    shutil.copy(catalog_db, db)
    port = _free_port()
    secrets = _secrets(folder, port, f"{provider}/.well-known/openid-configuration")
    server, _ = _serve(db, {"STREAMLIT_SECRETS_FILES": secrets, "MATCHUP_RUNNERS": "alice@lab.org",
                            "MATCHUP_ADMINS": "carol@lab.org"}, port=port)
    yield f"http://localhost:{port}", db
    server.terminate()
    server.wait(timeout=30)


def _run_page(browser, url: str):  # noqa: F811
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/run")
    page.wait_for_selector("[data-testid='stMain'] h1", timeout=60_000)
    page.get_by_text("Queue", exact=True).first.wait_for(timeout=60_000)  # the queue's heading: the page ran
    return context, page


def _sign_in(page, who: str):
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name=who, exact=True).click()      # the provider's form: that user
    page.wait_for_selector("[data-testid='stMain'] h1", timeout=60_000)
    page.get_by_text("Signed in as").wait_for(timeout=60_000)


def _alice_ready_to_queue(browser, url: str):  # noqa: F811
    """Alice signed in on the Run page, a benchmark of CHECKPOINT chosen: (context, page, its Queue button)."""
    context, page = _run_page(browser, url)
    _sign_in(page, "alice")
    page.goto(f"{url}/run")
    page.get_by_text("What to run").wait_for(timeout=60_000)
    page.get_by_test_id("stRadioGroup").get_by_text("Hardware benchmark").click()
    picker = page.locator("[data-testid='stMultiSelect']", has_text="Checkpoints").locator("input")
    picker.click()
    picker.fill(CHECKPOINT)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    queue = page.get_by_role("button", name="Queue 1 job(s)")
    queue.wait_for(timeout=30_000)
    return context, page, queue


def _run_controls(page) -> int:
    return page.get_by_role("button", name="Queue 0 job(s)").count() + page.get_by_text("What to run").count()


def test_visitors_look_runners_run_admins_cancel(browser, lab_server):  # noqa: F811
    url, db = lab_server
    # a visitor: every page, no run control
    context, page = _run_page(browser, url)
    assert _run_controls(page) == 0 and page.get_by_text("Sign in to run").count() == 1
    page.goto(f"{url}/frontier")
    page.wait_for_selector(".vega-embed", timeout=60_000)
    assert page.locator("[data-testid='stException']").count() == 0
    context.close()

    # a runner signs in, queues a benchmark, sees it attributed to her, cancels it
    context, page, queue = _alice_ready_to_queue(browser, url)
    page.wait_for_timeout(500)
    queue.click()
    mine = page.get_by_text(f"queued · bench {CHECKPOINT}")
    mine.first.wait_for(timeout=60_000)
    assert "asked by alice@lab.org" in page.locator("[data-testid='stMain']").inner_text()
    page.get_by_role("button", name="Cancel").first.click()
    page.get_by_text(f"cancelled · bench {CHECKPOINT}").first.wait_for(timeout=60_000)
    # sign-out removes the controls
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="End session").click()  # the provider's end-session page
    page.wait_for_selector("[data-testid='stMain'] h1", timeout=60_000)
    page.goto(f"{url}/run")
    page.get_by_text("Sign in to run").wait_for(timeout=60_000)
    assert _run_controls(page) == 0
    context.close()

    # alice's next job, queued as she would from her session
    from engine.jobs.submit import enqueue
    from engine.store import Store
    store = Store(db)
    queued = enqueue(store, {"kind": "bench", "checkpoint": CHECKPOINT, "batch_size": 8}, requested_by="alice@lab.org")

    # signed in but not on the list: looks only, cannot cancel alice's job
    context, page = _run_page(browser, url)
    _sign_in(page, "bob")
    page.goto(f"{url}/run")
    page.get_by_text("is not on this server's runners list").wait_for(timeout=60_000)
    assert _run_controls(page) == 0 and page.get_by_role("button", name="Cancel").count() == 0
    context.close()

    # an identity without a verified e-mail: not allowed, said so
    context, page = _run_page(browser, url)
    _sign_in(page, "eve")
    page.goto(f"{url}/run")
    page.get_by_text("did not vouch for an e-mail address").wait_for(timeout=60_000)
    assert _run_controls(page) == 0
    context.close()

    # an admin cancels another user's job
    context, page = _run_page(browser, url)
    _sign_in(page, "carol")
    page.goto(f"{url}/run")
    page.get_by_text("asked by alice@lab.org").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Cancel").first.click()
    expect = sync_api.expect(page.get_by_text(f"cancelled · bench {CHECKPOINT}"))
    expect.to_have_count(2, timeout=60_000)  # hers as well as the one alice cancelled herself
    context.close()
    assert {j.id: j.state for j in store.jobs_frame().itertuples()}[queued["job"]] == "cancelled"


def test_a_sign_out_stops_every_tab_and_saved_cookie_and_names_show_literally(browser, lab_server):  # noqa: F811
    """Issue 36: a tab opened while signed in cannot queue after a sign-out in another tab, alice's
    auth cookie saved before she signed out signs no browser in, and a name is never Markdown."""
    url, db = lab_server
    from engine.store import Store
    store = Store(db)
    before = len(store.jobs_frame())
    context, page, queue = _alice_ready_to_queue(browser, url)
    saved = context.cookies()
    page.wait_for_timeout(1_100)  # sign-in and sign-out times are compared to the second
    other = context.new_page()   # another tab of the same browser signs out
    other.goto(f"{url}/run")
    other.get_by_role("button", name="Sign out").click()
    other.get_by_role("button", name="End session").click()
    other.wait_for_selector("[data-testid='stMain'] h1", timeout=60_000)
    queue.click()                # the first tab still shows alice's controls
    page.get_by_text("older than your last sign-out").first.wait_for(timeout=60_000)
    sync_api.expect(page.get_by_text("What to run")).to_have_count(0, timeout=60_000)  # the rerun finished
    assert len(store.jobs_frame()) == before and _run_controls(page) == 0
    context.close()

    replay = browser.new_context(viewport={"width": 1400, "height": 1000})
    replay.add_cookies(saved)    # alice's cookie from before she signed out, in a new browser
    page = replay.new_page()
    page.goto(f"{url}/run")
    page.get_by_text("older than your last sign-out").first.wait_for(timeout=60_000)
    sync_api.expect(page.get_by_text("What to run")).to_have_count(0, timeout=60_000)
    assert _run_controls(page) == 0
    replay.close()

    context, page = _run_page(browser, url)
    _sign_in(page, "mdname")
    sidebar = page.get_by_test_id("stSidebar")
    caption = sidebar.get_by_text("Signed in as")
    shown = caption.inner_text().strip().replace("\u200b", "")  # zero-width spaces break GFM's autolinks
    assert shown == "Signed in as [md](http://127.0.0.1:9/x) ![i](http://127.0.0.1:9/i.png)"
    found = sidebar.locator("a[href*='127.0.0.1:9'], img[src*='127.0.0.1:9']")
    assert found.count() == 0, [found.nth(i).evaluate("e => e.parentElement.outerHTML") for i in range(found.count())]
    page.goto(f"{url}/run")
    page.get_by_text("2 '@' signs").or_(page.get_by_text("not a valid domain")).or_(
        page.get_by_text("space, control or invisible")).first.wait_for(timeout=60_000)
    assert _run_controls(page) == 0
    context.close()


def test_broken_sign_in_leaves_the_pages_open_and_the_run_controls_off(browser, catalog_db, tmp_path):  # noqa: F811
    db = tmp_path / "broken.duckdb"
    shutil.copy(catalog_db, db)
    for what, secrets_args in (("lacks client_secret", {"client_secret": None}),
                               ("cannot be read", {})):
        port = _free_port()
        metadata = f"http://127.0.0.1:{_free_port()}/.well-known/openid-configuration"  # nothing listens there
        secrets = _secrets(tmp_path, port, metadata, **secrets_args)
        server, _ = _serve(db, {"STREAMLIT_SECRETS_FILES": secrets}, port=port)
        try:
            context, page = _run_page(browser, f"http://localhost:{port}")
            page.get_by_text("Sign-in is misconfigured").wait_for(timeout=60_000)
            assert what in page.locator("[data-testid='stMain']").inner_text()
            assert _run_controls(page) == 0 and page.get_by_role("button", name="Sign in").count() == 0
            page.goto(f"http://localhost:{port}/frontier")
            page.wait_for_selector(".vega-embed", timeout=60_000)
            assert page.locator("[data-testid='stException']").count() == 0
            context.close()
        finally:
            server.terminate()
            server.wait(timeout=30)


def _outward_address() -> str | None:
    """This machine's address on its network (no packet is sent), None when it has only the loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.254.254.254", 1))
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_without_sign_in_only_the_servers_own_machine_gets_run_controls(browser, catalog_db, tmp_path):  # noqa: F811
    address = _outward_address()
    if address is None:
        pytest.skip("this machine has no network address besides the loopback")
    db = tmp_path / "open.duckdb"
    shutil.copy(catalog_db, db)
    port = _free_port()
    server, _ = _serve(db, {}, port=port, address=None)  # as `streamlit run app.py` listens: IPv4 mapped into IPv6
    try:
        context, page = _run_page(browser, f"http://{address}:{port}")
        page.get_by_text("offered on the server's own machine only").wait_for(timeout=60_000)
        assert _run_controls(page) == 0
        context.close()
        context, page = _run_page(browser, f"http://127.0.0.1:{port}")
        page.get_by_text("What to run").wait_for(timeout=60_000)
        context.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_streamlits_agent_api_gets_no_run_controls_without_sign_in(catalog_db, tmp_path):
    """A session through the agent API has no socket peer: never taken for the server's own machine."""
    import json
    import urllib.request
    db = tmp_path / "agent.duckdb"
    shutil.copy(catalog_db, db)
    server, url = _serve(db, {"STREAMLIT_SERVER_ENABLE_AGENT_API": "true"})
    try:
        request = urllib.request.Request(f"{url}/_stcore/agent/interact", data=json.dumps({"page": "run"}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=120) as response:
            body = response.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "Run on this machine" in body and "offered on the server's own machine only" in body
    assert "What to run" not in body
