package bhiv.bucket.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.MessageDigest;
import java.security.spec.PKCS8EncodedKeySpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.Base64;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The conformance vectors (docs/conformance/vectors.json) against this client's own code. */
class ConformanceTest {
  static final Path REPO = Path.of("..", "..");
  static final JsonNode DOC = load();
  static final HexFormat HEX = HexFormat.of();

  static JsonNode load() {
    try {
      return new ObjectMapper().readTree(REPO.resolve("docs/conformance/vectors.json").toFile());
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  static Stream<JsonNode> vectors() {
    return section("vectors");
  }

  static Stream<JsonNode> section(String name) {
    Stream.Builder<JsonNode> b = Stream.builder();
    DOC.get(name).forEach(b);
    return b.build();
  }

  static Stream<JsonNode> partitioner() {
    return section("partitioner");
  }

  static Stream<JsonNode> keys() {
    return section("keys");
  }

  static Stream<JsonNode> negative() {
    return section("negative");
  }

  static String sha256(byte[] b) throws Exception {
    return HEX.formatHex(MessageDigest.getInstance("SHA-256").digest(b));
  }

  static byte[] content(JsonNode c) throws Exception {
    if (c.isNull()) {
      return null;
    }
    if (c.has("hex")) {
      return HEX.parseHex(c.get("hex").asText());
    }
    byte[] pattern = HEX.parseHex(c.get("pattern_hex").asText());
    int n = c.get("length").asInt();
    byte[] out = new byte[n];
    for (int i = 0; i < n; i++) {
      out[i] = pattern[i % pattern.length];
    }
    assertEquals(c.get("sha256").asText(), sha256(out));
    return out;
  }

  static Intent intentOf(JsonNode v) throws Exception {
    return new Intent(v.get("intent_id").asText(), v.get("product_id").asText(),
        v.get("integration_id").asText(), v.get("owner_id").asText(),
        v.get("requester_id").asText(), v.get("artifact_id").asText(),
        v.get("artifact_class").asText(), v.get("operation").asText(),
        v.get("expected_version").isNull() ? null : v.get("expected_version").asLong(),
        content(v.get("content")), v.get("content_type").asText(), v.get("metadata").asText(),
        v.get("purpose").asText(), v.get("client_time").asLong());
  }

  static void checkBytes(JsonNode v, String prefix, byte[] b) throws Exception {
    if (v.has(prefix + "_hex")) {
      assertEquals(v.get(prefix + "_hex").asText(), HEX.formatHex(b), prefix);
    } else {
      String p = v.get(prefix + "_prefix_hex").asText();
      assertEquals(p, HEX.formatHex(b, 0, p.length() / 2), prefix + " prefix");
    }
    assertEquals(v.get(prefix + "_length").asLong(), b.length, prefix + " length");
    assertEquals(v.get(prefix + "_sha256").asText(), sha256(b), prefix + " sha256");
  }

  static JsonNode keyOf(String integration) {
    return keys().filter(k -> k.get("integration_id").asText().equals(integration)).findFirst()
        .orElseThrow();
  }

  @Test
  void everyOperationHasAVector() {
    Set<String> ops = new HashSet<>();
    DOC.get("vectors").forEach(v -> ops.add(v.get("intent").get("operation").asText()));
    assertEquals(Set.of("CREATE", "UPDATE", "DELETE"), ops);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("vectors")
  void positiveVector(JsonNode v) throws Exception {
    Intent i = intentOf(v.get("intent"));
    byte[] body = i.encodeBody();
    checkBytes(v, "avro_body", body);
    byte[] value = Wire.frame(DOC.get("schema_id").asInt(), body);
    checkBytes(v, "value", value);
    byte[] key = i.productId().getBytes(StandardCharsets.UTF_8);
    assertEquals(v.get("key_hex").asText(), HEX.formatHex(key));
    v.get("partitions").fields().forEachRemaining(e ->
        assertEquals(e.getValue().asInt(), Wire.homePartition(key, Integer.parseInt(e.getKey()))));
    JsonNode k = keyOf(i.integrationId());
    JsonNode ed = k.get("ed25519");
    Signer fromDer = Signer.ed25519Pkcs8(i.integrationId(), ed.get("key_id").asText(),
        Base64.getDecoder().decode(ed.get("pkcs8_der_base64").asText()));
    Signer fromPem = Signer.ed25519Pem(i.integrationId(), ed.get("key_id").asText(),
        ed.get("pkcs8_pem").asText());
    Signer fromSeed = Signer.ed25519Seed(i.integrationId(), ed.get("key_id").asText(),
        Base64.getDecoder().decode(ed.get("seed_base64").asText()));
    String want = v.get("signatures").get("ed25519").asText();
    assertEquals(want, fromDer.header(value));
    assertEquals(want, fromPem.header(value));
    assertEquals(want, fromSeed.header(value));
    JsonNode hm = k.get("hmac-sha256");
    Signer hmac = Signer.hmacSha256(i.integrationId(), hm.get("key_id").asText(),
        hm.get("secret_utf8").asText().getBytes(StandardCharsets.UTF_8));
    assertEquals(v.get("signatures").get("hmac-sha256").asText(), hmac.header(value));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("negative")
  void negativeVectorIsNotWhatThisClientSends(JsonNode v) throws Exception {
    String reasons = v.get("expected_reasons").toString();
    JsonNode headers = v.get("signature_headers");
    if (reasons.equals("[\"WRONG_PARTITION\"]")) {
      byte[] key = HEX.parseHex(v.get("key_hex").asText());
      assertNotEquals(v.get("partition").asInt(),
          Wire.homePartition(key, v.get("partition_count").asInt()));
    } else if (reasons.equals("[\"SIGNATURE_INVALID\"]")) {
      byte[] value = HEX.parseHex(v.get("value_hex").asText());
      String h = headers.get(0).asText();
      String integration = h.split(":")[1];
      JsonNode ed = keyOf(integration).get("ed25519");
      Signer s = Signer.ed25519Pem(integration, ed.get("key_id").asText(), ed.get("pkcs8_pem").asText());
      assertNotEquals(h, s.header(value));
    } else if (reasons.equals("[\"SIGNATURE_REPEATED\"]")) {
      assertTrue(headers.size() > 1);
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("partitioner")
  void partitioner(JsonNode p) {
    byte[] key = p.get("key_utf8").asText().getBytes(StandardCharsets.UTF_8);
    assertEquals(p.get("key_hex").asText(), HEX.formatHex(key));
    assertEquals(p.get("murmur2").asInt(), Wire.murmur2(key));
    p.get("partitions").fields().forEachRemaining(e ->
        assertEquals(e.getValue().asInt(), Wire.homePartition(key, Integer.parseInt(e.getKey()))));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("keys")
  void keyFormsAgree(JsonNode k) throws Exception {
    JsonNode ed = k.get("ed25519");
    KeyFactory kf = KeyFactory.getInstance("Ed25519");
    byte[] der = Base64.getDecoder().decode(ed.get("pkcs8_der_base64").asText());
    kf.generatePrivate(new PKCS8EncodedKeySpec(der));
    String spki = ed.get("spki_pem").asText().replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
    byte[] spkiDer = Base64.getDecoder().decode(spki);
    kf.generatePublic(new X509EncodedKeySpec(spkiDer));
    byte[] raw = new byte[32];
    System.arraycopy(spkiDer, 12, raw, 0, 32);
    assertEquals(ed.get("public_key_base64").asText(), Base64.getEncoder().encodeToString(raw));
  }

  @Test
  void documentedHmacExample() throws Exception {
    assertEquals("v1:gurukul-backend:hm1:hmac-sha256:LSAv2JacO6NPoZVtZ0y+jLpCXPhrY8eGQf0ZnTUOCJ0=",
        Signer.hmacSha256("gurukul-backend", "hm1", "demo-secret".getBytes(StandardCharsets.UTF_8))
            .header("hello".getBytes(StandardCharsets.UTF_8)));
  }

  @Test
  void theSchemaIsTheRepositorySchema() throws Exception {
    String repo = Files.readString(REPO.resolve("schemas/artifact_intent.avsc"));
    assertEquals(new org.apache.avro.Schema.Parser().parse(repo), Intent.SCHEMA);
  }
}
