"""Settings for messenger, read once from environment variables.

The embedded default (no variables set) is SQLite in WAL mode, the in-memory channel layer and the
local-memory cache: `make run` needs nothing else. `DATABASE_URL` and `REDIS_URL` switch to the
scale-out path (PostgreSQL, Redis channel layer and cache). See docs/deployment.md.
"""

import os
import secrets
import tempfile
from pathlib import Path

import dj_database_url
import redis.connection
from django.core.exceptions import ImproperlyConfigured

from messenger.env import env_bool, env_choice, env_float, env_int, env_json_object, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("MESSENGER_DATA_DIR", str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _embedded_secret_key() -> str:
    # Without SECRET_KEY in the environment, a random key is made once and kept beside the
    # embedded database, so sessions survive restarts without shipping a known key. It is written
    # whole into a file only its owner can open (mkstemp's 0600), then linked into place unless
    # another process starting beside this one (the task worker) got there first: every process
    # reads the same, complete key, and no other local user could open the file on the way.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        descriptor, made = tempfile.mkstemp(dir=DATA_DIR, prefix=".secret_key.")
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(50))
            try:
                os.link(made, key_file)
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links: whole, at least
                os.replace(made, key_file)
                made = None
        finally:
            if made:
                os.unlink(made)
    return key_file.read_text().strip()


_secret_key = env_str("SECRET_KEY", "")
SECRET_KEY_FROM_ENVIRONMENT = bool(_secret_key)  # else each machine makes its own (storage/checks.py)
SECRET_KEY = _secret_key or _embedded_secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "http://127.0.0.1:8000,http://localhost:8000")

# --- HTTPS and browser security headers ----------------------------------------------------------
# MESSENGER_HTTPS=1: the server is reached over TLS, usually through a reverse proxy that
# terminates it and sets X-Forwarded-Proto (run Daphne with --proxy-headers). Then cookies are
# Secure, plain HTTP is redirected and HSTS is sent. `manage.py check --deploy` passes with it.
HTTPS = env_bool("MESSENGER_HTTPS", False)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # /healthz is answered before this redirect, over plain HTTP too (frontdesk/middleware.py).
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", HTTPS)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "csp",
    "django_tasks",
    "django_tasks_db",
    "storage",
    "broker",
    "frontdesk",
    "developer_api",
]

MIDDLEWARE = [
    "frontdesk.middleware.health_check_middleware",  # first: probes send an address as Host
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "messenger.urls"
ASGI_APPLICATION = "messenger.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "")
if DATABASE_URL:
    # A pool of connections per process (Django's, psycopg_pool's): an HTTP request runs in a thread
    # of its own, so without one each opened a connection (a PostgreSQL backend started for it, ~4
    # ms) and closed it as it ended; history pages took about a third less time with the pool
    # (docs/performance.md, change 41). The websocket database threads draw from it too. Each
    # connection is checked as it is handed out (CONN_HEALTH_CHECKS), so none dropped by a
    # PostgreSQL restart reaches a request. 0: a connection per thread instead, kept CONN_MAX_AGE.
    DB_POOL_SIZE = env_int("MESSENGER_DB_POOL_SIZE", 10, minimum=0)
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0 if DB_POOL_SIZE else 600,
                                                      conn_health_checks=True)}
    except ValueError:  # dj_database_url's ParseError and UnknownSchemeError
        DATABASES = {"default": {}}
    if DATABASES["default"].get("ENGINE") != "django.db.backends.postgresql":
        # Without echoing the value, which holds the password. SQLite is the default, without it.
        raise ImproperlyConfigured("DATABASE_URL: expected a PostgreSQL URL, as in "
                                   "postgres://user:pass@db:5432/messenger (special characters percent-encoded).")
    if DB_POOL_SIZE:
        # `timeout`: how long a request waits for a connection when all are in use; then the API
        # answers 503 `busy` with Retry-After (frontdesk/api/errors.py).
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1, "max_size": DB_POOL_SIZE, "timeout": env_float("MESSENGER_DB_POOL_TIMEOUT", 10, above=0)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(DATA_DIR / "db.sqlite3")),
            # IMMEDIATE takes the write lock when a transaction starts, so two writers queue on
            # `timeout` instead of failing with "database is locked" halfway through.
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # Reopening SQLite on every database_sync_to_async call costs ~3.5x per message.
            "CONN_MAX_AGE": None,
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "storage.User"

