// Package registry is the descriptor registry: workflow documents published
// immutably per namespace, name and version, addressed by the SHA-256 of their
// bytes, with a movable "latest" pointer per workflow. It lives in the state
// table.
package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/singleflight"

	"github.com/knhk/knhk/shared/message"
	"github.com/knhk/knhk/shared/tenancy"
	"github.com/knhk/knhk/shared/workflow/dsl"
)

// MaxBodyBytes is the largest document the registry stores: one state-table
// item holds it, and DynamoDB items are limited to 400 KB.
const MaxBodyBytes = 350 * 1024

// ErrNotFound means no such workflow or version is published.
var ErrNotFound = errors.New("workflow not found")

// ErrConflict means a version is already published with a different body.
var ErrConflict = errors.New("version already published with a different body")

// ErrHashMismatch means a stored document does not have the hash it is
// pinned by: the registry item was changed after publication.
var ErrHashMismatch = errors.New("descriptor content does not match its hash")

// DB is the part of the DynamoDB API the registry uses.
type DB interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Entry describes one published version.
type Entry struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	Hash      string    `json:"hash"`
	Size      int       `json:"size"`
	PushedAt  time.Time `json:"pushedAt"`
	Latest    bool      `json:"latest,omitempty"`
}

// Ref renders namespace/name:version.
func (e Entry) Ref() string { return fmt.Sprintf("%s/%s:%s", e.Namespace, e.Name, e.Version) }

// Descriptor is a published, parsed and validated workflow.
type Descriptor struct {
	Entry
	Body     []byte
	Workflow *dsl.Workflow
}

// Registry reads and writes descriptors in the state table and caches parsed
// documents by content hash (safe: published bodies never change), the hash
// of each published version (versions are immutable) and, for LatestTTL, the
// latest pointer.
type Registry struct {
	db        DB
	table     string
	now       func() time.Time
	latestTTL time.Duration
	cache     sync.Map // hash -> *Descriptor
	versions  sync.Map // ns/name:version -> hash
	latest    sync.Map // ns/name -> latestPointer
	owners    sync.Map // ns -> ownerRead
	refresh   singleflight.Group
}

// latestPointer is a read of a workflow's latest pointer.
type latestPointer struct {
	version, hash string
	read          time.Time
}

// Option configures a Registry.
type Option func(*Registry)

// LatestTTL lets Resolve reuse a read of a workflow's latest pointer for d:
// a push or rollback then reaches new cases within d, and a busy executor
// reads the pointer once per d instead of once per start message. Zero
// (the default) reads it every time.
func LatestTTL(d time.Duration) Option { return func(r *Registry) { r.latestTTL = d } }

// New returns a registry over the state table.
func New(db DB, table string, opts ...Option) *Registry {
	r := &Registry{db: db, table: table, now: time.Now}
	for _, o := range opts {
		o(r)
	}
	return r
}

const (
	latestSK  = "LATEST"
	listIndex = "gsi1"
	listPK    = "WORKFLOWS"
)

func workflowPK(ns, name string) string { return "WF#" + ns + "/" + name }
func versionSK(v string) string         { return "V#" + v }

// PushResult says what a push did.
type PushResult string

// Push outcomes.
const (
	Created   PushResult = "created"
	Unchanged PushResult = "unchanged" // the same body was already published under this version
)

