package tuner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/knhk/knhk/shared/learn"
	"github.com/knhk/knhk/shared/store"
)

// The tuner's items in the state table (pk TUNER): its state (sk STATE),
// the operator's switches (sk SWITCHES) and the overrides the executor
// reads (sk OVERRIDES). Each holds its JSON in attribute "j"; STATE and
// SWITCHES carry a version "v" for conditional writes.
const (
	statePK     = "TUNER"
	skState     = "STATE"
	skSwitches  = "SWITCHES"
	skOverrides = "OVERRIDES"
)

// Verdict is how a change fared when judged.
type Verdict struct {
	ChangeID string        `json:"changeId"`
	Setting  learn.Setting `json:"setting"`
	Kept     bool          `json:"kept"` // false: rolled back
	At       time.Time     `json:"at"`
	Before   learn.Outcome `json:"before"`
	After    learn.Outcome `json:"after"`
	Reason   string        `json:"reason,omitempty"`
}

// Decision is an operator's answer to an open recommendation.
type Decision struct {
	ID      string    `json:"id"`
	Approve bool      `json:"approve"`
	At      time.Time `json:"at"`
	Outcome string    `json:"outcome,omitempty"` // what the loop made of it
}

// State is what the loop keeps between runs besides the system chain.
type State struct {
	// Initial is each setting's value when the loop first observed it, by
	// setting key: with the system chain's changes it replays into the
	// current values.
	Initial map[string]int64 `json:"initial"`
	// Trial is the change under judgement.
	Trial *learn.Change `json:"trial,omitempty"`
	// Open are the recommendations waiting for an operator.
	Open []learn.Recommendation `json:"open,omitempty"`
	// Decisions are the operator's answers, newest last.
	Decisions []Decision `json:"decisions,omitempty"`
	// Verdicts are the judged changes, newest last (the last 100).
	Verdicts []Verdict `json:"verdicts,omitempty"`
	// LastRun is when the loop last ran, LastOutcome what it saw.
	LastRun     time.Time     `json:"lastRun,omitzero"`
	LastOutcome learn.Outcome `json:"lastOutcome"`
	// Refused are the last run's refusals.
	Refused []learn.Refusal `json:"refused,omitempty"`
	// KillSwitch and RecommendOnly are the modes the last run was in (the
	// deployed guardrails with the operator's switches).
	KillSwitch    bool  `json:"killSwitch"`
	RecommendOnly bool  `json:"recommendOnly"`
	Version       int64 `json:"-"`
}

// InitialSettings is Initial as learn.Replay takes it.
func (s State) InitialSettings() (map[learn.Setting]int64, error) {
	out := make(map[learn.Setting]int64, len(s.Initial))
	for k, v := range s.Initial {
		set, err := ParseSetting(k)
		if err != nil {
			return nil, err
		}
		out[set] = v
	}
	return out, nil
}

// ParseSetting reads a setting key "kind:target".
func ParseSetting(key string) (learn.Setting, error) {
	kind, target, ok := strings.Cut(key, ":")
	if !ok || target == "" || !kinds[learn.SettingKind(kind)] {
		return learn.Setting{}, fmt.Errorf("tuner: %q is not a setting (kind:target)", key)
	}
	return learn.Setting{Kind: learn.SettingKind(kind), Target: target}, nil
}

// Switches are the operator's switches in the state table: they override
// the deployed guardrails without a deploy.
type Switches struct {
	KillSwitch    *bool     `json:"killSwitch,omitempty"`
	RecommendOnly *bool     `json:"recommendOnly,omitempty"`
	At            time.Time `json:"at,omitzero"`
	Version       int64     `json:"-"`
}

// DB is the part of the DynamoDB client the tuner's items use.
type DB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// Items reads and writes the tuner's state-table items.
type Items struct {
	DB    DB
	Table string
}

// ErrConflict means another writer changed the item since it was read.
var ErrConflict = errors.New("tuner: the item changed since it was read")

func itemKey(sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		store.AttrPK: &types.AttributeValueMemberS{Value: statePK},
		store.AttrSK: &types.AttributeValueMemberS{Value: sk},
	}
}