# --- Channels and cache ---------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
CHANNEL_LAYER_PREFIX = env_str("CHANNEL_LAYER_PREFIX", "messenger")
if REDIS_URL:
    try:  # as the channel layer and the cache will read it, on their first use
        _redis_db = int(redis.connection.parse_url(REDIS_URL).get("db", 0))
    except ValueError:
        raise ImproperlyConfigured("REDIS_URL: expected a Redis URL, as in redis://:pass@redis:6379/0, rediss://... "
                                   "or unix:///path/redis.sock?db=0 (special characters percent-encoded).") from None
    # CHANNEL_LAYER=pubsub (default): Redis pub/sub, one pipelined round of PUBLISHes per event
    # (messenger/channel_layer.py) and one subscription per group per process. At-most-once, which
    # is all a doorbell needs. CHANNEL_LAYER=queues: channels_redis' per-channel queues, several
    # round trips per event and recipient (docs/performance.md measures both).
    # socket_timeout above channels_redis' 5 s blocking BZPOPMIN: redis-py >= 8 defaults it to 5 s,
    # which kills idle consumers with 1011 every few seconds (django/channels_redis#422).
    _redis_hosts = [{"address": REDIS_URL, "socket_timeout": 15}]
    if env_choice("CHANNEL_LAYER", "pubsub", ("pubsub", "queues")) == "queues":
        CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {
            "hosts": _redis_hosts, "prefix": CHANNEL_LAYER_PREFIX, "capacity": 1500, "expiry": 60}}}
    else:
        # Pub/sub channels ignore the database number (a PUBLISH reaches every subscriber, whichever
        # database it selected), so it goes into their names: deployments told apart only by their
        # database number would otherwise receive each other's users' events.
        CHANNEL_LAYERS = {"default": {"BACKEND": "messenger.channel_layer.RedisPubSubLayer", "CONFIG": {
            "hosts": _redis_hosts, "prefix": CHANNEL_LAYER_PREFIX + (f".db{_redis_db}" if _redis_db else "")}}}
    CACHES = {
        "default": {
            "BACKEND": "messenger.cache.SharedRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CHANNEL_LAYER_PREFIX,
        }
    }
