package cost

import (
	"fmt"
	"math/big"
)

// ArchiveCase is what the archiver does to archive one ended case
// (shared/archiver): the requests and the stored bytes the archive price
// counts. Sizes are in bytes.
type ArchiveCase struct {
	// ObjectBytes is the archive object's size.
	ObjectBytes int64
	// Payloads is the number of detached payloads read back from the
	// payloads bucket to embed them (one GET each).
	Payloads int
	// ItemBytes are the sizes of the case's receipt items: each is read by
	// the chain query and by the expiry's key query, and updated once with
	// its time to live.
	ItemBytes []int64
	// IndexBytes is the size of the archive index item written once.
	IndexBytes int64
	// RetentionMonths is how long the object is stored (under Object Lock
	// it cannot be deleted sooner).
	RetentionMonths int64
}

// ArchivePerCase is the price of archiving one case, by part.
type ArchivePerCase struct {
	// Puts is the archive object's PUT; Gets its read-back and the
	// payloads' GETs; Storage the object over the retention; Writes the
	// index item and the time-to-live updates; Reads the index check, the
	// watermark read, the chain query and the expiry's key query.
	Puts, Gets, Storage, Writes, Reads *big.Rat
	// WriteUnits and ReadUnits are the DynamoDB request units behind
	// Writes and Reads.
	WriteUnits, ReadUnits int64
	Total                 *big.Rat
}

// bytesPerGB is the gigabyte S3 bills storage in (2^30 bytes).
var bytesPerGB = big.NewRat(1<<30, 1)

// requestUnits is how many request units of unit bytes n bytes take (at least one).
func requestUnits(n, unit int64) int64 { return max((n+unit-1)/unit, 1) }

// ArchiveCost prices archiving c with t's rates: one S3 PUT of the object
// (no LIST: the archiver walks the checkpoint log, not the bucket), one GET
// of the version written and one per detached payload, S3 Standard storage
// for RetentionMonths, and DynamoDB on demand: a write unit per started KB
// of the index item and of each receipt item updated (an update is billed
// for the larger of the item before and after it, the item itself: the
// expiry attribute adds a few bytes), strongly consistent reads of a unit
// per started 4 KB (the index check and the watermark read one each, the
// chain query and the key query the sum of the items each). KMS is left
// out: the buckets use an S3 Bucket Key, so requests to KMS are per data
// key, not per object. It fails on a case without receipt items or a
// non-positive size.
func (t *Table) ArchiveCost(c ArchiveCase) (ArchivePerCase, error) {
	if c.ObjectBytes <= 0 || c.IndexBytes <= 0 || len(c.ItemBytes) == 0 || c.RetentionMonths <= 0 || c.Payloads < 0 {
		return ArchivePerCase{}, fmt.Errorf("archive cost: object %d bytes, index item %d bytes, %d receipt items, %d months, %d payloads: want positive sizes, items and months",
			c.ObjectBytes, c.IndexBytes, len(c.ItemBytes), c.RetentionMonths, c.Payloads)
	}
	var items int64
	wu := requestUnits(c.IndexBytes, 1<<10)
	for _, b := range c.ItemBytes {
		if b <= 0 {
			return ArchivePerCase{}, fmt.Errorf("archive cost: a receipt item of %d bytes", b)
		}
		wu += requestUnits(b, 1<<10)
		items += b
	}
	ru := 2 + 2*requestUnits(items, 4<<10)
	mul := func(q int64, u Unit) *big.Rat { return new(big.Rat).Mul(ratInt(q), t.Rate(u)) }
	gbMonths := new(big.Rat).Quo(ratInt(c.ObjectBytes*c.RetentionMonths), bytesPerGB)
	p := ArchivePerCase{
		Puts:       mul(1, S3Put),
		Gets:       mul(1+int64(c.Payloads), S3Get),
		Storage:    new(big.Rat).Mul(gbMonths, t.Rate(S3StorageGBMonth)),
		Writes:     mul(wu, DynamoWriteUnit),
		Reads:      mul(ru, DynamoReadUnit),
		WriteUnits: wu,
		ReadUnits:  ru,
	}
	p.Total = new(big.Rat)
	for _, x := range []*big.Rat{p.Puts, p.Gets, p.Storage, p.Writes, p.Reads} {
		p.Total.Add(p.Total, x)
	}
	return p, nil
}
