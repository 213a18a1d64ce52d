package lambdasvc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// positions keeps each stream mapping's last handled sequence number per
// shard in a JSON file, so that a restarted service resumes where it
// stopped, as a Lambda event source mapping does (its starting position
// applies only when it first reads a shard). Keys name the mapping, the
// stream and the shard, so a re-created table starts afresh.
type positions struct {
	mu   sync.Mutex
	path string // "" keeps nothing
	seqs map[string]string
}

// loadPositions reads path; a missing file is an empty set.
func loadPositions(path string) (*positions, error) {
	p := &positions{path: path, seqs: map[string]string{}}
	if path == "" {
		return p, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream positions: %w", err)
	}
	if err := json.Unmarshal(b, &p.seqs); err != nil {
		return nil, fmt.Errorf("stream positions %s: %w", path, err)
	}
	return p, nil
}

func positionKey(mapping, streamARN, shard string) string {
	return mapping + " " + streamARN + " " + shard
}

// get returns the last handled sequence number of a shard.
func (p *positions) get(key string) (string, bool) {
	if p == nil {
		return "", false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.seqs[key]
	return s, ok
}

// set records a shard's last handled sequence number and rewrites the file
// (write to a temporary file, then rename).
func (p *positions) set(key, seq string) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seqs[key] = seq
	if p.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(p.seqs, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p.path), ".stream-positions-*")
	if err != nil {
		return fmt.Errorf("stream positions: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("stream positions: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("stream positions: %w", err)
	}
	if err := os.Rename(tmp.Name(), p.path); err != nil {
		return fmt.Errorf("stream positions: %w", err)
	}
	return nil
}
