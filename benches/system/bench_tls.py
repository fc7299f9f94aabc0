"""TLS and SASL_SSL against plaintext, kafka-core against Apache Kafka (issue 14), in one run on this machine.

    python benches/system/bench_tls.py [--records 300000] [--size 200] [--rounds 2]

Each broker gets a PLAINTEXT, an SSL and a SASL_SSL listener (SCRAM-SHA-512; the same PKCS12
keystore: a test CA's certificate for 127.0.0.1, from kafka_bench.tlskit).  For each broker and each listener one
confluent-kafka producer sends --records records of --size bytes (linger.ms=5, acks=1) and one
consumer drains them (assign from offset 0).  Prints records/s per round, the medians, and the
ratios kafka-core / Apache Kafka for each listener and TLS / plaintext for each broker.

kafka-core's TLS path encrypts in user space (OpenSSL via Python's ssl on memory BIOs) and reads
file slices with pread: no sendfile.  Apache Kafka's SSL path (JSSE SSLEngine) copies too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
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
        out[listener] = {"produce": prod, "consume": cons}
        print(f"{name:12s} {listener:9s} produce {[round(x) for x in prod]} rec/s, "
              f"consume {[round(x) for x in cons]} rec/s", flush=True)
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
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
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
    for k, v in ratios.items():
        print(f"{k:40s} {v:5.2f}x")
    if args.json:
        print(json.dumps({"results": results, "ratios": ratios, "records": args.records, "size": args.size}))


if __name__ == "__main__":
    main()
