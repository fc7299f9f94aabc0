/* PeerBench - the load generator for the non-Kafka peers of the system
 * benchmark: RabbitMQ through the RabbitMQ Java client (AMQP 0-9-1) and
 * ActiveMQ through its own OpenWire JMS client.  Java clients because they
 * are the fastest clients of those brokers available here (pika or stomp.py
 * would make the client, not the broker, the bottleneck).
 *
 *   java PeerBench produce rabbitmq|activemq PORT QUEUE COUNT SIZE BATCH SECONDS
 *   java PeerBench consume rabbitmq|activemq PORT QUEUE COUNT SECONDS
 *   java PeerBench e2e     rabbitmq|activemq PORT QUEUE COUNT SIZE RATE
 *
 * produce: persistent messages to a durable queue; BATCH messages per
 *   acknowledged round trip (RabbitMQ: publisher confirms, waitForConfirms
 *   after every BATCH publishes; ActiveMQ: a synchronous persistent send for
 *   BATCH=1, else a transacted session committed every BATCH sends).  Stops
 *   after COUNT messages or SECONDS, whichever comes first.
 * consume: drains COUNT messages (RabbitMQ: prefetch 1000, multiple-ack every
 *   100; ActiveMQ: DUPS_OK_ACKNOWLEDGE, default prefetch 1000).
 * e2e: produces COUNT messages at RATE/s with the send time in the payload and
 *   consumes them in the same process: produce->consume latency percentiles;
 *   one second of warm-up messages at the same rate goes first, not counted.
 * Prints one JSON object on the last line, in kc_loadgen's format.
 */
import com.rabbitmq.client.AMQP;
import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import com.rabbitmq.client.DefaultConsumer;
import com.rabbitmq.client.Envelope;
import com.rabbitmq.client.MessageProperties;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import javax.jms.BytesMessage;
import javax.jms.DeliveryMode;
import javax.jms.Message;
import javax.jms.MessageConsumer;
import javax.jms.MessageProducer;
import javax.jms.Queue;
import javax.jms.Session;
import org.apache.activemq.ActiveMQConnectionFactory;

public final class PeerBench {
    static long[] lat;
    static final AtomicLong got = new AtomicLong();
    static final AtomicLong bytes = new AtomicLong();

    public static void main(String[] a) throws Exception {
        String mode = a[0], sys = a[1], queue = a[3];
        int port = Integer.parseInt(a[2]);
        long count = Long.parseLong(a[4]);
        boolean rabbit = sys.equals("rabbitmq");
        if (mode.equals("produce")) {
            int size = Integer.parseInt(a[5]), batch = Integer.parseInt(a[6]);
            double secs = Double.parseDouble(a[7]);
            byte[] payload = new byte[size];
            for (int i = 0; i < size; i++) payload[i] = (byte) ('a' + i % 26);
            long t0 = System.nanoTime(), deadline = t0 + (long) (secs * 1e9), n;
            n = rabbit ? rabbitProduce(port, queue, count, payload, batch, deadline)
                       : amqProduce(port, queue, count, payload, batch, deadline);
            report("produce", n, size * n, (System.nanoTime() - t0) / 1e9, null);
        } else if (mode.equals("consume")) {
            double secs = Double.parseDouble(a[5]);
            long[] t = rabbit ? rabbitConsume(port, queue, count, secs, false, 0)
                              : amqConsume(port, queue, count, secs, false, 0);
            report("consume", got.get(), bytes.get(), (t[1] - t[0]) / 1e9, null);
            System.exit(got.get() < count ? 1 : 0);
        } else if (mode.equals("e2e")) {
            int size = Math.max(8, Integer.parseInt(a[5]));
            long rate = Long.parseLong(a[6]);
            lat = new long[(int) count];
            e2eSize = size;
            warm = rate;  // one second of warm-up messages, not counted
            long total = count + warm;
            long[] t = rabbit ? rabbitConsume(port, queue, total, total / (double) rate + 60, true, rate)
                              : amqConsume(port, queue, total, total / (double) rate + 60, true, rate);
            long n = Math.max(0, got.get() - warm);
            long[] v = Arrays.copyOf(lat, (int) n);
            Arrays.sort(v);
            report("e2e", n, n * size, (t[1] - t[0]) / 1e9 - 1.0, v);
            System.exit(n < count ? 1 : 0);
        } else {
            throw new IllegalArgumentException("mode: produce|consume|e2e");
        }
        System.exit(0);
    }

