package encoding

import (
	"encoding/binary"
	"math"

	"github.com/cockroachdb/apd/v3"

	"github.com/shaledb/shaledb/sql/value"
)

// Row encoding
//
// A row's value is a sequence of columns in increasing column id order, each
//
//	<column id delta: uvarint> <tag: 1 byte> <payload>
//
// where the delta is from the previous column's id (from 0 for the first).
// Payloads are self-delimiting, so a reader skips columns it does not know
// (dropped ones) and finds no entry for columns added after the row was
// written, which then take the value the column was added with: ALTER TABLE
// ADD COLUMN needs no rewrite. NULL is written explicitly (tag 0), so that a
// NULL stored after such an ADD COLUMN stays NULL.
//
//	tag  kind         payload
//	0    NULL         —
//	1/2  false/true   —
//	3    int          zigzag varint
//	4    float        8 bytes, IEEE bits big-endian (NaN and -0 kept)
//	5    numeric      form|sign byte, zigzag varint exponent, uvarint length,
//	                  coefficient big-endian (display scale kept)
//	6    text         uvarint length, bytes
//	7    bytea        uvarint length, bytes
//	8    date         zigzag varint
//	9    timestamp    zigzag varint
//	10   timestamptz  zigzag varint
//	11   uuid         16 bytes
//	12   jsonb        uvarint length, bytes
//	13   interval     zigzag varints months, days, microseconds
//	14   array        uvarint element count, each element as <tag> <payload>
const (
	tagNull = iota
	tagFalse
	tagTrue
	tagInt
	tagFloat
	tagNumeric
	tagText
	tagBytes
	tagDate
	tagTimestamp
	tagTimestampTZ
	tagUUID
	tagJSONB
	tagInterval
	tagArray
)

// maxArrayDepth bounds nesting when decoding untrusted bytes; arrays the
// SQL layer writes are one level deep.
const maxArrayDepth = 4

// ColumnID identifies a column within its table for the life of the table;
// ids are never reused.
type ColumnID uint32

// AppendRowColumn appends column id with value v to a row encoding b whose
// last column was prev (0 for the first). Columns must be appended in
// increasing id order.
func AppendRowColumn(b []byte, prev, id ColumnID, v value.Value) []byte {
	b = binary.AppendUvarint(b, uint64(id-prev))
	return appendRowValue(b, v)
}

func appendRowValue(b []byte, v value.Value) []byte {
	switch v := v.(type) {
	case value.Null:
		return append(b, tagNull)
	case value.Bool:
		if v {
			return append(b, tagTrue)
		}
		return append(b, tagFalse)
	case value.Int:
		return binary.AppendVarint(append(b, tagInt), int64(v))
	case value.Float:
		return binary.BigEndian.AppendUint64(append(b, tagFloat), math.Float64bits(float64(v)))
	case value.Numeric:
		d := v.Dec
		flags := byte(d.Form) << 1
		if d.Negative {
			flags |= 1
		}
		b = append(b, tagNumeric, flags)
		b = binary.AppendVarint(b, int64(d.Exponent))
		coeff := d.Coeff.Bytes()
		b = binary.AppendUvarint(b, uint64(len(coeff)))
		return append(b, coeff...)
	case value.Text:
		return appendLenPrefixed(append(b, tagText), []byte(v))
	case value.Bytes:
		return appendLenPrefixed(append(b, tagBytes), v)
	case value.Date:
		return binary.AppendVarint(append(b, tagDate), int64(v))
	case value.Timestamp:
		return binary.AppendVarint(append(b, tagTimestamp), int64(v))
	case value.TimestampTZ:
		return binary.AppendVarint(append(b, tagTimestampTZ), int64(v))
	case value.UUID:
		return append(append(b, tagUUID), v[:]...)
	case value.JSONB:
		return appendLenPrefixed(append(b, tagJSONB), v)
	case value.Interval:
		b = binary.AppendVarint(append(b, tagInterval), int64(v.Months))
		b = binary.AppendVarint(b, int64(v.Days))
		return binary.AppendVarint(b, v.Micros)
	case value.Array:
		b = binary.AppendUvarint(append(b, tagArray), uint64(len(v.Elems)))
		for _, e := range v.Elems {
			b = appendRowValue(b, e)
		}
		return b
	}
	panic("encoding: AppendRowColumn of unknown value type")
}

