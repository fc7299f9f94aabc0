"""``kafka-core`` client subcommands (over kafka_client): topic, produce, consume, perf.

Flags are named as in Apache Kafka's own tools (kafka-topics, kafka-configs,
kafka-console-producer/-consumer, kafka-producer-perf-test,
kafka-consumer-perf-test), so muscle memory carries over:

  kafka-core topic create|list|describe|delete|alter-config --bootstrap-server HOST:PORT ...
  kafka-core produce --bootstrap-server B --topic T [--file F] [--property parse.key=true ...]
                     [--transactional-id ID]   (the whole run in one transaction)
  kafka-core consume --bootstrap-server B --topic T [--from-beginning|--offset N|--timestamp MS]
                     [--isolation-level read_committed] ...
  kafka-core perf produce|consume ...

``register(subparsers)`` adds them to the ``kafka-core`` parser (kafka_cli.main); each
sets ``func(args) -> int``.  Exit status: 0 on success, 1 when the broker, a topic
or a record fails, 2 for bad arguments.  Errors are one line on stderr.
Progress bars go to stderr when it is a terminal; output is plain and
machine-readable otherwise.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from kafka_client.cluster import parse_bootstrap
from kafka_client.errors import KafkaError

from .errors import CliError
from .options import add_bootstrap

log = logging.getLogger("kafka_cli")

__all__ = ["register"]

EARLIEST, LATEST = -2, -1

# ------------------------------------------------------------------ arguments

def register(sub: Any) -> None:
    """Add ``topic``, ``produce``, ``consume`` and ``perf`` to an argparse subparsers object."""
    t = sub.add_parser("topic", help="create, list, describe, delete topics or alter their configs")
    tsub = t.add_subparsers(dest="topic_command", required=True)

    bootstrap = add_bootstrap

    p = tsub.add_parser("create", help="create a topic")
    bootstrap(p)
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=int, default=-1, help="number of partitions (broker default)")
    p.add_argument("--replication-factor", type=int, default=-1, help="replicas (broker default)")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="topic config (repeatable)")
    p.add_argument("--if-not-exists", action="store_true", help="succeed if the topic exists")
    p.add_argument("--json", action="store_true", help="one JSON object of the outcome on stdout")
    p.set_defaults(func=_wrap(cmd_topic_create))

    p = tsub.add_parser("list", help="list topic names")
    bootstrap(p)
    p.add_argument("--exclude-internal", action="store_true")
    p.add_argument("--json", action="store_true", help="one JSON array of names on stdout")
    p.set_defaults(func=_wrap(cmd_topic_list))

    p = tsub.add_parser("describe", help="partitions, leaders and configs of topics")
    bootstrap(p)
    p.add_argument("--topic", action="append", default=[], help="topic (repeatable; all when omitted)")
    p.add_argument("--json", action="store_true", help="one JSON array of topics on stdout")
    p.set_defaults(func=_wrap(cmd_topic_describe))

    p = tsub.add_parser("delete", help="delete a topic")
    bootstrap(p)
    p.add_argument("--topic", required=True, action="append")
    p.add_argument("--if-exists", action="store_true", help="succeed if the topic does not exist")
    p.add_argument("--json", action="store_true", help="one JSON object per topic and outcome on stdout")
    p.set_defaults(func=_wrap(cmd_topic_delete))

    p = tsub.add_parser("alter-config", help="set or delete topic configs (as kafka-configs --alter)")
    bootstrap(p)
    p.add_argument("--topic", required=True)
    p.add_argument("--add-config", action="append", default=[], metavar="K=V[,K=V]",
                   help="configs to set, comma separated; [a,b] for list values")
    p.add_argument("--delete-config", action="append", default=[], metavar="K[,K]",
                   help="configs to remove (back to the default), comma separated")
    p.add_argument("--json", action="store_true", help="one JSON object of the outcome on stdout")
    p.set_defaults(func=_wrap(cmd_topic_alter_config))

    p = sub.add_parser("produce", help="write records read from stdin (one per line), as kafka-console-producer")
    bootstrap(p)
    p.add_argument("--topic", required=True)
    p.add_argument("--file", metavar="PATH", help="read lines from this file instead of stdin")
    p.add_argument("--property", action="append", default=[], metavar="KEY=VALUE",
                   help="line parsing: parse.key, key.separator, parse.headers, headers.delimiter, "
                        "headers.separator, headers.key.separator, null.marker, ignore.error")
    p.add_argument("--producer-property", "--producer-props", dest="producer_property", action="append",
                   default=[], metavar="KEY=VALUE", help="producer config, Java names (acks, linger.ms, ...)")
    p.add_argument("--request-required-acks", metavar="ACKS", help="acks: 0, 1 or all")
    p.add_argument("--compression-codec", metavar="CODEC", help="none, gzip, snappy, lz4, zstd")
    p.add_argument("--partition", type=int, help="write every record to this partition")
    p.add_argument("--transactional-id", metavar="ID",
                   help="write every line of this run in one transaction, committed at the end "
                        "(aborted on an error or Ctrl-C)")
    p.add_argument("--json", action="store_true", help="end with one JSON object (records written) on stdout")
    p.set_defaults(func=_wrap(cmd_produce))

    p = sub.add_parser("consume", help="print records, as kafka-console-consumer")
    bootstrap(p)
    p.add_argument("--topic", required=True)
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true", help="start at the earliest offset")
    start.add_argument("--offset", help="start offset (a number, 'earliest' or 'latest'); needs --partition")
    start.add_argument("--timestamp", type=int, metavar="MS", help="start at the first record at or after MS")
    p.add_argument("--partition", type=int, help="read only this partition")
    p.add_argument("--group", help="consumer group (commits its offsets)")
    p.add_argument("--max-messages", type=int, help="exit after this many records")
    p.add_argument("--timeout-ms", type=int, help="exit when no record arrives for this long")
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="text: values one per line (see --property); json: one object per record")
    p.add_argument("--property", action="append", default=[], metavar="KEY=VALUE",
                   help="text format: print.key, print.timestamp, print.partition, print.offset, "
                        "print.headers, print.value, key.separator, line.separator, null.literal")
    p.add_argument("--isolation-level", choices=["read_uncommitted", "read_committed"], default="read_uncommitted")
    p.add_argument("--consumer-property", action="append", default=[], metavar="KEY=VALUE",
                   help="consumer config, Java names")
    p.set_defaults(func=_wrap(cmd_consume))

    perf = sub.add_parser("perf", help="throughput and latency tests (kafka-*-perf-test)")
    psub = perf.add_subparsers(dest="perf_command", required=True)
    p = psub.add_parser("produce", help="as kafka-producer-perf-test")
    bootstrap(p)
    p.add_argument("--topic", required=True)
    p.add_argument("--num-records", type=int, required=True)
    p.add_argument("--record-size", type=int, required=True)
    p.add_argument("--throughput", type=float, required=True, help="records/s to aim at; -1 for no limit")
    p.add_argument("--producer-props", nargs="*", default=[], metavar="KEY=VALUE",
                   help="producer configs, Java names (acks=1 linger.ms=5 ...)")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    p.set_defaults(func=_wrap(cmd_perf_produce))

    p = psub.add_parser("consume", help="as kafka-consumer-perf-test")
    bootstrap(p)
    p.add_argument("--topic", required=True)
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--group", help="consume as this group (default: assign every partition)")
    p.add_argument("--timeout-ms", type=int, default=10000, help="give up when no record comes for this long")
    p.add_argument("--consumer-props", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the results")
    p.set_defaults(func=_wrap(cmd_perf_consume))


def _wrap(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn failures into one line on stderr and an exit status."""
    name = "kafka-core " + fn.__name__[4:].replace("_", " ").replace("alter config", "alter-config")

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except CliError as exc:
            _err(name, str(exc))
            return exc.code
        except KafkaError as exc:
            _err(name, str(exc))
            return 1
        except BrokenPipeError:
            raise           # main() ends quietly: the reader of our output went away
        except (OSError, ValueError) as exc:
            _err(name, str(exc))
            return 1
        except KeyboardInterrupt:
            return 130

    return run


