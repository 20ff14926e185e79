"""Settings from the environment: a value that cannot be what it names stops the server at startup,
naming the variable, instead of starting with something the operator did not ask for."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from messenger.env import env_bool, env_choice, env_float, env_int, env_json_object, env_list, env_str
from storage.checks import media_storage_loads

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("value, expected", [
    ("1", True), ("true", True), ("Yes", True), (" ON ", True),
    ("0", False), ("false", False), ("No", False), ("off", False),
])
def test_yes_no_settings_take_the_usual_spellings(monkeypatch, value, expected):
    monkeypatch.setenv("MESSENGER_HTTPS", value)
    assert env_bool("MESSENGER_HTTPS", not expected) is expected


@pytest.mark.parametrize("value", ["ture", "enabled", "2", "y"])
def test_a_mistyped_yes_no_setting_is_refused_rather_than_read_as_off(monkeypatch, value):
    monkeypatch.setenv("MESSENGER_HTTPS", value)
    with pytest.raises(ImproperlyConfigured) as refused:
        env_bool("MESSENGER_HTTPS", False)
    assert f"MESSENGER_HTTPS={value!r}" in str(refused.value)
    assert "true" in str(refused.value) and "false" in str(refused.value)


def test_an_empty_value_means_the_default(monkeypatch):
    for name in ("MESSENGER_HTTPS", "MESSENGER_SEND_RATE", "MESSENGER_FRAME_RATE", "CHANNEL_LAYER", "ALLOWED_HOSTS",
                 "MESSENGER_MEDIA_STORAGE_OPTIONS"):
        monkeypatch.setenv(name, "  ")
    assert env_bool("MESSENGER_HTTPS", True) is True
    assert env_int("MESSENGER_SEND_RATE", 60, minimum=1) == 60
    assert env_float("MESSENGER_FRAME_RATE", 50, above=0) == 50
    assert env_choice("CHANNEL_LAYER", "pubsub", ("pubsub", "queues")) == "pubsub"
    assert env_list("ALLOWED_HOSTS", "a,b") == ["a", "b"]
    assert env_json_object("MESSENGER_MEDIA_STORAGE_OPTIONS") == {}


def test_numbers_are_read_and_checked_against_their_range(monkeypatch):
    monkeypatch.setenv("MESSENGER_SEND_RATE", " 120 ")
    monkeypatch.setenv("MESSENGER_FRAME_RATE", "12.5")
    assert env_int("MESSENGER_SEND_RATE", 60, minimum=1) == 120
    assert env_float("MESSENGER_FRAME_RATE", 50, above=0) == 12.5

    for value in ("abc", "1.5", "0", "-3"):
        monkeypatch.setenv("MESSENGER_SEND_RATE", value)
        with pytest.raises(ImproperlyConfigured, match=r"MESSENGER_SEND_RATE=.*expected a whole number of at least 1"):
            env_int("MESSENGER_SEND_RATE", 60, minimum=1)
    for value in ("fast", "0", "-1", "nan", "inf"):
        monkeypatch.setenv("MESSENGER_FRAME_RATE", value)
        with pytest.raises(ImproperlyConfigured, match=r"MESSENGER_FRAME_RATE=.*expected a number greater than 0"):
            env_float("MESSENGER_FRAME_RATE", 50, above=0)


def test_a_setting_with_a_fixed_set_of_values_refuses_any_other(monkeypatch):
    monkeypatch.setenv("CHANNEL_LAYER", "queue")
    with pytest.raises(ImproperlyConfigured, match="CHANNEL_LAYER='queue': expected one of pubsub, queues"):
        env_choice("CHANNEL_LAYER", "pubsub", ("pubsub", "queues"))
    monkeypatch.setenv("LOG_LEVEL", "warning")
    assert env_choice("LOG_LEVEL", "INFO", ("INFO", "WARNING"), case_sensitive=False) == "WARNING"


def test_storage_options_must_be_a_json_object(monkeypatch):
    monkeypatch.setenv("MESSENGER_MEDIA_STORAGE_OPTIONS", '{"bucket_name": "media"}')
    assert env_json_object("MESSENGER_MEDIA_STORAGE_OPTIONS") == {"bucket_name": "media"}
    monkeypatch.setenv("MESSENGER_MEDIA_STORAGE_OPTIONS", "{bucket_name: media}")
    with pytest.raises(ImproperlyConfigured, match=r"MESSENGER_MEDIA_STORAGE_OPTIONS=.*expected a JSON object \("):
        env_json_object("MESSENGER_MEDIA_STORAGE_OPTIONS")
    monkeypatch.setenv("MESSENGER_MEDIA_STORAGE_OPTIONS", '["media"]')
    with pytest.raises(ImproperlyConfigured, match="expected a JSON object"):
        env_json_object("MESSENGER_MEDIA_STORAGE_OPTIONS")


def test_strings_keep_their_value(monkeypatch):
    monkeypatch.setenv("CHANNEL_LAYER_PREFIX", "chat-eu")
    assert env_str("CHANNEL_LAYER_PREFIX", "messenger") == "chat-eu"
    monkeypatch.delenv("CHANNEL_LAYER_PREFIX")
    assert env_str("CHANNEL_LAYER_PREFIX", "messenger") == "messenger"


def manage_py_check(tmp_path, **variables) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(MESSENGER_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="messenger.settings", **variables)
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_server_does_not_start_with_a_setting_it_cannot_read(tmp_path):
    refused = manage_py_check(tmp_path, MESSENGER_HTTPS="ture")
    assert refused.returncode != 0
    assert "ImproperlyConfigured: MESSENGER_HTTPS='ture': expected one of 1, true" in refused.stderr

    refused = manage_py_check(tmp_path, MESSENGER_MAX_TEXT_LENGTH="4k")
    assert refused.returncode != 0
    assert "MESSENGER_MAX_TEXT_LENGTH='4k': expected a whole number of at least 1" in refused.stderr

    refused = manage_py_check(tmp_path, MESSENGER_MEDIA_STORAGE="storages.backend.s3.S3Storage")
    assert refused.returncode != 0
    assert "storage.E001" in refused.stderr and "The media storage cannot be loaded" in refused.stderr

    started = manage_py_check(tmp_path, MESSENGER_HTTPS="", MESSENGER_MAX_TEXT_LENGTH="2000", LOG_LEVEL="warning")
    assert started.returncode == 0, started.stderr


def test_a_media_storage_that_cannot_be_made_fails_the_system_check(settings, tmp_path):
    assert media_storage_loads(None) == []

    settings.STORAGES = {**settings.STORAGES, "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"bucket_name": "media"}}}
    [error] = media_storage_loads(None)
    assert error.id == "storage.E001"
    assert "bucket_name" in error.msg
    assert "MESSENGER_MEDIA_STORAGE_OPTIONS" in error.hint

    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "no.such.Storage", "OPTIONS": {}}}
    [error] = media_storage_loads(None)
    assert "no.such" in error.msg


@pytest.mark.parametrize("url", [
    "postgress://user:s3cret@db/messenger",
    "db:5432/messenger",
    "postgres://user:s3cret@db:port/messenger",
    # The pool and the hot path's SQL are PostgreSQL's: SQLite is the default, without DATABASE_URL.
    "sqlite:///tmp/db.sqlite3",
])
def test_a_database_url_that_is_not_postgresql_is_refused_naming_the_variable(tmp_path, url):
    refused = manage_py_check(tmp_path, DATABASE_URL=url)
    assert refused.returncode != 0
    assert "ImproperlyConfigured: DATABASE_URL: expected a PostgreSQL URL, as in postgres://" in refused.stderr
    assert "s3cret" not in refused.stderr  # the password stays out of the logs


def test_database_urls_are_read_in_either_spelling_with_encoded_passwords_and_options(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    code = ("from django.conf import settings; d = settings.DATABASES['default']; "
            "print(d['ENGINE'], d['USER'], d['PASSWORD'], d['HOST'], d['PORT'], d['NAME'], d['OPTIONS']['sslmode'])")
    for scheme in ("postgres", "postgresql"):
        env.update(MESSENGER_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="messenger.settings",
                   DATABASE_URL=f"{scheme}://chat:p%40ss%2Fw%3Ard@db.example:6432/messenger?sslmode=verify-full")
        read = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert read.returncode == 0, read.stderr
        assert read.stdout.split() == ["django.db.backends.postgresql", "chat", "p@ss/w:rd", "db.example", "6432",
                                       "messenger", "verify-full"]


@pytest.mark.parametrize("url", ["127.0.0.1:6379/12", "http://:s3cret@redis:6379/0", "redis://:s3cret@redis:port/0"])
def test_a_redis_url_that_redis_cannot_read_is_refused_at_startup(tmp_path, url):
    # Otherwise the server starts and every login, presence count and websocket event fails.
    refused = manage_py_check(tmp_path, REDIS_URL=url)
    assert refused.returncode != 0
    assert "ImproperlyConfigured: REDIS_URL: expected a Redis URL, as in redis://" in refused.stderr
    assert "s3cret" not in refused.stderr


def test_a_redis_url_with_tls_a_password_and_a_database_number_is_taken(tmp_path):
    started = manage_py_check(tmp_path, REDIS_URL="rediss://chat:p%40ss%2Cw@redis.example:6380/3")
    assert started.returncode == 0, started.stderr


def channel_layer_prefix(tmp_path, **variables) -> str:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(MESSENGER_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="messenger.settings", **variables)
    code = "import django; django.setup(); from django.conf import settings; print(settings.CHANNEL_LAYERS['default']['CONFIG']['prefix'])"
    read = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr
    return read.stdout.strip()


def test_deployments_on_different_redis_databases_do_not_share_pubsub_channels(tmp_path):
    # Redis pub/sub ignores the database number: a PUBLISH reaches every subscriber of the channel,
    # whatever database its connection selected. Two deployments told apart only by their database
    # number (as docs/deployment.md allows) would receive each other's users' events.
    on_12 = channel_layer_prefix(tmp_path, REDIS_URL="redis://127.0.0.1:6379/12")
    on_13 = channel_layer_prefix(tmp_path, REDIS_URL="redis://127.0.0.1:6379/13")
    on_13_by_query = channel_layer_prefix(tmp_path, REDIS_URL="redis://127.0.0.1:6379?db=13")
    assert on_12 != on_13 and on_13 == on_13_by_query
    assert on_12.startswith("messenger")
    assert channel_layer_prefix(tmp_path, REDIS_URL="redis://127.0.0.1:6379/0") == "messenger"
    assert channel_layer_prefix(tmp_path, REDIS_URL="redis://127.0.0.1:6379") == "messenger"
    # The queues layer keeps its messages in keys, which the database number does keep apart.
    assert channel_layer_prefix(tmp_path, REDIS_URL="redis://127.0.0.1:6379/13", CHANNEL_LAYER="queues") == "messenger"


@pytest.mark.parametrize("value", ["-5", "20000,-1,10", "99999999999", "20000,20,10,5", "fast"])
def test_a_gc_threshold_the_collector_cannot_take_stops_the_server(tmp_path, value):
    # A negative threshold would make Python collect on every allocation; one past a C int raised a
    # bare OverflowError.
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(MESSENGER_DATA_DIR=str(tmp_path), MESSENGER_GC_THRESHOLD=value)
    refused = subprocess.run([sys.executable, "-c", "import messenger.asgi"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode != 0
    assert f"ImproperlyConfigured: MESSENGER_GC_THRESHOLD={value!r}: expected up to three whole numbers" in refused.stderr


def import_settings_with_embedded_key(tmp_path, prelude: str) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")}
    env.update(MESSENGER_DATA_DIR=str(tmp_path))
    code = prelude + "\nimport messenger.settings as s; print(s.SECRET_KEY)"
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_processes_starting_together_without_secret_key_share_the_one_they_make(tmp_path):
    # The server and its task worker (or several server processes) on a fresh data directory: each
    # found no key file and wrote its own, so each signed sessions with a different key. Making the
    # key slow leaves both in that window.
    slow = "import secrets, time\n_make = secrets.token_urlsafe\nsecrets.token_urlsafe = lambda n: (time.sleep(5), _make(n))[1]"
    started = [import_settings_with_embedded_key(tmp_path, slow) for _ in range(2)]
    keys = []
    for process in started:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        keys.append(out.strip())
    assert keys[0] == keys[1] == (tmp_path / "secret_key").read_text().strip()
    assert len(keys[0]) >= 50


def test_the_embedded_secret_key_file_is_never_readable_by_others(tmp_path):
    # Created with the umask's mode and narrowed afterwards, it could be opened by another local user
    # in between, and read through that descriptor once written. Without the narrowing, what remains:
    no_chmod = "import os, pathlib\nos.umask(0o022)\npathlib.Path.chmod = lambda self, mode, **kw: None"
    process = import_settings_with_embedded_key(tmp_path, no_chmod)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_servers_sharing_redis_are_warned_to_share_a_secret_key(settings):
    from storage.checks import secret_key_shared_when_scaled_out

    settings.REDIS_URL, settings.SECRET_KEY_FROM_ENVIRONMENT = "redis://127.0.0.1:6379/0", False
    [warning] = secret_key_shared_when_scaled_out(None)
    assert warning.id == "storage.W001" and "SECRET_KEY" in warning.hint

    settings.SECRET_KEY_FROM_ENVIRONMENT = True
    assert secret_key_shared_when_scaled_out(None) == []
    settings.REDIS_URL, settings.SECRET_KEY_FROM_ENVIRONMENT = "", False  # embedded: one process's file
    assert secret_key_shared_when_scaled_out(None) == []
