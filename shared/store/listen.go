package store

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ListenKey is one entry of the listen index: the events of Type (empty:
// any type) whose correlation fields evaluate to the fields' values.
type ListenKey struct {
	Type   string        `json:"type,omitempty"`
	Fields []ListenField `json:"fields,omitempty"` // sorted by name
}

// ListenField is one correlation of a listen key: a jq expression over the
// event and the JSON value it must yield. In a shape (ListenShapes) the
// value is empty.
type ListenField struct {
	Name  string          `json:"name"`
	From  string          `json:"from"`
	Value json.RawMessage `json:"value,omitempty"`
}

// shape identifies a key's type and fields without their values.
func (k ListenKey) shape() string { return k.digest(false) }

// ID identifies the key with its values.
func (k ListenKey) ID() string { return k.digest(true) }

// digest hashes the key's parts, each length-prefixed so that no two keys
// share an encoding.
func (k ListenKey) digest(values bool) string {
	h := sha256.New()
	part := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	part(k.Type)
	for _, f := range k.Fields {
		part(f.Name)
		part(f.From)
		if values {
			part(string(f.Value))
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Partition keys of the listen index: a tenant's key shapes (sk: the
// shape's digest) and the cases of one key (sk: the case id). The digest is
// fixed-length hex, so a tenant containing '#' cannot alias another.
func shapesPK(tenant string) string             { return "LSK#" + tenant }
func entryPK(tenant string, k ListenKey) string { return "LSN#" + tenant + "#" + k.ID() }

func subKey(tenant, caseID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPK: s("SUB#" + tenant), AttrSK: s(caseID)}
}

// Subscribe records that a case waits for the events that match keys, and
// removes the index entries of stale keys (those it waited for before) that
// keys no longer hold. The index entries are written first and the
// subscription record last: once a case is listed as waiting
// (Subscribers), an event that matches its keys reaches it.
func (c *Cases) Subscribe(ctx context.Context, tenant, caseID string, keys, stale []ListenKey) error {
	now := s(c.now().UTC().Format(time.RFC3339Nano))
	var reqs []types.WriteRequest
	shapes, entries := map[string]bool{}, map[string]bool{}
	for _, k := range keys {
		if sh := k.shape(); !shapes[sh] {
			shapes[sh] = true
			b, err := json.Marshal(shapeOf(k))
			if err != nil {
				return fmt.Errorf("subscribe %s: encode key: %w", caseID, err)
			}
			reqs = append(reqs, put(map[string]types.AttributeValue{AttrPK: s(shapesPK(tenant)), AttrSK: s(sh), "key": s(string(b))}))
		}
		if pk := entryPK(tenant, k); !entries[pk] {
			entries[pk] = true
			reqs = append(reqs, put(map[string]types.AttributeValue{AttrPK: s(pk), AttrSK: s(caseID), "at": now}))
		}
	}
	for _, k := range stale {
		if pk := entryPK(tenant, k); !entries[pk] {
			entries[pk] = true
			reqs = append(reqs, del(map[string]types.AttributeValue{AttrPK: s(pk), AttrSK: s(caseID)}))
		}
	}
	if err := c.batchWrite(ctx, reqs); err != nil {
		return fmt.Errorf("subscribe %s: index: %w", caseID, err)
	}
	b, err := json.Marshal(keys)
	if err != nil {
		return fmt.Errorf("subscribe %s: encode keys: %w", caseID, err)
	}
	item := subKey(tenant, caseID)
	item["at"] = now
	item["keys"] = s(string(b))
	if _, err := c.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(c.table), Item: item}); err != nil {
		return fmt.Errorf("subscribe %s: %w", caseID, err)
	}
	return nil
}

// Unsubscribe removes a case's subscription and its index entries for keys.
func (c *Cases) Unsubscribe(ctx context.Context, tenant, caseID string, keys []ListenKey) error {
	reqs := []types.WriteRequest{del(subKey(tenant, caseID))}
	seen := map[string]bool{}
	for _, k := range keys {
		if pk := entryPK(tenant, k); !seen[pk] {
			seen[pk] = true
			reqs = append(reqs, del(map[string]types.AttributeValue{AttrPK: s(pk), AttrSK: s(caseID)}))
		}
	}
	if err := c.batchWrite(ctx, reqs); err != nil {
		return fmt.Errorf("unsubscribe %s: %w", caseID, err)
	}
	return nil
}

// ListenShapes returns the key shapes (type and correlation expressions,
// without values) that the tenant's cases have subscribed with: what
// delivery evaluates on an event to look its cases up. Shapes are few (one
// per distinct listen filter of the tenant's workflows) and kept after
// their cases end.
func (c *Cases) ListenShapes(ctx context.Context, tenant string) ([]ListenKey, error) {
	var out []ListenKey
	err := c.query(ctx, shapesPK(tenant), func(it map[string]types.AttributeValue) error {
		var k ListenKey
		if err := json.Unmarshal([]byte(attrS(it, "key")), &k); err != nil {
			return fmt.Errorf("decode listen key %s: %w", attrS(it, AttrSK), err)
		}
		out = append(out, k)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listen shapes of %s: %w", tenant, err)
	}
	return out, nil
}

// Listeners returns the cases of a tenant subscribed with exactly key (its
// type and values): one partition read, however many cases wait.
func (c *Cases) Listeners(ctx context.Context, tenant string, key ListenKey) ([]string, error) {
	var ids []string
	err := c.query(ctx, entryPK(tenant, key), func(it map[string]types.AttributeValue) error {
		ids = append(ids, attrS(it, AttrSK))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listeners of %s: %w", tenant, err)
	}
	return ids, nil
}

// Subscribers lists the cases of a tenant that wait for events.
func (c *Cases) Subscribers(ctx context.Context, tenant string) ([]string, error) {
	var ids []string
	err := c.query(ctx, "SUB#"+tenant, func(it map[string]types.AttributeValue) error {
		ids = append(ids, attrS(it, AttrSK))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("subscribers of %s: %w", tenant, err)
	}
	return ids, nil
}

// query reads a partition of the state table, strongly consistent, page by
// page.
func (c *Cases) query(ctx context.Context, pk string, each func(map[string]types.AttributeValue) error) error {
	var start map[string]types.AttributeValue
	for {
		out, err := c.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(c.table),
			KeyConditionExpression:    aws.String("pk = :p"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": s(pk)},
			ConsistentRead:            aws.Bool(true),
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return err
		}
		for _, it := range out.Items {
			if err := each(it); err != nil {
				return err
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		start = out.LastEvaluatedKey
	}
}

// shapeOf is k without its values.
func shapeOf(k ListenKey) ListenKey {
	sh := ListenKey{Type: k.Type, Fields: slices.Clone(k.Fields)}
	for i := range sh.Fields {
		sh.Fields[i].Value = nil
	}
	return sh
}

// WithValues returns the key of shape sh with the given values, one per
// field in order.
func (k ListenKey) WithValues(values []json.RawMessage) ListenKey {
	out := shapeOf(k)
	for i := range out.Fields {
		if i < len(values) {
			out.Fields[i].Value = values[i]
		}
	}
	return out
}

// String renders the key for logs.
func (k ListenKey) String() string {
	parts := make([]string, 0, len(k.Fields))
	for _, f := range k.Fields {
		parts = append(parts, f.Name+"="+string(f.Value))
	}
	t := k.Type
	if t == "" {
		t = "*"
	}
	return t + "{" + strings.Join(parts, ",") + "}"
}

func put(item map[string]types.AttributeValue) types.WriteRequest {
	return types.WriteRequest{PutRequest: &types.PutRequest{Item: item}}
}

func del(key map[string]types.AttributeValue) types.WriteRequest {
	return types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key}}
}
