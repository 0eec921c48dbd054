package bhiv.bucket.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import bhiv.bucket.client.example.ProduceExample;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The worked example against the real stack, run by tests/clients.rs (BUCKET_E2E=1); with a read
 * API, each receipt must say what the example expects (two accepted, one SIGNATURE_INVALID).
 */
class ProduceExampleE2ETest {
  @Test
  void workedExampleAgainstTheStack() throws Exception {
    Map<String, String> env = System.getenv();
    assumeTrue("1".equals(env.get("BUCKET_E2E")), "needs the stack (tests/clients.rs)");
    List<ProduceExample.Line> lines = ProduceExample.run(env);
    assertEquals(List.of("ed25519", "hmac", "tampered"), lines.stream().map(ProduceExample.Line::kase).toList());
    StringBuilder out = new StringBuilder();
    lines.forEach(l -> out.append(l.json()).append('\n'));
    Files.writeString(Path.of(env.get("BUCKET_E2E_OUT")), out, StandardCharsets.UTF_8,
        StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    if (env.getOrDefault("BUCKET_API_URL", "").isEmpty()) {
      return;
    }
    for (ProduceExample.Line l : lines) {
      assertEquals(l.expectOutcome(), l.outcome(), l.kase());
      assertEquals(l.expectReasons(), l.reasons(), l.kase());
    }
    assertEquals(1L, lines.get(0).version());
  }
}