// Push validates a document and publishes it under its document's
// namespace/name/version. The same body again is a no-op; a different body
// under an existing version is refused with ErrConflict. A newly created
// version becomes latest.
func (r *Registry) Push(ctx context.Context, body []byte) (Entry, PushResult, error) {
	if len(body) > MaxBodyBytes {
		return Entry{}, "", fmt.Errorf("push: document is %d bytes, the registry limit is %d", len(body), MaxBodyBytes)
	}
	wf, err := dsl.Load(body)
	if err != nil {
		return Entry{}, "", fmt.Errorf("push: %w", err)
	}
	d := wf.Document
	e := Entry{Namespace: d.Namespace, Name: d.Name, Version: d.Version, Hash: dsl.Hash(body), Size: len(body), PushedAt: r.now().UTC()}
	_, err = r.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &r.table,
		Item: map[string]types.AttributeValue{
			"pk":       str(workflowPK(e.Namespace, e.Name)),
			"sk":       str(versionSK(e.Version)),
			"gsi1pk":   str(listPK),
			"gsi1sk":   str(e.Namespace + "/" + e.Name + "#" + e.Version),
			"hash":     str(e.Hash),
			"body":     &types.AttributeValueMemberB{Value: body},
			"size":     num(e.Size),
			"pushedAt": str(e.PushedAt.Format(time.RFC3339Nano)),
		},
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		existing, gerr := r.entry(ctx, e.Namespace, e.Name, e.Version)
		if gerr != nil {
			return Entry{}, "", fmt.Errorf("push %s: read existing version: %w", e.Ref(), gerr)
		}
		if existing.Hash != e.Hash {
			return existing, "", fmt.Errorf("push %s: %w (published %s, pushed %s)", e.Ref(), ErrConflict, existing.Hash, e.Hash)
		}
		return existing, Unchanged, nil
	case err != nil:
		return Entry{}, "", fmt.Errorf("push %s: %w", e.Ref(), err)
	}
	if err := r.SetLatest(ctx, e.Namespace, e.Name, e.Version); err != nil {
		return e, Created, err
	}
	e.Latest = true
	return e, Created, nil
}

// SetLatest points a workflow's latest at a published version (promote or
// roll back). Cases already running keep the version pinned in their genesis.
func (r *Registry) SetLatest(ctx context.Context, ns, name, version string) error {
	e, err := r.entry(ctx, ns, name, version)
	if err != nil {
		return fmt.Errorf("set latest %s/%s:%s: %w", ns, name, version, err)
	}
	_, err = r.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &r.table,
		Item: map[string]types.AttributeValue{
			"pk":        str(workflowPK(ns, name)),
			"sk":        str(latestSK),
			"version":   str(version),
			"hash":      str(e.Hash),
			"updatedAt": str(r.now().UTC().Format(time.RFC3339Nano)),
		},
	})
	if err != nil {
		return fmt.Errorf("set latest %s: %w", e.Ref(), err)
	}
	r.latest.Delete(ns + "/" + name)
	return nil
}

// Latest returns the version latest points at.
func (r *Registry) Latest(ctx context.Context, ns, name string) (string, error) {
	p, err := r.readLatest(ctx, ns, name)
	return p.version, err
}

// readLatest reads a workflow's latest pointer: version and content hash.
func (r *Registry) readLatest(ctx context.Context, ns, name string) (latestPointer, error) {
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &r.table,
		Key:            key(workflowPK(ns, name), latestSK),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return latestPointer{}, fmt.Errorf("read latest of %s/%s: %w", ns, name, err)
	}
	if out.Item == nil {
		return latestPointer{}, fmt.Errorf("%s/%s: %w", ns, name, ErrNotFound)
	}
	return latestPointer{version: getS(out.Item, "version"), hash: getS(out.Item, "hash"), read: r.now()}, nil
}

// Resolve loads a version, or latest when version is empty. A version
// resolved before costs no read; latest costs one (none within LatestTTL).
func (r *Registry) Resolve(ctx context.Context, ns, name, version string) (*Descriptor, error) {
	if version != "" {
		hash, _ := r.versions.Load(ns + "/" + name + ":" + version)
		h, _ := hash.(string)
		return r.Load(ctx, ns, name, version, h)
	}
	k := ns + "/" + name
	if v, ok := r.latest.Load(k); ok && r.latestTTL > 0 && r.now().Sub(v.(latestPointer).read) < r.latestTTL {
		p := v.(latestPointer)
		return r.Load(ctx, ns, name, p.version, p.hash)
	}
	if r.latestTTL == 0 {
		p, err := r.readLatest(ctx, ns, name)
		if err != nil {
			return nil, err
		}
		return r.Load(ctx, ns, name, p.version, p.hash)
	}
	// One read refreshes the pointer for every start message waiting on it.
	v, err, _ := r.refresh.Do(k, func() (any, error) {
		p, err := r.readLatest(ctx, ns, name)
		if err == nil {
			r.latest.Store(k, p)
		}
		return p, err
	})
	if err != nil {
		return nil, err
	}
	p := v.(latestPointer)
	return r.Load(ctx, ns, name, p.version, p.hash)
}

