package types

import (
	"cmp"
	"slices"
	"strings"

	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/value"
)

// The schemas every tenant sees, with PostgreSQL's OIDs for pg_catalog and
// public.
const (
	OIDNamespacePgCatalog = 11
	OIDNamespacePublic    = 2200
	OIDNamespaceInfoSch   = 13000
)

var namespaces = map[int64]string{
	OIDNamespacePgCatalog: "pg_catalog",
	OIDNamespacePublic:    "public",
	OIDNamespaceInfoSch:   "information_schema",
}

// NamespaceOID returns a schema's OID by name.
func NamespaceOID(name string) (int64, bool) {
	for oid, n := range namespaces {
		if n == name {
			return oid, true
		}
	}
	return 0, false
}

// regName is the name a regtype or regnamespace value prints as; ok is
// false for other types and for OIDs that name nothing (which print as
// numbers, as in PostgreSQL). regclass needs the tenant's catalog: the
// session prints it.
func regName(t T, oid int64) (string, bool) {
	if oid == 0 && (t.OID == OIDRegtype || t.OID == OIDRegnamespace || t.OID == OIDRegclass) {
		return "-", true // InvalidOid
	}
	switch t.OID {
	case OIDRegtype:
		if ty, ok := ByOID(uint32(oid)); ok && oid != 0 {
			return ty.String(), true
		}
	case OIDRegnamespace:
		n, ok := namespaces[oid]
		return n, ok
	}
	return "", false
}

// parseRegName reads a regtype or regnamespace name. regclass names are
// resolved by the planner against the tenant's catalog.
func parseRegName(t T, s string) (value.Value, error) {
	name := strings.TrimSpace(s)
	switch t.OID {
	case OIDRegtype:
		base, isArray := strings.CutSuffix(name, "[]")
		ty, err := Resolve(strings.Trim(strings.TrimSpace(base), `"`), nil)
		if err != nil {
			return nil, err
		}
		if isArray {
			if ty, err = arrayOrError(ty); err != nil {
				return nil, err
			}
		}
		return value.Int(int64(ty.OID)), nil
	case OIDRegnamespace:
		if oid, ok := NamespaceOID(strings.Trim(name, `"`)); ok {
			return value.Int(oid), nil
		}
		return nil, pgerror.New(pgerror.CodeUndefinedSchema, "schema %q does not exist", name)
	}
	return nil, pgerror.New(pgerror.CodeUndefinedTable, "relation %q does not exist", name)
}

// internalNames are pg_type.typname of the types whose SQL name differs.
var internalNames = map[uint32]string{
	OIDBool: "bool", OIDInt2: "int2", OIDInt4: "int4", OIDInt8: "int8", OIDFloat4: "float4",
	OIDFloat8: "float8", OIDVarchar: "varchar", OIDBpchar: "bpchar", OIDTimestamp: "timestamp",
	OIDTimestampTZ: "timestamptz", OIDChar: "char",
}

// InternalName is the type's pg_type.typname: int4, _text.
func (t T) InternalName() string {
	if t.IsArray() {
		return "_" + t.ElemType().InternalName()
	}
	if n, ok := internalNames[t.OID]; ok {
		return n
	}
	return names[t.OID]
}

// Category is pg_type.typcategory.
func (t T) Category() string {
	switch {
	case t.IsArray():
		return "A"
	case t.OID == OIDOID || t.OID == OIDRegclass || t.OID == OIDRegtype || t.OID == OIDRegnamespace:
		return "N"
	}
	switch t.Kind {
	case value.KindBool:
		return "B"
	case value.KindInt, value.KindFloat, value.KindNumeric:
		return "N"
	case value.KindText:
		if t.OID == OIDUnknown {
			return "X"
		}
		return "S"
	case value.KindDate, value.KindTimestamp, value.KindTimestampTZ:
		return "D"
	case value.KindInterval:
		return "T"
	}
	return "U"
}

// Collatable reports whether values of t have a collation (the text
// types and their arrays): pg_type.typcollation is then 100, "default".
func (t T) Collatable() bool {
	if t.IsArray() {
		return t.ElemType().Collatable()
	}
	return t.Kind == value.KindText && t.OID != OIDUnknown
}

// All returns every type ShaleDB has, arrays included, in OID order.
func All() []T {
	var out []T
	for _, t := range []T{Bool, Bytea, Char, Name, Int8, Int2, Int4, Text, OID, Float4, Float8, Unknown, Bpchar, Varchar,
		Date, Timestamp, TimestampTZ, Interval, Numeric, Regclass, Regtype, UUID, JSONB, Regnamespace} {
		out = append(out, t)
		if a, ok := ArrayOf(t); ok {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b T) int { return cmp.Compare(a.OID, b.OID) })
	return out
}

// WithTypmod returns the type with oid and the modifiers typmod encodes
// (as atttypmod and format_type take them).
func WithTypmod(oid uint32, typmod int32) (T, bool) {
	t, ok := ByOID(oid)
	if !ok || typmod < 4 {
		return t, ok
	}
	switch {
	case t.OID == OIDVarchar || t.OID == OIDBpchar || t.Elem == OIDVarchar || t.Elem == OIDBpchar:
		t.Width = typmod - 4
	case t.OID == OIDNumeric || t.Elem == OIDNumeric:
		t.Precision, t.Scale = (typmod-4)>>16, (typmod-4)&0xffff
	}
	return t, true
}

func arrayOrError(e T) (T, error) {
	if a, ok := ArrayOf(e); ok {
		return a, nil
	}
	return T{}, pgerror.New(pgerror.CodeUndefinedObject, "type %s[] does not exist", e)
}