def _err(name: str, msg: str) -> None:
    msg = " ".join(msg.split())  # one line
    print(f"{name}: error: {msg}", file=sys.stderr, flush=True)


def _props(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise CliError(f"bad {what} {item!r}: expected KEY=VALUE", 2)
        out[k.strip()] = v
    return out


def _truthy(v: str | None) -> bool:
    return str(v).lower() in ("true", "1", "yes")


def _java_config(props: dict[str, str]) -> dict[str, Any]:
    """Java client config names to this client's keyword arguments (linger.ms -> linger_ms)."""
    out: dict[str, Any] = {}
    for k, v in props.items():
        key = k.replace(".", "_").replace("-", "_")
        if key in ("bootstrap_servers",):
            continue
        val: Any = v
        if v.lstrip("-").isdigit():
            val = int(v)
        elif v.lower() in ("true", "false"):
            val = v.lower() == "true"
        out[key] = val
    return out


def _check_reachable(bootstrap: str, timeout: float = 5.0) -> None:
    """Fail fast, with the reason, when no bootstrap server accepts a connection."""
    try:
        servers = parse_bootstrap(bootstrap)
    except ValueError as exc:
        raise CliError(f"bad --bootstrap-server {bootstrap!r}: {exc}", 2) from exc
    errors = []
    for host, port in servers:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or exc}")
    raise CliError("cannot connect to any broker (" + "; ".join(errors) + ")")


