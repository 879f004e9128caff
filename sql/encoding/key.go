// Package encoding turns SQL values into bytes and back, in two forms:
//
//   - Key encoding (AppendKey, DecodeKey): order-preserving and
//     self-delimiting. Comparing two encodings with bytes.Compare gives the
//     order value.Compare gives, ascending or descending, so a range of
//     values is a range of keys. Several encoded values may be concatenated
//     into one key and still compare column by column.
//   - Row encoding (AppendRowColumn, DecodeRow): compact and keyed by
//     column id, not ordered; see row.go.
//
// Decoders take untrusted bytes: any input returns a value or an error
// wrapping ErrCorrupt, never a panic.
//
// # Key encoding
//
// Each value starts with a marker byte naming its kind; NULL's marker (0xff)
// is above every other, so NULL sorts last ascending, as in PostgreSQL. A
// descending value is the ascending encoding with every byte inverted, which
// reverses the order (and so puts NULL first, as PostgreSQL's DESC does).
// Inversion is sound because ascending encodings are prefix-free: two
// different values differ at some byte within both encodings.
//
//	NULL          ff
//	false / true  10 / 11
//	int           20 <8 bytes big-endian, sign bit flipped>
//	float         28 <8 bytes: IEEE bits, negatives inverted, positives with
//	                  the sign bit set; -0 as 0, every NaN as one NaN above +Inf>
//	numeric       30 -Infinity | 31 <negative, payload inverted> | 32 zero |
//	              33 <positive> | 34 Infinity | 35 NaN
//	              payload: <exponent: 8 bytes, sign flipped> <base-100 digit
//	              pairs, each as pair+1> 00
//	text / bytea  40 / 41 <bytes with 00 escaped as 00 ff> 00 01
//	date          50 <8 bytes like int>
//	timestamp     51 <8 bytes like int>
//	timestamptz   52 <8 bytes like int>
//	uuid          60 <16 bytes>
//	array         70 { 01 <element> }… 00   (elements are not arrays)
//
// An array's elements each follow a 01, and 00 ends it, so a shorter array
// sorts before a longer one it is a prefix of and a NULL element (ff)
// after every value, as PostgreSQL compares arrays.
//
// A numeric's key carries its value, not its display scale: 1.50 and 1.5
// encode equal, as they are equal in a PostgreSQL index, and decode as 1.5.
package encoding

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/cockroachdb/apd/v3"

	"github.com/shaledb/shaledb/sql/value"
)

// ErrCorrupt is wrapped by every decoding error: the bytes are not an
// encoding this package wrote.
var ErrCorrupt = errors.New("encoding: corrupt bytes")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// Direction is the sort direction of a key column.
type Direction uint8

const (
	// Ascending sorts NULL last.
	Ascending Direction = iota
	// Descending sorts NULL first.
	Descending
)

// Key markers, ascending.
const (
	markerFalse       = 0x10
	markerTrue        = 0x11
	markerInt         = 0x20
	markerFloat       = 0x28
	markerNumNegInf   = 0x30
	markerNumNeg      = 0x31
	markerNumZero     = 0x32
	markerNumPos      = 0x33
	markerNumPosInf   = 0x34
	markerNumNaN      = 0x35
	markerText        = 0x40
	markerBytes       = 0x41
	markerDate        = 0x50
	markerTimestamp   = 0x51
	markerTimestampTZ = 0x52
	markerUUID        = 0x60
	markerArray       = 0x70
	markerNull        = 0xff
)

// ErrNotKeyable is returned for values that have no key encoding (jsonb).
var ErrNotKeyable = errors.New("encoding: value kind cannot be part of a key")

// AppendKey appends the key encoding of v in direction dir to b.
func AppendKey(b []byte, v value.Value, dir Direction) ([]byte, error) {
	start := len(b)
	b, err := appendKeyAsc(b, v)
	if err != nil {
		return b[:start], err
	}
	if dir == Descending {
		invert(b[start:])
	}
	return b, nil
}

func invert(b []byte) {
	for i := range b {
		b[i] = ^b[i]
	}
}

