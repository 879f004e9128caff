// Package value holds the SQL values ShaleDB stores and compares: one Go
// type per storage kind, and Compare, which orders them as PostgreSQL 15
// orders them in a b-tree index.
//
// Several SQL types share a kind: smallint, integer and bigint are Int;
// real and double precision are Float; varchar(n), char(n) and text are
// Text. The SQL layer keeps the declared type and checks ranges; storage only
// needs the kind.
package value

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/cockroachdb/apd/v3"
)

// Kind is the storage kind of a value.
type Kind uint8

// The kinds. Their numbers are not stored anywhere; encodings have tags of
// their own.
const (
	KindNull Kind = iota
	KindBool
	KindInt
	KindFloat
	KindNumeric
	KindText
	KindBytes
	KindDate
	KindTimestamp
	KindTimestampTZ
	KindUUID
	KindJSONB
)

var kindNames = [...]string{"null", "bool", "int", "float", "numeric", "text", "bytes", "date", "timestamp", "timestamptz", "uuid", "jsonb", "interval", "array"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Value is one SQL value. The concrete types below are the only
// implementations.
type Value interface {
	Kind() Kind
	String() string
}

type (
	// Null is SQL NULL.
	Null struct{}
	// Bool is boolean.
	Bool bool
	// Int is smallint, integer and bigint.
	Int int64
	// Float is real and double precision.
	Float float64
	// Numeric is an arbitrary-precision decimal, including NaN and
	// ±Infinity as PostgreSQL 15 has them. Dec must not be nil or shared
	// with code that mutates it.
	Numeric struct{ Dec *apd.Decimal }
	// Text is text, varchar and char, UTF-8.
	Text string
	// Bytes is bytea.
	Bytes []byte
	// Date is days since 2000-01-01 (PostgreSQL's epoch); math.MinInt32 and
	// math.MaxInt32 are -infinity and infinity.
	Date int32
	// Timestamp is timestamp without time zone: microseconds since
	// 2000-01-01 00:00:00; math.MinInt64 and math.MaxInt64 are -infinity and
	// infinity.
	Timestamp int64
	// TimestampTZ is timestamp with time zone: microseconds since
	// 2000-01-01 00:00:00 UTC, with the same infinities.
	TimestampTZ int64
	// UUID is a uuid.
	UUID [16]byte
	// JSONB is a jsonb document in its text form.
	JSONB []byte
)

func (Null) Kind() Kind        { return KindNull }
func (Bool) Kind() Kind        { return KindBool }
func (Int) Kind() Kind         { return KindInt }
func (Float) Kind() Kind       { return KindFloat }
func (Numeric) Kind() Kind     { return KindNumeric }
func (Text) Kind() Kind        { return KindText }
func (Bytes) Kind() Kind       { return KindBytes }
func (Date) Kind() Kind        { return KindDate }
func (Timestamp) Kind() Kind   { return KindTimestamp }
func (TimestampTZ) Kind() Kind { return KindTimestampTZ }
func (UUID) Kind() Kind        { return KindUUID }
func (JSONB) Kind() Kind       { return KindJSONB }

// Epoch is PostgreSQL's epoch, the zero of Date and the timestamps.
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func (Null) String() string { return "NULL" }
func (b Bool) String() string {
	if b {
		return "t"
	}
	return "f"
}
func (i Int) String() string { return strconv.FormatInt(int64(i), 10) }
func (f Float) String() string {
	switch {
	case math.IsNaN(float64(f)):
		return "NaN"
	case math.IsInf(float64(f), 1):
		return "Infinity"
	case math.IsInf(float64(f), -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(float64(f), 'g', -1, 64)
}
func (n Numeric) String() string {
	switch n.Dec.Form {
	case apd.NaN, apd.NaNSignaling:
		return "NaN"
	case apd.Infinite:
		if n.Dec.Negative {
			return "-Infinity"
		}
		return "Infinity"
	}
	if n.Dec.Negative && n.Dec.Coeff.Sign() == 0 {
		// PostgreSQL's numeric has no negative zero: -0.00 prints 0.00.
		return new(apd.Decimal).Abs(n.Dec).Text('f')
	}
	return n.Dec.Text('f')
}
func (t Text) String() string  { return string(t) }
func (b Bytes) String() string { return `\x` + hex.EncodeToString(b) }
func (d Date) String() string {
	switch d {
	case math.MinInt32:
		return "-infinity"
	case math.MaxInt32:
		return "infinity"
	}
	return Epoch.AddDate(0, 0, int(d)).Format("2006-01-02")
}
func (t Timestamp) String() string {
	if s, ok := infinity(int64(t)); ok {
		return s
	}
	return Epoch.Add(time.Duration(t) * time.Microsecond).Format("2006-01-02 15:04:05.999999")
}
func (t TimestampTZ) String() string {
	if s, ok := infinity(int64(t)); ok {
		return s
	}
	return Epoch.Add(time.Duration(t)*time.Microsecond).Format("2006-01-02 15:04:05.999999") + "+00"
}
func infinity(us int64) (string, bool) {
	switch us {
	case math.MinInt64:
		return "-infinity", true
	case math.MaxInt64:
		return "infinity", true
	}
	return "", false
}
func (u UUID) String() string {
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
func (j JSONB) String() string { return string(j) }

// ParseNumeric parses a decimal as PostgreSQL's numeric input does,
// including NaN and ±Infinity.
func ParseNumeric(s string) (Numeric, error) {
	d, _, err := apd.NewFromString(s)
	if err != nil {
		return Numeric{}, fmt.Errorf("invalid input syntax for type numeric: %q", s)
	}
	if d.Form == apd.NaNSignaling {
		d.Form = apd.NaN
	}
	if d.Form == apd.NaN {
		d.Negative = false
	}
	return Numeric{Dec: d}, nil
}

// Compare orders two values of the same kind as PostgreSQL's default b-tree
// operator class does, with NULL after every other value (ASC NULLS LAST):
// floats and numerics put NaN above +Infinity and treat -0 as 0, text and
// bytes compare by bytes (the C collation), JSONB by bytes. It panics if the
// kinds differ and neither is NULL: that is a bug in the caller.
func Compare(a, b Value) int {
	if c, ok := sortLast(a.Kind() == KindNull, b.Kind() == KindNull); ok {
		return c
	}
	if a.Kind() != b.Kind() {
		panic(fmt.Sprintf("value.Compare: %s with %s", a.Kind(), b.Kind()))
	}
	switch a := a.(type) {
	case Bool:
		return cmp.Compare(b2i(bool(a)), b2i(bool(b.(Bool))))
	case Int:
		return cmp.Compare(a, b.(Int))
	case Float:
		return compareFloat(float64(a), float64(b.(Float)))
	case Numeric:
		return compareNumeric(a.Dec, b.(Numeric).Dec)
	case Text:
		return cmp.Compare(a, b.(Text))
	case Bytes:
		return bytes.Compare(a, b.(Bytes))
	case Date:
		return cmp.Compare(a, b.(Date))
	case Timestamp:
		return cmp.Compare(a, b.(Timestamp))
	case TimestampTZ:
		return cmp.Compare(a, b.(TimestampTZ))
	case Interval:
		return compareInterval(a, b.(Interval))
	case Array:
		return compareArray(a, b.(Array))
	case UUID:
		bu := b.(UUID)
		return bytes.Compare(a[:], bu[:])
	case JSONB:
		return bytes.Compare(a, b.(JSONB))
	}
	panic(fmt.Sprintf("value.Compare: unknown kind %s", a.Kind()))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sortLast orders two values of which either may be special (NULL, NaN),
// specials above everything else and equal to each other. ok is false when
// neither is special and the caller must compare them.
func sortLast(aSpecial, bSpecial bool) (c int, ok bool) {
	switch {
	case aSpecial && bSpecial:
		return 0, true
	case aSpecial:
		return 1, true
	case bSpecial:
		return -1, true
	}
	return 0, false
}

func compareFloat(a, b float64) int {
	if c, ok := sortLast(math.IsNaN(a), math.IsNaN(b)); ok {
		return c
	}
	return cmp.Compare(a, b) // -0 == 0 here
}

func isNaN(d *apd.Decimal) bool { return d.Form == apd.NaN || d.Form == apd.NaNSignaling }

func compareNumeric(a, b *apd.Decimal) int {
	if c, ok := sortLast(isNaN(a), isNaN(b)); ok {
		return c
	}
	return a.Cmp(b)
}
