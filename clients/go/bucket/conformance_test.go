package bucket

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

type contentRule struct {
	Hex        *string `json:"hex"`
	PatternHex string  `json:"pattern_hex"`
	Length     int     `json:"length"`
	SHA256     string  `json:"sha256"`
}

type vectorIntent struct {
	IntentID        string       `json:"intent_id"`
	ProductID       string       `json:"product_id"`
	IntegrationID   string       `json:"integration_id"`
	OwnerID         string       `json:"owner_id"`
	RequesterID     string       `json:"requester_id"`
	ArtifactID      string       `json:"artifact_id"`
	ArtifactClass   string       `json:"artifact_class"`
	Operation       string       `json:"operation"`
	ExpectedVersion *int64       `json:"expected_version"`
	Content         *contentRule `json:"content"`
	ContentType     string       `json:"content_type"`
	Metadata        string       `json:"metadata"`
	Purpose         string       `json:"purpose"`
	ClientTime      int64        `json:"client_time"`
}

type doc struct {
	SchemaID uint32 `json:"schema_id"`
	Keys     []struct {
		IntegrationID string `json:"integration_id"`
		Ed25519       struct {
			KeyID    string `json:"key_id"`
			Seed     string `json:"seed_base64"`
			Public   string `json:"public_key_base64"`
			PKCS8DER string `json:"pkcs8_der_base64"`
			PKCS8PEM string `json:"pkcs8_pem"`
			SPKIPEM  string `json:"spki_pem"`
		} `json:"ed25519"`
		HMAC struct {
			KeyID  string `json:"key_id"`
			Secret string `json:"secret_utf8"`
		} `json:"hmac-sha256"`
	} `json:"keys"`
	Vectors     []map[string]json.RawMessage `json:"vectors"`
	Negative    []map[string]json.RawMessage `json:"negative"`
	Partitioner []struct {
		KeyUTF8    string           `json:"key_utf8"`
		KeyHex     string           `json:"key_hex"`
		Murmur2    int32            `json:"murmur2"`
		Partitions map[string]int32 `json:"partitions"`
	} `json:"partitioner"`
}

