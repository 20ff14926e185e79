"""Seed a migrated, empty messenger database for the benchmark, fast, and write the plan.

Run with the environment of the server it seeds (DATABASE_URL or SQLITE_PATH):

    python bench/seed.py --plan var/bench/plan.json [--chat-users 1000] [--idle-users 10000]
                         [--history-conversations 100] [--history-per-conversation 10000]

It creates, with bulk inserts and one precomputed password hash (hashing 11,000 passwords the
normal way would take half an hour):

- `chat-users` users, each with one device token, paired in direct conversations (users 2k and
  2k+1) and grouped in groups of 50 (users 50g..50g+49): the chatting load;
- `idle-users` users with a device token and no conversations: the idle-connection load;
- one history user with `history-conversations` direct conversations of
  `history-per-conversation` messages each (1,000,000 by default), inserted by one
  INSERT ... SELECT per conversation (generate_series on PostgreSQL, a recursive CTE on SQLite).

The plan (JSON) lists the users with their tokens, the conversations with their members and the
history conversations; the load generator and the bare relay read it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "messenger.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.hashers import make_password  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from storage.models import Conversation, Device, Membership, Message, User  # noqa: E402

GROUP_SIZE = 50
PASSWORD = "bench-password-1"
BATCH = 2000


def _token() -> str:
    return secrets.token_urlsafe(24)


def _users(prefix: int, count: int, password_hash: str, label: str) -> list[tuple[User, str]]:
    now = timezone.now()
    users = User.objects.bulk_create(
        [User(phone_number=f"+{prefix}{n:08d}", display_name=f"{label} {n}", password=password_hash, date_joined=now)
         for n in range(count)],
        batch_size=BATCH,
    )
    if any(u.pk is None for u in users):  # a backend that cannot return ids from bulk inserts
        by_phone = dict(User.objects.filter(phone_number__startswith=f"+{prefix}").values_list("phone_number", "pk"))
        for user in users:
            user.pk = by_phone[user.phone_number]
    tokens = [_token() for _ in users]
    Device.objects.bulk_create(
        [Device(user_id=u.pk, name="bench", token_hash=hashlib.sha256(t.encode()).hexdigest(), created_at=now)
         for u, t in zip(users, tokens)],
        batch_size=BATCH,
    )
    return list(zip(users, tokens))


def _conversations(specs: list[tuple[str, str, list[int]]]) -> list[int]:
    """specs: (kind, title, member ids); returns the conversation ids in the same order."""
    now = timezone.now()
    made = Conversation.objects.bulk_create(
        [Conversation(kind=kind, title=title, created_at=now, last_activity_at=now, created_by_id=members[0],
                      direct_key=f"{min(members)}:{max(members)}" if kind == "direct" else None)
         for kind, title, members in specs],
        batch_size=BATCH,
    )
    if any(c.pk is None for c in made):
        raise RuntimeError("this database backend does not return ids from bulk inserts")
    Membership.objects.bulk_create(
        [Membership(conversation_id=c.pk, user_id=uid, role="admin" if uid == members[0] and kind == "group" else "member",
                    joined_at=now)
         for c, (kind, _, members) in zip(made, specs) for uid in members],
        batch_size=BATCH,
    )
    return [c.pk for c in made]


def _insert_history(conversation_id: int, user_id: int, peer_id: int, count: int) -> None:
    table = Message._meta.db_table
    columns = "conversation_id, seq, sender_id, client_id, kind, text, event, created_at"
    if connection.vendor == "postgresql":
        sql = (f"INSERT INTO {table} ({columns}) "
               "SELECT %s, n, CASE WHEN n %% 2 = 0 THEN %s ELSE %s END, 'h' || %s || '-' || n, 'text', "
               "'history message ' || n, NULL, %s FROM generate_series(1, %s) AS n")
        params = [conversation_id, user_id, peer_id, conversation_id, timezone.now(), count]
    else:
        sql = (f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < %s) "
               f"INSERT INTO {table} ({columns}) "
               "SELECT %s, n, CASE WHEN n %% 2 = 0 THEN %s ELSE %s END, 'h' || %s || '-' || n, 'text', "
               "'history message ' || n, NULL, %s FROM s")
        params = [count, conversation_id, user_id, peer_id, conversation_id,
                  timezone.now().strftime("%Y-%m-%d %H:%M:%S.%f")]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def seed(args) -> dict:
    started = time.monotonic()
    if User.objects.exists():
        raise SystemExit("the database is not empty; the benchmark seeds a fresh one")
    password_hash = make_password(PASSWORD)
    plan: dict = {"group_size": GROUP_SIZE}
    with transaction.atomic():
        chat = _users(1555, args.chat_users, password_hash, "Bench")
        plan["users"] = [{"id": u.pk, "token": t} for u, t in chat]
        ids = [u.pk for u, _ in chat]
        pairs = [("direct", "", [ids[i], ids[i + 1]]) for i in range(0, len(ids) - 1, 2)]
        groups = [("group", f"Bench group {g}", ids[g * GROUP_SIZE:(g + 1) * GROUP_SIZE])
                  for g in range(len(ids) // GROUP_SIZE)]
        pair_ids = _conversations(pairs)
        group_ids = _conversations(groups)
        plan["pairs"] = [[cid, members] for cid, (_, _, members) in zip(pair_ids, pairs)]
        plan["groups"] = [[cid, members] for cid, (_, _, members) in zip(group_ids, groups)]
        idle = _users(1556, args.idle_users, password_hash, "Idle")
        plan["idle"] = [{"id": u.pk, "token": t} for u, t in idle]
    print(f"seed: {len(chat) + len(idle)} users, {len(pairs)} pairs, {len(groups)} groups "
          f"in {time.monotonic() - started:.1f}s", flush=True)

    if args.history_conversations and args.history_per_conversation:
        history_started = time.monotonic()
        with transaction.atomic():
            (owner, owner_token), *peers = _users(1557, args.history_conversations + 1, password_hash, "History")
            specs = [("direct", "", [owner.pk, peer.pk]) for peer, _ in peers]
            history_ids = _conversations(specs)
        per = args.history_per_conversation
        for cid, (peer, _) in zip(history_ids, peers):
            with transaction.atomic():
                _insert_history(cid, owner.pk, peer.pk, per)
        with transaction.atomic():
            Conversation.objects.filter(pk__in=history_ids).update(last_seq=per)
            Membership.objects.filter(conversation_id__in=history_ids).update(delivered_seq=per, read_seq=per)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # what autovacuum would do a minute later, now
                cursor.execute("ANALYZE")
        plan["history"] = {
            "user": {"id": owner.pk, "token": owner_token},
            "conversations": history_ids,
            "peers": [peer.pk for peer, _ in peers],
            "per_conversation": per,
        }
        print(f"seed: {len(history_ids) * per:,} history messages in {time.monotonic() - history_started:.1f}s",
              flush=True)
    plan["messages_stored"] = Message.objects.count()
    plan["seed_seconds"] = round(time.monotonic() - started, 1)
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(description="Seed a fresh database for the benchmark.")
    parser.add_argument("--plan", required=True)
    parser.add_argument("--chat-users", type=int, default=1000)
    parser.add_argument("--idle-users", type=int, default=10000)
    parser.add_argument("--history-conversations", type=int, default=100)
    parser.add_argument("--history-per-conversation", type=int, default=10000)
    args = parser.parse_args()
    plan = seed(args)
    Path(args.plan).parent.mkdir(parents=True, exist_ok=True)
    Path(args.plan).write_text(json.dumps(plan))


if __name__ == "__main__":
    main()
