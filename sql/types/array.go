package types

import (
	"encoding/binary"
	"strings"

	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/value"
)

// Array types: one-dimensional arrays with lower bound 1 of any element
// type. An array type's T has the array's OID, KindArray, Elem set to the
// element type's OID, and the element type's modifiers (varchar(20)[]).

// arrayOIDs maps an element type's OID to its array type's OID, as in
// PostgreSQL's pg_type.
var arrayOIDs = map[uint32]uint32{
	OIDBool: 1000, OIDBytea: 1001, OIDChar: 1002, OIDName: 1003, OIDInt2: 1005, OIDInt4: 1007,
	OIDText: 1009, OIDBpchar: 1014, OIDVarchar: 1015, OIDInt8: 1016, OIDFloat4: 1021,
	OIDFloat8: 1022, OIDOID: 1028, OIDTimestamp: 1115, OIDDate: 1182, OIDTimestampTZ: 1185,
	OIDInterval: 1187, OIDNumeric: 1231, OIDUUID: 2951, OIDJSONB: 3807, OIDRegclass: 2210,
	OIDRegtype: 2211, OIDRegnamespace: 4090,
}

// ArrayOf returns the array type of element type e, and false if e has
// none (arrays of arrays are multi-dimensional arrays, not supported).
func ArrayOf(e T) (T, bool) {
	oid, ok := arrayOIDs[e.OID]
	if !ok {
		return T{}, false
	}
	return T{OID: oid, Kind: value.KindArray, Elem: e.OID, Width: e.Width, Precision: e.Precision, Scale: e.Scale}, true
}

// IsArray reports whether t is an array type.
func (t T) IsArray() bool { return t.Elem != 0 }

// ElemType returns an array type's element type, with its modifiers.
func (t T) ElemType() T {
	e, _ := ByOID(t.Elem)
	e.Width, e.Precision, e.Scale = t.Width, t.Precision, t.Scale
	return e
}

func arrayByOID(oid uint32) (T, bool) {
	for elem, arr := range arrayOIDs {
		if arr == oid {
			e, _ := ByOID(elem)
			return ArrayOf(e)
		}
	}
	return T{}, false
}

func malformedArray(s, detail string) *pgerror.Error {
	return pgerror.New(pgerror.CodeInvalidTextRepresentation, "malformed array literal: %q", s).WithDetail("%s", detail)
}

// parseArray reads an array's text form: {a,"b c",NULL}, elements parsed
// by the element type's input function. Multi-dimensional input and
// dimension decorations are refused with 0A000.
func parseArray(t T, s string) (value.Value, error) {
	in := strings.TrimSpace(s)
	if strings.HasPrefix(in, "[") {
		return nil, pgerror.Unsupported("array dimension decorations")
	}
	if !strings.HasPrefix(in, "{") {
		return nil, malformedArray(s, `Array value must start with "{" or dimension information.`)
	}
	elem := t.ElemType()
	var elems []value.Value
	i := 1
	skipSpace := func() {
		for i < len(in) && isArraySpace(in[i]) {
			i++
		}
	}
	skipSpace()
	if i < len(in) && in[i] == '}' {
		if strings.TrimSpace(in[i+1:]) != "" {
			return nil, malformedArray(s, "Junk after closing right brace.")
		}
		return value.Array{Elems: []value.Value{}}, nil
	}
	for {
		skipSpace()
		if i >= len(in) {
			return nil, malformedArray(s, "Unexpected end of input.")
		}
		if in[i] == '{' {
			return nil, pgerror.Unsupported("multi-dimensional arrays")
		}
		var b strings.Builder
		quoted, any := false, false
		kept := 0 // bytes of b that trailing white space trimming keeps
		for i < len(in) {
			c := in[i]
			if c == '"' {
				quoted, any = !quoted, true
				kept = b.Len()
				i++
				continue
			}
			if c == '\\' {
				if i+1 >= len(in) {
					return nil, malformedArray(s, "Unexpected end of input.")
				}
				b.WriteByte(in[i+1])
				i += 2
				any = true
				kept = b.Len()
				continue
			}
			if !quoted && (c == ',' || c == '}') {
				break
			}
			if !quoted && c == '{' {
				return nil, malformedArray(s, `Unexpected "{" character.`)
			}
			b.WriteByte(c)
			if quoted || !isArraySpace(c) {
				kept = b.Len()
			}
			i++
		}
		if i >= len(in) {
			return nil, malformedArray(s, "Unexpected end of input.")
		}
		raw := b.String()[:kept]
		if !any && raw == "" {
			return nil, malformedArray(s, `Unexpected "`+string(in[i])+`" character.`)
		}
		if !any && strings.EqualFold(raw, "NULL") {
			elems = append(elems, value.Null{})
		} else {
			v, err := ParseText(elem, raw)
			if err != nil {
				return nil, err
			}
			elems = append(elems, v)
		}
		if in[i] == '}' {
			if strings.TrimSpace(in[i+1:]) != "" {
				return nil, malformedArray(s, "Junk after closing right brace.")
			}
			return value.Array{Elems: elems}, nil
		}
		i++ // the comma
	}
}

func isArraySpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// appendArrayText prints an array as PostgreSQL's array_out does.
func appendArrayText(b []byte, t T, a value.Array) []byte {
	elem := t.ElemType()
	b = append(b, '{')
	var buf []byte
	for i, e := range a.Elems {
		if i > 0 {
			b = append(b, ',')
		}
		if e.Kind() == value.KindNull {
			b = append(b, "NULL"...)
			continue
		}
		buf = AppendText(buf[:0], elem, e)
		b = append(b, value.QuoteArrayElem(string(buf))...)
	}
	return append(b, '}')
}

// appendArrayBinary writes array_send's form: dimensions, a has-nulls
// flag, the element type, each dimension's length and lower bound, then
// each element length-prefixed (-1 for NULL).
func appendArrayBinary(b []byte, t T, a value.Array) []byte {
	elem := t.ElemType()
	hasNull := uint32(0)
	for _, e := range a.Elems {
		if e.Kind() == value.KindNull {
			hasNull = 1
		}
	}
	if len(a.Elems) == 0 {
		b = binary.BigEndian.AppendUint32(b, 0)
		b = binary.BigEndian.AppendUint32(b, 0)
		return binary.BigEndian.AppendUint32(b, elem.OID)
	}
	b = binary.BigEndian.AppendUint32(b, 1)
	b = binary.BigEndian.AppendUint32(b, hasNull)
	b = binary.BigEndian.AppendUint32(b, elem.OID)
	b = binary.BigEndian.AppendUint32(b, uint32(len(a.Elems)))
	b = binary.BigEndian.AppendUint32(b, 1)
	for _, e := range a.Elems {
		if e.Kind() == value.KindNull {
			b = binary.BigEndian.AppendUint32(b, 0xffffffff)
			continue
		}
		at := len(b)
		b = append(b, 0, 0, 0, 0)
		b = AppendBinary(b, elem, e)
		binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	}
	return b
}

// parseArrayBinary reads array_send's form of a one-dimensional array.
func parseArrayBinary(t T, b []byte) (value.Value, error) {
	elem := t.ElemType()
	u32 := func() (uint32, bool) {
		if len(b) < 4 {
			return 0, false
		}
		v := binary.BigEndian.Uint32(b)
		b = b[4:]
		return v, true
	}
	ndim, ok1 := u32()
	_, ok2 := u32() // has-nulls flag
	eoid, ok3 := u32()
	if !ok1 || !ok2 || !ok3 || ndim > 1 {
		if ndim > 1 && ok1 {
			return nil, pgerror.Unsupported("multi-dimensional arrays")
		}
		return nil, invalidBinary(t)
	}
	if eoid != elem.OID {
		return nil, pgerror.New(pgerror.CodeDatatypeMismatch, "binary data has array element type %d instead of expected %d", eoid, elem.OID)
	}
	if ndim == 0 {
		if len(b) != 0 {
			return nil, invalidBinary(t)
		}
		return value.Array{Elems: []value.Value{}}, nil
	}
	n, ok1 := u32()
	lb, ok2 := u32()
	// Every element takes at least its 4-byte length.
	if !ok1 || !ok2 || lb != 1 || uint64(n)*4 > uint64(len(b)) {
		return nil, invalidBinary(t)
	}
	elems := make([]value.Value, n)
	for i := range elems {
		l, ok := u32()
		if !ok {
			return nil, invalidBinary(t)
		}
		if l == 0xffffffff {
			elems[i] = value.Null{}
			continue
		}
		if uint64(l) > uint64(len(b)) {
			return nil, invalidBinary(t)
		}
		v, err := ParseBinary(elem, b[:l])
		if err != nil {
			return nil, err
		}
		elems[i], b = v, b[l:]
	}
	if len(b) != 0 {
		return nil, invalidBinary(t)
	}
	return value.Array{Elems: elems}, nil
}

// coerceArray applies the element type's modifiers to every element.
func coerceArray(t T, a value.Array) (value.Value, error) {
	if t.Width == 0 && t.Precision == 0 && t.Elem != OIDFloat4 {
		return a, nil
	}
	elem := t.ElemType()
	out := make([]value.Value, len(a.Elems))
	for i, e := range a.Elems {
		v, err := Coerce(elem, e)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return value.Array{Elems: out}, nil
}

// KeyError returns the error for using a column of type t as an index or
// primary key column, or nil if t can be one: jsonb and arrays have no
// b-tree operator class here (42704, as PostgreSQL says for jsonb),
// intervals and arrays of them no key encoding yet (0A000).
func KeyError(t T) error {
	switch {
	case t.Kind == value.KindJSONB:
		return pgerror.New(pgerror.CodeUndefinedObject, "data type jsonb has no default operator class for access method \"btree\"")
	case t.IsArray():
		return KeyError(t.ElemType())
	case t.Kind == value.KindInterval:
		return pgerror.Unsupported("interval key columns")
	}
	return nil
}