_CLIENT_TIMEOUTS = {"request_timeout_ms": 15000, "connect_timeout_ms": 5000}


def _admin(bootstrap: str) -> Any:
    from kafka_client.admin import AdminClient

    _check_reachable(bootstrap)
    kw: dict[str, Any] = dict(_CLIENT_TIMEOUTS)
    return AdminClient(bootstrap, **kw)


# ------------------------------------------------------------------ progress

class Progress:
    """A one-line progress bar on stderr (tqdm), only when stderr is a terminal."""

    def __init__(self, total: int | None, what: str = "records", stream: TextIO | None = None,
                 force: bool | None = None) -> None:
        from tqdm import tqdm  # type: ignore[import-untyped]

        self.stream = stream or sys.stderr
        self.enabled = force if force is not None else self.stream.isatty()
        self.bar = tqdm(total=total, unit=f" {what}", file=self.stream, disable=not self.enabled, leave=False,
                        mininterval=0.1, dynamic_ncols=True)

    def update(self, done: int) -> None:
        if self.enabled and done > self.bar.n:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


# ------------------------------------------------------------------ topic

def cmd_topic_create(args: argparse.Namespace) -> int:
    from kafka_client.admin import NewTopic
    from kafka_client.errors import TopicAlreadyExistsError

    configs = _props(args.config, "--config")
    with _admin(args.bootstrap_server) as admin:
        res = admin.create_topics([NewTopic(args.topic, args.partitions, args.replication_factor, configs)])
    err = res.get(args.topic)
    if err is not None:
        if isinstance(err, TopicAlreadyExistsError) and args.if_not_exists:
            _json_out(args, {"topic": args.topic, "created": False, "existed": True})
            return 0
        raise CliError(f"cannot create topic {args.topic!r}: {err}")
    print(f"Created topic {args.topic}.", file=_human_out(args))
    _json_out(args, {"topic": args.topic, "created": True, "partitions": args.partitions,
                     "replication_factor": args.replication_factor, "configs": configs})
    return 0


def cmd_topic_list(args: argparse.Namespace) -> int:
    with _admin(args.bootstrap_server) as admin:
        names = admin.list_topics(include_internal=not args.exclude_internal)
    if args.json:
        print(json.dumps(sorted(names)))
        return 0
    for n in sorted(names):
        print(n)
    return 0


def cmd_topic_describe(args: argparse.Namespace) -> int:
    from kafka_client.admin import ConfigResource, ConfigResourceType
    from kafka_client.errors import UnknownTopicOrPartitionError

    with _admin(args.bootstrap_server) as admin:
        names = args.topic or sorted(admin.list_topics())
        try:
            metas = admin.describe_topics(names)
        except UnknownTopicOrPartitionError as exc:
            raise CliError(f"unknown topic: {', '.join(n for n in names if n not in admin.list_topics())}") from exc
        try:
            configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
        except KafkaError:
            configs = {}
    described = []
    for name in names:
        m = metas[name]
        parts = [m.partitions[p] for p in sorted(m.partitions)]
        rf = len(parts[0].replicas) if parts else 0
        conf = configs.get(ConfigResource(ConfigResourceType.TOPIC, name), {})
        # As kafka-topics: only configs set on the topic (not defaults).
        set_here = ",".join(f"{k}={e.value}" for k, e in sorted(conf.items()) if e.source == 1 and not e.is_sensitive)
        tid = str(m.topic_id) if m.topic_id else ""
        described.append({"topic": name, "topic_id": tid or None, "partition_count": len(parts),
                          "replication_factor": rf,
                          "configs": {k: e.value for k, e in sorted(conf.items()) if e.source == 1 and not e.is_sensitive},
                          "partitions": [{"partition": pm.partition, "leader": pm.leader, "replicas": list(pm.replicas),
                                          "isr": list(pm.isr)} for pm in parts]})
        if args.json:
            continue
        print(f"Topic: {name}\tTopicId: {tid}\tPartitionCount: {len(parts)}\tReplicationFactor: {rf}\t"
              f"Configs: {set_here}")
        for pm in parts:
            print(f"\tTopic: {name}\tPartition: {pm.partition}\tLeader: {pm.leader if pm.leader >= 0 else 'none'}\t"
                  f"Replicas: {','.join(map(str, pm.replicas))}\tIsr: {','.join(map(str, pm.isr))}")
    if args.json:
        print(json.dumps(described))
    return 0