// Load returns a published version, parsed. When hash is given (a case's
// pinned descriptor) the cache answers without I/O, and a stored body whose
// hash differs is refused with ErrHashMismatch.
func (r *Registry) Load(ctx context.Context, ns, name, version, hash string) (*Descriptor, error) {
	if hash != "" {
		if d, ok := r.cache.Load(hash); ok {
			return d.(*Descriptor), nil
		}
	}
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &r.table,
		Key:       key(workflowPK(ns, name), versionSK(version)),
	})
	if err != nil {
		return nil, fmt.Errorf("load %s/%s:%s: %w", ns, name, version, err)
	}
	if out.Item == nil {
		return nil, fmt.Errorf("%s/%s:%s: %w", ns, name, version, ErrNotFound)
	}
	e := entryFrom(out.Item)
	body := getB(out.Item, "body")
	if got := dsl.Hash(body); got != e.Hash || (hash != "" && got != hash) {
		return nil, fmt.Errorf("load %s: %w (stored %s, computed %s, pinned %s)", e.Ref(), ErrHashMismatch, e.Hash, got, hash)
	}
	r.versions.Store(e.Ref(), e.Hash)
	if d, ok := r.cache.Load(e.Hash); ok {
		return d.(*Descriptor), nil
	}
	wf, err := dsl.Load(body)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", e.Ref(), err)
	}
	d := &Descriptor{Entry: e, Body: body, Workflow: wf}
	actual, _ := r.cache.LoadOrStore(e.Hash, d)
	return actual.(*Descriptor), nil
}

// List returns every published version, marking the latest of each workflow.
func (r *Registry) List(ctx context.Context) ([]Entry, error) {
	var entries []Entry
	var start map[string]types.AttributeValue
	for {
		out, err := r.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 &r.table,
			IndexName:                 aws.String(listIndex),
			KeyConditionExpression:    aws.String("gsi1pk = :p"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":p": str(listPK)},
			ProjectionExpression:      aws.String("pk, sk, #h, #s, pushedAt"),
			ExpressionAttributeNames:  map[string]string{"#h": "hash", "#s": "size"},
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return nil, fmt.Errorf("list workflows: %w", err)
		}
		for _, it := range out.Items {
			entries = append(entries, entryFrom(it))
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		start = out.LastEvaluatedKey
	}
	latest := map[string]string{}
	for _, e := range entries {
		k := e.Namespace + "/" + e.Name
		if _, ok := latest[k]; ok {
			continue
		}
		v, err := r.Latest(ctx, e.Namespace, e.Name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		latest[k] = v
	}
	for i := range entries {
		entries[i].Latest = latest[entries[i].Namespace+"/"+entries[i].Name] == entries[i].Version
	}
	return entries, nil
}

func (r *Registry) entry(ctx context.Context, ns, name, version string) (Entry, error) {
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:                &r.table,
		Key:                      key(workflowPK(ns, name), versionSK(version)),
		ConsistentRead:           aws.Bool(true),
		ProjectionExpression:     aws.String("pk, sk, #h, #s, pushedAt"),
		ExpressionAttributeNames: map[string]string{"#h": "hash", "#s": "size"},
	})
	if err != nil {
		return Entry{}, err
	}
	if out.Item == nil {
		return Entry{}, fmt.Errorf("%s/%s:%s: %w", ns, name, version, ErrNotFound)
	}
	return entryFrom(out.Item), nil
}

func entryFrom(it map[string]types.AttributeValue) Entry {
	var e Entry
	ref := strings.TrimPrefix(getS(it, "pk"), "WF#")
	if i := strings.LastIndexByte(ref, '/'); i >= 0 {
		e.Namespace, e.Name = ref[:i], ref[i+1:]
	}
	e.Version = strings.TrimPrefix(getS(it, "sk"), "V#")
	e.Hash = getS(it, "hash")
	if n, ok := it["size"].(*types.AttributeValueMemberN); ok {
		e.Size, _ = strconv.Atoi(n.Value)
	}
	e.PushedAt, _ = time.Parse(time.RFC3339Nano, getS(it, "pushedAt"))
	return e
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str(pk), "sk": str(sk)}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func num(n int) types.AttributeValue    { return &types.AttributeValueMemberN{Value: strconv.Itoa(n)} }