    static double pct(long[] v, double p) {
        return v.length == 0 ? 0 : v[(int) (p * (v.length - 1))] / 1e6;
    }

    static void report(String mode, long n, long nbytes, double secs, long[] v) {
        StringBuilder b = new StringBuilder();
        b.append(String.format(Locale.ROOT, "{\"mode\": \"%s\", \"records\": %d, \"seconds\": %.3f, "
                + "\"records_per_sec\": %.1f, \"mb_per_sec\": %.3f", mode, n, secs, secs > 0 ? n / secs : 0,
                secs > 0 ? nbytes / secs / 1048576.0 : 0));
        if (v != null) {
            double sum = 0;
            for (long x : v) sum += x;
            b.append(String.format(Locale.ROOT, ", \"avg_latency_ms\": %.3f, \"p50_ms\": %.3f, \"p95_ms\": %.3f, "
                    + "\"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f",
                    v.length > 0 ? sum / v.length / 1e6 : 0, pct(v, 0.5), pct(v, 0.95), pct(v, 0.99),
                    pct(v, 0.999), pct(v, 1.0)));
        }
        System.out.println(b.append("}"));
    }

    /* A producer thread for e2e mode: COUNT messages at RATE/s, send time in
     * the first 8 bytes, without waiting for each acknowledgement. */
    interface Sender { void send(byte[] p) throws Exception; }

    static Thread paced(long count, int size, long rate, Sender s) {
        Thread t = new Thread(() -> {
            byte[] p = new byte[size];
            long t0 = System.nanoTime();
            try {
                for (long i = 0; i < count; i++) {
                    long due = t0 + i * 1_000_000_000L / rate;
                    while (System.nanoTime() < due) Thread.onSpinWait();
                    ByteBuffer.wrap(p).putLong(System.nanoTime());
                    s.send(p);
                }
            } catch (Exception e) {
                e.printStackTrace();
            }
        });
        t.start();
        return t;
    }

    static int e2eSize = 200;
    static long warm = 0;

    static void record(byte[] body, int len, boolean e2e) {
        long i = got.getAndIncrement() - warm;
        bytes.addAndGet(len);
        if (e2e && i >= 0 && i < lat.length) lat[(int) i] = System.nanoTime() - ByteBuffer.wrap(body).getLong();
    }

    // ---- RabbitMQ ------------------------------------------------------------------------------

    static Connection rabbit(int port) throws Exception {
        ConnectionFactory f = new ConnectionFactory();
        f.setHost("127.0.0.1");
        f.setPort(port);
        return f.newConnection();
    }

    static long rabbitProduce(int port, String q, long count, byte[] payload, int batch, long deadline)
            throws Exception {
        try (Connection c = rabbit(port)) {
            Channel ch = c.createChannel();
            ch.queueDeclare(q, true, false, false, null);
            ch.confirmSelect();
            long n = 0;
            while (n < count && System.nanoTime() < deadline) {
                for (int j = 0; j < batch && n < count; j++, n++)
                    ch.basicPublish("", q, MessageProperties.PERSISTENT_BASIC, payload);
                ch.waitForConfirmsOrDie(60_000);
            }
            return n;
        }
    }

