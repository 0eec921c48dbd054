package bhiv.bucket.client;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Produces intents to the intents topic: serialised once, signed, keyed by product id (the
 * Java client's default partitioner is murmur2 for keyed records, as the gate requires), with
 * {@code acks=all} and idempotence on.
 */
public final class BucketProducer implements AutoCloseable {
  private final KafkaProducer<byte[], byte[]> producer;
  private final String topic;
  private final int schemaId;

  /** Where a record landed: the broker has it; the decision comes later. */
  public record Sent(String intentId, String productId, int partition, long offset, byte[] value) {}

  /** A producer for {@code topic} with the registry's schema id and Kafka {@code settings}. */
  public BucketProducer(Properties settings, String topic, int schemaId) {
    Properties p = new Properties();
    p.putAll(settings);
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, "20971520");
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    this.producer = new KafkaProducer<>(p);
    this.topic = topic;
    this.schemaId = schemaId;
  }

  /**
   * Kafka settings from BUCKET_BROKERS, BUCKET_KAFKA_SECURITY_PROTOCOL, BUCKET_KAFKA_SASL_MECHANISM,
   * BUCKET_KAFKA_SASL_USERNAME, BUCKET_KAFKA_SASL_PASSWORD and BUCKET_KAFKA_SSL_CA (a PEM CA file).
   */
  public static Properties settingsFromEnv(Map<String, String> env) {
    Properties p = new Properties();
    p.put("bootstrap.servers", env.getOrDefault("BUCKET_BROKERS", "127.0.0.1:9092"));
    String protocol = env.getOrDefault("BUCKET_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT");
    p.put("security.protocol", protocol);
    String mechanism = env.get("BUCKET_KAFKA_SASL_MECHANISM");
    if (mechanism != null && !mechanism.isEmpty()) {
      p.put("sasl.mechanism", mechanism);
      String module = mechanism.equals("PLAIN")
          ? "org.apache.kafka.common.security.plain.PlainLoginModule"
          : "org.apache.kafka.common.security.scram.ScramLoginModule";
      p.put("sasl.jaas.config", module + " required username=\""
          + env.getOrDefault("BUCKET_KAFKA_SASL_USERNAME", "") + "\" password=\""
          + resolveSecret(env.getOrDefault("BUCKET_KAFKA_SASL_PASSWORD", ""), env) + "\";");
    }
    String ca = env.get("BUCKET_KAFKA_SSL_CA");
    if (ca != null && !ca.isEmpty()) {
      p.put("ssl.truststore.type", "PEM");
      p.put("ssl.truststore.location", ca);
    }
    return p;
  }

  /**
   * A secret given as {@code file:PATH} (the file's trimmed text), {@code env:NAME} or as is (the
   * gate's own settings accept only the two reference forms; docs/security.md).
   */
  public static String resolveSecret(String value, Map<String, String> env) {
    try {
      if (value.startsWith("file:")) {
        return java.nio.file.Files.readString(java.nio.file.Path.of(value.substring(5))).strip();
      }
    } catch (IOException e) {
      throw new java.io.UncheckedIOException(e);
    }
    if (value.startsWith("env:")) {
      return env.getOrDefault(value.substring(4), "");
    }
    return value;
  }

  /** The approved intent schema's id, looked up (never registered) in the registry. */
  public static int schemaIdFromRegistry(String registryUrl) throws IOException, InterruptedException {
    String url = registryUrl.replaceAll("/+$", "") + "/subjects/" + Wire.SUBJECT + "/versions/latest";
    HttpResponse<String> r = HttpClient.newHttpClient().send(
        HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(10)).build(),
        HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
    if (r.statusCode() != 200) {
      throw new IOException("registry " + url + ": HTTP " + r.statusCode());
    }
    return new ObjectMapper().readTree(r.body()).get("id").asInt();
  }

  /** The record value of an intent: the Confluent frame around its Avro body. */
  public byte[] value(Intent intent) {
    return Wire.frame(schemaId, intent.encodeBody());
  }

  /** Serialises, signs and produces one intent; returns once the broker has it. */
  public Sent send(Intent intent, Signer signer)
      throws GeneralSecurityException, InterruptedException, ExecutionException {
    byte[] value = value(intent);
    return sendValue(intent.productId(), intent.intentId(), value, List.of(signer.header(value)));
  }

  /** Produces already-built value bytes with these signature headers (demos and tests). */
  public Sent sendValue(String productId, String intentId, byte[] value, List<String> signatures)
      throws InterruptedException, ExecutionException {
    ProducerRecord<byte[], byte[]> r =
        new ProducerRecord<>(topic, productId.getBytes(StandardCharsets.UTF_8), value);
    for (String h : signatures) {
      r.headers().add(new RecordHeader(Wire.SIGNATURE_HEADER, h.getBytes(StandardCharsets.UTF_8)));
    }
    RecordMetadata m = producer.send(r).get();
    return new Sent(intentId, productId, m.partition(), m.offset(), value);
  }

  /** Partitions of the intents topic. */
  public int partitionCount() {
    return producer.partitionsFor(topic).size();
  }

  @Override
  public void close() {
    producer.close();
  }
}
