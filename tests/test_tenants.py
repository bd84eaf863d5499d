"""Tenants and their keys as configured (environment, scanrag.toml, a keys file), metadata as
given (JSON, `--meta key=value`), and the CLI acting for a tenant with metadata."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from seams import ENCODER
from typer.testing import CliRunner

from scanrag.cli import app
from scanrag.config import Settings
from scanrag.errors import ConfigError
from scanrag.retrieval import metadata
from scanrag.tenants import KeyRing, check_name, parse_keys
from scanrag.testing import code_pdf


def test_keys_come_from_the_environment_the_toml_table_and_a_keys_file(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCANRAG_API_KEYS", "acme:KEY1, globex:KEY2\nacme:KEY3")
    monkeypatch.setenv("SCANRAG_API_KEY", "OLDKEY")
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# rotated in March\ninitech:KEY4\n\nacme:KEY5\n")
    monkeypatch.setenv("SCANRAG_API_KEYS_FILE", str(keys_file))
    keys = Settings().tenant_keys()
    assert keys == {
        "acme": ["KEY1", "KEY3", "KEY5"],
        "globex": ["KEY2"],
        "default": ["OLDKEY"],
        "initech": ["KEY4"],
    }
    ring = KeyRing(keys)
    assert [ring.tenant_of(k) for k in ("KEY3", "OLDKEY", "KEY4", "nope", None)] == [
        "acme", "default", "initech", None, None
    ]  # fmt: skip

    monkeypatch.delenv("SCANRAG_API_KEYS")
    monkeypatch.delenv("SCANRAG_API_KEYS_FILE")
    monkeypatch.delenv("SCANRAG_API_KEY")
    (tmp_path / "scanrag.toml").write_text(
        '[api_keys]\nacme = ["KEY1", "KEY3"]\nglobex = "KEY2"\n\n'
        "[tenant_limits.acme]\ndocuments = 10\nrequests_per_minute = 60\n"
    )
    settings = Settings(tenant_max_pages=500)
    assert settings.tenant_keys() == {"acme": ["KEY1", "KEY3"], "globex": ["KEY2"]}
    assert settings.limits_for("acme").model_dump() == {
        "documents": 10, "pages": 500, "requests_per_minute": 60
    }  # fmt: skip
    assert settings.limits_for("globex").documents is None


def test_bad_keys_are_refused_with_where_they_came_from_and_without_the_secret(tmp_path):
    with pytest.raises(ValidationError, match="entry 2 is not 'tenant:key'") as caught:
        Settings(api_keys="acme:SECRET1,SECRET2")
    assert "SECRET1" not in str(caught.value.errors(include_input=False))
    with pytest.raises(ValidationError, match="not a tenant name"):
        Settings(api_keys="Acme Corp:KEY")
    with pytest.raises(ValidationError, match="printable ASCII"):
        Settings(api_keys={"acme": ["kéy"]})
    with pytest.raises(ValueError, match="two tenants"):
        KeyRing(parse_keys("acme:SAME,globex:SAME"))
    with pytest.raises(ConfigError, match="two tenants"):
        Settings(api_key="SAME", api_keys="globex:SAME").key_ring()
    with pytest.raises(ValidationError, match="not a tenant name"):
        Settings(tenant="../etc")
    missing = Settings(api_keys_file=tmp_path / "nope.txt")
    with pytest.raises(ConfigError, match=r"nope\.txt"):
        missing.tenant_keys()
    bad_line = tmp_path / "keys.txt"
    bad_line.write_text("acme:K1\njust-a-key\n")
    with pytest.raises(ConfigError, match="line 2"):
        Settings(api_keys_file=bad_line).tenant_keys()
    assert check_name("acme-2_x") == "acme-2_x"
    for name in ("", "tenants/x", "UPPER", "-lead", "a" * 65, "acme\n"):
        with pytest.raises(ValueError):
            check_name(name)


def test_metadata_is_a_flat_object_of_strings_numbers_and_booleans():
    assert metadata.validated({"dept": "finance", "year": 2019, "ok": True, "rate": 1.5}) == {
        "dept": "finance", "year": 2019, "ok": True, "rate": 1.5
    }  # fmt: skip
    for bad in ([1], {"x": {"a": 1}}, {"x": [1]}, {"bad key": 1}, {"x": None}, {"x": "y" * 501}):
        with pytest.raises(ValueError, match="metadata"):
            metadata.validated(bad)
    with pytest.raises(ValueError, match="bytes"):
        metadata.validated({f"k{i}": "v" * 300 for i in range(20)})
    assert metadata.parse_pairs(["dept=finance", "year=2019", "ok=true", "id=007", "r=1.5"]) == {
        "dept": "finance", "year": 2019, "ok": True, "id": "007", "r": 1.5
    }  # fmt: skip
    assert metadata.parse_pairs(["a=NaN", "b=Infinity", "c=1e400"]) == {
        "a": "NaN", "b": "Infinity", "c": "1e400"
    }  # fmt: skip
    with pytest.raises(ValueError, match="key=value"):
        metadata.parse_pairs(["dept"])
    assert metadata.terms({"year": 2019.0, "ok": False}) == ["ok=false", "year=2019"]
    assert metadata.merge_patch({"a": 1, "b": 2}, {"b": None, "c": "x"}) == {"a": 1, "c": "x"}


def test_the_cli_ingests_searches_and_asks_for_a_tenant_with_metadata(tmp_path, monkeypatch):
    """`--tenant` and `--meta` on ingest; `--tenant` and `--filter meta.KEY=VALUE` on search."""
    import scanrag.retrieval.index as index_module

    real = index_module.Index

    def shared_encoder(*args, **kwargs):  # the tests' MiniLM, through the constructor's seam
        return real(*args, encoder=ENCODER, **kwargs)

    monkeypatch.setattr(index_module, "Index", shared_encoder)
    docs = tmp_path / "docs"
    docs.mkdir()
    code_pdf(docs / "ledger.pdf", "quillfeather")
    data = ["--data-dir", str(tmp_path / "data")]
    runner = CliRunner()

    def run(*args: str) -> dict:
        result = runner.invoke(app, [*args, *data, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    monkeypatch.setenv("SCANRAG_PARSER", "pdf-text")
    report = run("ingest", str(docs), "--tenant", "acme", "--meta", "dept=finance",
                 "--meta", "year=2019")  # fmt: skip
    assert report["added"] == 1
    found = run("search", "quillfeather", "--tenant", "acme", "--filter", "meta.year=2019")
    assert found["hits"] and found["hits"][0]["metadata"] == {"dept": "finance", "year": 2019}
    assert run("search", "quillfeather", "--tenant", "acme", "--filter", "meta.dept=hr")[
        "hits"
    ] == []
    assert run("search", "quillfeather")["hits"] == []  # the default tenant holds nothing
    assert run("search", "quillfeather", "--tenant", "globex")["hits"] == []
    bad = runner.invoke(app, ["ingest", str(docs), *data, "--meta", "dept"])
    assert bad.exit_code != 0 and "key=value" in bad.output
    bad = runner.invoke(app, ["search", "x", *data, "--tenant", "Not A Name"])
    assert bad.exit_code != 0 and "tenant" in bad.output and "Traceback" not in bad.output


def test_serve_with_an_unreadable_keys_file_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SCANRAG_API_KEYS_FILE", str(tmp_path / "missing-keys"))
    result = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 2
    assert "cannot read the API keys file" in result.output and "Traceback" not in result.output