else:
    # Our own in-process layer: channels.layers.InMemoryChannelLayer scans every channel and group
    # on each event (see messenger/channel_layer.py).
    CHANNEL_LAYERS = {"default": {"BACKEND": "messenger.channel_layer.LocalChannelLayer", "CONFIG": {"capacity": 1500}}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Argon2id first (argon2-cffi); hashes made by the others still verify and are upgraded on login.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"

# --- Content-Security-Policy (django-csp) -----------------------------------------------------
# No inline scripts anywhere: every page loads its JavaScript as files from this origin. The
# websocket is same-origin too ('self' covers ws:/wss: on the page's own host in CSP Level 3).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        # Previews of a file about to be sent, and a voice recording, are blob: URLs.
        "media-src": ["'self'", "blob:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "frontdesk.api.authentication.DeviceTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["frontdesk.api.parsers.JSONParser"],
    # JSON whatever the request's Accept says: there is no other format to give (messenger/negotiation.py).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "messenger.negotiation.AnyAccept",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "frontdesk.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # OPTIONS would otherwise answer with view docstrings, outside the documented API.
    "DEFAULT_METADATA_CLASS": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "messenger client API",
    "DESCRIPTION": "REST API of messenger for client apps. The websocket protocol is in docs/protocol.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "OAS_VERSION": "3.1.0",
    "ENUM_NAME_OVERRIDES": {
        "ConversationKind": ["direct", "group"],
        "MessageKind": ["text", "system", "removed"],
        "MediaKind": ["image", "video", "voice", "document"],
        "MessageStatus": ["sent", "delivered", "read"],
        "MemberRole": ["admin", "member"],
    },
}

# --- Messaging limits -------------------------------------------------------------------------
MESSENGER = {
    "MAX_TEXT_LENGTH": env_int("MESSENGER_MAX_TEXT_LENGTH", 4096, minimum=1),
    "MAX_CLIENT_ID_LENGTH": 64,
    "MAX_GROUP_MEMBERS": env_int("MESSENGER_MAX_GROUP_MEMBERS", 256, minimum=2),
    "HISTORY_PAGE_DEFAULT": 50,
    "HISTORY_PAGE_MAX": 200,
    "MAX_FRAME_BYTES": env_int("MESSENGER_MAX_FRAME_BYTES", 65536, minimum=1024),
    # Largest REST request body (413 `body_too_large` beyond it).
    "MAX_BODY_BYTES": env_int("MESSENGER_MAX_BODY_BYTES", 262144, minimum=1024),
    # Sends per user: `SEND_RATE` messages in `SEND_RATE_WINDOW` seconds.
    "SEND_RATE": env_int("MESSENGER_SEND_RATE", 60, minimum=1),
    "SEND_RATE_WINDOW": env_int("MESSENGER_SEND_RATE_WINDOW", 10, minimum=1),
    # How long after sending a message its sender may delete it for everyone (2 days).
    "DELETE_FOR_EVERYONE_SECONDS": env_int("MESSENGER_DELETE_FOR_EVERYONE_SECONDS", 172800, minimum=60),
    # How long after sending a message its sender may edit its text (15 minutes).
    "EDIT_SECONDS": env_int("MESSENGER_EDIT_SECONDS", 900, minimum=60),
    # Threads (each with its own connection) for websocket database work on PostgreSQL; SQLite uses one.
    # Each call hops to one and back and the threads take turns with the event loop for the GIL: on
    # the benchmark machine 2 cost 10% less CPU per message than 4, with lower tails, and 1 (Channels'
    # shared thread) more (docs/performance.md). Raise it when the database is far away and calls
    # spend longer waiting.
    "DB_THREADS": env_int("MESSENGER_DB_THREADS", 2, minimum=1),
    # The hot path's SQL as prepared statements on PostgreSQL (storage/sql.py): PostgreSQL spent
    # about half the CPU per message with them, and one-to-one chats were faster in every
    # alternating benchmark run the machine could hold since a send is one statement
    # (docs/performance.md, change 31).
    # Turn it off (0) behind PgBouncer in transaction mode before 1.21, which cannot keep a
    # prepared statement with its connection.
    "PG_PREPARED_STATEMENTS": env_bool("MESSENGER_PG_PREPARED_STATEMENTS", True),
    # On PostgreSQL, run a websocket's send and receipt statements on the event loop itself, on
    # connections of its own, instead of hopping to a database thread (storage/async_sql.py).
    "PG_ON_EVENT_LOOP": env_bool("MESSENGER_PG_ON_EVENT_LOOP", True),
    # On SQLite, run the websocket's short database calls on the event loop itself (frontdesk/db.py).
    "SQLITE_ON_EVENT_LOOP": env_bool("MESSENGER_SQLITE_ON_EVENT_LOOP", True),
    # Websocket frames per connection: a burst of FRAME_BURST, refilled at FRAME_RATE a second.
    # A frame over budget is answered `rate_limited`; a client that goes on sending a whole burst
    # more while refused is closed (4008).
    "FRAME_RATE": env_float("MESSENGER_FRAME_RATE", 50, above=0),
    "FRAME_BURST": env_int("MESSENGER_FRAME_BURST", 200, minimum=1),
    # Events held for a websocket whose client reads too slowly (its writes wait for the socket);
    # one more and it is closed (4009), to catch up when it reconnects.
    "MAX_FRAMES_WAITING": env_int("MESSENGER_MAX_FRAMES_WAITING", 1000, minimum=1),
    # How often an open websocket re-checks that its device token or session is still valid (its
    # frames are checked each time; this bounds how long an idle revoked socket keeps receiving).
    "AUTH_RECHECK_SECONDS": env_float("MESSENGER_AUTH_RECHECK_SECONDS", 60, above=0),
    # Login: attempts per client address, and wrong passwords per phone number, per window.
    "LOGIN_WINDOW": env_int("MESSENGER_LOGIN_WINDOW", 900, minimum=1),
    "LOGIN_RATE_PER_IP": env_int("MESSENGER_LOGIN_RATE_PER_IP", 60, minimum=1),
    "LOGIN_FAILURES_PER_PHONE": env_int("MESSENGER_LOGIN_FAILURES_PER_PHONE", 10, minimum=1),
    # Registration: attempts per client address and per phone number, per window.
    "REGISTER_WINDOW": env_int("MESSENGER_REGISTER_WINDOW", 3600, minimum=1),
    "REGISTER_RATE_PER_IP": env_int("MESSENGER_REGISTER_RATE_PER_IP", 20, minimum=1),
    "REGISTER_RATE_PER_PHONE": env_int("MESSENGER_REGISTER_RATE_PER_PHONE", 5, minimum=1),
    # Looking people up by phone number (contacts, direct chats): numbers nobody uses, per user
    # and window (broker/ratelimit.py says why they have a limit of their own). Typing numbers by
    # hand, a person rarely gets 50 wrong in an hour; a script trying numbers gets 50 an hour,
    # 1,200 a day.
    "LOOKUP_WINDOW": env_int("MESSENGER_LOOKUP_WINDOW", 3600, minimum=1),
    "LOOKUP_MISSES_PER_USER": env_int("MESSENGER_LOOKUP_MISSES_PER_USER", 50, minimum=1),
    # And every lookup, found or not: someone holding a list of numbers people use (a leaked one)
    # would otherwise learn whose each is (name, about) with no miss to slow them down. Adding
    # people one at a time, nobody looks up 200 numbers in an hour.
    "LOOKUPS_PER_USER": env_int("MESSENGER_LOOKUPS_PER_USER", 200, minimum=1),
}

# --- Developer API (developer_api) ------------------------------------------------------------
# Webhooks are delivered by a task worker: `manage.py db_worker` (django-tasks with its database
# backend, so the queue lives in the same database and needs no other service).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# The app-facing API (/developer/v1/) has a schema of its own at /developer/v1/schema/.
SPECTACULAR_SETTINGS["PREPROCESSING_HOOKS"] = ["developer_api.schema.exclude_app_api"]
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update({
    "AppTier": ["free", "commercial"],
    "AppStatus": ["active", "suspended"],
    "ApiKeyState": ["active", "revoked", "expired"],
    "CommercialRequestStatus": ["pending", "approved", "refused"],
    "SpamReportStatus": ["open", "dismissed", "upheld"],
    "AppMessageStatus": ["sent", "delivered", "read", "failed"],
})
DEVELOPER_API = {
    # Token buckets: (requests, seconds) = a bucket of `requests` tokens refilled evenly over `seconds`.
    # MONTHLY_MESSAGES: messages an app may send per calendar month (UTC); None for no cap.
    "TIERS": {
        "free": {
            "KEY_RATE": (20, 60), "APP_RATE": (30, 60),
            "MONTHLY_MESSAGES": env_int("DEVELOPER_FREE_MONTHLY_MESSAGES", 1000, minimum=0),
        },
        "commercial": {"KEY_RATE": (600, 60), "APP_RATE": (1200, 60), "MONTHLY_MESSAGES": None},
    },
    # Distinct users reporting an app as spam before its keys stop working, pending review.
    "SPAM_REPORT_THRESHOLD": env_int("DEVELOPER_SPAM_REPORT_THRESHOLD", 5, minimum=1),
    "MAX_APPS_PER_USER": 10,
    "MAX_KEYS_PER_APP": 20,
    "WEBHOOK_TIMEOUT": 10,
    # Retries back off from BASE seconds, doubling up to MAX, until RETRY_FOR seconds have passed.
    "WEBHOOK_BACKOFF_BASE": 10,
    "WEBHOOK_BACKOFF_MAX": 3600,
    "WEBHOOK_RETRY_FOR": 24 * 3600,
    # Callbacks on loopback or private addresses (SSRF into the server's own network) are refused
    # unless this is set, e.g. for a receiver on the same machine.
    "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": env_bool("DEVELOPER_WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False),
}

# --- Media (photos, videos, voice messages, documents; docs/protocol.md "Media") --------------
_MB = 1024 * 1024
MESSENGER.update({
    # Largest upload per kind, in bytes (the type is decided from the content, never the name).
    "MEDIA_MAX_BYTES": {
        "image": env_int("MESSENGER_MEDIA_MAX_IMAGE_BYTES", 16 * _MB, minimum=1),
        "video": env_int("MESSENGER_MEDIA_MAX_VIDEO_BYTES", 64 * _MB, minimum=1),
        "voice": env_int("MESSENGER_MEDIA_MAX_VOICE_BYTES", 16 * _MB, minimum=1),
        "document": env_int("MESSENGER_MEDIA_MAX_DOCUMENT_BYTES", 100 * _MB, minimum=1),
    },
    # Images with more pixels are refused before they are decoded (decompression bombs).
    "MEDIA_MAX_IMAGE_PIXELS": env_int("MESSENGER_MEDIA_MAX_IMAGE_PIXELS", 50_000_000, minimum=1),
    "MEDIA_THUMBNAIL_SIZE": 320,
    # An upload no message carries is removed this many seconds after it was made (manage.py clean_media).
    "MEDIA_UPLOAD_GRACE": env_int("MESSENGER_MEDIA_UPLOAD_GRACE", 24 * 3600, minimum=0),
})
# Uploads are stored through Django's storage API: on local disk under MEDIA_ROOT by default, or
# any django-storages backend (S3, GCS, Azure...) named by MESSENGER_MEDIA_STORAGE, with its
# options as JSON in MESSENGER_MEDIA_STORAGE_OPTIONS. Files are never served from MEDIA_URL:
# every download goes through the authorizing view GET /api/v1/media/{id}.
MEDIA_ROOT = Path(env_str("MESSENGER_MEDIA_ROOT", str(DATA_DIR / "media")))
MEDIA_STORAGE_BACKEND = env_str("MESSENGER_MEDIA_STORAGE", "django.core.files.storage.FileSystemStorage")
MEDIA_STORAGE_OPTIONS = env_json_object("MESSENGER_MEDIA_STORAGE_OPTIONS")
# Larger uploads stream to a temporary file rather than memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * _MB

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []
STORAGES = {
    "default": {"BACKEND": MEDIA_STORAGE_BACKEND, "OPTIONS": MEDIA_STORAGE_OPTIONS},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the apps' static folders too, so a fresh checkout works before collectstatic.
WHITENOISE_USE_FINDERS = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), case_sensitive=False)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
