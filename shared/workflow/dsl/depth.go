package dsl

// shape is what a pre-parse scan learns about a document's structure.
type shape struct {
	depth, depthLine int // deepest nesting and the line where it was first reached
	width, widthLine int // most entries at one level and the line where it was first reached
}

// blockLevel is an open block collection: its column and entries so far.
type blockLevel struct {
	col, entries int
}

// scanShape estimates, in one pass over the raw bytes and before any
// parsing, how deeply a YAML or JSON document nests (block levels by
// indentation and "- " entries, plus open flow brackets outside quoted
// strings, comments and block scalars) and how many entries its widest
// collection has, so that documents beyond the limits are refused before
// the YAML parser spends time and memory on them. The estimates err on the
// high side only for text with many unbalanced brackets or commas.
func scanShape(data []byte) shape {
	var (
		s            shape
		stack        []blockLevel
		flow         []int // entries of each open flow collection
		lineNo       int
		scalarParent = -1 // indentation of the line opening a block scalar, -1 outside one
	)
	for start := 0; start < len(data); {
		lineNo++
		end := start
		for end < len(data) && data[end] != '\n' {
			end++
		}
		line := data[start:end]
		start = end + 1

		i := 0
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) || line[i] == '\r' {
			continue
		}
		if scalarParent >= 0 {
			if i > scalarParent {
				continue // block scalar text is not structure
			}
			scalarParent = -1
		}
		if line[i] == '#' {
			continue
		}
		if len(flow) == 0 {
			if opensBlockScalar(line[i:]) {
				scalarParent = i
			}
			for len(stack) > 0 && stack[len(stack)-1].col > i {
				stack = stack[:len(stack)-1]
			}
			if n := len(stack); n > 0 && stack[n-1].col == i {
				stack[n-1].entries++
				s.wide(stack[n-1].entries, lineNo)
			} else {
				stack = append(stack, blockLevel{col: i, entries: 1})
			}
			for j := i; j+1 < len(line) && line[j] == '-' && line[j+1] == ' '; {
				j += 2
				for j < len(line) && line[j] == ' ' {
					j++
				}
				stack = append(stack, blockLevel{col: j, entries: 1})
			}
		}
		flow = s.scanFlow(line[i:], flow, len(stack), lineNo)
		s.deep(len(stack)+len(flow), lineNo)
	}
	return s
}

func (s *shape) deep(d, line int) {
	if d > s.depth {
		s.depth, s.depthLine = d, line
	}
}

func (s *shape) wide(w, line int) {
	if w > s.width {
		s.width, s.widthLine = w, line
	}
}

// scanFlow follows flow collections over one line, skipping quoted strings
// and comments.
func (s *shape) scanFlow(line []byte, flow []int, block, lineNo int) []int {
	var quote byte
	prev := byte(' ')
	for k := 0; k < len(line); k++ {
		c := line[k]
		switch {
		case quote == '"':
			if c == '\\' {
				k++
			} else if c == '"' {
				quote = 0
			}
		case quote == '\'':
			if c == '\'' {
				quote = 0
			}
		case c == '#' && (prev == ' ' || prev == '\t'):
			return flow
		case (c == '"' || c == '\'') && isTokenStart(prev):
			quote = c
		case c == '[' || c == '{':
			flow = append(flow, 1)
			s.deep(block+len(flow), lineNo)
		case c == ']' || c == '}':
			if len(flow) > 0 {
				flow = flow[:len(flow)-1]
			}
		case c == ',' && len(flow) > 0:
			flow[len(flow)-1]++
			s.wide(flow[len(flow)-1], lineNo)
		}
		prev = c
	}
	return flow
}

func isTokenStart(prev byte) bool {
	switch prev {
	case ' ', '\t', '[', '{', ',', ':', '-':
		return true
	}
	return false
}

// opensBlockScalar reports whether a line ends with a block scalar header
// (| or >, with optional chomping and indentation indicators, and an
// optional comment) after a key or a sequence dash.
func opensBlockScalar(line []byte) bool {
	end := len(line)
	for k := 1; k < len(line); k++ {
		if line[k] == '#' && (line[k-1] == ' ' || line[k-1] == '\t') {
			end = k
			break
		}
	}
	for end > 0 && (line[end-1] == ' ' || line[end-1] == '\t' || line[end-1] == '\r') {
		end--
	}
	k := end
	for k > 0 && (line[k-1] == '-' || line[k-1] == '+' || (line[k-1] >= '1' && line[k-1] <= '9')) {
		k--
	}
	if k == 0 || (line[k-1] != '|' && line[k-1] != '>') {
		return false
	}
	k--
	if k == 0 {
		return true
	}
	if line[k-1] != ' ' && line[k-1] != '\t' {
		return false
	}
	for k > 0 && (line[k-1] == ' ' || line[k-1] == '\t') {
		k--
	}
	return k > 0 && (line[k-1] == ':' || line[k-1] == '-')
}
