package value

import (
	"cmp"
	"strings"
)

// Array is a one-dimensional array with lower bound 1, as PostgreSQL's
// ARRAY[...] and '{...}' make them. Its elements are of one kind, or NULL.
// The array's element type is the SQL layer's; storage needs only the
// elements.
type Array struct {
	Elems []Value
}

// KindArray is Array's kind.
const KindArray Kind = KindInterval + 1

func (Array) Kind() Kind { return KindArray }

// String prints the array as PostgreSQL's array output does, with each
// element's String (the SQL layer prints elements with their type's
// output function instead).
func (a Array) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, e := range a.Elems {
		if i > 0 {
			b.WriteByte(',')
		}
		if e.Kind() == KindNull {
			b.WriteString("NULL")
			continue
		}
		b.WriteString(QuoteArrayElem(e.String()))
	}
	b.WriteByte('}')
	return b.String()
}

// QuoteArrayElem quotes an element's text for an array's text form when
// PostgreSQL's array output would: empty, NULL (in any case), or holding
// braces, quotes, commas, backslashes or white space.
func QuoteArrayElem(s string) string {
	need := s == "" || strings.EqualFold(s, "NULL")
	for i := 0; i < len(s) && !need; i++ {
		switch s[i] {
		case '{', '}', '"', ',', '\\', ' ', '\t', '\n', '\r', '\v', '\f':
			need = true
		}
	}
	if !need {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// compareArray orders arrays as PostgreSQL's btree array_ops does:
// element by element (NULL elements above every value), then the shorter
// array first.
func compareArray(a, b Array) int {
	for i := 0; i < len(a.Elems) && i < len(b.Elems); i++ {
		if c := Compare(a.Elems[i], b.Elems[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a.Elems), len(b.Elems))
}
