package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Grant says that a principal (tenancy.Principal of a SenderId) may act for
// a tenant ("*": every tenant).
type Grant struct {
	Principal string    `json:"principal"`
	Tenant    string    `json:"tenant"`
	GrantedAt time.Time `json:"grantedAt"`
}

// Grants keeps the tenant grants of the state table (pk GRANT#<principal>,
// sk T#<tenant>, listed through gsi1 under GRANTS). Tenants reuses a read
// of a principal's grants for TTL, so a revocation reaches the executors
// within TTL.
type Grants struct {
	db    CaseDB
	table string
	now   func() time.Time
	// TTL bounds how long Tenants answers from a previous read (0: never).
	TTL   time.Duration
	mu    sync.Mutex
	cache map[string]grantRead
}

type grantRead struct {
	tenants []string
	at      time.Time
}

// NewGrants returns the grants of the state table.
func NewGrants(db CaseDB, table string) *Grants {
	return &Grants{db: db, table: table, now: time.Now, cache: map[string]grantRead{}}
}

const grantsList = "GRANTS"

func grantKey(principal, tenant string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{AttrPK: s("GRANT#" + principal), AttrSK: s("T#" + tenant)}
}

// Grant lets principal act for tenant.
func (g *Grants) Grant(ctx context.Context, principal, tenant string) error {
	if principal == "" || tenant == "" || strings.ContainsAny(principal, "#") {
		return fmt.Errorf("grant: principal and tenant are required (and a principal has no '#')")
	}
	item := grantKey(principal, tenant)
	item["gsi1pk"] = s(grantsList)
	item["gsi1sk"] = s(principal + "#" + tenant)
	item["at"] = s(g.now().UTC().Format(time.RFC3339Nano))
	if _, err := g.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(g.table), Item: item}); err != nil {
		return fmt.Errorf("grant %s to %s: %w", tenant, principal, err)
	}
	g.forget(principal)
	return nil
}

// Revoke withdraws a grant (a missing grant is no error).
func (g *Grants) Revoke(ctx context.Context, principal, tenant string) error {
	if _, err := g.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(g.table), Key: grantKey(principal, tenant)}); err != nil {
		return fmt.Errorf("revoke %s from %s: %w", tenant, principal, err)
	}
	g.forget(principal)
	return nil
}

func (g *Grants) forget(principal string) {
	g.mu.Lock()
	delete(g.cache, principal)
	g.mu.Unlock()
}

// Tenants lists the tenants granted to a principal.
func (g *Grants) Tenants(ctx context.Context, principal string) ([]string, error) {
	if principal == "" {
		return nil, nil
	}
	g.mu.Lock()
	r, ok := g.cache[principal]
	g.mu.Unlock()
	if ok && g.TTL > 0 && g.now().Sub(r.at) < g.TTL {
		return r.tenants, nil
	}
	var tenants []string
	err := g.query(ctx, &dynamodb.QueryInput{
		KeyConditionExpression:    aws.String("pk = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": s("GRANT#" + principal)},
		ConsistentRead:            aws.Bool(true),
	}, func(it map[string]types.AttributeValue) {
		tenants = append(tenants, strings.TrimPrefix(sAttr(it, AttrSK), "T#"))
	})
	if err != nil {
		return nil, fmt.Errorf("grants of %s: %w", principal, err)
	}
	g.mu.Lock()
	g.cache[principal] = grantRead{tenants: tenants, at: g.now()}
	g.mu.Unlock()
	return tenants, nil
}

// List returns every grant, ordered by principal and tenant.
func (g *Grants) List(ctx context.Context) ([]Grant, error) {
	var out []Grant
	err := g.query(ctx, &dynamodb.QueryInput{
		IndexName:                 aws.String("gsi1"),
		KeyConditionExpression:    aws.String("gsi1pk = :p"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": s(grantsList)},
	}, func(it map[string]types.AttributeValue) {
		at, _ := time.Parse(time.RFC3339Nano, sAttr(it, "at"))
		out = append(out, Grant{Principal: strings.TrimPrefix(sAttr(it, AttrPK), "GRANT#"),
			Tenant: strings.TrimPrefix(sAttr(it, AttrSK), "T#"), GrantedAt: at})
	})
	if err != nil {
		return nil, fmt.Errorf("list grants: %w", err)
	}
	return out, nil
}

func (g *Grants) query(ctx context.Context, in *dynamodb.QueryInput, each func(map[string]types.AttributeValue)) error {
	in.TableName = aws.String(g.table)
	for {
		out, err := g.db.Query(ctx, in)
		if err != nil {
			return err
		}
		for _, it := range out.Items {
			each(it)
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

func sAttr(it map[string]types.AttributeValue, k string) string {
	if v, ok := it[k].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}
