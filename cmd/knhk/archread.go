package main

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/knhk/knhk/shared/archive"
	"github.com/knhk/knhk/shared/objects"
	"github.com/knhk/knhk/shared/receipt"
	"github.com/knhk/knhk/shared/stack"
	"github.com/knhk/knhk/shared/store"
)

// Where the chain a reading command shows came from.
const (
	sourceTable   = "table"
	sourceArchive = "archive"
)

// Errors of readCase.
var (
	errCaseNotFound   = errors.New("not found")
	errArchiveRefused = errors.New("archive object refused")
	errNotIndexed     = errors.New("the archive object is not the one the archive index recorded")
)

// archiveNeeded reports whether a case's archive object must be read: unless
// the table's chain runs from seq 0 without a gap and every item decodes
// and, when the archive index lists the case (s), ends at the archived head
// (same seq and hash; VerifyChain then checks the links up to it). Otherwise
// TTL, or worse, removed or changed part of the chain.
func archiveNeeded(table []*receipt.Receipt, malformed int, s archive.Summary, indexed bool) bool {
	if malformed > 0 || len(table) == 0 {
		return true
	}
	for i, r := range table {
		if r.Seq != int64(i) {
			return true
		}
	}
	last := table[len(table)-1]
	return indexed && (last.Seq != s.HeadSeq || last.Hash != s.HeadHash)
}

// resolved is the chain a reading command shows, where it came from, and
// where the receipts table disagrees with the archive.
type resolved struct {
	Source   string
	Receipts []*receipt.Receipt
	Findings []receipt.Finding
}

// resolveChain decides between the receipts table's chain (table, in seq
// order, possibly partial) and the verified archived chain (archived, nil
// when the case has no archive object). Without an archive the table's
// chain is shown as it is. With one, every table receipt must be the
// archived receipt at its seq: when all are and the table holds the whole
// chain, the table is the source; when the table holds only part of it
// (its time to live removed the rest), the archive is. A table receipt that
// differs from the archived one, or that follows the archived terminal
// head, is an ArchiveMismatch finding and the archived chain, the one a
// checkpoint signed, is shown: the two are never merged.
func resolveChain(caseID string, table, archived []*receipt.Receipt) resolved {
	if archived == nil {
		return resolved{Source: sourceTable, Receipts: table}
	}
	r := resolved{Source: sourceArchive, Receipts: archived}
	head := archived[len(archived)-1]
	for _, t := range table {
		f := receipt.Finding{Kind: receipt.ArchiveMismatch, Tenant: t.Tenant, CaseID: caseID, Seq: t.Seq, Actual: t.Hash}
		switch {
		case t.Seq < 0 || t.Seq > head.Seq:
			f.Detail = fmt.Sprintf("the receipts table holds seq %d, past the archived terminal head at seq %d", t.Seq, head.Seq)
		case archived[t.Seq].Hash != t.Hash:
			f.Expected = archived[t.Seq].Hash
			f.Detail = "the receipts table's receipt differs from the archived one"
		default:
			continue
		}
		r.Findings = append(r.Findings, f)
	}
	if len(r.Findings) == 0 && len(table) == len(archived) {
		r.Source = sourceTable
		r.Receipts = table
	}
	return r
}

// checkArchived decodes and verifies an archive object read for caseID with
// the checkpoint public key: format, chain, payloads, inclusion in its
// signed tree head and the signature; and, when the archive index recorded
// it (indexed), that it is the object the index describes.
func checkArchived(data []byte, caseID string, s archive.Summary, indexed bool, pub crypto.PublicKey) (*archive.Archive, error) {
	a, err := archive.Decode(data)
	if err != nil {
		return nil, err
	}
	if err := archive.Verify(a, pub); err != nil {
		return nil, err
	}
	if a.CaseID != caseID {
		return nil, fmt.Errorf("the object archives case %s", a.CaseID)
	}
	if !indexed {
		return a, nil
	}
	sum := sha256.Sum256(data)
	switch {
	case hex.EncodeToString(sum[:]) != s.SHA256:
		return nil, fmt.Errorf("%w: SHA-256 %x, the index recorded %s", errNotIndexed, sum, s.SHA256)
	case a.Tenant != s.Tenant || a.Proof.Leaf.Seq != s.HeadSeq || a.Proof.Leaf.Hash != s.HeadHash:
		return nil, fmt.Errorf("%w: head %s seq %d of tenant %s, the index recorded %s seq %d of tenant %s",
			errNotIndexed, a.Proof.Leaf.Hash, a.Proof.Leaf.Seq, a.Tenant, s.HeadHash, s.HeadSeq, s.Tenant)
	}
	return a, nil
}

// caseChain is a case's chain as the reading commands show it.
type caseChain struct {
	resolved
	// Bad are the table's items that do not decode (Malformed findings).
	Bad []receipt.Finding
	// Archive is the verified archive object when one was read; Object
	// names it (s3://bucket/key and the version read) when it is the
	// source.
	Archive *archive.Archive
	Object  string
}

// findings are every finding of the read: undecodable table items and
// disagreements between the table and the archive.
func (c *caseChain) findings() []receipt.Finding {
	return append(slices.Clone(c.Bad), c.Findings...)
}

// sourceLine says where the chain came from, for text output.
func (c *caseChain) sourceLine() string {
	if c.Source == sourceArchive {
		return "archive " + c.Object + " (verified)"
	}
	return "receipts table"
}

