from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT



def test_app_builds_the_catalog_on_an_empty_db_and_shows_class_sizes(tmp_path, monkeypatch):
    monkeypatch.setenv("MATCHUP_DB", str(tmp_path / "empty.duckdb"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception
    shown = {m.label: int(m.value) for m in at.metric}
    assert set(shown) == {"ConvNet", "ViT", "Hybrid", "MLP"}
    import timm
    assert sum(shown.values()) == len(timm.list_pretrained())
    assert at.dataframe[0].value.shape[0] == sum(shown.values())

    at.selectbox(key="arch_class").set_value("MLP").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == shown["MLP"] and set(table["arch_class"]) == {"MLP"}


def test_app_shows_a_plain_error_for_an_unusable_db(tmp_path, monkeypatch):
    monkeypatch.setenv("MATCHUP_DB", str(tmp_path))  # a directory
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert at.error and "Cannot open the Matchup database" in at.error[0].value
