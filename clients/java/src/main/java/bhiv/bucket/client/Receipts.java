package bhiv.bucket.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/** Reads decision receipts from the read API with the product's bearer token. */
public final class Receipts {
  private final String apiUrl;
  private final String token;
  private final HttpClient http = HttpClient.newHttpClient();
  private final ObjectMapper json = new ObjectMapper();

  /** The gate's answer to one intent, as the read API gives it to the intent's product. */
  public record Receipt(String outcome, List<String> reasons, Long version, String intentId,
      String productId, JsonNode raw) {
    /** True when the intent was accepted. */
    public boolean accepted() {
      return "ACCEPTED".equals(outcome);
    }
  }

  /** A reader for the API at {@code apiUrl} with the product's {@code token}. */
  public Receipts(String apiUrl, String token) {
    this.apiUrl = apiUrl.replaceAll("/+$", "");
    this.token = token;
  }

  private static String seg(String s) {
    return URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20");
  }

  /** The receipt, or empty while the intent is undecided (HTTP 404). */
  public Optional<Receipt> get(String productId, String intentId)
      throws IOException, InterruptedException {
    String url = apiUrl + "/v1/products/" + seg(productId) + "/decisions/" + seg(intentId);
    HttpResponse<String> r = http.send(
        HttpRequest.newBuilder(URI.create(url))
            .header("Authorization", "Bearer " + token)
            .timeout(Duration.ofSeconds(10))
            .build(),
        HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
    if (r.statusCode() == 404) {
      return Optional.empty();
    }
    if (r.statusCode() != 200) {
      throw new IOException("GET " + url + ": HTTP " + r.statusCode());
    }
    JsonNode b = json.readTree(r.body());
    List<String> reasons = new ArrayList<>();
    b.path("reasons").forEach(n -> reasons.add(n.asText()));
    JsonNode v = b.path("version");
    return Optional.of(new Receipt(b.path("outcome").asText(), reasons,
        v.isNumber() ? v.asLong() : null, b.path("intent_id").asText(),
        b.path("product_id").asText(), b));
  }

  /** Polls until the intent is decided; throws after {@code timeout}. */
  public Receipt await(String productId, String intentId, Duration timeout)
      throws IOException, InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      Optional<Receipt> r = get(productId, intentId);
      if (r.isPresent()) {
        return r.get();
      }
      if (System.nanoTime() > deadline) {
        throw new IOException("no decision for " + productId + "/" + intentId + " after " + timeout);
      }
      Thread.sleep(200);
    }
  }
}
