// Package signer signs checkpoint digests with an ECDSA P-256 key, either
// an AWS KMS asymmetric key (ECC_NIST_P256, SIGN_VERIFY) or an in-memory
// key; both satisfy checkpoint.Signer. The offline verification helpers
// here forward to package checkpoint.
package signer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/knhk/knhk/shared/receipt/checkpoint"
)

// KMSClient is the part of the KMS client the signer uses.
type KMSClient interface {
	Sign(ctx context.Context, in *kms.SignInput, optFns ...func(*kms.Options)) (*kms.SignOutput, error)
	GetPublicKey(ctx context.Context, in *kms.GetPublicKeyInput, optFns ...func(*kms.Options)) (*kms.GetPublicKeyOutput, error)
}

// KMS signs 32-byte SHA-256 digests with a KMS key using ECDSA_SHA_256 and
// message type DIGEST. Signatures are ASN.1 DER.
type KMS struct {
	client KMSClient
	keyID  string

	mu  sync.Mutex
	pub crypto.PublicKey
}

// NewKMS returns a signer for the KMS key (id, ARN or alias).
func NewKMS(client KMSClient, keyID string) *KMS { return &KMS{client: client, keyID: keyID} }

// ErrDigestNotHonored means the KMS endpoint returned a signature that is
// not over the digest it was given: it ignored MessageType DIGEST and
// hashed the digest again, as some emulators do. SignMessage avoids this.
var ErrDigestNotHonored = errors.New("kms endpoint did not sign the digest as a digest")

// MaxRawMessage is the largest message KMS signs with MessageType RAW.
const MaxRawMessage = 4096

// Sign signs a SHA-256 digest (MessageType DIGEST) and returns the
// signature and the key's ARN. The signature is checked against the public
// key before it is returned.
func (k *KMS) Sign(ctx context.Context, digest []byte) ([]byte, string, error) {
	if len(digest) != sha256.Size {
		return nil, "", fmt.Errorf("sign: digest has %d bytes, want %d", len(digest), sha256.Size)
	}
	sig, arn, err := k.sign(ctx, digest, types.MessageTypeDigest)
	if err != nil {
		return nil, "", err
	}
	if err := k.check(ctx, digest, sig); err != nil {
		again := sha256.Sum256(digest)
		if k.check(ctx, again[:], sig) == nil {
			return nil, "", fmt.Errorf("kms sign with %s: %w", k.keyID, ErrDigestNotHonored)
		}
		return nil, "", err
	}
	return sig, arn, nil
}

// SignMessage signs msg (at most MaxRawMessage bytes) with MessageType RAW:
// KMS computes SHA-256(msg) and signs that, so the signature verifies with
// VerifyDigest over SHA-256(msg) exactly like Sign over that digest.
func (k *KMS) SignMessage(ctx context.Context, msg []byte) ([]byte, string, error) {
	if len(msg) == 0 || len(msg) > MaxRawMessage {
		return nil, "", fmt.Errorf("sign: message of %d bytes, want 1..%d", len(msg), MaxRawMessage)
	}
	sig, arn, err := k.sign(ctx, msg, types.MessageTypeRaw)
	if err != nil {
		return nil, "", err
	}
	d := sha256.Sum256(msg)
	if err := k.check(ctx, d[:], sig); err != nil {
		return nil, "", err
	}
	return sig, arn, nil
}

func (k *KMS) sign(ctx context.Context, msg []byte, mt types.MessageType) ([]byte, string, error) {
	out, err := k.client.Sign(ctx, &kms.SignInput{
		KeyId:            aws.String(k.keyID),
		Message:          msg,
		MessageType:      mt,
		SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256,
	})
	if err != nil {
		return nil, "", fmt.Errorf("kms sign with %s: %w", k.keyID, err)
	}
	return out.Signature, aws.ToString(out.KeyId), nil
}

// check verifies a signature KMS returned against the key's public half.
func (k *KMS) check(ctx context.Context, digest, sig []byte) error {
	pub, err := k.PublicKey(ctx)
	if err != nil {
		return err
	}
	if err := VerifyDigest(pub, digest, sig); err != nil {
		return fmt.Errorf("kms sign with %s: %w", k.keyID, err)
	}
	return nil
}

// PublicKey fetches (once) and returns the key's public half.
func (k *KMS) PublicKey(ctx context.Context) (crypto.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.pub != nil {
		return k.pub, nil
	}
	out, err := k.client.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(k.keyID)})
	if err != nil {
		return nil, fmt.Errorf("kms public key of %s: %w", k.keyID, err)
	}
	pub, err := x509.ParsePKIXPublicKey(out.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("kms public key of %s: %w", k.keyID, err)
	}
	if _, ok := pub.(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("kms key %s is not an ECDSA key", k.keyID)
	}
	k.pub = pub
	return pub, nil
}

// Local signs with an in-memory ECDSA key: for tests and offline tools.
type Local struct {
	key *ecdsa.PrivateKey
	id  string
}

// NewLocal generates a fresh P-256 key.
func NewLocal() (*Local, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return LocalFromKey(key)
}

// LocalFromKey wraps an existing P-256 key.
func LocalFromKey(key *ecdsa.PrivateKey) (*Local, error) {
	id, err := KeyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Local{key: key, id: id}, nil
}

// SignMessage signs SHA-256(msg), like KMS.SignMessage.
func (l *Local) SignMessage(ctx context.Context, msg []byte) ([]byte, string, error) {
	d := sha256.Sum256(msg)
	return l.Sign(ctx, d[:])
}

// Sign signs a SHA-256 digest; the key id is the key's fingerprint.
func (l *Local) Sign(_ context.Context, digest []byte) ([]byte, string, error) {
	if len(digest) != sha256.Size {
		return nil, "", fmt.Errorf("sign: digest has %d bytes, want %d", len(digest), sha256.Size)
	}
	sig, err := ecdsa.SignASN1(rand.Reader, l.key, digest)
	if err != nil {
		return nil, "", fmt.Errorf("sign: %w", err)
	}
	return sig, l.id, nil
}

// PublicKey returns the public half of the key.
func (l *Local) PublicKey(context.Context) (crypto.PublicKey, error) { return &l.key.PublicKey, nil }

// ErrBadSignature is returned when a signature does not verify.
var ErrBadSignature = checkpoint.ErrBadSignature

// VerifyDigest checks an ASN.1 DER ECDSA signature over a SHA-256 digest.
func VerifyDigest(pub crypto.PublicKey, digest, sig []byte) error {
	return checkpoint.VerifyDigest(pub, digest, sig)
}

// KeyID is a public key's fingerprint: hex SHA-256 of its PKIX DER form.
func KeyID(pub crypto.PublicKey) (string, error) { return checkpoint.KeyID(pub) }

// EncodePublicKeyPEM encodes a public key as a PEM "PUBLIC KEY" block.
func EncodePublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	return checkpoint.EncodePublicKeyPEM(pub)
}

// ParsePublicKeyPEM decodes a PEM "PUBLIC KEY" block holding an ECDSA key.
func ParsePublicKeyPEM(b []byte) (crypto.PublicKey, error) { return checkpoint.ParsePublicKeyPEM(b) }