func appendLenPrefixed(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// DecodeRow calls fn for each column of a row encoding, in id order. The
// values are the caller's. It stops at fn's first error and returns it.
func DecodeRow(b []byte, fn func(id ColumnID, v value.Value) error) error {
	var id ColumnID
	for len(b) > 0 {
		delta, n := binary.Uvarint(b)
		if n <= 0 || delta == 0 || delta > math.MaxUint32-uint64(id) {
			return corrupt("bad column id delta")
		}
		id += ColumnID(delta)
		b = b[n:]
		if len(b) == 0 {
			return corrupt("missing column tag")
		}
		v, rest, err := decodeRowValue(b[0], b[1:], 0)
		if err != nil {
			return err
		}
		b = rest
		if err := fn(id, v); err != nil {
			return err
		}
	}
	return nil
}

func decodeRowValue(tag byte, b []byte, depth int) (value.Value, []byte, error) {
	varint := func() (int64, []byte, error) {
		i, n := binary.Varint(b)
		if n <= 0 {
			return 0, nil, corrupt("bad varint")
		}
		return i, b[n:], nil
	}
	lenPrefixed := func() ([]byte, []byte, error) {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return nil, nil, corrupt("bad length prefix")
		}
		s := make([]byte, l)
		copy(s, b[n:])
		return s, b[n+int(l):], nil
	}
	switch tag {
	case tagNull:
		return value.Null{}, b, nil
	case tagFalse:
		return value.Bool(false), b, nil
	case tagTrue:
		return value.Bool(true), b, nil
	case tagInt, tagDate, tagTimestamp, tagTimestampTZ:
		i, rest, err := varint()
		if err != nil {
			return nil, nil, err
		}
		switch tag {
		case tagInt:
			return value.Int(i), rest, nil
		case tagDate:
			if i < math.MinInt32 || i > math.MaxInt32 {
				return nil, nil, corrupt("date out of range")
			}
			return value.Date(i), rest, nil
		case tagTimestamp:
			return value.Timestamp(i), rest, nil
		default:
			return value.TimestampTZ(i), rest, nil
		}
	case tagFloat:
		if len(b) < 8 {
			return nil, nil, corrupt("truncated float")
		}
		return value.Float(math.Float64frombits(binary.BigEndian.Uint64(b))), b[8:], nil
	case tagNumeric:
		if len(b) < 1 {
			return nil, nil, corrupt("truncated numeric")
		}
		flags := b[0]
		if flags>>1 > byte(apd.NaN) {
			return nil, nil, corrupt("numeric form %d", flags>>1)
		}
		b = b[1:]
		exp, rest, err := varint()
		if err != nil {
			return nil, nil, err
		}
		if exp < math.MinInt32 || exp > math.MaxInt32 {
			return nil, nil, corrupt("numeric exponent out of range")
		}
		b = rest
		coeff, rest, err := lenPrefixed()
		if err != nil {
			return nil, nil, err
		}
		d := &apd.Decimal{Form: apd.Form(flags >> 1), Negative: flags&1 != 0, Exponent: int32(exp)}
		d.Coeff.SetBytes(coeff)
		return value.Numeric{Dec: d}, rest, nil
	case tagText, tagBytes, tagJSONB:
		s, rest, err := lenPrefixed()
		if err != nil {
			return nil, nil, err
		}
		switch tag {
		case tagText:
			return value.Text(s), rest, nil
		case tagBytes:
			return value.Bytes(s), rest, nil
		default:
			return value.JSONB(s), rest, nil
		}
	case tagInterval:
		var parts [3]int64
		for i := range parts {
			v, n := binary.Varint(b)
			if n <= 0 {
				return nil, nil, corrupt("truncated interval")
			}
			parts[i], b = v, b[n:]
		}
		if parts[0] < math.MinInt32 || parts[0] > math.MaxInt32 || parts[1] < math.MinInt32 || parts[1] > math.MaxInt32 {
			return nil, nil, corrupt("interval out of range")
		}
		return value.Interval{Months: int32(parts[0]), Days: int32(parts[1]), Micros: parts[2]}, b, nil
	case tagArray:
		n, w := binary.Uvarint(b)
		// Every element takes at least its tag byte.
		if w <= 0 || n > uint64(len(b)-w) || depth >= maxArrayDepth {
			return nil, nil, corrupt("bad array")
		}
		b = b[w:]
		elems := make([]value.Value, n)
		for i := range elems {
			if len(b) == 0 {
				return nil, nil, corrupt("truncated array")
			}
			e, rest, err := decodeRowValue(b[0], b[1:], depth+1)
			if err != nil {
				return nil, nil, err
			}
			elems[i], b = e, rest
		}
		return value.Array{Elems: elems}, b, nil
	case tagUUID:
		if len(b) < 16 {
			return nil, nil, corrupt("truncated uuid")
		}
		var u value.UUID
		copy(u[:], b)
		return u, b[16:], nil
	}
	return nil, nil, corrupt("unknown column tag %d", tag)
}
