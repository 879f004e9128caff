// Package types describes the SQL types ShaleDB supports: their PostgreSQL
// OIDs and names, the storage kind each maps to, and their text and binary
// wire formats. Input errors carry PostgreSQL's SQLSTATEs (22P02 invalid
// text, 22003 out of range, 22001 too long, 22P03 bad binary).
package types

import (
	"fmt"
	"math"
	"strings"

	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/value"
)

// OIDs of the supported types, as in PostgreSQL's pg_type.
const (
	OIDBool        uint32 = 16
	OIDBytea       uint32 = 17
	OIDChar        uint32 = 18 // "char": one byte, the system catalogs' flag type
	OIDName        uint32 = 19
	OIDInt8        uint32 = 20
	OIDInt2        uint32 = 21
	OIDInt4        uint32 = 23
	OIDText        uint32 = 25
	OIDOID         uint32 = 26
	OIDFloat4      uint32 = 700
	OIDFloat8      uint32 = 701
	OIDUnknown     uint32 = 705
	OIDBpchar      uint32 = 1042
	OIDVarchar     uint32 = 1043
	OIDDate        uint32 = 1082
	OIDTimestamp   uint32 = 1114
	OIDTimestampTZ uint32 = 1184
	OIDNumeric     uint32 = 1700
	OIDUUID        uint32 = 2950
	OIDJSONB       uint32 = 3802
	OIDInterval    uint32 = 1186
	// The object identifier types: an oid, printed and read as a name.
	OIDRegclass     uint32 = 2205
	OIDRegtype      uint32 = 2206
	OIDRegnamespace uint32 = 4089
)

// T is a SQL type with its modifiers.
type T struct {
	OID  uint32
	Kind value.Kind
	// Width is n of varchar(n) and char(n); 0 when unbounded.
	Width int32
	// Precision and Scale of numeric(p, s); Precision 0 when unconstrained.
	Precision, Scale int32
	// Elem is an array type's element type OID; 0 for other types.
	Elem uint32
}

// The types, unmodified.
var (
	Bool        = T{OID: OIDBool, Kind: value.KindBool}
	Bytea       = T{OID: OIDBytea, Kind: value.KindBytes}
	Int2        = T{OID: OIDInt2, Kind: value.KindInt}
	Int4        = T{OID: OIDInt4, Kind: value.KindInt}
	Int8        = T{OID: OIDInt8, Kind: value.KindInt}
	Float4      = T{OID: OIDFloat4, Kind: value.KindFloat}
	Float8      = T{OID: OIDFloat8, Kind: value.KindFloat}
	Numeric     = T{OID: OIDNumeric, Kind: value.KindNumeric}
	Text        = T{OID: OIDText, Kind: value.KindText}
	Varchar     = T{OID: OIDVarchar, Kind: value.KindText}
	Bpchar      = T{OID: OIDBpchar, Kind: value.KindText}
	Name        = T{OID: OIDName, Kind: value.KindText}
	Char        = T{OID: OIDChar, Kind: value.KindText}
	Date        = T{OID: OIDDate, Kind: value.KindDate}
	Timestamp   = T{OID: OIDTimestamp, Kind: value.KindTimestamp}
	TimestampTZ = T{OID: OIDTimestampTZ, Kind: value.KindTimestampTZ}
	UUID        = T{OID: OIDUUID, Kind: value.KindUUID}
	JSONB       = T{OID: OIDJSONB, Kind: value.KindJSONB}
	Interval    = T{OID: OIDInterval, Kind: value.KindInterval}
	OID         = T{OID: OIDOID, Kind: value.KindInt}
	// Regclass, Regtype and Regnamespace are oids that print as the
	// relation's, type's or schema's name.
	Regclass     = T{OID: OIDRegclass, Kind: value.KindInt}
	Regtype      = T{OID: OIDRegtype, Kind: value.KindInt}
	Regnamespace = T{OID: OIDRegnamespace, Kind: value.KindInt}
	// Unknown is the type of an untyped literal or parameter until
	// context decides it.
	Unknown = T{OID: OIDUnknown, Kind: value.KindText}
)

