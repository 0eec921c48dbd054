package bhiv.bucket.client;

import java.nio.ByteBuffer;
import org.apache.kafka.common.utils.Utils;

/** The wire contract's byte work: the Confluent frame and the murmur2 home partition. */
public final class Wire {
  /** Registry subject of the approved intent schema. */
  public static final String SUBJECT = "bucket.intents-value";
  /** The one signature header a record carries (several are refused SIGNATURE_REPEATED). */
  public static final String SIGNATURE_HEADER = "bucket-signature";

  private Wire() {}

  /** Confluent wire format: byte 0, 4-byte big-endian schema id, then the Avro body. */
  public static byte[] frame(int schemaId, byte[] body) {
    return ByteBuffer.allocate(5 + body.length).put((byte) 0).putInt(schemaId).put(body).array();
  }

  /** Kafka's murmur2 (the Java client's own), what the gate checks partitions with. */
  public static int murmur2(byte[] key) {
    return Utils.murmur2(key);
  }

  /** The partition the Java client's default partitioner picks for a keyed record. */
  public static int homePartition(byte[] key, int partitions) {
    return Utils.toPositive(Utils.murmur2(key)) % partitions;
  }
}
