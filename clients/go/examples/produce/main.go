// Worked example: one Ed25519-signed and one HMAC-signed intent (accepted) and one signed
// before it was re-serialised (rejected SIGNATURE_INVALID), each decision read back through the
// read API with the product's own token. Configuration from the environment, SASL/TLS included:
//
//	BUCKET_BROKERS, BUCKET_KAFKA_SECURITY_PROTOCOL (PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL),
//	BUCKET_KAFKA_SASL_MECHANISM (SCRAM-SHA-512|SCRAM-SHA-256|PLAIN), BUCKET_KAFKA_SASL_USERNAME,
//	BUCKET_KAFKA_SASL_PASSWORD, BUCKET_KAFKA_SSL_CA, BUCKET_REGISTRY_URL, BUCKET_INTENTS_TOPIC,
//	BUCKET_PRODUCT (ai_assistant), BUCKET_KEYS_DIR (../../deploy/demo/keys, from clients/go),
//	BUCKET_API_URL and BUCKET_API_TOKEN (unset URL: produce only).
//
// Prints one JSON line per intent.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"bhiv-bucket/clients/go/bucket"
)

// Line is what the example prints per intent.
type Line struct {
	Client        string   `json:"client"`
	Case          string   `json:"case"`
	IntentID      string   `json:"intent_id"`
	ProductID     string   `json:"product_id"`
	Partition     int32    `json:"partition"`
	Offset        int64    `json:"offset"`
	ExpectOutcome string   `json:"expect_outcome"`
	ExpectReasons []string `json:"expect_reasons"`
	Outcome       string   `json:"outcome,omitempty"`
	Reasons       []string `json:"reasons,omitempty"`
	Version       *int64   `json:"version,omitempty"`
}

func env(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func randomHex() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func run(ctx context.Context, out io.Writer) ([]Line, error) {
	product := env("BUCKET_PRODUCT", "ai_assistant")
	integration := product + "-backend"
	// Relative to clients/go, where `go run ./examples/produce` runs.
	keys := env("BUCKET_KEYS_DIR", filepath.Join("..", "..", "deploy", "demo", "keys"))
	ed, err := bucket.SignerFromKeyFile(filepath.Join(keys, integration+".ed1.ed25519"))
	if err != nil {
		return nil, err
	}
	hm, err := bucket.SignerFromKeyFile(filepath.Join(keys, integration+".hm1.hmac"))
	if err != nil {
		return nil, err
	}
	schemaID, err := bucket.SchemaIDFromRegistry(ctx, env("BUCKET_REGISTRY_URL", "http://127.0.0.1:8081/apis/ccompat/v7"))
	if err != nil {
		return nil, err
	}
	p, err := bucket.NewProducer(bucket.SettingsFromEnv(), env("BUCKET_INTENTS_TOPIC", "bucket.intents"), schemaID)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	intent := func(name string) *bucket.Intent {
		content := []byte("Hello from the Go client (" + name + ").")
		return &bucket.Intent{
			IntentID: newUUID(), ProductID: product, IntegrationID: integration,
			OwnerID: "go-example", RequesterID: "go-example",
			ArtifactID: "go-" + name + "-" + randomHex(), ArtifactClass: "document",
			Operation: "CREATE", Content: &content, ContentType: "text/plain",
			Metadata: `{"lang":"en","client":"go"}`, Purpose: "client library worked example",
			ClientTime: bucket.NowMs(),
		}
	}
	var lines []Line
	add := func(c string, s bucket.Sent, outcome string, reasons []string) {
		lines = append(lines, Line{Client: "go", Case: c, IntentID: s.IntentID, ProductID: s.ProductID,
			Partition: s.Partition, Offset: s.Offset, ExpectOutcome: outcome, ExpectReasons: reasons})
	}
	for _, c := range []struct {
		name   string
		signer *bucket.Signer
	}{{"ed25519", ed}, {"hmac", hm}} {
		s, err := p.Send(ctx, intent(c.name), c.signer)
		if err != nil {
			return nil, err
		}
		add(c.name, s, "ACCEPTED", []string{})
	}
	// Signed, then re-serialised with another purpose: not the signed bytes, refused.
	bad := intent("tampered")
	signed, err := p.Value(bad)
	if err != nil {
		return nil, err
	}
	header := ed.Header(signed)
	bad.Purpose = "changed after signing"
	tampered, err := p.Value(bad)
	if err != nil {
		return nil, err
	}
	s, err := p.SendValue(ctx, product, bad.IntentID, tampered, []string{header})
	if err != nil {
		return nil, err
	}
	add("tampered", s, "REJECTED", []string{"SIGNATURE_INVALID"})

	var receipts *bucket.Receipts
	if api := os.Getenv("BUCKET_API_URL"); api != "" {
		receipts = &bucket.Receipts{APIURL: api, Token: os.Getenv("BUCKET_API_TOKEN")}
	}
	for n := range lines {
		if receipts != nil {
			wait, cancel := context.WithTimeout(ctx, 90*time.Second)
			r, err := receipts.Wait(wait, product, lines[n].IntentID)
			cancel()
			if err != nil {
				return nil, err
			}
			lines[n].Outcome, lines[n].Reasons, lines[n].Version = r.Outcome, r.Reasons, r.Version
		}
		b, _ := json.Marshal(lines[n])
		fmt.Fprintln(out, string(b))
	}
	return lines, nil
}

func main() {
	lines, err := run(context.Background(), os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, l := range lines {
		if l.Outcome != "" && l.Outcome != l.ExpectOutcome {
			fmt.Fprintf(os.Stderr, "%s: got %s %v\n", l.Case, l.Outcome, l.Reasons)
			os.Exit(1)
		}
	}
}
