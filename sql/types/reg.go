package types

import (
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
		ty, err := Resolve(strings.Trim(name, `"`), nil)
		if err != nil {
			return nil, err
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