// get reads an item's JSON into v and returns its version (0: absent).
func (it Items) get(ctx context.Context, sk string, v any) (int64, error) {
	out, err := it.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(it.Table), Key: itemKey(sk), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return 0, fmt.Errorf("tuner: read %s: %w", sk, err)
	}
	j, ok := out.Item["j"].(*types.AttributeValueMemberS)
	if !ok {
		return 0, nil
	}
	if err := json.Unmarshal([]byte(j.Value), v); err != nil {
		return 0, fmt.Errorf("tuner: decode %s: %w", sk, err)
	}
	var ver int64
	if n, ok := out.Item["v"].(*types.AttributeValueMemberN); ok {
		ver, _ = strconv.ParseInt(n.Value, 10, 64)
	}
	return ver, nil
}

// put writes v as the item's JSON at version+1, on condition that the
// stored version is still version.
func (it Items) put(ctx context.Context, sk string, v any, version int64) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("tuner: encode %s: %w", sk, err)
	}
	item := itemKey(sk)
	item["j"] = &types.AttributeValueMemberS{Value: string(b)}
	item["v"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(version+1, 10)}
	in := &dynamodb.PutItemInput{TableName: aws.String(it.Table), Item: item}
	if version == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(pk)")
	} else {
		in.ConditionExpression = aws.String("v = :v")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: strconv.FormatInt(version, 10)}}
	}
	if _, err := it.DB.PutItem(ctx, in); err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return 0, fmt.Errorf("%w: %s", ErrConflict, sk)
		}
		return 0, fmt.Errorf("tuner: write %s: %w", sk, err)
	}
	return version + 1, nil
}

// State reads the loop's state (empty when it never ran).
func (it Items) State(ctx context.Context) (State, error) {
	var s State
	v, err := it.get(ctx, skState, &s)
	s.Version = v
	if s.Initial == nil {
		s.Initial = map[string]int64{}
	}
	return s, err
}

// SaveState writes s if nobody wrote it since it was read.
func (it Items) SaveState(ctx context.Context, s *State) error {
	const keep = 100
	if n := len(s.Verdicts); n > keep {
		s.Verdicts = s.Verdicts[n-keep:]
	}
	if n := len(s.Decisions); n > keep {
		s.Decisions = s.Decisions[n-keep:]
	}
	v, err := it.put(ctx, skState, s, s.Version)
	if err == nil {
		s.Version = v
	}
	return err
}

// Switches reads the operator's switches.
func (it Items) Switches(ctx context.Context) (Switches, error) {
	var s Switches
	v, err := it.get(ctx, skSwitches, &s)
	s.Version = v
	return s, err
}

// SaveSwitches writes the operator's switches if unchanged since read.
func (it Items) SaveSwitches(ctx context.Context, s *Switches) error {
	v, err := it.put(ctx, skSwitches, s, s.Version)
	if err == nil {
		s.Version = v
	}
	return err
}

// Overrides reads the overrides the executor applies, by setting key.
func (it Items) Overrides(ctx context.Context) (map[string]int64, int64, error) {
	o := map[string]int64{}
	v, err := it.get(ctx, skOverrides, &o)
	return o, v, err
}

// SetOverride sets one override (read, change, conditional write).
func (it Items) SetOverride(ctx context.Context, s learn.Setting, value int64) error {
	o, v, err := it.Overrides(ctx)
	if err != nil {
		return err
	}
	o[s.Key()] = value
	_, err = it.put(ctx, skOverrides, o, v)
	return err
}

// ErrNotOpen means no open recommendation has the id.
var ErrNotOpen = errors.New("tuner: no open recommendation with that id")

// Decide records an operator's answer to an open recommendation; the next
// run carries it out (an approval goes through the guardrails like any
// change).
func Decide(ctx context.Context, it Items, id string, approve bool, at time.Time) error {
	for attempt := 0; ; attempt++ {
		st, err := it.State(ctx)
		if err != nil {
			return err
		}
		open := false
		for _, r := range st.Open {
			open = open || r.ID == id
		}
		if !open {
			return fmt.Errorf("%w: %s", ErrNotOpen, id)
		}
		st.Decisions = append(st.Decisions, Decision{ID: id, Approve: approve, At: at.UTC()})
		err = it.SaveState(ctx, &st)
		if !errors.Is(err, ErrConflict) || attempt >= 2 {
			return err
		}
	}
}
