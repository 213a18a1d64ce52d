package dsl

import "fmt"

// Script languages.
const (
	LanguageJS     = "js"
	LanguagePython = "python"
)

// ScriptProcess is a `run: script` process.
type ScriptProcess struct {
	Language string
	Code     string
	Source   *ExternalResource // the script's resource, when not inline
	Stdin    string            // a runtime expression, if any
	// Arguments are the script's arguments: an array (argv) or, as some
	// documents write them, an object of named values. Values may embed
	// runtime expressions.
	Arguments any
	// Environment holds the script's environment variables (values may
	// embed runtime expressions).
	Environment map[string]any
}

func (d *decoder) script(n *node, ptr string) *ScriptProcess {
	if !d.object(n, ptr, "script", []string{"language", "code", "source", "stdin", "arguments", "environment"}, "language") {
		return nil
	}
	s := &ScriptProcess{Language: d.str(n, "language", ptr), Code: d.str(n, "code", ptr), Stdin: d.str(n, "stdin", ptr),
		Environment: d.freeObject(n, "environment", ptr)}
	if n.has("code") == n.has("source") {
		d.fail(n, ptr, "script must have exactly one of code, source")
	}
	if n.has("source") {
		s.Source = d.externalResource(n.get("source"), join(ptr, "source"))
	}
	d.maybeExpr(s.Stdin, join(ptr, "stdin"))
	if a := n.get("arguments"); n.has("arguments") {
		ap := join(ptr, "arguments")
		switch kindOf(a) {
		case "array", "object":
			s.Arguments = a.value()
			d.scanExprs(a, ap)
		default:
			d.fail(a, ap, "arguments must be an array or an object, not %s", kindOf(a))
		}
	}
	if n.has("environment") {
		d.scanExprs(n.get("environment"), join(ptr, "environment"))
	}
	return s
}

// script checks what KNHK can run: inline JavaScript, awaited.
func (v *validator) script(r *RunTask, ptr string) {
	s := r.ScriptProcess
	if s == nil {
		return
	}
	switch s.Language {
	case LanguageJS:
	case LanguagePython:
		v.add(join(ptr, "language"), "unsupported: python scripts (no safe embedded Python interpreter; KNHK runs js)")
	default:
		v.add(join(ptr, "language"), fmt.Sprintf("unsupported: script language %q (KNHK runs js)", s.Language))
	}
	if s.Source != nil {
		v.add(join(ptr, "source"), "unsupported: scripts from an external source (write the code inline under code)")
	}
	if !r.Await {
		v.add(join(ptr[:len(ptr)-len("/script")], "await"), "unsupported: await false for a script (its result is the task's output)")
	}
}
