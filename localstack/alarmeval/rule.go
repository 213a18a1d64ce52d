package alarmeval

import (
	"fmt"
	"strings"
	"unicode"
)

// Expr is a parsed composite alarm rule.
type Expr interface {
	// Eval decides the rule given the states of the alarms it names.
	Eval(states func(name string) (State, bool)) (bool, error)
	// Alarms lists the alarm names the rule refers to.
	Alarms() []string
}

type stateIs struct {
	want State
	name string
}

func (s stateIs) Eval(states func(string) (State, bool)) (bool, error) {
	have, ok := states(s.name)
	if !ok {
		return false, fmt.Errorf("alarm %q of the rule does not exist", s.name)
	}
	return have == s.want, nil
}
func (s stateIs) Alarms() []string { return []string{s.name} }

type constant bool

func (c constant) Eval(func(string) (State, bool)) (bool, error) { return bool(c), nil }
func (constant) Alarms() []string                                { return nil }

type not struct{ x Expr }

func (n not) Eval(st func(string) (State, bool)) (bool, error) {
	v, err := n.x.Eval(st)
	return !v, err
}
func (n not) Alarms() []string { return n.x.Alarms() }

type binary struct {
	and  bool
	l, r Expr
}

func (b binary) Eval(st func(string) (State, bool)) (bool, error) {
	l, err := b.l.Eval(st)
	if err != nil {
		return false, err
	}
	r, err := b.r.Eval(st)
	if err != nil {
		return false, err
	}
	if b.and {
		return l && r, nil
	}
	return l || r, nil
}
func (b binary) Alarms() []string { return append(b.l.Alarms(), b.r.Alarms()...) }

// ParseRule parses a composite alarm rule: ALARM(x), OK(x),
// INSUFFICIENT_DATA(x), TRUE, FALSE, NOT, AND, OR and parentheses, with
// CloudWatch's precedence (NOT, then AND, then OR). An alarm is named by
// name or ARN, quoted or not.
func ParseRule(s string) (Expr, error) {
	p := &parser{src: s}
	e, err := p.or()
	if err != nil {
		return nil, fmt.Errorf("alarm rule %q: %w", s, err)
	}
	if p.skip(); p.pos < len(p.src) {
		return nil, fmt.Errorf("alarm rule %q: unexpected %q at %d", s, p.src[p.pos:], p.pos)
	}
	return e, nil
}

type parser struct {
	src string
	pos int
}

func (p *parser) skip() {
	for p.pos < len(p.src) && unicode.IsSpace(rune(p.src[p.pos])) {
		p.pos++
	}
}

// keyword consumes word when it is next as a whole word.
func (p *parser) keyword(word string) bool {
	p.skip()
	rest := p.src[p.pos:]
	if len(rest) < len(word) || !strings.EqualFold(rest[:len(word)], word) {
		return false
	}
	if len(rest) > len(word) {
		if c := rune(rest[len(word)]); unicode.IsLetter(c) || c == '_' {
			return false
		}
	}
	p.pos += len(word)
	return true
}

func (p *parser) or() (Expr, error) {
	l, err := p.and()
	for err == nil && p.keyword("OR") {
		var r Expr
		if r, err = p.and(); err == nil {
			l = binary{and: false, l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) and() (Expr, error) {
	l, err := p.unary()
	for err == nil && p.keyword("AND") {
		var r Expr
		if r, err = p.unary(); err == nil {
			l = binary{and: true, l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) unary() (Expr, error) {
	switch {
	case p.keyword("NOT"):
		x, err := p.unary()
		return not{x}, err
	case p.keyword("TRUE"):
		return constant(true), nil
	case p.keyword("FALSE"):
		return constant(false), nil
	}
	for _, s := range []State{InsufficientData, Alarm, OK} {
		if p.keyword(string(s)) {
			name, err := p.argument()
			return stateIs{want: s, name: name}, err
		}
	}
	p.skip()
	if p.pos < len(p.src) && p.src[p.pos] == '(' {
		p.pos++
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.skip(); p.pos >= len(p.src) || p.src[p.pos] != ')' {
			return nil, fmt.Errorf("missing ) at %d", p.pos)
		}
		p.pos++
		return e, nil
	}
	return nil, fmt.Errorf("expected ALARM, OK, INSUFFICIENT_DATA, NOT, TRUE, FALSE or ( at %d", p.pos)
}

// argument reads (name) or ("name"); an ARN's last part is the name.
func (p *parser) argument() (string, error) {
	p.skip()
	if p.pos >= len(p.src) || p.src[p.pos] != '(' {
		return "", fmt.Errorf("expected ( at %d", p.pos)
	}
	end := strings.IndexByte(p.src[p.pos:], ')')
	if end < 0 {
		return "", fmt.Errorf("missing ) at %d", p.pos)
	}
	name := strings.Trim(strings.TrimSpace(p.src[p.pos+1:p.pos+end]), `"`)
	p.pos += end + 1
	if i := strings.Index(name, ":alarm:"); i >= 0 {
		name = name[i+len(":alarm:"):]
	}
	if name == "" {
		return "", fmt.Errorf("empty alarm name at %d", p.pos)
	}
	return name, nil
}

// EvaluateComposite decides a composite alarm's state: ALARM when its rule
// holds, OK when not, INSUFFICIENT_DATA while an alarm it names has no state.
func EvaluateComposite(rule Expr, states func(name string) (State, bool)) State {
	v, err := rule.Eval(states)
	switch {
	case err != nil:
		return InsufficientData
	case v:
		return Alarm
	}
	return OK
}