func load(t *testing.T) doc {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "conformance", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d doc
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func field[T any](t *testing.T, m map[string]json.RawMessage, k string) T {
	t.Helper()
	var out T
	if err := json.Unmarshal(m[k], &out); err != nil {
		t.Fatalf("%s: %v", k, err)
	}
	return out
}

func content(t *testing.T, c *contentRule) *[]byte {
	if c == nil {
		return nil
	}
	if c.Hex != nil {
		b, _ := hex.DecodeString(*c.Hex)
		return &b
	}
	p, _ := hex.DecodeString(c.PatternHex)
	b := bytes.Repeat(p, c.Length/len(p)+1)[:c.Length]
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != c.SHA256 {
		t.Fatal("pattern content digest")
	}
	return &b
}

func checkBytes(t *testing.T, v map[string]json.RawMessage, prefix string, b []byte) {
	t.Helper()
	if _, ok := v[prefix+"_hex"]; ok {
		if got, want := hex.EncodeToString(b), field[string](t, v, prefix+"_hex"); got != want {
			t.Fatalf("%s_hex:\n got %s\nwant %s", prefix, got, want)
		}
	} else if !strings.HasPrefix(hex.EncodeToString(b), field[string](t, v, prefix+"_prefix_hex")) {
		t.Fatalf("%s_prefix_hex", prefix)
	}
	if field[int](t, v, prefix+"_length") != len(b) {
		t.Fatalf("%s_length", prefix)
	}
	sum := sha256.Sum256(b)
	if field[string](t, v, prefix+"_sha256") != hex.EncodeToString(sum[:]) {
		t.Fatalf("%s_sha256", prefix)
	}
}

func signers(t *testing.T, d doc, integration string) (*Signer, *Signer, *Signer) {
	for _, k := range d.Keys {
		if k.IntegrationID != integration {
			continue
		}
		seed, _ := base64.StdEncoding.DecodeString(k.Ed25519.Seed)
		fromPEM, err := Ed25519FromPKCS8PEM([]byte(k.Ed25519.PKCS8PEM))
		if err != nil {
			t.Fatal(err)
		}
		return Ed25519Signer(integration, k.Ed25519.KeyID, ed25519.NewKeyFromSeed(seed)),
			Ed25519Signer(integration, k.Ed25519.KeyID, fromPEM),
			HMACSigner(integration, k.HMAC.KeyID, []byte(k.HMAC.Secret))
	}
	t.Fatalf("no key for %s", integration)
	return nil, nil, nil
}

func TestSchemaCopyIsTheRepositorySchema(t *testing.T) {
	repo, err := os.ReadFile(filepath.Join("..", "..", "..", "schemas", "artifact_intent.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	if string(repo) != IntentSchemaText {
		t.Fatal("clients/go/bucket/artifact_intent.avsc differs from schemas/artifact_intent.avsc")
	}
}

func TestPositiveVectors(t *testing.T) {
	d := load(t)
	ops := map[string]bool{}
	for _, v := range d.Vectors {
		name := field[string](t, v, "name")
		t.Run(name, func(t *testing.T) {
			vi := field[vectorIntent](t, v, "intent")
			ops[vi.Operation] = true
			i := Intent{
				IntentID: vi.IntentID, ProductID: vi.ProductID, IntegrationID: vi.IntegrationID,
				OwnerID: vi.OwnerID, RequesterID: vi.RequesterID, ArtifactID: vi.ArtifactID,
				ArtifactClass: vi.ArtifactClass, Operation: vi.Operation,
				ExpectedVersion: vi.ExpectedVersion, Content: content(t, vi.Content),
				ContentType: vi.ContentType, Metadata: vi.Metadata, Purpose: vi.Purpose,
				ClientTime: time.UnixMilli(vi.ClientTime),
			}
			body, err := EncodeBody(&i)
			if err != nil {
				t.Fatal(err)
			}
			checkBytes(t, v, "avro_body", body)
			value := Frame(d.SchemaID, body)
			checkBytes(t, v, "value", value)
			key := []byte(i.ProductID)
			for n, want := range field[map[string]int32](t, v, "partitions") {
				count, _ := strconv.Atoi(n)
				if got := HomePartition(key, int32(count)); got != want {
					t.Fatalf("partition of %s: %d, want %d", n, got, want)
				}
			}
			sigs := field[map[string]string](t, v, "signatures")
			ed, edPEM, hm := signers(t, d, i.IntegrationID)
			if ed.Header(value) != sigs["ed25519"] || edPEM.Header(value) != sigs["ed25519"] {
				t.Fatal("ed25519 header")
			}
			if hm.Header(value) != sigs["hmac-sha256"] {
				t.Fatal("hmac header")
			}
		})
	}
	if len(ops) != 3 {
		t.Fatalf("operations covered: %v", ops)
	}
}

func TestNegativeVectorsAreNotWhatThisClientSends(t *testing.T) {
	d := load(t)
	for _, v := range d.Negative {
		reasons := field[[]string](t, v, "expected_reasons")
		headers := field[[]string](t, v, "signature_headers")
		switch strings.Join(reasons, ",") {
		case "WRONG_PARTITION":
			key, _ := hex.DecodeString(field[string](t, v, "key_hex"))
			if HomePartition(key, field[int32](t, v, "partition_count")) == field[int32](t, v, "partition") {
				t.Fatal("wrong-partition vector is on the home partition")
			}
		case "SIGNATURE_INVALID":
			value, _ := hex.DecodeString(field[string](t, v, "value_hex"))
			ed, _, _ := signers(t, d, strings.Split(headers[0], ":")[1])
			if ed.Header(value) == headers[0] {
				t.Fatal("signature-invalid vector verifies")
			}
		case "SIGNATURE_REPEATED":
			if len(headers) < 2 {
				t.Fatal("repeated vector has one header")
			}
		}
	}
}

func TestPartitioner(t *testing.T) {
	for _, p := range load(t).Partitioner {
		key := []byte(p.KeyUTF8)
		if hex.EncodeToString(key) != p.KeyHex || Murmur2(key) != p.Murmur2 {
			t.Fatalf("murmur2(%q)", p.KeyUTF8)
		}
		for n, want := range p.Partitions {
			count, _ := strconv.Atoi(n)
			if HomePartition(key, int32(count)) != want {
				t.Fatalf("partition of %q over %s", p.KeyUTF8, n)
			}
		}
	}
}

func TestKeyForms(t *testing.T) {
	for _, k := range load(t).Keys {
		seed, _ := base64.StdEncoding.DecodeString(k.Ed25519.Seed)
		der, _ := base64.StdEncoding.DecodeString(k.Ed25519.PKCS8DER)
		parsed, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(parsed.(ed25519.PrivateKey).Seed(), seed) {
			t.Fatal("PKCS#8 DER seed")
		}
		pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
		if base64.StdEncoding.EncodeToString(pub) != k.Ed25519.Public {
			t.Fatal("public key")
		}
	}
}

func TestDocumentedHMACExample(t *testing.T) {
	h := HMACSigner("gurukul-backend", "hm1", []byte("demo-secret")).Header([]byte("hello"))
	if h != "v1:gurukul-backend:hm1:hmac-sha256:LSAv2JacO6NPoZVtZ0y+jLpCXPhrY8eGQf0ZnTUOCJ0=" {
		t.Fatal(h)
	}
}