def cmd_topic_delete(args: argparse.Namespace) -> int:
    from kafka_client.errors import UnknownTopicOrPartitionError

    with _admin(args.bootstrap_server) as admin:
        res = admin.delete_topics(args.topic)
    rc = 0
    outcome = []
    for name in args.topic:
        err = res.get(name)
        outcome.append({"topic": name, "deleted": err is None, "error": None if err is None else str(err)})
        if err is None:
            print(f"Deleted topic {name}.", file=_human_out(args))
        elif isinstance(err, UnknownTopicOrPartitionError):
            if not args.if_exists:
                _err("kafka-core topic delete", f"unknown topic {name!r}")
                rc = 1
        else:
            _err("kafka-core topic delete", f"cannot delete topic {name!r}: {err}")
            rc = 1
    _json_out(args, outcome)
    return rc


def _split_configs(text: str) -> list[str]:
    """``a=1,b=[x,y],c=2`` -> ["a=1", "b=x,y", "c=2"] (kafka-configs' bracket syntax for lists)."""
    out: list[str] = []
    cur = ""
    depth = 0
    for ch in text:
        if ch == "[":
            depth += 1
            continue
        if ch == "]":
            depth -= 1
            continue
        if ch == "," and depth == 0:
            if cur:
                out.append(cur)
            cur = ""
            continue
        cur += ch
    if cur:
        out.append(cur)
    return out


def cmd_topic_alter_config(args: argparse.Namespace) -> int:
    from kafka_client.admin import AlterConfigOp, ConfigResource, ConfigResourceType

    ops: list[AlterConfigOp] = []
    for item in args.add_config:
        for kv in _split_configs(item):
            k, sep, v = kv.partition("=")
            if not sep or not k:
                raise CliError(f"bad --add-config entry {kv!r}: expected KEY=VALUE", 2)
            ops.append(AlterConfigOp(k.strip(), v, "set"))
    for item in args.delete_config:
        ops += [AlterConfigOp(k.strip(), None, "delete") for k in item.split(",") if k.strip()]
    if not ops:
        raise CliError("nothing to change: give --add-config and/or --delete-config", 2)
    res = ConfigResource(ConfigResourceType.TOPIC, args.topic)
    with _admin(args.bootstrap_server) as admin:
        if args.topic not in admin.list_topics(include_internal=True):
            raise CliError(f"unknown topic {args.topic!r}")
        out = admin.incremental_alter_configs({res: ops})
    err = out.get(res)
    if err is not None:
        raise CliError(f"cannot alter configs of {args.topic!r}: {err}")
    print(f"Completed updating config for topic {args.topic}.", file=_human_out(args))
    _json_out(args, {"topic": args.topic, "set": {o.name: o.value for o in ops if o.op == "set"},
                     "deleted": [o.name for o in ops if o.op == "delete"]})
    return 0


# ------------------------------------------------------------------ produce

class LineParser:
    """kafka-console-producer's line format: ``[headers<delim>][key<sep>]value``."""

    def __init__(self, props: dict[str, str]) -> None:
        self.parse_key = _truthy(props.get("parse.key"))
        self.key_sep = props.get("key.separator", "\t")
        self.parse_headers = _truthy(props.get("parse.headers"))
        self.headers_delim = props.get("headers.delimiter", "\t")
        self.headers_sep = props.get("headers.separator", ",")
        self.header_key_sep = props.get("headers.key.separator", ":")
        self.null_marker = props.get("null.marker")
        self.ignore_error = _truthy(props.get("ignore.error"))
        if self.parse_key and not self.key_sep:
            raise CliError("key.separator must not be empty", 2)

    def _null(self, s: str) -> bytes | None:
        if self.null_marker is not None and s == self.null_marker:
            return None
        return s.encode("utf-8", BYTES_SAFE)

    def parse(self, line: str, lineno: int) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]:
        headers: list[tuple[str, bytes | None]] = []
        rest = line
        if self.parse_headers:
            head, sep, body = rest.partition(self.headers_delim)
            if not sep:
                if not self.ignore_error:
                    raise CliError(f"no headers delimiter {self.headers_delim!r} on line {lineno}")
                head, body = "", rest
            rest = body
            for pair in head.split(self.headers_sep) if head else []:
                hk, hsep, hv = pair.partition(self.header_key_sep)
                if not hk:
                    raise CliError(f"empty header key on line {lineno}")
                headers.append((hk, self._null(hv) if hsep else None))
        key: bytes | None = None
        if self.parse_key:
            k, sep, v = rest.partition(self.key_sep)
            if not sep:
                if not self.ignore_error:
                    raise CliError(f"no key separator {self.key_sep!r} on line {lineno}")
                return None, self._null(rest), headers
            key = self._null(k)
            rest = v
        return key, self._null(rest), headers