func getS(it map[string]types.AttributeValue, k string) string {
	if v, ok := it[k].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getB(it map[string]types.AttributeValue, k string) []byte {
	if v, ok := it[k].(*types.AttributeValueMemberB); ok {
		return v.Value
	}
	return nil
}

// ErrNamespaceOwned means a namespace belongs to another tenant.
var ErrNamespaceOwned = errors.New("namespace belongs to another tenant")

// Owner says to whom a namespace belongs: the tenant that claimed it (""
// when none did: then it is message.DefaultTenant's), and whether its owner shared it
// with every tenant.
type Owner struct {
	Namespace string `json:"namespace"`
	Tenant    string `json:"tenant,omitempty"`
	Shared    bool   `json:"shared,omitempty"`
}

type ownerRead struct {
	owner Owner
	read  time.Time
}

const ownerSK = "OWNER"

func namespacePK(ns string) string { return "NS#" + ns }

// Claim makes tenant the owner of a namespace nobody claimed; claiming a
// namespace tenant owns already is a no-op, one another tenant owns fails
// with ErrNamespaceOwned.
func (r *Registry) Claim(ctx context.Context, ns, tenant string) error {
	_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &r.table,
		Key:                       key(namespacePK(ns), ownerSK),
		UpdateExpression:          aws.String("SET tenant = :t, updatedAt = :at"),
		ConditionExpression:       aws.String("attribute_not_exists(tenant) OR tenant = :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": str(tenant), ":at": str(r.now().UTC().Format(time.RFC3339Nano))},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		o, oerr := r.readOwner(ctx, ns)
		if oerr != nil {
			return fmt.Errorf("claim %s: %w", ns, oerr)
		}
		return fmt.Errorf("claim namespace %s for %s: %w (%s)", ns, tenant, ErrNamespaceOwned, o.Tenant)
	}
	if err != nil {
		return fmt.Errorf("claim namespace %s: %w", ns, err)
	}
	r.owners.Delete(ns)
	return nil
}

// Share opens (or, with shared false, closes) a namespace to every tenant.
// Only its owner's workflows are in it: sharing lets other tenants start
// them, never publish into it.
func (r *Registry) Share(ctx context.Context, ns string, shared bool) error {
	_, err := r.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &r.table,
		Key:                       key(namespacePK(ns), ownerSK),
		UpdateExpression:          aws.String("SET #s = :s, updatedAt = :at"),
		ExpressionAttributeNames:  map[string]string{"#s": "shared"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":s": &types.AttributeValueMemberBOOL{Value: shared}, ":at": str(r.now().UTC().Format(time.RFC3339Nano))},
	})
	if err != nil {
		return fmt.Errorf("share namespace %s: %w", ns, err)
	}
	r.owners.Delete(ns)
	return nil
}

// NamespaceOwner reads a namespace's owner (cached for LatestTTL).
func (r *Registry) NamespaceOwner(ctx context.Context, ns string) (Owner, error) {
	if v, ok := r.owners.Load(ns); ok && r.latestTTL > 0 && r.now().Sub(v.(ownerRead).read) < r.latestTTL {
		return v.(ownerRead).owner, nil
	}
	o, err := r.readOwner(ctx, ns)
	if err != nil {
		return Owner{}, err
	}
	r.owners.Store(ns, ownerRead{owner: o, read: r.now()})
	return o, nil
}

func (r *Registry) readOwner(ctx context.Context, ns string) (Owner, error) {
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &r.table, Key: key(namespacePK(ns), ownerSK), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Owner{}, fmt.Errorf("read owner of namespace %s: %w", ns, err)
	}
	o := Owner{Namespace: ns, Tenant: getS(out.Item, "tenant")}
	if b, ok := out.Item["shared"].(*types.AttributeValueMemberBOOL); ok {
		o.Shared = b.Value
	}
	return o, nil
}

// Authorize reports whether tenant may start the workflows of a namespace:
// it owns the namespace, or the namespace is shared (ErrNamespaceOwned
// otherwise).
func (r *Registry) Authorize(ctx context.Context, tenant, ns string) error {
	o, err := r.NamespaceOwner(ctx, ns)
	if err != nil {
		return err
	}
	if !tenancy.Namespace(tenant, o.Tenant, o.Shared, message.DefaultTenant) {
		owner := o.Tenant
		if owner == "" {
			owner = message.DefaultTenant
		}
		return fmt.Errorf("tenant %q may not start workflows of namespace %s: %w (%s) and it is not shared", tenant, ns, ErrNamespaceOwned, owner)
	}
	return nil
}
