/* TxnProducer - the Java transactional producer (KafkaProducer with transactional.id) driven by
 * steps, for what kafka-producer-perf-test cannot do (it only commits):
 *
 *   java TxnProducer BOOTSTRAP TRANSACTIONAL_ID TOPIC STEP...
 *
 * STEP is commit:N (one transaction of N records, committed), abort:N (N records sent and
 * flushed, so they are in the log, then aborted) or hold:N (N records sent and flushed, "OPEN"
 * printed, then the transaction stays open until a line arrives on stdin, then it commits: the
 * caller describes the ongoing transaction meanwhile).  Record values are "<step>-<index>-<i>"
 * with null keys.  "DONE" is printed when every step has completed.
 */

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Properties;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

public final class TxnProducer {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, args[1]);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        String topic = args[2];
        BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            for (int s = 3; s < args.length; s++) {
                String[] step = args[s].split(":");
                int n = Integer.parseInt(step[1]);
                producer.beginTransaction();
                for (int i = 0; i < n; i++) {
                    producer.send(new ProducerRecord<>(topic, null, step[0] + "-" + s + "-" + i));
                }
                producer.flush();
                switch (step[0]) {
                    case "commit":
                        producer.commitTransaction();
                        break;
                    case "abort":
                        producer.abortTransaction();
                        break;
                    case "hold":
                        System.out.println("OPEN");
                        System.out.flush();
                        stdin.readLine();
                        producer.commitTransaction();
                        break;
                    default:
                        throw new IllegalArgumentException("unknown step " + args[s]);
                }
            }
        }
        System.out.println("DONE");
        System.out.flush();
    }
}