# Console produce and consume are bytes-safe: bytes that are not UTF-8 travel as lone surrogates
# (PEP 383) from the input line to the record and from the record to the output line.
BYTES_SAFE = "surrogateescape"


def _bytes_safe(stream: Any) -> None:
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors=BYTES_SAFE)


def _human_out(args: argparse.Namespace) -> Any:
    """Where a tool's human-readable lines go: stdout, or stderr under --json (stdout then holds
    the JSON alone, for jq and json.loads)."""
    return sys.stderr if getattr(args, "json", False) else sys.stdout


def _json_out(args: argparse.Namespace, result: Any) -> None:
    if args.json:
        print(json.dumps(result), flush=True)


def _lines(path: str | None) -> Iterator[str]:
    if path is None or path == "-":
        _bytes_safe(sys.stdin)
        for line in sys.stdin:
            yield line.rstrip("\r\n")
        return
    with open(path, encoding="utf-8", errors=BYTES_SAFE) as f:
        for line in f:
            yield line.rstrip("\r\n")


def _producer(bootstrap: str, topic: str, config: dict[str, Any]) -> Any:
    from kafka_client.producer import Producer

    _check_reachable(bootstrap)
    kw: dict[str, Any] = dict(_CLIENT_TIMEOUTS, max_block_ms=10000)
    kw.update(config)
    p = Producer(bootstrap, **kw)
    try:
        p.partitions_for(topic)
    except KafkaError as exc:
        p.close(0)
        raise CliError(f"unknown topic {topic!r} (and the broker did not create it): {exc}") from exc
    return p


def _abort_quietly(p: Any) -> None:
    """Abort the run's transaction on the way out (an error or Ctrl-C): nothing of it is
    committed.  If even that fails (fenced, broker gone), the coordinator aborts it after
    transaction.timeout.ms; the original error is the one reported."""
    try:
        p.abort_transaction(30)
    except (KafkaError, KeyboardInterrupt) as exc:
        log.warning("abort of the transaction failed: %s", exc)


def cmd_produce(args: argparse.Namespace) -> int:
    parser = LineParser(_props(args.property, "--property"))
    config = _java_config(_props(args.producer_property, "--producer-property"))
    if args.request_required_acks is not None:
        config["acks"] = args.request_required_acks
    if args.compression_codec is not None:
        config["compression_type"] = args.compression_codec
    config.setdefault("linger_ms", 5)
    txn = args.transactional_id
    if txn:
        config["transactional_id"] = txn
    failures: list[BaseException] = []

    def on_delivery(err: BaseException | None, _md: Any) -> None:
        if err is not None:
            failures.append(err)

    p = _producer(args.bootstrap_server, args.topic, config)
    n = 0
    progress = Progress(None, "records")
    committed = False
    try:
        if txn:
            p.init_transactions(60)
            p.begin_transaction()
        for n, line in enumerate(_lines(args.file), 1):
            key, value, headers = parser.parse(line, n)
            p.produce(args.topic, value, key=key, headers=headers or None, partition=args.partition,
                      on_delivery=on_delivery)
            if n % 1000 == 0:
                progress.update(n)
        if txn:
            p.commit_transaction(60)   # flushes first; raises if a record failed
            committed = True
        else:
            p.flush(60)
    except BaseException:
        if txn and not committed:
            _abort_quietly(p)
        raise
    finally:
        progress.close()
        p.close(5)
    if failures:
        raise CliError(f"{len(failures)} of {n} records were not delivered: {failures[0]}")
    _json_out(args, {"topic": args.topic, "records": n})
    return 0


# ------------------------------------------------------------------ consume

def _consumer(bootstrap: str, group: str | None, config: dict[str, Any]) -> Any:
    from kafka_client.consumer import Consumer

    _check_reachable(bootstrap)
    kw: dict[str, Any] = dict(_CLIENT_TIMEOUTS, group_id=group, enable_auto_commit=group is not None,
                              allow_auto_create_topics=False)
    kw.update(config)
    return Consumer(bootstrap_servers=bootstrap, **kw)