    static long[] rabbitConsume(int port, String q, long count, double secs, boolean e2e, long rate)
            throws Exception {
        try (Connection c = rabbit(port)) {
            Channel ch = c.createChannel();
            ch.queueDeclare(q, true, false, false, null);
            ch.basicQos(1000);
            CountDownLatch done = new CountDownLatch(1);
            long[] t = new long[2];
            ch.basicConsume(q, false, new DefaultConsumer(ch) {
                @Override
                public void handleDelivery(String tag, Envelope env, AMQP.BasicProperties p, byte[] body)
                        throws java.io.IOException {
                    if (t[0] == 0) t[0] = System.nanoTime();
                    record(body, body.length, e2e);
                    long g = got.get();
                    if (g % 100 == 0 || g >= count) ch.basicAck(env.getDeliveryTag(), true);
                    if (g >= count) done.countDown();
                }
            });
            Thread prod = null;
            Connection pc = null;
            if (e2e) {
                pc = rabbit(port);
                Channel pch = pc.createChannel();
                pch.confirmSelect();
                prod = paced(count, e2eSize, rate,
                        p -> pch.basicPublish("", q, MessageProperties.PERSISTENT_BASIC, p));
            }
            done.await((long) (secs * 1000), TimeUnit.MILLISECONDS);
            t[1] = System.nanoTime();
            if (prod != null) prod.join();
            if (pc != null) pc.close();
            if (t[0] == 0) t[0] = t[1];
            return t;
        }
    }

    // ---- ActiveMQ (OpenWire) -------------------------------------------------------------------

    static javax.jms.Connection amq(int port, boolean async) throws Exception {
        ActiveMQConnectionFactory f = new ActiveMQConnectionFactory("tcp://127.0.0.1:" + port);
        f.setUseAsyncSend(async);
        javax.jms.Connection c = f.createConnection();
        c.start();
        return c;
    }

    static long amqProduce(int port, String q, long count, byte[] payload, int batch, long deadline)
            throws Exception {
        javax.jms.Connection c = amq(port, false);
        try {
            Session s = c.createSession(batch > 1, batch > 1 ? Session.SESSION_TRANSACTED : Session.AUTO_ACKNOWLEDGE);
            MessageProducer p = s.createProducer(s.createQueue(q));
            p.setDeliveryMode(DeliveryMode.PERSISTENT);
            long n = 0;
            while (n < count && System.nanoTime() < deadline) {
                for (int j = 0; j < batch && n < count; j++, n++) {
                    BytesMessage m = s.createBytesMessage();
                    m.writeBytes(payload);
                    p.send(m);
                }
                if (batch > 1) s.commit();
            }
            return n;
        } finally {
            c.close();
        }
    }

    static long[] amqConsume(int port, String q, long count, double secs, boolean e2e, long rate)
            throws Exception {
        javax.jms.Connection c = amq(port, false);
        javax.jms.Connection pc = null;
        try {
            Session s = c.createSession(false, Session.DUPS_OK_ACKNOWLEDGE);
            Queue queue = s.createQueue(q);
            MessageConsumer mc = s.createConsumer(queue);
            long[] t = new long[2];
            Thread prod = null;
            if (e2e) {
                pc = amq(port, true);
                Session ps = pc.createSession(false, Session.AUTO_ACKNOWLEDGE);
                MessageProducer p = ps.createProducer(ps.createQueue(q));
                p.setDeliveryMode(DeliveryMode.PERSISTENT);
                prod = paced(count, e2eSize, rate, body -> {
                    BytesMessage m = ps.createBytesMessage();
                    m.writeBytes(body);
                    p.send(m);
                });
            }
            long deadline = System.nanoTime() + (long) (secs * 1e9);
            byte[] buf = new byte[1 << 20];
            while (got.get() < count && System.nanoTime() < deadline) {
                Message m = mc.receive(100);
                if (m == null) continue;
                if (t[0] == 0) t[0] = System.nanoTime();
                BytesMessage bm = (BytesMessage) m;
                int len = (int) bm.getBodyLength();
                if (len > buf.length) buf = new byte[len];
                bm.readBytes(buf, len);
                record(buf, len, e2e);
            }
            t[1] = System.nanoTime();
            if (t[0] == 0) t[0] = t[1];
            if (prod != null) prod.join();
            return t;
        } finally {
            c.close();
            if (pc != null) pc.close();
        }
    }
}
