package bhiv.bucket.client;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.Signature;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Base64;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/** Signs record values for one integration key: the {@code bucket-signature} header. */
public final class Signer {
  /** RFC 8410 PKCS#8 prefix of an Ed25519 private key; the 32-byte seed follows. */
  private static final byte[] PKCS8_ED25519_PREFIX = {
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20
  };

  private interface SignFn {
    byte[] sign(byte[] value) throws GeneralSecurityException;
  }

  private final String integrationId;
  private final String keyId;
  private final String alg;
  private final SignFn fn;

  private Signer(String integrationId, String keyId, String alg, SignFn fn) {
    this.integrationId = integrationId;
    this.keyId = keyId;
    this.alg = alg;
    this.fn = fn;
  }

  /** An Ed25519 signer from a PKCS#8 DER private key (Java's standard library reads it). */
  public static Signer ed25519Pkcs8(String integrationId, String keyId, byte[] der)
      throws GeneralSecurityException {
    PrivateKey key = KeyFactory.getInstance("Ed25519").generatePrivate(new PKCS8EncodedKeySpec(der));
    return new Signer(integrationId, keyId, "ed25519", value -> {
      Signature s = Signature.getInstance("Ed25519");
      s.initSign(key);
      s.update(value);
      return s.sign();
    });
  }

  /** An Ed25519 signer from a PKCS#8 PEM ({@code -----BEGIN PRIVATE KEY-----}). */
  public static Signer ed25519Pem(String integrationId, String keyId, String pem)
      throws GeneralSecurityException {
    String b64 = pem.replaceAll("-----[A-Z ]+-----", "").replaceAll("\\s", "");
    return ed25519Pkcs8(integrationId, keyId, Base64.getDecoder().decode(b64));
  }

  /** An Ed25519 signer from the 32-byte seed that {@code bucket keys generate} writes. */
  public static Signer ed25519Seed(String integrationId, String keyId, byte[] seed)
      throws GeneralSecurityException {
    if (seed.length != 32) {
      throw new GeneralSecurityException("an Ed25519 seed is 32 bytes, got " + seed.length);
    }
    byte[] der = new byte[48];
    System.arraycopy(PKCS8_ED25519_PREFIX, 0, der, 0, 16);
    System.arraycopy(seed, 0, der, 16, 32);
    return ed25519Pkcs8(integrationId, keyId, der);
  }

  /** An HMAC-SHA256 signer with a shared secret. */
  public static Signer hmacSha256(String integrationId, String keyId, byte[] secret) {
    SecretKeySpec key = new SecretKeySpec(secret, "HmacSHA256");
    return new Signer(integrationId, keyId, "hmac-sha256", value -> {
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(key);
      return mac.doFinal(value);
    });
  }

  /** A signer from a {@code <integration>.<key_id>.ed25519|hmac} file of {@code bucket keys}. */
  public static Signer fromKeyFile(Path path) throws IOException, GeneralSecurityException {
    String name = path.getFileName().toString();
    int ext = name.lastIndexOf('.');
    int kid = ext > 0 ? name.lastIndexOf('.', ext - 1) : -1;
    if (kid <= 0) {
      throw new IOException(name + ": expected <integration>.<key_id>.<ed25519|hmac>");
    }
    String integration = name.substring(0, kid);
    String keyId = name.substring(kid + 1, ext);
    String text = Files.readString(path, StandardCharsets.UTF_8).strip();
    switch (name.substring(ext + 1)) {
      case "ed25519":
        return ed25519Seed(integration, keyId, Base64.getDecoder().decode(text));
      case "hmac":
        return hmacSha256(integration, keyId, text.getBytes(StandardCharsets.UTF_8));
      default:
        throw new IOException(name + ": expected a .ed25519 or .hmac key file");
    }
  }

  /** The header value over exactly {@code value}: {@code v1:<integration>:<key>:<alg>:<b64>}. */
  public String header(byte[] value) throws GeneralSecurityException {
    return "v1:" + integrationId + ":" + keyId + ":" + alg + ":"
        + Base64.getEncoder().encodeToString(fn.sign(value));
  }
}