// readCase reads a case's chain from the receipts table and, when the
// table does not hold all of it (or not the archived head), from the
// archive object the archive index names (by the recorded version), or from the
// object's deterministic key when the index entry is gone. An archive
// object is verified before anything of it is used; one that does not
// verify is refused (exit 3). A case in neither is not found (exit 2).
// Stacks without an archive bucket read the table only.
func readCase(ctx context.Context, cfg aws.Config, res stack.Resources, chains *store.Receipts, caseID string) (*caseChain, error) {
	rs, bad, err := chains.Chain(ctx, caseID)
	if err != nil {
		return nil, err
	}
	c := &caseChain{Bad: bad}
	var archived []*receipt.Receipt
	if res.StateTable != "" && res.ArchiveBucket != "" {
		if c.Archive, c.Object, err = readArchive(ctx, cfg, res, caseID, rs, len(bad)); err != nil {
			return nil, err
		}
		if c.Archive != nil {
			archived = c.Archive.Receipts
		}
	}
	c.resolved = resolveChain(caseID, rs, archived)
	if c.Source == sourceTable {
		c.Object = "" // the table holds the whole chain, and it agrees with the archive
	}
	if len(c.Receipts) == 0 && len(bad) == 0 {
		return nil, withExit(2, fmt.Errorf("case %s %w: no receipts in the table and no archive object", caseID, errCaseNotFound))
	}
	return c, nil
}

// readArchive reads and verifies the case's archive object when
// archiveNeeded says so; nil when the case has none.
func readArchive(ctx context.Context, cfg aws.Config, res stack.Resources, caseID string, table []*receipt.Receipt, malformed int) (*archive.Archive, string, error) {
	s, indexed, err := store.NewArchives(dynamodb.NewFromConfig(cfg), res.StateTable).Archived(ctx, caseID)
	if err != nil {
		return nil, "", err
	}
	if !archiveNeeded(table, malformed, s, indexed) {
		return nil, "", nil
	}
	bucket := objects.NewVersioned(objects.NewClient(cfg), res.ArchiveBucket)
	var data []byte
	key, version := s.Key, s.VersionID
	if indexed {
		if data, err = bucket.Get(ctx, key, version, archive.MaxSize); err != nil {
			if errors.Is(err, objects.ErrNotFound) {
				return nil, "", withExit(exitTampered, fmt.Errorf("case %s: the archive index names s3://%s/%s version %s: %w", caseID, bucket.Name(), key, version, err))
			}
			return nil, "", fmt.Errorf("case %s: read archive object: %w", caseID, err)
		}
	} else if key, data, err = findArchived(ctx, bucket, caseID, table); err != nil || data == nil {
		return nil, "", err
	}
	obj := "s3://" + bucket.Name() + "/" + key
	if version != "" {
		obj += " version " + version
	} else {
		obj += " (latest version; the archive index has no entry)"
	}
	if res.CheckpointKeyID == "" {
		return nil, "", withExit(2, fmt.Errorf("case %s is archived in %s: verifying it needs the checkpoint key: deploy the stack or set %s",
			caseID, obj, stack.EnvName(stack.OutCheckpointKeyID)))
	}
	pub, err := kmsKey(ctx, cfg, res)
	if err != nil {
		return nil, "", fmt.Errorf("case %s: checkpoint public key: %w", caseID, err)
	}
	a, err := checkArchived(data, caseID, s, indexed, pub)
	if err != nil {
		return nil, "", withExit(exitTampered, fmt.Errorf("case %s: %w: %s: %w", caseID, errArchiveRefused, obj, err))
	}
	return a, obj, nil
}

// findArchived looks for a case's archive object at its deterministic key
// under each tenant: the table's tenant first, then every tenant the bucket
// holds archives of. It returns the key and latest version's bytes, or nil
// data when there is none.
func findArchived(ctx context.Context, bucket *objects.Versioned, caseID string, table []*receipt.Receipt) (string, []byte, error) {
	var tried []string
	try := func(tenant string) (string, []byte, error) {
		if slices.Contains(tried, tenant) {
			return "", nil, nil
		}
		tried = append(tried, tenant)
		key := archive.Key(tenant, caseID)
		data, err := bucket.Get(ctx, key, "", archive.MaxSize)
		switch {
		case errors.Is(err, objects.ErrNotFound):
			return "", nil, nil
		case err != nil:
			return "", nil, fmt.Errorf("case %s: read archive object: %w", caseID, err)
		}
		return key, data, nil
	}
	if len(table) > 0 {
		if key, data, err := try(table[0].Tenant); err != nil || data != nil {
			return key, data, err
		}
	}
	segs, err := bucket.Prefixes(ctx, archive.Prefix+"v1/")
	if err != nil {
		return "", nil, fmt.Errorf("case %s: list archived tenants: %w", caseID, err)
	}
	for _, seg := range segs {
		tenant, err := url.PathUnescape(seg)
		if err != nil {
			continue // not a key archive.Key writes
		}
		if key, data, err := try(tenant); err != nil || data != nil {
			return key, data, err
		}
	}
	return "", nil, nil
}

// archivedBlobs serves the detached payloads of a verified archive object
// and asks next for any other.
type archivedBlobs struct {
	m    map[string][]byte
	next store.BlobStore
}

// Blob returns the payload whose hash is hash.
func (b archivedBlobs) Blob(ctx context.Context, hash string) ([]byte, error) {
	if d, ok := b.m[hash]; ok {
		return d, nil
	}
	if b.next == nil {
		return nil, fmt.Errorf("blob %s: %w", hash, store.ErrNotFound)
	}
	return b.next.Blob(ctx, hash)
}

// PutBlob refuses: an archived case is read, never written.
func (b archivedBlobs) PutBlob(context.Context, receipt.Blob) error {
	return errors.New("the payloads of an archived case are read-only")
}
