package signer

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/knhk/knhk/shared/localaws"
)

type signer interface {
	Sign(ctx context.Context, digest []byte) ([]byte, string, error)
	SignMessage(ctx context.Context, msg []byte) ([]byte, string, error)
}

// viaMessage signs through SignMessage: the signature covers
// SHA-256(msg), the same digest roundTrip verifies.
type viaMessage struct{ s signer }

func (v viaMessage) Sign(ctx context.Context, _ []byte) ([]byte, string, error) {
	return v.s.SignMessage(ctx, []byte("tree head"))
}
func (v viaMessage) SignMessage(ctx context.Context, m []byte) ([]byte, string, error) {
	return v.s.SignMessage(ctx, m)
}

func roundTrip(t *testing.T, s signer, pubOf func() any) {
	t.Helper()
	ctx := context.Background()
	d := sha256.Sum256([]byte("tree head"))
	sig, id, err := s.Sign(ctx, d[:])
	if err != nil || id == "" {
		t.Fatalf("sign: %v %q", err, id)
	}
	pub := pubOf()
	// The public key survives a PEM round trip and verifies offline.
	p, err := EncodePublicKeyPEM(pub)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePublicKeyPEM(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyDigest(back, d[:], sig); err != nil {
		t.Fatalf("verify: %v", err)
	}
	other := sha256.Sum256([]byte("another head"))
	if err := VerifyDigest(back, other[:], sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("signature verified another digest: %v", err)
	}
	bad := append([]byte(nil), sig...)
	bad[len(bad)-1] ^= 1
	if VerifyDigest(back, d[:], bad) == nil {
		t.Fatal("altered signature verified")
	}
	if _, isVia := s.(viaMessage); !isVia {
		if _, _, err := s.Sign(ctx, []byte("short")); err == nil {
			t.Fatal("non-digest input signed")
		}
	}
}

func TestLocal(t *testing.T) {
	l, err := NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, l, func() any { p, _ := l.PublicKey(context.Background()); return p })
	id, _ := KeyID(&l.key.PublicKey)
	if len(id) != 64 || id != l.id {
		t.Fatalf("key id %q", id)
	}
	l2, _ := NewLocal()
	if l2.id == l.id {
		t.Fatal("two keys share a fingerprint")
	}
}

func TestKMS(t *testing.T) {
	ep := localaws.StartT(t)
	ctx := context.Background()
	cfg, err := ep.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := kms.NewFromConfig(cfg)
	key, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify})
	if err != nil {
		t.Fatal(err)
	}
	k := NewKMS(c, aws.ToString(key.KeyMetadata.KeyId))
	pub := func() any {
		p, err := k.PublicKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	roundTrip(t, viaMessage{k}, pub)
	// MessageType DIGEST: real KMS signs the digest itself. An endpoint that
	// hashes it again must be reported, never passed off as a signature.
	d := sha256.Sum256([]byte("tree head"))
	sig, _, err := k.Sign(ctx, d[:])
	switch {
	case errors.Is(err, ErrDigestNotHonored):
		t.Logf("endpoint ignores MessageType DIGEST: %v", err)
	case err != nil:
		t.Fatal(err)
	default:
		if err := VerifyDigest(pub(), d[:], sig); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := k.SignMessage(ctx, make([]byte, MaxRawMessage+1)); err == nil {
		t.Fatal("oversized message sent to KMS")
	}
}

func TestParsePublicKeyPEMRejects(t *testing.T) {
	for _, s := range []string{"", "not pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
		"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"} {
		if _, err := ParsePublicKeyPEM([]byte(s)); err == nil {
			t.Errorf("accepted %q", s)
		}
	}
}
