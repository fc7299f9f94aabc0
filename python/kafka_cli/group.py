"""``kafka-core group list|describe|reset-offsets|delete``: consumer groups for operators.

Mirrors Apache Kafka's ``kafka-consumer-groups`` (same flags, same table
columns) and talks to any Kafka-compatible cluster through the project's
client (``kafka_client.admin.AIOAdminClient`` and its ``Cluster``).  Group
listing and description use the raw APIs so both classic groups and
KIP-848 consumer groups (ConsumerGroupDescribe) are shown.

Exit status: 0 on success, 1 when a group or topic is unknown or a request
fails, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from .errors import CliError
from .options import add_bootstrap

EARLIEST, LATEST = -2, -1
CLASSIC_EMPTY_STATES = {"Empty", "Dead"}


@dataclass
class Member:
    member_id: str
    instance_id: str | None
    client_id: str
    host: str
    partitions: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Group:
    group_id: str
    state: str
    group_type: str            # classic | consumer
    protocol_type: str
    protocol: str
    members: list[Member]
    error: str | None = None


# -- arguments -------------------------------------------------------------------

def register(sub: Any) -> None:
    """Add ``group`` and its subcommands to the ``kafka-core`` parser."""
    g = sub.add_parser("group", help="list, describe, reset offsets of or delete consumer groups")
    gsub = g.add_subparsers(dest="group_command", required=True)

    def common(p: argparse.ArgumentParser, groups: bool = True) -> None:
        add_bootstrap(p)
        p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each request")
        if groups:
            w = p.add_mutually_exclusive_group(required=True)
            w.add_argument("--group", "-g", action="append", metavar="GROUP", help="group id (repeatable)")
            w.add_argument("--all-groups", action="store_true", help="every group of the cluster")

    p = gsub.add_parser("list", help="list the groups")
    common(p, groups=False)
    p.add_argument("--state", action="store_true", help="also show each group's state and type")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = gsub.add_parser("describe", help="committed offsets, log end offsets and lag per partition")
    common(p)
    v = p.add_mutually_exclusive_group()
    v.add_argument("--offsets", action="store_true", help="offsets and lag per partition (the default)")
    v.add_argument("--members", action="store_true", help="the members and their assignments")
    v.add_argument("--state", action="store_true", help="the group's state, protocol and member count")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = gsub.add_parser("reset-offsets", help="move a group's committed offsets (group must be inactive)")
    common(p)
    t = p.add_mutually_exclusive_group(required=True)
    t.add_argument("--topic", action="append", metavar="TOPIC[:P,P-Q]",
                   help="topic, optionally with partitions (repeatable)")
    t.add_argument("--all-topics", action="store_true", help="every topic the group has offsets for")
    s = p.add_mutually_exclusive_group(required=True)
    s.add_argument("--to-earliest", action="store_true")
    s.add_argument("--to-latest", action="store_true")
    s.add_argument("--to-current", action="store_true")
    s.add_argument("--to-offset", type=int, metavar="N")
    s.add_argument("--shift-by", type=int, metavar="N")
    s.add_argument("--to-datetime", metavar="YYYY-MM-DDTHH:mm:SS.sss",
                   help="first offset at or after this time (ISO 8601; UTC unless it has an offset)")
    s.add_argument("--by-duration", metavar="PnDTnHnMnS", help="first offset at or after now minus this")
    e = p.add_mutually_exclusive_group()
    e.add_argument("--execute", action="store_true", help="apply the new offsets")
    e.add_argument("--dry-run", action="store_true", help="only show the new offsets (the default)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = gsub.add_parser("delete", help="delete groups (they must have no active members)")
    common(p)
    p.add_argument("--topic", action="append", metavar="TOPIC",
                   help="delete only the group's offsets of these topics (OffsetDelete)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    g.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except CliError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:  # pragma: no cover
        return 130


# -- the client side ---------------------------------------------------------------

class GroupAdmin:
    """The requests the commands need, over the project's client."""

    def __init__(self, bootstrap: str, timeout: float) -> None:
        from kafka_client.admin import AIOAdminClient

        self.timeout = timeout
        self.admin = AIOAdminClient(bootstrap, client_id="kafka-core-group-cli",
                                    request_timeout_ms=int(timeout * 1000))

    async def __aenter__(self) -> GroupAdmin:
        try:
            await self.admin.start()
        except Exception as e:  # noqa: BLE001
            raise CliError(f"cannot reach {e}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.admin.close()

    @property
    def cluster(self) -> Any:
        return self.admin.cluster

    async def send(self, node: int, req: Any) -> Any:
        """Send at the highest version both sides speak (also for APIs the client does not list)."""
        conn = await self.cluster.connection(node)
        version = None
        supports = getattr(conn, "supports", None)
        if supports is not None and not supports(req.API_KEY):
            r = getattr(conn, "broker_versions", {}).get(req.API_KEY)
            if r is None:
                raise CliError(f"the broker does not support api key {req.API_KEY}")
            version = min(r[1], type(req).MAX_VERSION)
        return await conn.send(req, version=version, timeout=self.timeout)

    async def list_groups(self) -> list[tuple[str, str, str, str]]:
        """(group id, protocol type, state, type) of every group of every broker."""
        import kafka_protocol as kp

        await self.cluster.refresh_metadata()
        out: dict[str, tuple[str, str, str, str]] = {}
        for node in list(self.cluster.brokers):
            resp = await self.send(node, kp.ListGroupsRequest(states_filter=[], types_filter=[]))
            if resp.error_code:
                raise CliError(f"ListGroups failed with error {_err_name(resp.error_code)}")
            for g in resp.groups:
                gtype = (g.group_type or "").lower() or ("consumer" if g.protocol_type == "consumer" and
                                                         not g.group_state else "classic")
                out[g.group_id] = (g.group_id, g.protocol_type, g.group_state or "", gtype)
        return sorted(out.values())

    async def describe(self, gid: str) -> Group:
        import kafka_protocol as kp
        from kafka_client.assignors import decode_assignment

        node = await self.cluster.coordinator(gid)
        resp = await self.send(node, kp.DescribeGroupsRequest(groups=[gid], include_authorized_operations=False))
        g = resp.groups[0]
        if g.error_code == 0 and g.group_state != "Dead":
            members = []
            for m in g.members:
                parts: list[tuple[str, int]] = []
                if g.protocol_type == "consumer" and m.member_assignment:
                    try:
                        parts = [(t, p) for t, p in decode_assignment(m.member_assignment).partitions]
                    except ValueError:
                        parts = []
                members.append(Member(m.member_id, m.group_instance_id, m.client_id, m.client_host, parts))
            return Group(gid, g.group_state, "classic", g.protocol_type, g.protocol_data, members)
        # Not a classic group (or not one any more): maybe a KIP-848 consumer group.
        try:
            cresp = await self.send(node, kp.ConsumerGroupDescribeRequest(
                group_ids=[gid], include_authorized_operations=False))
            c = cresp.groups[0]
        except Exception:  # noqa: BLE001 - broker without KIP-848
            c = None
        if c is not None and c.error_code == 0:
            members = []
            for m in c.members:
                parts = [(tp.topic_name, p) for tp in (m.assignment.topic_partitions if m.assignment else [])
                         for p in tp.partitions]
                members.append(Member(m.member_id, m.instance_id, m.client_id, m.client_host, sorted(parts)))
            return Group(gid, _kip848_state(c.group_state), "consumer", "consumer", c.assignor_name, members)
        state = "Dead" if g.error_code in (0, 69) else ""
        return Group(gid, state, "classic", "", "", [],
                     None if g.error_code in (0, 69) else _err_name(g.error_code))

    async def committed(self, gid: str) -> dict[tuple[str, int], int]:
        got = await self.admin.list_group_offsets(gid)
        return {(tp.topic, tp.partition): om.offset for tp, om in got.items() if om.offset >= 0}

    async def partitions(self, topics: list[str]) -> dict[str, int]:
        """Partition count of each topic; CliError for an unknown one."""
        if not topics:
            return {}
        try:
            metas = await self.admin.describe_topics(topics)
        except Exception as e:  # noqa: BLE001
            raise CliError(str(e)) from None
        return {name: m.num_partitions for name, m in metas.items()}

    async def list_offsets(self, tps: list[tuple[str, int]], ts: int) -> dict[tuple[str, int], int]:
        """Offset for timestamp ``ts`` (-2 earliest, -1 latest) of each partition (its leader answers)."""
        import kafka_protocol as kp

        if not tps:
            return {}
        await self.cluster.refresh_metadata({t for t, _ in tps})
        by_node: dict[int, list[tuple[str, int]]] = {}
        for t, p in tps:
            by_node.setdefault(self.cluster.leader_for(t, p), []).append((t, p))
        out: dict[tuple[str, int], int] = {}
        for node, group in by_node.items():
            if node < 0:
                continue
            topics: dict[str, list[Any]] = {}
            for t, p in group:
                topics.setdefault(t, []).append(kp.ListOffsetsRequest.ListOffsetsPartition(
                    partition_index=p, current_leader_epoch=-1, timestamp=ts))
            req = kp.ListOffsetsRequest(replica_id=-1, isolation_level=0, timeout_ms=int(self.timeout * 1000),
                                        topics=[kp.ListOffsetsRequest.ListOffsetsTopic(name=t, partitions=ps)
                                                for t, ps in topics.items()])
            resp = await self.send(node, req)
            for rt in resp.topics:
                for rp in rt.partitions:
                    if rp.error_code == 0 and rp.offset >= 0:
                        out[(rt.name, rp.partition_index)] = rp.offset
        return out

    async def alter(self, gid: str, offsets: dict[tuple[str, int], int]) -> None:
        from kafka_client.group import TopicPartition

        try:
            await self.admin.alter_group_offsets(gid, {TopicPartition(t, p): o for (t, p), o in offsets.items()})
        except Exception as e:  # noqa: BLE001
            raise CliError(f"cannot commit the new offsets of group {gid}: {e}") from None

    async def delete_groups(self, gids: list[str]) -> dict[str, str | None]:
        res = await self.admin.delete_groups(gids)
        return {g: None if e is None else _exc_name(e) for g, e in res.items()}

    async def delete_offsets(self, gid: str, tps: list[tuple[str, int]]) -> dict[tuple[str, int], str | None]:
        import kafka_protocol as kp

        R = kp.OffsetDeleteRequest
        topics: dict[str, list[int]] = {}
        for t, p in tps:
            topics.setdefault(t, []).append(p)
        node = await self.cluster.coordinator(gid)
        resp = await self.send(node, R(group_id=gid, topics=[
            R.OffsetDeleteRequestTopic(name=t, partitions=[R.OffsetDeleteRequestPartition(partition_index=p)
                                                           for p in ps]) for t, ps in topics.items()]))
        if resp.error_code:
            raise CliError(f"cannot delete offsets of group {gid}: {_err_name(resp.error_code)}")
        return {(t.name, p.partition_index): (_err_name(p.error_code) if p.error_code else None)
                for t in resp.topics for p in t.partitions}


def _kip848_state(s: str) -> str:
    return {"empty": "Empty", "stable": "Stable", "assigning": "Assigning", "reconciling": "Reconciling",
            "dead": "Dead", "not_ready": "NotReady"}.get((s or "").lower(), s)


def _err_name(code: int) -> str:
    try:
        from kafka_protocol.errors import ErrorCode
        return ErrorCode(code).name
    except ValueError:
        return f"error {code}"


def _exc_name(e: BaseException) -> str:
    code = getattr(e, "error_code", None)
    return _err_name(code) if isinstance(code, int) else str(e) or type(e).__name__


# -- commands --------------------------------------------------------------------------

async def _run(args: argparse.Namespace) -> int:
    async with GroupAdmin(args.bootstrap_server, args.timeout) as ga:
        cmd = args.group_command
        if cmd == "list":
            return await _cmd_list(ga, args)
        gids = args.group if args.group else [g[0] for g in await ga.list_groups()]
        if cmd == "describe":
            return await _cmd_describe(ga, args, gids)
        if cmd == "reset-offsets":
            return await _cmd_reset(ga, args, gids)
        if cmd == "delete":
            return await _cmd_delete(ga, args, gids)
    raise CliError(f"unknown command {cmd}")  # pragma: no cover


async def _cmd_list(ga: GroupAdmin, args: argparse.Namespace) -> int:
    groups = await ga.list_groups()
    if args.json:
        print(json.dumps([{"group": g, "protocol_type": pt, "state": st, "type": ty} for g, pt, st, ty in groups]))
    elif args.state:
        _table(["GROUP", "STATE", "TYPE", "PROTOCOL-TYPE"], [[g, st, ty, pt] for g, pt, st, ty in groups])
    else:
        for g in groups:
            print(g[0])
    return 0


async def offset_rows(ga: GroupAdmin, grp: Group) -> list[dict[str, Any]]:
    """One row per partition the group has an offset for or is assigned: offsets and lag."""
    committed = await ga.committed(grp.group_id)
    owner: dict[tuple[str, int], Member] = {}
    for m in grp.members:
        for tp in m.partitions:
            owner[tp] = m
    tps = sorted(set(committed) | set(owner))
    ends = await ga.list_offsets(tps, LATEST)
    rows = []
    for tp in tps:
        cur = committed.get(tp)
        end = ends.get(tp)
        who = owner.get(tp)
        rows.append({"group": grp.group_id, "topic": tp[0], "partition": tp[1], "current_offset": cur,
                     "log_end_offset": end, "lag": (end - cur) if cur is not None and end is not None else None,
                     "consumer_id": who.member_id if who else None, "host": who.host if who else None,
                     "client_id": who.client_id if who else None})
    return rows


async def _describe_each(ga: GroupAdmin, gids: list[str]) -> tuple[list[tuple[str, Any]], int]:
    """(group id, description) of each group that could be described, and exit status 1 when one
    could not (its error is printed)."""
    found, rc = [], 0
    for gid in gids:
        grp = await ga.describe(gid)
        if grp.error:
            print(f"Error: group {gid}: {grp.error}", file=sys.stderr)
            rc = 1
            continue
        found.append((gid, grp))
    return found, rc


async def _cmd_describe(ga: GroupAdmin, args: argparse.Namespace, gids: list[str]) -> int:
    out_json: list[Any] = []
    described, rc = await _describe_each(ga, gids)
    for gid, grp in described:
        if args.state:
            row = {"group": gid, "coordinator": "", "assignment_strategy": grp.protocol, "state": grp.state,
                   "type": grp.group_type, "members": len(grp.members)}
            if args.json:
                out_json.append(row)
            else:
                _table(["GROUP", "ASSIGNMENT-STRATEGY", "STATE", "TYPE", "#MEMBERS"],
                       [[gid, grp.protocol or "", grp.state, grp.group_type, str(len(grp.members))]])
                print()
            continue
        if args.members:
            rows: list[dict[str, Any]] = [{"group": gid, "consumer_id": m.member_id, "group_instance_id": m.instance_id,
                     "host": m.host, "client_id": m.client_id, "partitions": len(m.partitions),
                     "assignment": [f"{t}-{p}" for t, p in m.partitions]} for m in grp.members]
            if args.json:
                out_json.extend(rows)
            elif not rows:
                print(f"Consumer group '{gid}' has no active members.\n")
            else:
                _table(["GROUP", "CONSUMER-ID", "GROUP-INSTANCE-ID", "HOST", "CLIENT-ID", "#PARTITIONS",
                        "ASSIGNMENT"],
                       [[gid, r["consumer_id"], r["group_instance_id"] or "-", r["host"], r["client_id"],
                         str(r["partitions"]), ",".join(r["assignment"]) or "-"] for r in rows])
                print()
            continue
        if grp.state == "Dead" and not grp.members:
            committed = await ga.committed(gid)
            if not committed:
                print(f"Error: Consumer group '{gid}' does not exist.", file=sys.stderr)
                rc = 1
                continue
        rows = await offset_rows(ga, grp)
        if args.json:
            out_json.extend(rows)
            continue
        if not grp.members:
            print(f"Consumer group '{gid}' has no active members.\n")
        _table(["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST",
                "CLIENT-ID"],
               [[gid, r["topic"], str(r["partition"]), _d(r["current_offset"]), _d(r["log_end_offset"]),
                 _d(r["lag"]), _d(r["consumer_id"]), _d(r["host"]), _d(r["client_id"])] for r in rows])
        print()
    if args.json:
        print(json.dumps(out_json))
    return rc


def _parse_topic_arg(spec: str) -> tuple[str, list[int] | None]:
    if ":" not in spec:
        return spec, None
    name, parts = spec.split(":", 1)
    out: list[int] = []
    for piece in parts.split(","):
        piece = piece.strip()
        if not piece:
            continue
        if "-" in piece:
            a, b = piece.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(piece))
    return name, out


