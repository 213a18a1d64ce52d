package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/receipt"
)

// PutSegment writes rs, consecutive linked receipts already made (a
// restore from the archive), as one segment item if its position is
// absent, exactly as AppendSegment stores them. It reports whether it
// wrote: an item already there holding the same receipts (same hashes at
// the same seqs) is not written again; any other item there is
// ErrConflict and stays as it is.
func (s *Receipts) PutSegment(ctx context.Context, rs []*receipt.Receipt) (bool, error) {
	if len(rs) == 0 {
		return false, nil
	}
	var res Appended
	_, err := s.put(ctx, rs, &res)
	if err == nil {
		return true, nil
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return false, fmt.Errorf("restore %s seq %d: %w", rs[0].CaseID, rs[0].Seq, err)
	}
	taken, _, err := s.at(ctx, rs[0].CaseID, rs[0].Seq, &res)
	if err != nil {
		return false, err
	}
	if len(taken) != len(rs) {
		return false, fmt.Errorf("restore %s seq %d: %w: the item there holds %d receipts, not %d", rs[0].CaseID, rs[0].Seq, ErrConflict, len(taken), len(rs))
	}
	for i := range rs {
		if taken[i].Seq != rs[i].Seq || taken[i].Hash != rs[i].Hash {
			return false, fmt.Errorf("restore %s seq %d: %w: stored hash %s, archived %s", rs[i].CaseID, rs[i].Seq, ErrConflict, taken[i].Hash, rs[i].Hash)
		}
	}
	return false, nil
}
