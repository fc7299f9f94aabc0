/* WordCount - a Kafka Streams exactly-once word count, the stream processor of
 * tests/interop/test_streams.py and benches/system/bench_txn.py (kafka_bench/streams.py builds
 * and runs it):
 *
 *   java WordCount BOOTSTRAP APPLICATION_ID INPUT OUTPUT STATE_DIR [streams.key=value ...]
 *
 * Reads lines (any key, String value) from INPUT, splits them into lower-case words, re-keys by
 * word (a repartition topic), counts in a persistent store (RocksDB with a changelog topic) and
 * writes word -> count (String key, Long value) to OUTPUT.  processing.guarantee=exactly_once_v2
 * unless a key=value argument says otherwise, so one transaction per commit interval covers the
 * repartition records, the changelog, the output and the consumed offsets: exactly what a
 * broker's transaction coordinator, markers, LSO and read_committed fetches must get right.
 *
 * It runs until SIGTERM (a shutdown hook closes Streams cleanly) or SIGKILL (the kill -9 test),
 * and prints "STATE <new>" on stdout at each state change, so the caller sees RUNNING and ERROR
 * without parsing logs; an uncaught exception shuts the client down and exits 1.  Logs (slf4j
 * simple) go to stderr.
 */

import java.time.Duration;
import java.util.Arrays;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

public final class WordCount {
    public static void main(String[] args) throws Exception {
        if (args.length < 5) {
            System.err.println("usage: WordCount BOOTSTRAP APPLICATION_ID INPUT OUTPUT STATE_DIR [key=value ...]");
            System.exit(2);
        }
        Properties props = new Properties();
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[1]);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[4]);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        for (int i = 5; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            props.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }

        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(args[2], Consumed.with(Serdes.ByteArray(), Serdes.String()))
               .flatMapValues(line -> Arrays.asList(line.toLowerCase(Locale.ROOT).split("\\W+")))
               .filter((key, word) -> !word.isEmpty())
               .groupBy((key, word) -> word, Grouped.with("words", Serdes.String(), Serdes.String()))
               .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts")
                                  .withKeySerde(Serdes.String()).withValueSerde(Serdes.Long()))
               .toStream()
               .to(args[3], Produced.with(Serdes.String(), Serdes.Long()));

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        CountDownLatch done = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            System.out.println("STATE " + now);
            System.out.flush();
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                done.countDown();
            }
        });
        final boolean[] failed = {false};
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("uncaught: " + e);
            e.printStackTrace();
            failed[0] = true;
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        // SIGTERM: close (commits the open transaction) and exit 0 rather than the JVM's 143, so
        // the caller tells a clean stop from a failure by the exit code alone.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            boolean closed = streams.close(Duration.ofSeconds(30));
            Runtime.getRuntime().halt(failed[0] || !closed ? 1 : 0);
        }));
        streams.start();
        done.await();
        streams.close(Duration.ofSeconds(30));
        System.exit(failed[0] ? 1 : 0);
    }
}
