"""``kafka-core cluster up|status``: a local cluster on ZooKeeper, and its health.

``cluster up --brokers N`` starts a ZooKeeper (unless ``--zookeeper`` names one) and N
kafka-core brokers on 127.0.0.1 (ports 9092, 9093, ... where free, else any free port), prints
the bootstrap string and where each log is, and stays in the foreground; Ctrl-C or SIGTERM
stops the brokers (SIGTERM to all at once: each does a controlled shutdown) and then ZooKeeper,
and the exit status is 0.  The data stays in ``--dir`` (default: a temporary folder, removed at
exit); started again on the same folder, the cluster comes back with its topics, since the
embedded ZooKeeper keeps its data there too.  With ``--json`` those lines go to stderr and stdout
has one JSON object once the cluster is up (``{"event": "started", "bootstrap": ..., "brokers":
[...], "zookeeper_connect": ..., "data": ...}``) and one when it has stopped.

``cluster status`` asks one broker for the metadata and lists the brokers (id, host:port, rack),
the controller, and the partitions that are under-replicated (ISR smaller than the replica
list) or offline (no leader).  Exit status: 0 when healthy, 1 when any partition is offline or
under-replicated (or the cluster cannot be reached), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from .errors import CliError
from .options import add_bootstrap

CHROOT = "/kafka-core"     # of the embedded ZooKeeper: leaves the root free for other users


def register(sub: Any) -> None:
    g = sub.add_parser("cluster", help="run a local cluster on ZooKeeper (up), or check a cluster's health (status)")
    gsub = g.add_subparsers(dest="cluster_command", required=True)

    p = gsub.add_parser("up", help="ZooKeeper and N kafka-core brokers on loopback, in the foreground (Ctrl-C stops)")
    p.add_argument("--brokers", "-n", type=int, default=3, help="number of brokers (default 3)")
    p.add_argument("--dir", "-d", metavar="DIR",
                   help="data and logs (default: a temporary folder, removed at exit)")
    p.add_argument("--zookeeper", "-z", metavar="HOST:PORT[/CHROOT]",
                   help="use this ZooKeeper instead of starting one (its chroot must exist)")
    p.add_argument("--port", type=int, default=9092,
                   help="first broker port (default 9092; a port in use is replaced by a free one)")
    p.add_argument("--set", "-s", metavar="KEY=VALUE", action="append", default=[],
                   help="broker configuration for every broker (repeatable)")
    p.add_argument("--json", action="store_true",
                   help="one JSON line on stdout once the cluster is up, one when it stops (the rest to stderr)")
    p.set_defaults(func=cmd_up)

    p = gsub.add_parser("status", help="brokers, controller, under-replicated and offline partitions")
    add_bootstrap(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("broker-health", help="exit 0 when the broker answers and every partition has its "
                                             "leader and full ISR, else 1 (for health checks)")
    add_bootstrap(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_broker_health)


# -- up ----------------------------------------------------------------------------

def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _settings(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not eq or not k:
            raise CliError(f"--set wants KEY=VALUE, got {item!r}", 2)
        out[k.strip()] = v.strip()
    return out


def cmd_up(args: argparse.Namespace) -> int:
    if args.brokers < 1:
        raise CliError("--brokers must be at least 1", 2)
    settings = _settings(args.set)
    for key in ("broker.id", "listeners", "log.dirs", "zookeeper.connect"):
        if key in settings:
            raise CliError(f"--set {key} is chosen per broker by `cluster up`", 2)
    from kafka_bench.apache_kafka import free_port
    from kafka_bench.kafka_core_cluster import KafkaCoreCluster
    from kafka_bench.zookeeper import ZooKeeper, ensure_path

    out = sys.stderr if args.json else sys.stdout   # the human lines
    own_dir = args.dir is None
    data = Path(args.dir or tempfile.mkdtemp(prefix="kafka-core-cluster-")).resolve()
    data.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    old = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    zk: ZooKeeper | None = None
    cluster: KafkaCoreCluster | None = None
    try:
        if args.zookeeper:
            zk_connect = args.zookeeper
            print(f"ZooKeeper: {zk_connect} (not started here)", file=out, flush=True)
        else:
            zk_port = 2181 if _port_free(2181) else free_port()
            zk = ZooKeeper(port=zk_port, data_dir=data / "zookeeper")
            zk.start()
            ensure_path(zk.connect, CHROOT)
            zk_connect = zk.connect + CHROOT
            print(f"ZooKeeper: {zk.connect} (log {zk.log_path})", file=out, flush=True)
        cluster = KafkaCoreCluster(args.brokers, zk_connect, data_dir=data, settings=settings)
        port, taken = args.port, set()
        for b in cluster.brokers.values():   # 9092, 9093, ... where free
            while port in taken:
                port += 1
            b.port = port if _port_free(port) else free_port()
            taken.add(b.port)
            port += 1
        for i, b in cluster.brokers.items():
            if stop.is_set():
                break
            b.start(60)
            print(f"broker {i}: {b.bootstrap} (log {b.log_path})", file=out, flush=True)
        if not stop.is_set():
            cluster.wait_registered(60)
            print(f"zookeeper.connect: {zk_connect}", file=out, flush=True)
            print(f"data: {data}{' (removed at exit)' if own_dir else ''}", file=out, flush=True)
            print(f"bootstrap: {cluster.bootstrap}", file=out, flush=True)
            print("Ctrl-C stops the cluster.", file=out, flush=True)
            if args.json:
                print(json.dumps({"event": "started", "bootstrap": cluster.bootstrap, "zookeeper_connect": zk_connect,
                                  "data": str(data), "data_removed_at_exit": own_dir,
                                  "brokers": [{"id": i, "bootstrap": b.bootstrap, "log": str(b.log_path),
                                               "pid": b.proc.pid if b.proc else None}
                                              for i, b in cluster.brokers.items()]}), flush=True)
        reported: set[int] = set()
        while not stop.wait(1.0):
            for i, b in cluster.brokers.items():
                code = b.proc.poll() if b.proc is not None else None
                if code is not None and i not in reported:
                    reported.add(i)
                    print(f"broker {i} exited with status {code} (log {b.log_path})", file=sys.stderr, flush=True)
    except (OSError, RuntimeError, TimeoutError) as e:
        raise CliError(f"cannot start the cluster: {e}") from e
    finally:
        # brokers first (SIGTERM to all at once: a controlled shutdown each), then ZooKeeper
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # a second Ctrl-C must not cut the shutdown short
        if cluster is not None:
            print("stopping the brokers", file=out, flush=True)
            cluster.cleanup()
        if zk is not None:
            print("stopping ZooKeeper", file=out, flush=True)
            zk.stop()
        for s, h in old.items():
            signal.signal(s, h)
        if own_dir:
            shutil.rmtree(data, ignore_errors=True)
    print("stopped", file=out, flush=True)
    if args.json:
        print(json.dumps({"event": "stopped", "status": 0}), flush=True)
    return 0


# -- status ------------------------------------------------------------------------

def cluster_status(bootstrap: str) -> dict:
    """Brokers, controller and unhealthy partitions, from one broker's metadata."""
    from kafka_client.errors import KafkaError

    from .client import _admin

    try:
        with _admin(bootstrap) as admin:
            desc = admin.describe_cluster()
            names = sorted(admin.list_topics(include_internal=True))
            metas = admin.describe_topics(names) if names else {}
    except KafkaError as e:
        raise CliError(f"cannot read the cluster's metadata from {bootstrap}: {e}") from e
    under, offline, total = [], [], 0
    for name in names:
        for pm in (metas[name].partitions[p] for p in sorted(metas[name].partitions)):
            total += 1
            row = {"topic": name, "partition": pm.partition, "leader": pm.leader, "replicas": list(pm.replicas),
                   "isr": list(pm.isr)}
            if pm.leader < 0:
                offline.append(row)
            if len(pm.isr) < len(pm.replicas):
                under.append(row)
    return {"cluster_id": desc.cluster_id, "controller": desc.controller_id,
            "brokers": [{"id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack}
                        for b in sorted(desc.brokers, key=lambda b: b.node_id)],
            "topics": len(names), "partitions": total, "under_replicated": under, "offline": offline,
            "healthy": not under and not offline}


def cmd_broker_health(args: argparse.Namespace) -> int:
    """One line (or JSON) for a health check: the broker answers, knows the cluster, and no
    partition is offline or under-replicated; exit status 0 or 1."""
    try:
        st = cluster_status(args.bootstrap_server)
    except CliError as e:
        if args.json:
            print(json.dumps({"healthy": False, "error": str(e)}))
            return 1
        raise
    reasons = [f"{len(st[k])} {what} partition(s)" for k, what in (("offline", "offline"),
                                                                     ("under_replicated", "under-replicated"))
               if st[k]]
    if not st["brokers"]:
        reasons.append("no broker in its metadata")
    st["healthy"] = not reasons
    if args.json:
        print(json.dumps({k: st[k] for k in ("healthy", "cluster_id", "controller", "brokers", "partitions")}
                         | {"offline": len(st["offline"]), "under_replicated": len(st["under_replicated"])}))
    elif reasons:
        print(f"NOT healthy: {', '.join(reasons)} (kafka-core cluster status -b {args.bootstrap_server} lists them)")
    else:
        print(f"healthy: {len(st['brokers'])} broker(s), {st['partitions']} partition(s), none offline or "
              "under-replicated")
    return 0 if st["healthy"] else 1


def cmd_status(args: argparse.Namespace) -> int:
    st = cluster_status(args.bootstrap_server)
    if args.json:
        print(json.dumps(st))
        return 0 if st["healthy"] else 1
    print(f"Cluster id: {st['cluster_id']}")
    print(f"Controller: {st['controller'] if st['controller'] >= 0 else 'none'}")
    print(f"Brokers ({len(st['brokers'])}):")
    print(f"  {'ID':>4}  {'HOST:PORT':<24} RACK")
    for b in st["brokers"]:
        print(f"  {b['id']:>4}  {b['host'] + ':' + str(b['port']):<24} {b['rack'] or '-'}")
    print(f"Topics: {st['topics']}, partitions: {st['partitions']}")
    for key, title in (("under_replicated", "Under-replicated partitions"), ("offline", "Offline partitions")):
        rows = st[key]
        print(f"{title}: {len(rows)}")
        for r in rows:
            print(f"  {r['topic']}-{r['partition']}\tleader: {r['leader'] if r['leader'] >= 0 else 'none'}\t"
                  f"replicas: {','.join(map(str, r['replicas']))}\tisr: {','.join(map(str, r['isr']))}")
    print("Healthy." if st["healthy"] else "NOT healthy.")
    return 0 if st["healthy"] else 1