var names = map[uint32]string{
	OIDBool: "boolean", OIDBytea: "bytea", OIDInt2: "smallint", OIDInt4: "integer", OIDInt8: "bigint",
	OIDFloat4: "real", OIDFloat8: "double precision", OIDNumeric: "numeric", OIDText: "text",
	OIDVarchar: "character varying", OIDBpchar: "character", OIDName: "name", OIDChar: `"char"`, OIDDate: "date",
	OIDTimestamp: "timestamp without time zone", OIDTimestampTZ: "timestamp with time zone",
	OIDUUID: "uuid", OIDJSONB: "jsonb", OIDInterval: "interval", OIDUnknown: "unknown", OIDOID: "oid",
	OIDRegclass: "regclass", OIDRegtype: "regtype", OIDRegnamespace: "regnamespace",
}

// String is the type's name as PostgreSQL's format_type prints it.
func (t T) String() string {
	if t.IsArray() {
		return t.ElemType().String() + "[]"
	}
	n := names[t.OID]
	switch {
	case t.Width > 0:
		return fmt.Sprintf("%s(%d)", n, t.Width)
	case t.Precision > 0:
		return fmt.Sprintf("%s(%d,%d)", n, t.Precision, t.Scale)
	}
	return n
}

// SQLName is the type's SQL name without modifiers, as
// information_schema.columns.data_type shows it: "character varying".
func (t T) SQLName() string {
	if t.IsArray() {
		return "ARRAY"
	}
	return names[t.OID]
}

// ByOID returns the unmodified type with oid.
func ByOID(oid uint32) (T, bool) {
	for _, t := range []T{Bool, Bytea, Int2, Int4, Int8, Float4, Float8, Numeric, Text, Varchar, Bpchar, Name, Char, Date, Timestamp, TimestampTZ, UUID, JSONB, Interval, Unknown, OID, Regclass, Regtype, Regnamespace} {
		if t.OID == oid {
			return t, true
		}
	}
	return arrayByOID(oid)
}

// Size is the typlen sent in RowDescription: the fixed size, or -1.
func (t T) Size() int16 {
	switch t.OID {
	case OIDBool, OIDChar:
		return 1
	case OIDInt2:
		return 2
	case OIDInt4, OIDFloat4, OIDDate, OIDOID, OIDRegclass, OIDRegtype, OIDRegnamespace:
		return 4
	case OIDInt8, OIDFloat8, OIDTimestamp, OIDTimestampTZ:
		return 8
	case OIDUUID, OIDInterval:
		return 16
	}
	return -1
}

// Typmod is the type modifier sent in RowDescription, as PostgreSQL
// computes it.
func (t T) Typmod() int32 {
	switch {
	case t.Width > 0:
		return t.Width + 4
	case t.Precision > 0:
		return (t.Precision<<16 | t.Scale) + 4
	}
	return -1
}

