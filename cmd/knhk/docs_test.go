package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// userDocs lists README.md and every docs/**/*.md, relative to the repository root.
func userDocs(t *testing.T) (string, []string) {
	t.Helper()
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"README.md"}
	err = filepath.WalkDir(filepath.Join(repo, "docs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, _ := filepath.Rel(repo, p)
			files = append(files, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return repo, files
}

var (
	mdLink     = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	inlineCode = regexp.MustCompile("`[^`]+`")
	knhkCall   = regexp.MustCompile(`\bknhk ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?`)
)

// relativeLinks returns the link targets in md that point into the repository.
func relativeLinks(md string) []string {
	var out []string
	for _, m := range mdLink.FindAllStringSubmatch(md, -1) {
		target := m[1]
		if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.HasPrefix(target, "#") {
			continue
		}
		if i := strings.IndexByte(target, '#'); i >= 0 {
			target = target[:i]
		}
		out = append(out, target)
	}
	return out
}

// codeText returns the fenced blocks and inline code spans of md: where a
// document shows a command.
func codeText(md string) []string {
	var out []string
	inFence := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			out = append(out, line)
			continue
		}
		out = append(out, inlineCode.FindAllString(line, -1)...)
	}
	return out
}

// missingCommand returns the "knhk a b" text when the CLI has no such
// command, "" when it does.
func missingCommand(cli *cobra.Command, words []string) string {
	cmd, _, err := cli.Find(words[:1])
	if err != nil || cmd == cli {
		return "knhk " + words[0]
	}
	if len(words) > 1 && words[1] != "" && cmd.HasSubCommands() && !cmd.Runnable() {
		for _, c := range cmd.Commands() {
			if c.Name() == words[1] || c.HasAlias(words[1]) {
				return ""
			}
		}
		return "knhk " + words[0] + " " + words[1]
	}
	return ""
}

func TestDocsLinksResolve(t *testing.T) {
	repo, files := userDocs(t)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range relativeLinks(string(b)) {
			p := filepath.Join(repo, filepath.Dir(f), target)
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s: dead link %s", f, target)
			}
		}
	}
}

func TestDocsNameOnlyExistingCommands(t *testing.T) {
	repo, files := userDocs(t)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, code := range codeText(string(b)) {
			for _, m := range knhkCall.FindAllStringSubmatch(code, -1) {
				if missing := missingCommand(root, m[1:]); missing != "" {
					t.Errorf("%s: %q names %s, which the CLI does not have", f, m[0], missing)
				}
			}
		}
	}
}

func TestDocsCheckCatchesDeadLinksAndCommands(t *testing.T) {
	md := "see [a](docs/a.md#x), [b](https://example.org), [c](#top)\n```sh\nknhk nosuch thing\n```\n`knhk dlq list` and `knhk dlq bogus`"
	if got := relativeLinks(md); len(got) != 1 || got[0] != "docs/a.md" {
		t.Fatalf("relativeLinks = %q", got)
	}
	var missing []string
	for _, code := range codeText(md) {
		for _, m := range knhkCall.FindAllStringSubmatch(code, -1) {
			if s := missingCommand(root, m[1:]); s != "" {
				missing = append(missing, s)
			}
		}
	}
	if strings.Join(missing, ",") != "knhk nosuch,knhk dlq bogus" {
		t.Fatalf("missing = %q", missing)
	}
}
