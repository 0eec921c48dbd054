package bhiv.bucket.client;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.UUID;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;

/**
 * One {@code ArtifactIntent} (schemas/artifact_intent.avsc) and its Avro body: what a product
 * asks the gate to do. {@link #builder} fills a fresh intent id and the current time.
 */
public record Intent(
    String intentId,
    String productId,
    String integrationId,
    String ownerId,
    String requesterId,
    String artifactId,
    String artifactClass,
    String operation,
    Long expectedVersion,
    byte[] content,
    String contentType,
    String metadata,
    String purpose,
    long clientTime) {

  /** The approved intent schema, read from the repository's schemas/ at build time. */
  public static final Schema SCHEMA = loadSchema();

  private static Schema loadSchema() {
    try (InputStream in = Intent.class.getResourceAsStream("artifact_intent.avsc")) {
      if (in == null) {
        throw new IllegalStateException("artifact_intent.avsc missing from the jar");
      }
      return new Schema.Parser().parse(new String(in.readAllBytes(), StandardCharsets.UTF_8));
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The Avro binary body (no Confluent header). */
  public byte[] encodeBody() {
    GenericRecord r = new GenericData.Record(SCHEMA);
    r.put("intent_id", intentId);
    r.put("product_id", productId);
    r.put("integration_id", integrationId);
    r.put("owner_id", ownerId);
    r.put("requester_id", requesterId);
    r.put("artifact_id", artifactId);
    r.put("artifact_class", artifactClass);
    r.put("operation", new GenericData.EnumSymbol(SCHEMA.getField("operation").schema(), operation));
    r.put("expected_version", expectedVersion);
    r.put("content", content == null ? null : ByteBuffer.wrap(content));
    r.put("content_type", contentType);
    r.put("metadata", metadata);
    r.put("purpose", purpose);
    r.put("client_time", clientTime);
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    BinaryEncoder enc = EncoderFactory.get().directBinaryEncoder(out, null);
    try {
      new GenericDatumWriter<GenericRecord>(SCHEMA).write(r, enc);
      enc.flush();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toByteArray();
  }

  /** A builder with a fresh UUID, the current time, CREATE and the schema's defaults. */
  public static Builder builder() {
    return new Builder();
  }

  /** Builds an {@link Intent} field by field. */
  public static final class Builder {
    private String intentId = UUID.randomUUID().toString();
    private String productId;
    private String integrationId;
    private String ownerId;
    private String requesterId;
    private String artifactId;
    private String artifactClass;
    private String operation = "CREATE";
    private Long expectedVersion;
    private byte[] content;
    private String contentType = "application/octet-stream";
    private String metadata = "";
    private String purpose = "";
    private long clientTime = System.currentTimeMillis();

    /** Sets the intent id (a fresh UUID per intent, retries included). */
    public Builder intentId(String v) { intentId = v; return this; }
    /** Sets the product (also the record key). */
    public Builder productId(String v) { productId = v; return this; }
    /** Sets the integration that signs. */
    public Builder integrationId(String v) { integrationId = v; return this; }
    /** Sets the owner (and the requester, unless set). */
    public Builder ownerId(String v) { ownerId = v; return this; }
    /** Sets the requester. */
    public Builder requesterId(String v) { requesterId = v; return this; }
    /** Sets the artifact id. */
    public Builder artifactId(String v) { artifactId = v; return this; }
    /** Sets the artifact class. */
    public Builder artifactClass(String v) { artifactClass = v; return this; }
    /** Sets CREATE, UPDATE or DELETE. */
    public Builder operation(String v) { operation = v; return this; }
    /** Sets the version the writer last saw (UPDATE, DELETE). */
    public Builder expectedVersion(Long v) { expectedVersion = v; return this; }
    /** Sets the content (null for DELETE). */
    public Builder content(byte[] v) { content = v; return this; }
    /** Sets the content type. */
    public Builder contentType(String v) { contentType = v; return this; }
    /** Sets the metadata (a JSON object as text, or empty). */
    public Builder metadata(String v) { metadata = v; return this; }
    /** Sets why the change is made. */
    public Builder purpose(String v) { purpose = v; return this; }
    /** Sets the producer's clock, ms since the epoch. */
    public Builder clientTime(long v) { clientTime = v; return this; }

    /** The intent. */
    public Intent build() {
      return new Intent(intentId, productId, integrationId, ownerId,
          requesterId == null ? ownerId : requesterId, artifactId, artifactClass, operation,
          expectedVersion, content, contentType, metadata, purpose, clientTime);
    }
  }
}
