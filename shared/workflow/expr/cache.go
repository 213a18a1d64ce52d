package expr

import (
	"strings"
	"sync"
)

// Cache holds compiled expressions keyed by source and declared variable
// names, so that every expression of a descriptor is compiled once. It is
// safe for concurrent use; the zero value is ready.
type Cache struct {
	mu sync.RWMutex
	m  map[string]*Expr
}

// Compile returns the compiled src, compiling it on first use.
func (c *Cache) Compile(src string, extra ...string) (*Expr, error) {
	key := src
	if len(extra) > 0 {
		key = src + "\x00" + strings.Join(extra, "\x00")
	}
	c.mu.RLock()
	e := c.m[key]
	c.mu.RUnlock()
	if e != nil {
		return e, nil
	}
	e, err := Compile(src, extra...)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]*Expr)
	}
	if prev := c.m[key]; prev != nil {
		e = prev
	} else {
		c.m[key] = e
	}
	c.mu.Unlock()
	return e, nil
}

// Len reports how many distinct expressions the cache holds.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}
