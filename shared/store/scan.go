package store

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/knhk/knhk/shared/meter"
	"github.com/knhk/knhk/shared/receipt"
)

// EachChain reads the whole receipts table (a paginated Scan) and calls fn
// with each case's receipts in order and the billed sizes of the items that
// store them (one per segment or single-receipt item, meter.ItemSize), which
// price the chain's own writes. Receipts that do not decode are skipped and
// counted in bad; a chain's integrity is the caller's to check.
func (s *Receipts) EachChain(ctx context.Context, fn func(caseID string, rs []*receipt.Receipt, items []int) error) (bad int, err error) {
	chains := map[string][]*receipt.Receipt{}
	sizes := map[string][]int{}
	var order []string
	p := dynamodb.NewScanPaginator(s.db, &dynamodb.ScanInput{TableName: aws.String(s.table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return bad, fmt.Errorf("scan receipts: %w", err)
		}
		for _, it := range page.Items {
			rs, fs := itemReceipts(it)
			bad += len(fs)
			for _, r := range rs {
				if _, ok := chains[r.CaseID]; !ok {
					order = append(order, r.CaseID)
				}
				chains[r.CaseID] = append(chains[r.CaseID], r)
			}
			if len(rs) > 0 {
				sizes[rs[0].CaseID] = append(sizes[rs[0].CaseID], meter.ItemSize(it))
			}
		}
	}
	for _, id := range order {
		rs := chains[id]
		slices.SortFunc(rs, func(a, b *receipt.Receipt) int { return cmp.Compare(a.Seq, b.Seq) })
		if err := fn(id, rs, sizes[id]); err != nil {
			return bad, err
		}
	}
	return bad, nil
}

// StoredSize is the size DynamoDB would bill for r stored as an item of its
// own, the layout before segments (0 when r does not encode). Chains are
// priced from their real items (EachChain, StoredChain); this measures what
// one item per receipt would have cost.
func StoredSize(r *receipt.Receipt) int {
	it, err := Item(r)
	if err != nil {
		return 0
	}
	return meter.ItemSize(it)
}