// Resolve maps a type name as pg_query gives it (possibly qualified with
// pg_catalog) and its modifiers to a type. serial is integer and
// bigserial bigint here; the caller adds the sequence default.
func Resolve(name string, mods []int32) (T, error) {
	var t T
	short := strings.TrimPrefix(strings.ToLower(name), "pg_catalog.")
	if strings.HasPrefix(short, "_") { // PostgreSQL's internal array type names: _int4
		e, err := Resolve(short[1:], mods)
		if err != nil {
			return T{}, err
		}
		if a, ok := ArrayOf(e); ok {
			return a, nil
		}
		return T{}, pgerror.New(pgerror.CodeUndefinedObject, "type %q does not exist", name)
	}
	switch short {
	case "bool", "boolean":
		t = Bool
	case "bytea":
		t = Bytea
	case "int2", "smallint", "smallserial", "serial2":
		t = Int2
	case "int4", "int", "integer", "serial", "serial4":
		t = Int4
	case "int8", "bigint", "bigserial", "serial8":
		t = Int8
	case "float4", "real":
		t = Float4
	case "float8", "double precision", "float":
		t = Float8
	case "numeric", "decimal":
		t = Numeric
		if len(mods) > 0 {
			t.Precision = mods[0]
			if len(mods) > 1 {
				t.Scale = mods[1]
			}
			if t.Precision < 1 || t.Precision > 1000 || t.Scale < 0 || t.Scale > t.Precision {
				return T{}, pgerror.New(pgerror.CodeInvalidParameterValue, "NUMERIC precision %d must be between 1 and 1000 and scale %d between 0 and precision", t.Precision, t.Scale)
			}
		}
		return t, nil
	case "text":
		t = Text
	case "varchar", "character varying":
		t = Varchar
	case "bpchar", "char", "character":
		t = Bpchar
		t.Width = 1
	case "name":
		t = Name
	case "date":
		t = Date
	case "timestamp", "timestamp without time zone":
		t = Timestamp
	case "timestamptz", "timestamp with time zone":
		t = TimestampTZ
	case "uuid":
		t = UUID
	case "jsonb":
		t = JSONB
	case "interval":
		t = Interval
	case "oid":
		t = OID
	case "regclass":
		t = Regclass
	case "regtype":
		t = Regtype
	case "regnamespace":
		t = Regnamespace
	default:
		return T{}, pgerror.New(pgerror.CodeUndefinedObject, "type %q does not exist", name)
	}
	if len(mods) > 0 {
		switch t.OID {
		case OIDVarchar, OIDBpchar:
			if mods[0] < 1 || mods[0] > 10485760 {
				return T{}, pgerror.New(pgerror.CodeInvalidParameterValue, "length for type %s must be at least 1", names[t.OID])
			}
			t.Width = mods[0]
		case OIDTimestamp, OIDTimestampTZ, OIDInterval:
			// Precision modifiers are accepted; microseconds are kept.
		default:
			return T{}, pgerror.New(pgerror.CodeSyntaxError, "type modifier is not allowed for type %q", names[t.OID])
		}
	}
	return t, nil
}

// IsSerial reports whether a column type name declares a sequence default.
func IsSerial(name string) bool {
	switch strings.TrimPrefix(strings.ToLower(name), "pg_catalog.") {
	case "serial", "serial4", "bigserial", "serial8", "smallserial", "serial2":
		return true
	}
	return false
}

// Coerce fits v, already of t's kind, to t's range and modifiers on
// assignment: integer ranges (22003), varchar/char length (22001, with
// PostgreSQL's allowance for trailing spaces), numeric precision and scale
// (rounding, 22003), float4 precision.
func Coerce(t T, v value.Value) (value.Value, error) {
	switch v := v.(type) {
	case value.Null:
		return v, nil
	case value.Int:
		switch t.OID {
		case OIDOID, OIDRegclass, OIDRegtype, OIDRegnamespace:
			if v < 0 || v > math.MaxUint32 {
				return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "OID out of range")
			}
		case OIDInt2:
			if v < math.MinInt16 || v > math.MaxInt16 {
				return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "smallint out of range")
			}
		case OIDInt4:
			if v < math.MinInt32 || v > math.MaxInt32 {
				return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "integer out of range")
			}
		}
	case value.Float:
		if t.OID == OIDFloat4 {
			f := float64(v)
			if !math.IsInf(f, 0) && !math.IsNaN(f) && math.Abs(f) > math.MaxFloat32 {
				return nil, pgerror.New(pgerror.CodeNumericValueOutOfRange, "value out of range: overflow")
			}
			return value.Float(float32(f)), nil
		}
	case value.Text:
		if t.Width > 0 {
			s := string(v)
			n := int32(len([]rune(s)))
			if n > t.Width {
				trimmed := strings.TrimRight(s, " ")
				if int32(len([]rune(trimmed))) > t.Width {
					return nil, pgerror.New(pgerror.CodeStringDataRightTruncation, "value too long for type %s", t)
				}
				s = string([]rune(s)[:t.Width])
			}
			if t.OID == OIDBpchar {
				if pad := t.Width - int32(len([]rune(s))); pad > 0 {
					s += strings.Repeat(" ", int(pad))
				}
			}
			return value.Text(s), nil
		}
	case value.Numeric:
		if t.Precision > 0 {
			return roundNumeric(v, t.Precision, t.Scale)
		}
	case value.Array:
		return coerceArray(t, v)
	}
	return v, nil
}
