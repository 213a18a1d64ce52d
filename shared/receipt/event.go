package receipt

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/knhk/knhk/shared/history"
)

// Event returns the history event the receipt records. Payloads kept
// inline are used as they are; detached ones (hash only) are fetched through
// blob, which must return bytes matching the hash.
func (r *Receipt) Event(blob func(hash string) ([]byte, error)) (history.Event, error) {
	ev := history.Event{
		Type: r.Type, Task: r.Task, Key: r.Key, Branch: r.Branch, Attempt: r.Attempt,
		Error: r.Error, Started: r.Started, Ended: r.Ended,
	}
	var err error
	if ev.Input, err = payload("input", r.Input, r.InputHash, blob); err != nil {
		return ev, err
	}
	if ev.Output, err = payload("output", r.Output, r.OutputHash, blob); err != nil {
		return ev, err
	}
	if ev.Data, err = payload("data", r.Data, r.DataHash, blob); err != nil {
		return ev, err
	}
	if g := r.Genesis; g != nil {
		ev.Genesis = &history.Genesis{Tenant: g.Tenant, Namespace: g.Namespace, Workflow: g.Workflow,
			Version: g.Version, DescriptorHash: g.DescriptorHash, TraceParent: g.TraceParent}
	}
	return ev, nil
}

func payload(name string, inline []byte, hash string, blob func(string) ([]byte, error)) (json.RawMessage, error) {
	switch {
	case len(inline) > 0:
		return json.RawMessage(inline), nil
	case hash == "":
		return nil, nil
	case blob == nil:
		return nil, fmt.Errorf("%s %s is detached and no blob store was given", name, hash)
	}
	b, err := blob(hash)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", name, hash, err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != hash {
		return nil, fmt.Errorf("%s %s: blob content does not match its hash", name, hash)
	}
	return json.RawMessage(b), nil
}
