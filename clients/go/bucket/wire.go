// Package bucket produces signed artifact intents to the BHIV Bucket gate and reads their
// decision receipts: a thin layer over franz-go (Kafka) and hamba/avro. The contract is
// docs/wire-contract.md; docs/conformance/vectors.json pins it byte for byte.
package bucket

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
)

// Subject is the registry subject of the approved intent schema.
const Subject = "bucket.intents-value"

// SignatureHeader is the one signature header a record carries (several: SIGNATURE_REPEATED).
const SignatureHeader = "bucket-signature"

//go:embed artifact_intent.avsc
var intentSchemaText string

// IntentSchemaText is the approved schema (a copy of schemas/artifact_intent.avsc, checked).
var IntentSchemaText = intentSchemaText

var intentSchema = avro.MustParse(intentSchemaText)

// Intent is one ArtifactIntent (schemas/artifact_intent.avsc).
type Intent struct {
	IntentID        string  `avro:"intent_id"`
	ProductID       string  `avro:"product_id"`
	IntegrationID   string  `avro:"integration_id"`
	OwnerID         string  `avro:"owner_id"`
	RequesterID     string  `avro:"requester_id"`
	ArtifactID      string  `avro:"artifact_id"`
	ArtifactClass   string  `avro:"artifact_class"`
	Operation       string  `avro:"operation"`
	ExpectedVersion *int64  `avro:"expected_version"`
	Content         *[]byte `avro:"content"`
	ContentType     string  `avro:"content_type"`
	Metadata        string  `avro:"metadata"`
	Purpose         string  `avro:"purpose"`
	// ClientTime is ms since the epoch (Avro timestamp-millis).
	ClientTime time.Time `avro:"client_time"`
}

// NowMs is the current time in ms (ClientTime must be near the gate's clock).
func NowMs() time.Time { return time.UnixMilli(time.Now().UnixMilli()) }

// EncodeBody is the Avro binary body of the intent (no Confluent header).
func EncodeBody(i *Intent) ([]byte, error) {
	return avro.Marshal(intentSchema, i)
}

// Frame is the Confluent wire format: byte 0, 4-byte big-endian schema id, the body.
func Frame(schemaID uint32, body []byte) []byte {
	out := make([]byte, 5, 5+len(body))
	binary.BigEndian.PutUint32(out[1:], schemaID)
	return append(out, body...)
}

// Murmur2 is Kafka's Utils.murmur2 (seed 0x9747b28c).
func Murmur2(data []byte) int32 {
	const m uint32 = 0x5bd1e995
	const r = 24
	h := uint32(0x9747b28c) ^ uint32(len(data))
	n := len(data) / 4
	for i := 0; i < n; i++ {
		k := binary.LittleEndian.Uint32(data[4*i:])
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	rest := data[4*n:]
	switch len(rest) {
	case 3:
		h ^= uint32(rest[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(rest[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(rest[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return int32(h)
}

// HomePartition is the partition Kafka's default partitioner picks for key (the gate checks it).
func HomePartition(key []byte, partitions int32) int32 {
	return (Murmur2(key) & 0x7fffffff) % partitions
}

// Signer signs record values for one integration key.
type Signer struct {
	IntegrationID string
	KeyID         string
	Alg           string
	sign          func([]byte) []byte
}

// Ed25519Signer signs with an Ed25519 private key.
func Ed25519Signer(integration, keyID string, key ed25519.PrivateKey) *Signer {
	return &Signer{integration, keyID, "ed25519", func(v []byte) []byte { return ed25519.Sign(key, v) }}
}

// Ed25519FromPKCS8PEM reads a PKCS#8 PEM Ed25519 private key.
func Ed25519FromPKCS8PEM(pemText []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(pemText)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	ed, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("not an Ed25519 key")
	}
	return ed, nil
}

// HMACSigner signs with an HMAC-SHA256 shared secret.
func HMACSigner(integration, keyID string, secret []byte) *Signer {
	return &Signer{integration, keyID, "hmac-sha256", func(v []byte) []byte {
		mac := hmac.New(sha256.New, secret)
		mac.Write(v)
		return mac.Sum(nil)
	}}
}

// SignerFromKeyFile reads a `<integration>.<key_id>.ed25519|hmac` file of `bucket keys generate`.
func SignerFromKeyFile(path string) (*Signer, error) {
	name := filepath.Base(path)
	parts := strings.Split(name, ".")
	if len(parts) < 3 {
		return nil, fmt.Errorf("%s: expected <integration>.<key_id>.<ed25519|hmac>", name)
	}
	ext, keyID := parts[len(parts)-1], parts[len(parts)-2]
	integration := strings.Join(parts[:len(parts)-2], ".")
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := strings.TrimSpace(string(raw))
	switch ext {
	case "ed25519":
		seed, err := base64.StdEncoding.DecodeString(text)
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("%s: not a base64 32-byte seed", name)
		}
		return Ed25519Signer(integration, keyID, ed25519.NewKeyFromSeed(seed)), nil
	case "hmac":
		return HMACSigner(integration, keyID, []byte(text)), nil
	}
	return nil, fmt.Errorf("%s: expected a .ed25519 or .hmac key file", name)
}

// Header is the bucket-signature header value over exactly value.
func (s *Signer) Header(value []byte) string {
	return fmt.Sprintf("v1:%s:%s:%s:%s", s.IntegrationID, s.KeyID, s.Alg,
		base64.StdEncoding.EncodeToString(s.sign(value)))
}