def _partitions(c: Any, topic: str) -> list[int]:
    meta = c._c.cluster  # the sync consumer's AIOConsumer: ask once, without waiting for creation
    names = c._thread.run(_exists(meta, topic))
    if not names:
        raise CliError(f"unknown topic {topic!r}")
    try:
        parts = sorted(c.partitions_for_topic(topic))
    except KafkaError as exc:
        raise CliError(f"unknown topic {topic!r}: {exc}") from exc
    if not parts:
        raise CliError(f"unknown topic {topic!r}")
    return parts


async def _exists(cluster: Any, topic: str) -> bool:
    import kafka_protocol as kp

    conn = await cluster.any_connection()
    resp = await conn.send(kp.MetadataRequest(topics=[kp.MetadataRequest.MetadataRequestTopic(name=topic)],
                                              allow_auto_topic_creation=False))
    return any(t.name == topic and not t.error_code for t in resp.topics)


def _text(b: bytes | None, null: str) -> str:
    return null if b is None else b.decode("utf-8", BYTES_SAFE)


def _json_bytes(out: dict[str, Any], name: str, b: bytes | None) -> None:
    if b is None:
        out[name] = None
        return
    try:
        out[name] = b.decode("utf-8")
    except UnicodeDecodeError:
        out[name] = base64.b64encode(b).decode()
        out[name + "_encoding"] = "base64"


def _format_json(topic: str, partition: int, r: Any) -> str:
    out: dict[str, Any] = {"topic": topic, "partition": partition, "offset": r.offset, "timestamp": r.timestamp}
    _json_bytes(out, "key", r.key)
    _json_bytes(out, "value", r.value)
    hs = []
    for hk, hv in r.headers:
        h: dict[str, Any] = {"key": hk}
        _json_bytes(h, "value", hv)
        hs.append(h)
    out["headers"] = hs
    return json.dumps(out, ensure_ascii=False)


class TextFormatter:
    """kafka-console-consumer's DefaultMessageFormatter properties."""

    def __init__(self, props: dict[str, str]) -> None:
        self.key = _truthy(props.get("print.key"))
        self.ts = _truthy(props.get("print.timestamp"))
        self.part = _truthy(props.get("print.partition"))
        self.off = _truthy(props.get("print.offset"))
        self.hdr = _truthy(props.get("print.headers"))
        self.value = props.get("print.value", "true").lower() != "false"
        self.sep = props.get("key.separator", "\t")
        self.hsep = props.get("headers.separator", ",")
        self.hksep = props.get("headers.key.separator", ":")
        self.null = props.get("null.literal", "null")

    def __call__(self, topic: str, partition: int, r: Any) -> str:
        fields = []
        if self.ts:
            fields.append(f"CreateTime:{r.timestamp}")
        if self.part:
            fields.append(f"Partition:{partition}")
        if self.off:
            fields.append(f"Offset:{r.offset}")
        if self.hdr:
            fields.append(self.hsep.join(f"{k}{self.hksep}{_text(v, self.null)}" for k, v in r.headers)
                          if r.headers else "NO_HEADERS")
        if self.key:
            fields.append(_text(r.key, self.null))
        if self.value:
            fields.append(_text(r.value, self.null))
        return self.sep.join(fields)