func appendKeyAsc(b []byte, v value.Value) ([]byte, error) {
	switch v := v.(type) {
	case value.Null:
		return append(b, markerNull), nil
	case value.Bool:
		if v {
			return append(b, markerTrue), nil
		}
		return append(b, markerFalse), nil
	case value.Int:
		return appendInt64(append(b, markerInt), int64(v)), nil
	case value.Float:
		return binary.BigEndian.AppendUint64(append(b, markerFloat), floatBits(float64(v))), nil
	case value.Numeric:
		return appendNumericKey(b, v.Dec), nil
	case value.Text:
		return appendEscaped(append(b, markerText), []byte(v)), nil
	case value.Bytes:
		return appendEscaped(append(b, markerBytes), v), nil
	case value.Date:
		return appendInt64(append(b, markerDate), int64(v)), nil
	case value.Timestamp:
		return appendInt64(append(b, markerTimestamp), int64(v)), nil
	case value.TimestampTZ:
		return appendInt64(append(b, markerTimestampTZ), int64(v)), nil
	case value.UUID:
		return append(append(b, markerUUID), v[:]...), nil
	case value.Array:
		b = append(b, markerArray)
		for _, e := range v.Elems {
			if e.Kind() == value.KindArray {
				return b, fmt.Errorf("%w: nested array", ErrNotKeyable)
			}
			var err error
			if b, err = appendKeyAsc(append(b, 0x01), e); err != nil {
				return b, err
			}
		}
		return append(b, 0x00), nil
	}
	return b, fmt.Errorf("%w: %s", ErrNotKeyable, v.Kind())
}

func appendInt64(b []byte, i int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(i)^(1<<63))
}

func decodeInt64(b []byte) (int64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, corrupt("truncated 8-byte integer")
	}
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)), b[8:], nil
}

// floatBits maps a float64 to a uint64 whose unsigned order is PostgreSQL's
// float order.
func floatBits(f float64) uint64 {
	if math.IsNaN(f) {
		f = math.NaN()
	}
	if f == 0 {
		f = 0 // -0 becomes +0
	}
	u := math.Float64bits(f)
	if u&(1<<63) != 0 {
		return ^u
	}
	return u | 1<<63
}

func floatFromBits(u uint64) float64 {
	if u&(1<<63) != 0 {
		return math.Float64frombits(u &^ (1 << 63))
	}
	return math.Float64frombits(^u)
}

func appendEscaped(b, s []byte) []byte {
	for {
		i := indexZero(s)
		if i < 0 {
			break
		}
		b = append(b, s[:i]...)
		b = append(b, 0x00, 0xff)
		s = s[i+1:]
	}
	b = append(b, s...)
	return append(b, 0x00, 0x01)
}

func indexZero(s []byte) int {
	for i, c := range s {
		if c == 0 {
			return i
		}
	}
	return -1
}

// decodeEscaped reads an escaped byte string, returning it and the rest.
func decodeEscaped(b []byte) ([]byte, []byte, error) {
	var out []byte
	for {
		i := indexZero(b)
		if i < 0 || i+1 >= len(b) {
			return nil, nil, corrupt("unterminated byte string")
		}
		out = append(out, b[:i]...)
		switch b[i+1] {
		case 0xff:
			out = append(out, 0)
			b = b[i+2:]
		case 0x01:
			if out == nil {
				out = []byte{}
			}
			return out, b[i+2:], nil
		default:
			return nil, nil, corrupt("bad escape 00 %02x in byte string", b[i+1])
		}
	}
}

// appendNumericKey appends the ascending key of d.
func appendNumericKey(b []byte, d *apd.Decimal) []byte {
	switch {
	case d.Form == apd.NaN || d.Form == apd.NaNSignaling:
		return append(b, markerNumNaN)
	case d.Form == apd.Infinite && d.Negative:
		return append(b, markerNumNegInf)
	case d.Form == apd.Infinite:
		return append(b, markerNumPosInf)
	case d.Coeff.Sign() == 0:
		return append(b, markerNumZero)
	}
	digits := d.Coeff.String()
	trimmed := strings.TrimRight(digits, "0")
	// d = 0.<trimmed> * 10^exp
	exp := int64(d.Exponent) + int64(len(digits))
	if d.Negative {
		b = append(b, markerNumNeg)
	} else {
		b = append(b, markerNumPos)
	}
	start := len(b)
	b = appendInt64(b, exp)
	if len(trimmed)%2 == 1 {
		trimmed += "0"
	}
	for i := 0; i < len(trimmed); i += 2 {
		pair := (trimmed[i]-'0')*10 + trimmed[i+1] - '0'
		b = append(b, pair+1)
	}
	b = append(b, 0x00)
	if d.Negative {
		invert(b[start:])
	}
	return b
}

