"""Configuration comes from the environment; production refuses unsafe defaults."""

import pytest

from app.config import DEVELOPMENT_SECRET_KEY, ConfigurationError, from_environment

KEY = "Y2VsbHRyYWlsLXRlc3QtY2hlY2twb2ludC1rZXktMzI="


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        from_environment({"CELLTRAIL_ENV": "production"}, str(tmp_path))


def test_development_gets_a_development_secret_key(tmp_path):
    config = from_environment({"CELLTRAIL_CHECKPOINT_KEY": KEY}, str(tmp_path))
    assert config["SECRET_KEY"] == DEVELOPMENT_SECRET_KEY


def test_the_default_database_is_a_sqlite_file_in_the_instance_folder(tmp_path):
    config = from_environment({"CELLTRAIL_CHECKPOINT_KEY": KEY}, str(tmp_path))
    assert config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'celltrail.sqlite3'}"


def test_a_postgres_url_from_a_hosting_platform_gets_the_psycopg_driver(tmp_path):
    config = from_environment(
        {"DATABASE_URL": "postgres://u@db/celltrail", "CELLTRAIL_CHECKPOINT_KEY": KEY},
        str(tmp_path),
    )
    assert config["DATABASE_URL"] == "postgresql+psycopg://u@db/celltrail"


def test_production_has_no_checkpoint_key_unless_the_environment_gives_one(tmp_path):
    config = from_environment(
        {"CELLTRAIL_ENV": "production", "SECRET_KEY": "s" * 32}, str(tmp_path)
    )
    assert config["CHECKPOINT_KEY"] is None
    assert not (tmp_path / "checkpoint-dev.key").exists()


def test_development_makes_a_checkpoint_key_once_outside_the_database(tmp_path):
    first = from_environment({}, str(tmp_path))["CHECKPOINT_KEY"]
    second = from_environment({}, str(tmp_path))["CHECKPOINT_KEY"]
    assert first == second == (tmp_path / "checkpoint-dev.key").read_text()


def test_the_public_url_loses_its_trailing_slash(tmp_path):
    config = from_environment(
        {"CELLTRAIL_PUBLIC_URL": "https://trail.example.org/", "CELLTRAIL_CHECKPOINT_KEY": KEY},
        str(tmp_path),
    )
    assert config["PUBLIC_URL"] == "https://trail.example.org"