def parse_datetime(text: str) -> int:
    """Kafka's --to-datetime forms: 'YYYY-MM-DDTHH:mm:SS.sss' with an optional zone; UTC otherwise."""
    s = text.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    try:
        d = dt.datetime.fromisoformat(s)
    except ValueError:
        raise CliError(f"cannot parse --to-datetime {text!r} (expected YYYY-MM-DDTHH:mm:SS.sss)") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return int(d.timestamp() * 1000)


def parse_duration(text: str) -> int:
    """ISO 8601 duration PnDTnHnMnS -> milliseconds."""
    import re

    m = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", text.strip().upper())
    if not m or text.strip().upper() in ("P", "PT"):
        raise CliError(f"cannot parse --by-duration {text!r} (expected PnDTnHnMnS)")
    d, h, mi, s = m.groups()
    return int(((int(d or 0) * 24 + int(h or 0)) * 60 + int(mi or 0)) * 60000 + float(s or 0) * 1000)


async def _cmd_reset(ga: GroupAdmin, args: argparse.Namespace, gids: list[str]) -> int:
    import time

    all_rows: list[dict[str, Any]] = []
    described, rc = await _describe_each(ga, gids)
    for gid, grp in described:
        if args.execute and grp.state not in CLASSIC_EMPTY_STATES:
            print(f"Error: Assignments can only be reset if the group '{gid}' is inactive, but the current "
                  f"state is {grp.state}.", file=sys.stderr)
            rc = 1
            continue
        committed = await ga.committed(gid)
        if args.all_topics:
            tps = sorted(committed)
        else:
            wanted = [_parse_topic_arg(s) for s in args.topic]
            counts = await ga.partitions([t for t, ps in wanted if ps is None])
            tps = sorted({(t, p) for t, ps in wanted for p in (ps if ps is not None else range(counts[t]))})
        earliest = await ga.list_offsets(tps, EARLIEST)
        latest = await ga.list_offsets(tps, LATEST)
        if args.to_datetime or args.by_duration:
            ts = parse_datetime(args.to_datetime) if args.to_datetime else \
                int(time.time() * 1000) - parse_duration(args.by_duration)
            at = await ga.list_offsets(tps, ts)
        new: dict[tuple[str, int], int] = {}
        for tp in tps:
            lo, hi = earliest.get(tp, 0), latest.get(tp, 0)
            cur = committed.get(tp)
            if args.to_earliest:
                off = lo
            elif args.to_latest:
                off = hi
            elif args.to_current:
                off = cur if cur is not None else hi
            elif args.to_offset is not None:
                off = args.to_offset
            elif args.shift_by is not None:
                off = (cur if cur is not None else hi) + args.shift_by
            else:
                off = at.get(tp, hi)
            new[tp] = min(max(off, lo), hi)   # clamp into the log, as kafka-consumer-groups does
        if args.execute and new:
            await ga.alter(gid, new)
        all_rows.extend({"group": gid, "topic": t, "partition": p, "new_offset": o} for (t, p), o in new.items())
    if args.json:
        print(json.dumps(all_rows))
    else:
        _table(["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
               [[r["group"], r["topic"], str(r["partition"]), str(r["new_offset"])] for r in all_rows])
        if not args.execute:
            print("\n(dry run: add --execute to apply)", file=sys.stderr)
        else:
            groups = sorted({r["group"] for r in all_rows})
            print(f"\nApplied: {len(all_rows)} partition offset(s) of group(s) {', '.join(groups) or '-'} "
                  "now stand as shown.", file=sys.stderr)
    return rc


async def _cmd_delete(ga: GroupAdmin, args: argparse.Namespace, gids: list[str]) -> int:
    rc = 0
    if args.topic:
        for gid in gids:
            wanted = [_parse_topic_arg(s) for s in args.topic]
            counts = await ga.partitions([t for t, ps in wanted if ps is None])
            tps = sorted({(t, p) for t, ps in wanted for p in (ps if ps is not None else range(counts[t]))})
            res = await ga.delete_offsets(gid, tps)
            rows = []
            for (t, p), err in sorted(res.items()):
                rows.append({"group": gid, "topic": t, "partition": p, "error": err})
                if not args.json:
                    print(f"{gid} {t} {p} {'Successful' if err is None else 'Error: ' + err}")
                rc |= err is not None
            if args.json:
                print(json.dumps(rows))
        return rc
    deleted = await ga.delete_groups(gids)
    ok = [g for g, e in deleted.items() if e is None]
    if args.json:
        print(json.dumps([{"group": g, "deleted": e is None, "error": None if e is None else str(e)}
                          for g, e in deleted.items()]))
    elif ok:
        print("Deletion of requested consumer groups (" + ", ".join(f"'{g}'" for g in ok) + ") was successful.")
    for g, e in deleted.items():
        if e is not None:
            print(f"Error: deletion of group '{g}' failed: {e}", file=sys.stderr)
            rc = 1
    return rc


def _d(v: Any) -> str:
    return "-" if v is None else str(v)


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    print(" ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for r in rows:
        print(" ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