def cmd_consume(args: argparse.Namespace) -> int:
    from kafka_client.group import TopicPartition

    props = _props(args.property, "--property")
    fmt: Callable[[str, int, Any], str] = _format_json if args.format == "json" else TextFormatter(props)
    line_sep = props.get("line.separator", "\n")
    if args.offset is not None and args.partition is None:
        raise CliError("--offset needs --partition", 2)
    if args.max_messages is not None and args.max_messages <= 0:
        return 0
    config = _java_config(_props(args.consumer_property, "--consumer-property"))
    config.setdefault("auto_offset_reset", "earliest" if args.from_beginning else "latest")
    config["isolation_level"] = args.isolation_level
    c = _consumer(args.bootstrap_server, args.group, config)
    n = 0
    out = sys.stdout
    _bytes_safe(out)
    # A bar only when stderr is a terminal and the records go elsewhere (a file or a pipe).
    progress = Progress(args.max_messages, "records", force=False if out.isatty() else None)
    try:
        parts = _partitions(c, args.topic)
        if args.partition is not None and args.partition not in parts:
            raise CliError(f"topic {args.topic!r} has no partition {args.partition} (partitions: {len(parts)})")
        if args.group and args.partition is None and args.offset is None and args.timestamp is None:
            c.subscribe([args.topic])
        else:
            tps = [TopicPartition(args.topic, p) for p in ([args.partition] if args.partition is not None else parts)]
            c.assign(tps)
            if args.from_beginning:
                c.seek_to_beginning(*tps)
            elif args.offset is not None:
                off = args.offset.lower()
                if off == "earliest":
                    c.seek_to_beginning(*tps)
                elif off == "latest":
                    c.seek_to_end(*tps)
                else:
                    try:
                        c.seek(tps[0], int(off))
                    except ValueError as exc:
                        raise CliError(f"bad --offset {args.offset!r}", 2) from exc
            elif args.timestamp is not None:
                found = c.offsets_for_times({tp: args.timestamp for tp in tps})
                for tp in tps:
                    ot = found.get(tp)
                    if ot is None:
                        c.seek_to_end(tp)
                    else:
                        c.seek(tp, ot.offset)
            elif args.group is None:
                c.seek_to_end(*tps)
        idle_since = time.monotonic()
        while args.max_messages is None or n < args.max_messages:
            wait = 1.0
            if args.timeout_ms is not None:
                left = args.timeout_ms / 1000 - (time.monotonic() - idle_since)
                if left <= 0:
                    break
                wait = min(wait, left)
            got = c.poll(wait, max_records=None if args.max_messages is None else args.max_messages - n)
            if not got:
                continue
            idle_since = time.monotonic()
            chunks = []
            for tp, recs in got.items():
                for r in recs:
                    chunks.append(fmt(tp.topic, tp.partition, r))
                    n += 1
                    if args.max_messages is not None and n >= args.max_messages:
                        break
                if args.max_messages is not None and n >= args.max_messages:
                    break
            out.write(line_sep.join(chunks) + line_sep)
            out.flush()
            progress.update(n)
        if args.group:
            c.commit()
    except BrokenPipeError:
        pass
    except KeyboardInterrupt:
        rc = 130    # Ctrl-C: still say how many were processed, as kafka-console-consumer does
    else:
        rc = 0
    finally:
        progress.close()
        c.close()
    print(f"Processed a total of {n} messages", file=sys.stderr)
    return rc


# ------------------------------------------------------------------ perf

def _percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return 0.0
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * q))]


# At most this many records get a delivery callback to time (Kafka's ProducerPerformance keeps at
# most 500,000 samples; a Python callback per record would cost as much as the append itself).
LATENCY_SAMPLES = 10_000


