// Package keys is the one place that knows the layout of ShaleDB's key
// space. Every other package builds keys through it: tenant data through a
// Codec bound to one tenant, store metadata through the Meta* functions.
//
// The key space, in sort order:
//
//	00 …                                  never written
//	01 <meta suffix>                      store metadata, owned by no tenant
//	   01 01                              format version (migrations)
//	   01 02 <name bytes>                 tenant registry: name -> id
//	   01 03 <tenant id>                  tenant registry: id -> descriptor
//	   01 04                              next tenant id to allocate
//	02 <tenant id> …                      tenant keyspaces, one per tenant
//	   02 <tid> <table id> <index id> <key columns…>   rows and index entries
//	03 …                                  never written: the end of tenants
//
// Ids (tenant, table, index) use the ordered uvarint of package encoding, so
// small ids take one byte. Key columns use its order-preserving key
// encoding, so byte order is SQL order within an index.
//
// A tenant's keys are one contiguous span, [02 <tid>, 02 <tid+1>): the
// uvarint encoding is prefix-free and ordered, so the prefix of tenant N is
// never a prefix of tenant M's and every key of N sorts inside N's span.
// Isolation, quotas, backups, moves and drops are operations on that span.
// Metadata sorts below every tenant, so no tenant id can reach it.
//
// Table ids below FirstUserTableID are reserved for each tenant's catalog.
package keys
