package dsl

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that parsing and validating never panic, and that every
// rejection carries at least one positioned issue with a message.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/valid", "testdata/invalid"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(nestedDoc))
	f.Add([]byte("{}"))
	f.Add([]byte("do: [{a: {wait: {days: 1}}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := Load(data)
		if err == nil {
			if w == nil {
				t.Fatal("nil workflow without error")
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || len(e.Issues) == 0 {
			t.Fatalf("error %T %v carries no issues", err, err)
		}
		for _, is := range e.Issues {
			if is.Message == "" {
				t.Fatalf("issue without a message: %+v", is)
			}
		}
		if err.Error() == "" {
			t.Fatal("empty error text")
		}
	})
}
