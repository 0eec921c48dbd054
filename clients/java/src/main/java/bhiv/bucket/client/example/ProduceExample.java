package bhiv.bucket.client.example;

import bhiv.bucket.client.BucketProducer;
import bhiv.bucket.client.Intent;
import bhiv.bucket.client.Receipts;
import bhiv.bucket.client.Signer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Worked example: one Ed25519-signed and one HMAC-signed intent (accepted) and one signed before
 * it was re-serialised (rejected SIGNATURE_INVALID), each decision read back through the read
 * API with the product's own token. Configuration from the environment, SASL/TLS included:
 * BUCKET_BROKERS, BUCKET_KAFKA_SECURITY_PROTOCOL, BUCKET_KAFKA_SASL_MECHANISM, BUCKET_KAFKA_SASL_USERNAME,
 * BUCKET_KAFKA_SASL_PASSWORD, BUCKET_KAFKA_SSL_CA, BUCKET_REGISTRY_URL, BUCKET_INTENTS_TOPIC,
 * BUCKET_PRODUCT, BUCKET_KEYS_DIR, BUCKET_API_URL and BUCKET_API_TOKEN (no URL: produce only).
 */
public final class ProduceExample {
  private ProduceExample() {}

  /** What the example reports per intent. */
  public record Line(String client, String kase, String intentId, String productId,
      int partition, long offset, String expectOutcome, List<String> expectReasons,
      String outcome, List<String> reasons, Long version) {
    /** One JSON line (the same shape as the Python and Go examples print). */
    public String json() {
      StringBuilder b = new StringBuilder("{\"client\":\"java\",\"case\":\"").append(kase)
          .append("\",\"intent_id\":\"").append(intentId)
          .append("\",\"product_id\":\"").append(productId)
          .append("\",\"partition\":").append(partition)
          .append(",\"offset\":").append(offset)
          .append(",\"expect_outcome\":\"").append(expectOutcome)
          .append("\",\"expect_reasons\":").append(list(expectReasons));
      if (outcome != null) {
        b.append(",\"outcome\":\"").append(outcome).append("\",\"reasons\":")
            .append(list(reasons)).append(",\"version\":").append(version);
      }
      return b.append('}').toString();
    }

    private static String list(List<String> l) {
      return l.stream().map(s -> "\"" + s + "\"").toList().toString().replace(" ", "");
    }
  }

  /** Produces the three intents; reads their receipts when an API is configured. */
  public static List<Line> run(Map<String, String> env) throws Exception {
    String product = env.getOrDefault("BUCKET_PRODUCT", "ai_assistant");
    String integration = product + "-backend";
    Path keys = Path.of(env.getOrDefault("BUCKET_KEYS_DIR", "../../deploy/demo/keys"));
    Signer ed = Signer.fromKeyFile(keys.resolve(integration + ".ed1.ed25519"));
    Signer hm = Signer.fromKeyFile(keys.resolve(integration + ".hm1.hmac"));
    int schemaId = BucketProducer.schemaIdFromRegistry(
        env.getOrDefault("BUCKET_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7"));
    List<Object[]> sent = new ArrayList<>();
    try (BucketProducer p = new BucketProducer(BucketProducer.settingsFromEnv(env),
        env.getOrDefault("BUCKET_INTENTS_TOPIC", "bucket.intents"), schemaId)) {
      sent.add(new Object[] {"ed25519", p.send(intent(product, "ed25519"), ed), "ACCEPTED", List.of()});
      sent.add(new Object[] {"hmac", p.send(intent(product, "hmac"), hm), "ACCEPTED", List.of()});
      // Signed, then re-serialised with another purpose: not the signed bytes, refused.
      Intent bad = intent(product, "tampered");
      String header = ed.header(p.value(bad));
      Intent changed = new Intent(bad.intentId(), bad.productId(), bad.integrationId(),
          bad.ownerId(), bad.requesterId(), bad.artifactId(), bad.artifactClass(),
          bad.operation(), bad.expectedVersion(), bad.content(), bad.contentType(),
          bad.metadata(), "changed after signing", bad.clientTime());
      sent.add(new Object[] {"tampered",
          p.sendValue(product, bad.intentId(), p.value(changed), List.of(header)),
          "REJECTED", List.of("SIGNATURE_INVALID")});
    }
    String api = env.get("BUCKET_API_URL");
    Receipts receipts = api == null || api.isEmpty() ? null
        : new Receipts(api, env.getOrDefault("BUCKET_API_TOKEN", ""));
    List<Line> lines = new ArrayList<>();
    for (Object[] s : sent) {
      BucketProducer.Sent at = (BucketProducer.Sent) s[1];
      @SuppressWarnings("unchecked")
      List<String> expect = (List<String>) s[3];
      Receipts.Receipt r = receipts == null ? null
          : receipts.await(product, at.intentId(), Duration.ofSeconds(90));
      lines.add(new Line("java", (String) s[0], at.intentId(), at.productId(), at.partition(),
          at.offset(), (String) s[2], expect, r == null ? null : r.outcome(),
          r == null ? null : r.reasons(), r == null ? null : r.version()));
    }
    return lines;
  }

  private static Intent intent(String product, String name) {
    String suffix = HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextInt());
    return Intent.builder()
        .productId(product)
        .integrationId(product + "-backend")
        .artifactId("java-" + name + "-" + suffix)
        .artifactClass("document")
        .ownerId("java-example")
        .purpose("client library worked example")
        .content(("Hello from the Java client (" + name + ").").getBytes(StandardCharsets.UTF_8))
        .contentType("text/plain")
        .metadata("{\"lang\":\"en\",\"client\":\"java\"}")
        .build();
  }

  /** Runs the example; exits non-zero when a receipt says something else than expected. */
  public static void main(String[] args) throws Exception {
    for (Line l : run(System.getenv())) {
      System.out.println(l.json());
      if (l.outcome() != null && !l.outcome().equals(l.expectOutcome())) {
        System.exit(1);
      }
    }
  }
}
