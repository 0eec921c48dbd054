package bucket

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// KafkaSettings says where and how to reach Kafka, SASL and TLS included.
type KafkaSettings struct {
	Brokers          []string
	SecurityProtocol string // PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
	SASLMechanism    string // SCRAM-SHA-512, SCRAM-SHA-256, PLAIN
	SASLUsername     string
	SASLPassword     string
	CAFile           string // PEM CA of the brokers' certificates (TLS)
}

// SettingsFromEnv reads BUCKET_BROKERS, BUCKET_KAFKA_SECURITY_PROTOCOL, BUCKET_KAFKA_SASL_MECHANISM,
// BUCKET_KAFKA_SASL_USERNAME, BUCKET_KAFKA_SASL_PASSWORD and BUCKET_KAFKA_SSL_CA.
func SettingsFromEnv() KafkaSettings {
	get := func(k, d string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return d
	}
	return KafkaSettings{
		Brokers:          strings.Split(get("BUCKET_BROKERS", "127.0.0.1:9092"), ","),
		SecurityProtocol: get("BUCKET_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
		SASLMechanism:    os.Getenv("BUCKET_KAFKA_SASL_MECHANISM"),
		SASLUsername:     os.Getenv("BUCKET_KAFKA_SASL_USERNAME"),
		SASLPassword:     ResolveSecret(os.Getenv("BUCKET_KAFKA_SASL_PASSWORD")),
		CAFile:           os.Getenv("BUCKET_KAFKA_SSL_CA"),
	}
}

// ResolveSecret reads a secret given as file:PATH (trimmed text) or env:NAME, else returns it as
// is (the gate's own settings accept only the two reference forms; docs/security.md).
func ResolveSecret(v string) string {
	switch {
	case strings.HasPrefix(v, "file:"):
		b, err := os.ReadFile(v[5:])
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	case strings.HasPrefix(v, "env:"):
		return os.Getenv(v[4:])
	}
	return v
}

// Options are the franz-go options of a gate-conformant producer: murmur2 partitioning of the
// key (StickyKeyPartitioner(nil) hashes keys with Kafka's murmur2), acks=all with idempotence
// (franz-go's default), 20 MiB records, and SASL/TLS from the settings.
func (s KafkaSettings) Options() ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(s.Brokers...),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(20971520),
		kgo.MaxBufferedBytes(64 << 20),
	}
	proto := strings.ToUpper(s.SecurityProtocol)
	if proto == "SSL" || proto == "SASL_SSL" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.CAFile != "" {
			pemText, err := os.ReadFile(s.CAFile)
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pemText) {
				return nil, fmt.Errorf("%s: no certificate", s.CAFile)
			}
			cfg.RootCAs = pool
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if strings.HasPrefix(proto, "SASL_") {
		switch strings.ToUpper(s.SASLMechanism) {
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.SASLUsername, Pass: s.SASLPassword}.AsSha512Mechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: s.SASLUsername, Pass: s.SASLPassword}.AsSha256Mechanism()))
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: s.SASLUsername, Pass: s.SASLPassword}.AsMechanism()))
		default:
			return nil, fmt.Errorf("unsupported SASL mechanism %q", s.SASLMechanism)
		}
	}
	return opts, nil
}

// SchemaIDFromRegistry looks up (never registers) the approved intent schema's id.
func SchemaIDFromRegistry(ctx context.Context, registryURL string) (uint32, error) {
	u := strings.TrimRight(registryURL, "/") + "/subjects/" + Subject + "/versions/latest"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("registry %s: HTTP %d", u, resp.StatusCode)
	}
	var body struct {
		ID uint32 `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	return body.ID, nil
}

// Producer produces intents to the intents topic: serialised once, signed, murmur2-partitioned.
type Producer struct {
	client   *kgo.Client
	topic    string
	schemaID uint32
}

// NewProducer connects a producer for topic with the registry's schema id.
func NewProducer(s KafkaSettings, topic string, schemaID uint32) (*Producer, error) {
	opts, err := s.Options()
	if err != nil {
		return nil, err
	}
	c, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	return &Producer{client: c, topic: topic, schemaID: schemaID}, nil
}

// Close flushes and closes the client.
func (p *Producer) Close() { p.client.Close() }

// Value is the record value of an intent: the Confluent frame around its Avro body.
func (p *Producer) Value(i *Intent) ([]byte, error) {
	body, err := EncodeBody(i)
	if err != nil {
		return nil, err
	}
	return Frame(p.schemaID, body), nil
}

// Sent says where a record landed (the broker has it; the decision comes later).
type Sent struct {
	IntentID  string
	ProductID string
	Partition int32
	Offset    int64
	Value     []byte
}

// Send serialises, signs and produces one intent; returns once the broker has it.
func (p *Producer) Send(ctx context.Context, i *Intent, s *Signer) (Sent, error) {
	v, err := p.Value(i)
	if err != nil {
		return Sent{}, err
	}
	return p.SendValue(ctx, i.ProductID, i.IntentID, v, []string{s.Header(v)})
}

// SendValue produces already-built value bytes with the given signature headers (demos, tests).
func (p *Producer) SendValue(ctx context.Context, product, intentID string, value []byte, signatures []string) (Sent, error) {
	r := &kgo.Record{Topic: p.topic, Key: []byte(product), Value: value}
	for _, h := range signatures {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: SignatureHeader, Value: []byte(h)})
	}
	got, err := p.client.ProduceSync(ctx, r).First()
	if err != nil {
		return Sent{}, err
	}
	return Sent{IntentID: intentID, ProductID: product, Partition: got.Partition, Offset: got.Offset, Value: value}, nil
}

// Receipt is the gate's answer to one intent, as the read API gives it to the intent's product.
type Receipt struct {
	Outcome   string   `json:"outcome"`
	Reasons   []string `json:"reasons"`
	Version   *int64   `json:"version"`
	IntentID  string   `json:"intent_id"`
	ProductID string   `json:"product_id"`
}

// Receipts reads decision receipts from the read API with the product's bearer token.
type Receipts struct {
	APIURL string
	Token  string
	HTTP   *http.Client
}

// ErrUndecided is returned by Get while the intent has no decision yet (HTTP 404).
var ErrUndecided = errors.New("not decided yet")

// Get returns the receipt, or ErrUndecided.
func (r *Receipts) Get(ctx context.Context, product, intentID string) (*Receipt, error) {
	u := fmt.Sprintf("%s/v1/products/%s/decisions/%s", strings.TrimRight(r.APIURL, "/"),
		url.PathEscape(product), url.PathEscape(intentID))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+r.Token)
	c := r.HTTP
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var out Receipt
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			return nil, err
		}
		return &out, nil
	case http.StatusNotFound:
		return nil, ErrUndecided
	default:
		return nil, fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
}

// Wait polls Get until the intent is decided or ctx ends.
func (r *Receipts) Wait(ctx context.Context, product, intentID string) (*Receipt, error) {
	for {
		got, err := r.Get(ctx, product, intentID)
		if err == nil {
			return got, nil
		}
		if !errors.Is(err, ErrUndecided) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no decision for %s/%s: %w", product, intentID, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
