import java.util.List;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/** Reads a kafka-core export directory as a warehouse user would: spark.read().parquet(dir), no
 * options (Hive partition discovery of topic=/date=/hour=, the _ledger directory skipped as a
 * hidden one), and prints what the test compares: the schema, then one line per
 * (topic, partition): rows, distinct offsets, min and max offset, rows whose hour column does not
 * match their timestamp, null keys, null values, header entries. */
public class SparkReadExport {
    public static void main(String[] args) {
        SparkSession spark = SparkSession.builder().master("local[1]").appName("kafka-core-export-read")
            .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "1").getOrCreate();
        spark.sparkContext().setLogLevel("ERROR");
        Dataset<Row> df = spark.read().parquet(args[0]);
        df.createOrReplaceTempView("export");
        System.out.println("SCHEMA " + df.schema().json());
        List<Row> rows = spark.sql(
            "SELECT topic, partition, count(*), count(DISTINCT offset), min(offset), max(offset), "
            + "sum(CASE WHEN hour(timestamp) = CAST(hour AS INT) AND to_date(timestamp) = CAST(date AS DATE) "
            + "THEN 0 ELSE 1 END), sum(CASE WHEN key IS NULL THEN 1 ELSE 0 END), "
            + "sum(CASE WHEN value IS NULL THEN 1 ELSE 0 END), sum(size(headers)) "
            + "FROM export GROUP BY topic, partition ORDER BY partition").collectAsList();
        for (Row r : rows) {
            StringBuilder b = new StringBuilder("PARTITION");
            for (int i = 0; i < r.length(); i++) b.append(' ').append(r.get(i));
            System.out.println(b);
        }
        spark.stop();
    }
}