// numericDigitsMax bounds a decoded numeric's digits, as PostgreSQL bounds
// numeric (131072 digits before the point, 16383 after).
const numericDigitsMax = 131072 + 16383

func decodeNumericPayload(b []byte, negative bool) (*apd.Decimal, []byte, error) {
	get := func(i int) byte {
		if negative {
			return ^b[i]
		}
		return b[i]
	}
	if len(b) < 8 {
		return nil, nil, corrupt("truncated numeric exponent")
	}
	var eb [8]byte
	for i := range eb {
		eb[i] = get(i)
	}
	exp, _, _ := decodeInt64(eb[:])
	var digits strings.Builder
	i := 8
	for ; ; i++ {
		if i >= len(b) {
			return nil, nil, corrupt("unterminated numeric digits")
		}
		c := get(i)
		if c == 0 {
			break
		}
		if c > 100 {
			return nil, nil, corrupt("numeric digit pair byte %d out of range", c)
		}
		if digits.Len() >= numericDigitsMax {
			return nil, nil, corrupt("numeric has too many digits")
		}
		digits.WriteByte('0' + (c-1)/10)
		digits.WriteByte('0' + (c-1)%10)
	}
	ds := strings.TrimRight(digits.String(), "0")
	if ds == "" {
		return nil, nil, corrupt("numeric with no significant digits")
	}
	e := exp - int64(len(ds))
	if e < math.MinInt32 || e > math.MaxInt32 {
		return nil, nil, corrupt("numeric exponent %d out of range", exp)
	}
	var coeff apd.BigInt
	if _, ok := coeff.SetString(ds, 10); !ok {
		return nil, nil, corrupt("numeric digits %q", ds)
	}
	d := apd.NewWithBigInt(&coeff, int32(e))
	d.Negative = negative
	return d, b[i+1:], nil
}