def cmd_perf_produce(args: argparse.Namespace) -> int:
    """As kafka-producer-perf-test: the loop between appends does nothing per record but append
    (a tight inner loop of ``every`` records); one record in ``every`` is timed by its delivery
    callback, and progress, the throttle and failures are looked at once per ``every`` records
    (failures from the producer's ``record-error-total``)."""
    if args.num_records <= 0 or args.record_size < 0:
        raise CliError("--num-records must be positive and --record-size at least 0", 2)
    config = _java_config(_props(args.producer_props, "--producer-props"))
    p = _producer(args.bootstrap_server, args.topic, config)
    payload = bytes((i % 26) + 65 for i in range(args.record_size))
    n = args.num_records
    every = max(1, n // LATENCY_SAMPLES)
    latencies: list[float] = []
    failures: list[BaseException] = []
    clock = time.perf_counter

    def report(t0: float, err: BaseException | None, _md: Any) -> None:
        latencies.append((clock() - t0) * 1000)
        if err is not None:
            failures.append(err)

    progress = Progress(n, "records")
    rate = args.throughput
    produce = p.produce
    topic = args.topic
    start = clock()
    window_start, window_n, next_report = start, 0, 0
    sent = 0
    interrupted = False
    try:
        try:
            for i in range(0, n, every):
                t0 = clock()
                produce(topic, payload, on_delivery=functools.partial(report, t0))
                for _ in range(min(every, n - i) - 1):
                    produce(topic, payload)
                sent = i + min(every, n - i)
                if rate > 0:
                    # As Kafka's ThroughputThrottler: sleep when ahead of the target rate.
                    ahead = (i + every) / rate - (clock() - start)
                    if ahead > 0.002:
                        time.sleep(ahead)
                if i >= next_report:
                    next_report = i + 5000
                    progress.update(i)
                    now = clock()
                    if not progress.enabled and not args.json and now - window_start >= 5:
                        w = i - window_n
                        print(f"{w} records sent, {w / (now - window_start):.1f} records/sec "
                              f"({w * args.record_size / (now - window_start) / 1048576:.2f} MB/sec).", flush=True)
                        window_start, window_n = now, i
        except KeyboardInterrupt:
            # As ProducerPerformance's shutdown hook: what was sent so far is still reported.
            interrupted = True
        p.flush(120 if not interrupted else 10)
        failed = p.metrics()["record-error-total"]
    finally:
        progress.close()
        p.close(5)
    elapsed = clock() - start
    n = sent
    if failed or failures:
        why = f": {failures[0]}" if failures else ""
        raise CliError(f"{max(failed, len(failures))} of {n} records failed{why}")
    lat = sorted(latencies) or [0.0]
    result = {
        "records": n, "record_size": args.record_size,
        "records_per_sec": n / elapsed, "mb_per_sec": n * args.record_size / elapsed / 1048576,
        "avg_latency_ms": sum(lat) / len(lat), "max_latency_ms": lat[-1], "latency_samples": len(latencies),
        "p50_ms": _percentile(lat, 0.5), "p95_ms": _percentile(lat, 0.95), "p99_ms": _percentile(lat, 0.99),
        "p999_ms": _percentile(lat, 0.999), "elapsed_s": elapsed,
    }
    print(f"{n} records sent, {result['records_per_sec']:.1f} records/sec ({result['mb_per_sec']:.2f} MB/sec), "
          f"{result['avg_latency_ms']:.2f} ms avg latency, {result['max_latency_ms']:.2f} ms max latency, "
          f"{result['p50_ms']:.0f} ms 50th, {result['p95_ms']:.0f} ms 95th, {result['p99_ms']:.0f} ms 99th, "
          f"{result['p999_ms']:.0f} ms 99.9th.", flush=True, file=_human_out(args))
    _json_out(args, result)
    return 130 if interrupted else 0


def cmd_perf_consume(args: argparse.Namespace) -> int:
    import uuid

    from kafka_client.group import TopicPartition

    config = _java_config(_props(args.consumer_props, "--consumer-props"))
    config.setdefault("auto_offset_reset", "earliest")
    config.setdefault("max_poll_records", 10000)
    group = args.group
    c = _consumer(args.bootstrap_server, group, config)
    n = 0
    nbytes = 0
    progress = Progress(args.messages, "records")
    start = time.perf_counter()
    first_at: float | None = None
    interrupted = False
    try:
        parts = _partitions(c, args.topic)
        if group:
            c.subscribe([args.topic])
        else:
            tps = [TopicPartition(args.topic, p) for p in parts]
            c.assign(tps)
            c.seek_to_beginning(*tps)
        idle_since = time.monotonic()
        try:
            while n < args.messages:
                got = c.poll(0.5, max_records=args.messages - n)
                if not got:
                    if time.monotonic() - idle_since > args.timeout_ms / 1000:
                        break
                    continue
                idle_since = time.monotonic()
                if first_at is None:
                    first_at = time.perf_counter()
                for recs in got.values():
                    n += len(recs)
                    for r in recs:
                        if r.value is not None:
                            nbytes += len(r.value)
                progress.update(n)
        except KeyboardInterrupt:
            interrupted = True      # the summary of what arrived so far still prints
    finally:
        progress.close()
        c.close()
    end = time.perf_counter()
    elapsed = max(end - start, 1e-9)
    fetch_elapsed = max(end - (first_at or start), 1e-9)
    mb = nbytes / 1048576
    result = {"records": n, "bytes": nbytes, "records_per_sec": n / elapsed, "mb_per_sec": mb / elapsed,
              "fetch_records_per_sec": n / fetch_elapsed, "fetch_mb_per_sec": mb / fetch_elapsed,
              "elapsed_s": elapsed, "group": group or f"none-{uuid.uuid4().hex[:6]}"}
    print("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
          "fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec", file=_human_out(args))
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(time.time() - elapsed))}, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}, {mb:.4f}, {result['mb_per_sec']:.4f}, {n}, "
          f"{result['records_per_sec']:.4f}, {fetch_elapsed * 1000:.0f}, {result['fetch_mb_per_sec']:.4f}, "
          f"{result['fetch_records_per_sec']:.4f}", flush=True, file=_human_out(args))
    _json_out(args, result)
    if interrupted:
        return 130
    if n < args.messages:
        raise CliError(f"only {n} of {args.messages} records arrived within --timeout-ms {args.timeout_ms}")
    return 0
