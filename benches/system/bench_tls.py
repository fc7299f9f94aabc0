"""TLS and SASL_SSL against plaintext, kafka-core against Apache Kafka (issue 14), in one run on this machine.

    python benches/system/bench_tls.py [--records 300000] [--size 200] [--rounds 2] [--rate 1000] [--seconds 10]
                                       [--warmup 3]

Each broker gets a PLAINTEXT, an SSL and a SASL_SSL listener (SCRAM-SHA-512; the same PKCS12
keystore: a test CA's certificate for 127.0.0.1, from kafka_bench.tlskit).  For each broker and each listener one
confluent-kafka producer sends --records records of --size bytes (linger.ms=5, acks=1) and one
consumer drains them (assign from offset 0).  Prints records/s per round, the medians, and the
ratios kafka-core / Apache Kafka for each listener and TLS / plaintext for each broker.

Latency, per broker and listener: one producer (acks=all, linger.ms=0) sends --rate records/s of
--size bytes for --seconds, each carrying its send time, while a consumer in the same process
reads them; the produce latency is send to delivery report, end-to-end is send to the
consumer's poll returning it, after a discarded --warmup run of the same kind (a JVM's first
seconds of a new pattern are slow).  Prints p50 / p99 / max of both, and the p99 ratios.

kTLS (kernel TLS, which would let the TLS fetch path use sendfile again): the run first probes
whether this kernel and Python's OpenSSL can do it and prints the evidence (``ktls_probe``).  On
the 2026-12-07 machine it cannot: the kernel is built without ``CONFIG_TLS`` (and without module
support, so ``modprobe tls`` has nothing to load), ``/proc/sys/net/ipv4/tcp_available_ulp`` lists
only ``mptcp``, ``setsockopt(TCP_ULP, "tls")`` fails with ENOENT, there is no ``/proc/net/tls_stat``,
and Python 3.11's ssl module has no ``OP_ENABLE_KTLS`` (added in 3.12); so there is no kTLS
measurement, and the TLS path stays user-space encryption with pread.

kafka-core's TLS path encrypts in user space (OpenSSL via Python's ssl on memory BIOs) and reads
file slices with pread: no sendfile.  Apache Kafka's SSL path (JSSE SSLEngine) copies too.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka_bench.apache_kafka import ApacheKafka, free_port
from kafka_bench.tlskit import PASSWORD, make_pki
from kafka_broker.testing import EmbeddedBroker


def produce(conf: dict[str, Any], topic: str, n: int, size: int) -> float:
    p = Producer({**conf, "linger.ms": 5, "acks": 1, "queue.buffering.max.messages": 1_000_000})
    value = b"x" * size
    t0 = time.perf_counter()
    for _ in range(n):
        while True:
            try:
                p.produce(topic, value)
                break
            except BufferError:
                p.poll(0.01)
    left = p.flush(120)
    took = time.perf_counter() - t0
    assert left == 0, f"{left} records not delivered"
    return n / took


def drain(conf: dict[str, Any], topic: str, n: int) -> float:
    c = Consumer({**conf, "group.id": f"bench-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
                  "fetch.max.bytes": 52428800, "fetch.queue.backoff.ms": 10})
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    t0 = time.perf_counter()
    while got < n:
        msgs = c.consume(10000, 5.0)
        got += sum(1 for m in msgs if m.error() is None)
        if not msgs and time.perf_counter() - t0 > 120:
            raise TimeoutError(f"drained {got} of {n}")
    took = time.perf_counter() - t0
    c.close()
    return n / took


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def _acked(acks: list[float], sent: float) -> Callable[[Any, Any], None]:
    def cb(err: Any, _msg: Any) -> None:
        if err is None:
            acks.append((time.perf_counter() - sent) * 1000)
    return cb


def latency(conf: dict[str, Any], topic: str, rate: int, seconds: float, size: int) -> dict[str, float]:
    """acks=all produce latency and end-to-end latency (ms) at a steady ``rate``."""
    c = Consumer({**conf, "group.id": f"lat-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False})
    p = Producer({**conf, "linger.ms": 0, "acks": "all"})
    p.produce(topic, b"warm")            # the topic exists (auto-created) before the consumer starts
    assert p.flush(30) == 0
    c.assign([TopicPartition(topic, 0, 1)])
    n = int(rate * seconds)
    e2e: list[float] = []
    done = threading.Event()

    def consume() -> None:
        while len(e2e) < n and not done.is_set():
            m = c.poll(0.1)        # one record as soon as it is there (consume(n, t) waits to fill n)
            if m is not None and m.error() is None and (v := m.value()) is not None:
                e2e.append((time.perf_counter() - struct.unpack_from(">d", v)[0]) * 1000)
    t = threading.Thread(target=consume)
    t.start()
    time.sleep(1)                      # the consumer has its first fetch outstanding
    acks: list[float] = []
    pad = b"x" * max(size - 8, 0)
    start = time.perf_counter()
    for i in range(n):
        due = start + i / rate
        while (now := time.perf_counter()) < due:
            p.poll(min(due - now, 0.001))
        sent = time.perf_counter()
        p.produce(topic, struct.pack(">d", sent) + pad, on_delivery=_acked(acks, sent))
        p.poll(0)
    assert p.flush(60) == 0
    t.join(30)
    done.set()
    c.close()
    assert len(acks) == n and len(e2e) == n, f"{len(acks)} acks, {len(e2e)} consumed of {n}"
    return {"produce_p50": pct(acks, 0.5), "produce_p99": pct(acks, 0.99), "produce_max": max(acks),
            "e2e_p50": pct(e2e, 0.5), "e2e_p99": pct(e2e, 0.99), "e2e_max": max(e2e)}


def ktls_probe() -> dict[str, str]:
    """The evidence for whether kernel TLS is available here: kernel, ULPs, OpenSSL, Python."""
    out: dict[str, str] = {"kernel": os.uname().release, "openssl": ssl.OPENSSL_VERSION,
                           "ssl.OP_ENABLE_KTLS": str(getattr(ssl, "OP_ENABLE_KTLS", "absent (Python < 3.12)"))}
    try:
        with open("/proc/sys/net/ipv4/tcp_available_ulp") as f:
            out["tcp_available_ulp"] = f.read().strip() or "(empty)"
    except OSError as e:
        out["tcp_available_ulp"] = repr(e)
    out["/proc/net/tls_stat"] = "present" if os.path.exists("/proc/net/tls_stat") else "absent"
    try:
        import gzip
        with gzip.open("/proc/config.gz", "rt") as f:
            conf = [ln.strip() for ln in f if ln.startswith(("CONFIG_TLS=", "# CONFIG_TLS ", "CONFIG_MODULES=",
                                                            "# CONFIG_MODULES "))]
        out["kernel config"] = "; ".join(conf)
    except OSError as e:
        out["kernel config"] = repr(e)
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    cli = socket.create_connection(srv.getsockname())
    acc, _ = srv.accept()
    try:
        cli.setsockopt(socket.IPPROTO_TCP, 31, b"tls")        # TCP_ULP: what OpenSSL's kTLS does first
        out["setsockopt(TCP_ULP, tls)"] = "ok"
    except OSError as e:
        out["setsockopt(TCP_ULP, tls)"] = f"{e.strerror} (errno {e.errno})"
    finally:
        for s_ in (cli, acc, srv):
            s_.close()
    out["usable"] = str(out["setsockopt(TCP_ULP, tls)"] == "ok" and "absent" not in out["ssl.OP_ENABLE_KTLS"])
    return out


SCRAM = {"sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "bench", "sasl.password": "bench-pw"}
LISTENERS = ("plaintext", "tls", "sasl_ssl")


def run_one(name: str, plain: str, tls: str, sasl: str, ca: Path, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ssl_conf = {"ssl.ca.location": str(ca)}
    for listener, bootstrap, extra in (("plaintext", plain, {}),
                                       ("tls", tls, {"security.protocol": "SSL", **ssl_conf}),
                                       ("sasl_ssl", sasl, {"security.protocol": "SASL_SSL", **ssl_conf, **SCRAM})):
        conf = {"bootstrap.servers": bootstrap, **extra}
        prod, cons = [], []
        for _ in range(args.rounds):
            topic = f"tls-bench-{uuid.uuid4().hex[:8]}"
            prod.append(produce(conf, topic, args.records, args.size))
            cons.append(drain(conf, topic, args.records))
        # a discarded run first: a JVM just started answers its first seconds of a new pattern
        # (acks=all, one record per request) slowly, before the JIT has compiled that path
        latency(conf, f"tls-warm-{uuid.uuid4().hex[:8]}", args.rate, args.warmup, args.size)
        lat = latency(conf, f"tls-lat-{uuid.uuid4().hex[:8]}", args.rate, args.seconds, args.size)
        out[listener] = {"produce": prod, "consume": cons, "latency": lat}
        print(f"{name:12s} {listener:9s} produce {[round(x) for x in prod]} rec/s, "
              f"consume {[round(x) for x in cons]} rec/s", flush=True)
        print(f"{name:12s} {listener:9s} latency at {args.rate}/s acks=all: produce p50/p99/max "
              f"{lat['produce_p50']:.2f}/{lat['produce_p99']:.2f}/{lat['produce_max']:.1f} ms, end-to-end "
              f"{lat['e2e_p50']:.2f}/{lat['e2e_p99']:.2f}/{lat['e2e_max']:.1f} ms", flush=True)
    return out


def scram_user(bootstrap: str) -> None:
    """The benchmark's SCRAM user, as an operator creates one (AlterUserScramCredentials)."""
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "bench", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"bench-pw")]).values():
        f.result(30)
    time.sleep(1)     # KRaft: the credential reaches the broker's metadata image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rate", type=int, default=1000, help="records/s of the latency runs")
    ap.add_argument("--seconds", type=float, default=10, help="length of each latency run")
    ap.add_argument("--warmup", type=float, default=3, help="length of the discarded latency run before each")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    probe = ktls_probe()
    for k, v in probe.items():
        print(f"ktls probe: {k}: {v}", flush=True)
    pki = make_pki(Path(tempfile.mkdtemp(prefix="kc-tls-bench-")))
    results: dict[str, Any] = {}

    common = {"ssl.keystore.type": "PKCS12", "ssl.keystore.location": str(pki.server_p12),
              "ssl.keystore.password": PASSWORD, "ssl.key.password": PASSWORD,
              "sasl.enabled.mechanisms": "SCRAM-SHA-512",
              "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                  "org.apache.kafka.common.security.scram.ScramLoginModule required;"}
    core = EmbeddedBroker()
    core_ssl, core_sasl = free_port(), free_port()
    core.settings = {"listeners": f"PLAINTEXT://127.0.0.1:{core.port},SSL://127.0.0.1:{core_ssl},"
                                  f"SASL_SSL://127.0.0.1:{core_sasl}", **common}
    core.start()
    try:
        scram_user(core.bootstrap)
        results["kafka-core"] = run_one("kafka-core", core.bootstrap, f"127.0.0.1:{core_ssl}",
                                        f"127.0.0.1:{core_sasl}", pki.ca, args)
    finally:
        core.cleanup()

    ak_ssl, ak_sasl = free_port(), free_port()
    ak = ApacheKafka()
    eps = f"PLAINTEXT://127.0.0.1:{ak.port},SSL://127.0.0.1:{ak_ssl},SASL_SSL://127.0.0.1:{ak_sasl}"
    ak.extra = {"listeners": f"{eps},CONTROLLER://127.0.0.1:{ak.controller_port}", "advertised.listeners": eps,
                "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL",
                **common}
    ak.start()
    try:
        scram_user(ak.bootstrap)
        results["apache-kafka"] = run_one("apache-kafka", ak.bootstrap, f"127.0.0.1:{ak_ssl}",
                                          f"127.0.0.1:{ak_sasl}", pki.ca, args)
    finally:
        ak.stop()

    med = {(s, lst, op): statistics.median(results[s][lst][op]) for s in results for lst in LISTENERS
           for op in ("produce", "consume")}
    ratios = {f"{lst} {op} kafka-core/apache": med[("kafka-core", lst, op)] / med[("apache-kafka", lst, op)]
              for lst in LISTENERS for op in ("produce", "consume")}
    ratios.update({f"{s} {op} {lst}/plaintext": med[(s, lst, op)] / med[(s, "plaintext", op)]
                   for s in results for op in ("produce", "consume") for lst in LISTENERS[1:]})
    for lst in LISTENERS:
        for m in ("produce_p99", "e2e_p99"):
            ratios[f"{lst} {m} kafka-core/apache"] = \
                results["kafka-core"][lst]["latency"][m] / results["apache-kafka"][lst]["latency"][m]
    for s in results:
        for m in ("produce_p99", "e2e_p99"):
            for lst in LISTENERS[1:]:
                ratios[f"{s} {m} {lst}/plaintext"] = \
                    results[s][lst]["latency"][m] / results[s]["plaintext"]["latency"][m]
    print("(throughput ratios: higher is better; latency ratios: lower is better)")
    for k, v in ratios.items():
        print(f"{k:45s} {v:5.2f}x")
    if args.json:
        print(json.dumps({"results": results, "ratios": ratios, "records": args.records, "size": args.size,
                          "ktls": probe}))


if __name__ == "__main__":
    main()