// DecodeKey decodes one key-encoded value in direction dir from the front
// of b and returns it with the rest of b.
func DecodeKey(b []byte, dir Direction) (value.Value, []byte, error) {
	if len(b) == 0 {
		return nil, nil, corrupt("empty key value")
	}
	// Decoding a descending value works on an inverted copy of what it
	// needs; the length of the ascending encoding equals that of the
	// descending one.
	if dir == Descending {
		n, err := keyLen(b, true)
		if err != nil {
			return nil, nil, err
		}
		asc := make([]byte, n)
		copy(asc, b[:n])
		invert(asc)
		v, rest, err := DecodeKey(asc, Ascending)
		if err != nil {
			return nil, nil, err
		}
		if len(rest) != 0 {
			return nil, nil, corrupt("descending value length mismatch")
		}
		return v, b[n:], nil
	}
	m, rest := b[0], b[1:]
	switch m {
	case markerNull:
		return value.Null{}, rest, nil
	case markerFalse:
		return value.Bool(false), rest, nil
	case markerTrue:
		return value.Bool(true), rest, nil
	case markerInt, markerDate, markerTimestamp, markerTimestampTZ:
		i, rest, err := decodeInt64(rest)
		if err != nil {
			return nil, nil, err
		}
		switch m {
		case markerInt:
			return value.Int(i), rest, nil
		case markerDate:
			if i < math.MinInt32 || i > math.MaxInt32 {
				return nil, nil, corrupt("date %d out of range", i)
			}
			return value.Date(i), rest, nil
		case markerTimestamp:
			return value.Timestamp(i), rest, nil
		default:
			return value.TimestampTZ(i), rest, nil
		}
	case markerFloat:
		if len(rest) < 8 {
			return nil, nil, corrupt("truncated float")
		}
		return value.Float(floatFromBits(binary.BigEndian.Uint64(rest))), rest[8:], nil
	case markerNumNegInf:
		return value.Numeric{Dec: &apd.Decimal{Form: apd.Infinite, Negative: true}}, rest, nil
	case markerNumPosInf:
		return value.Numeric{Dec: &apd.Decimal{Form: apd.Infinite}}, rest, nil
	case markerNumNaN:
		return value.Numeric{Dec: &apd.Decimal{Form: apd.NaN}}, rest, nil
	case markerNumZero:
		return value.Numeric{Dec: apd.New(0, 0)}, rest, nil
	case markerNumPos, markerNumNeg:
		d, rest, err := decodeNumericPayload(rest, m == markerNumNeg)
		if err != nil {
			return nil, nil, err
		}
		return value.Numeric{Dec: d}, rest, nil
	case markerText, markerBytes:
		s, rest, err := decodeEscaped(rest)
		if err != nil {
			return nil, nil, err
		}
		if m == markerText {
			return value.Text(s), rest, nil
		}
		return value.Bytes(s), rest, nil
	case markerUUID:
		if len(rest) < 16 {
			return nil, nil, corrupt("truncated uuid")
		}
		var u value.UUID
		copy(u[:], rest)
		return u, rest[16:], nil
	case markerArray:
		elems := []value.Value{}
		for {
			if len(rest) == 0 {
				return nil, nil, corrupt("unterminated array")
			}
			switch rest[0] {
			case 0x00:
				return value.Array{Elems: elems}, rest[1:], nil
			case 0x01:
				if len(rest) > 1 && rest[1] == markerArray {
					return nil, nil, corrupt("nested array")
				}
				e, r, err := DecodeKey(rest[1:], Ascending)
				if err != nil {
					return nil, nil, err
				}
				elems, rest = append(elems, e), r
			default:
				return nil, nil, corrupt("bad array element marker")
			}
		}
	}
	return nil, nil, corrupt("unknown key marker %02x", m)
}

// keyLen returns the length of the first encoded value in b, reading it as
// inverted (descending) when inv is set.
func keyLen(b []byte, inv bool) (int, error) {
	if len(b) == 0 {
		return 0, corrupt("truncated key value")
	}
	get := func(i int) byte {
		if inv {
			return ^b[i]
		}
		return b[i]
	}
	need := func(n int) (int, error) {
		if len(b) < n {
			return 0, corrupt("truncated key value")
		}
		return n, nil
	}
	switch get(0) {
	case markerNull, markerFalse, markerTrue, markerNumNegInf, markerNumPosInf, markerNumNaN, markerNumZero:
		return 1, nil
	case markerInt, markerFloat, markerDate, markerTimestamp, markerTimestampTZ:
		return need(9)
	case markerUUID:
		return need(17)
	case markerNumPos, markerNumNeg:
		// Inside a negative numeric the payload is inverted once more.
		payloadInv := inv != (get(0) == markerNumNeg)
		for i := 9; i < len(b); i++ {
			c := b[i]
			if payloadInv {
				c = ^c
			}
			if c == 0 {
				return i + 1, nil
			}
		}
		return 0, corrupt("unterminated numeric")
	case markerText, markerBytes:
		for i := 1; i+1 < len(b); i++ {
			if get(i) == 0 {
				switch get(i + 1) {
				case 0x01:
					return i + 2, nil
				case 0xff:
					i++
				default:
					return 0, corrupt("bad escape in byte string")
				}
			}
		}
		return 0, corrupt("unterminated byte string")
	case markerArray:
		for i := 1; i < len(b); {
			switch get(i) {
			case 0x00:
				return i + 1, nil
			case 0x01:
				if i+1 < len(b) && get(i+1) == markerArray {
					return 0, corrupt("nested array")
				}
				n, err := keyLen(b[i+1:], inv)
				if err != nil {
					return 0, err
				}
				i += 1 + n
			default:
				return 0, corrupt("bad array element marker")
			}
		}
		return 0, corrupt("unterminated array")
	}
	return 0, corrupt("unknown key marker %02x", get(0))
}
