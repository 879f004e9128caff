package session

import (
	"context"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/sql/catalog"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/tenancy/scram"
)

// Roles, as PostgreSQL has them within one database: CREATE ROLE/USER,
// ALTER ROLE, DROP ROLE, and GRANT/REVOKE of table privileges. Roles are
// the tenant's own; passwords are kept only as SCRAM-SHA-256 verifiers.

// roleOptions are the attributes CREATE/ALTER ROLE set.
type roleOptions struct {
	password    *string // nil: unchanged; "" (with passwordSet): none
	passwordSet bool
	login       *bool
	superuser   *bool
	createRole  *bool
}

func parseRoleOptions(opts []*pg.Node) (roleOptions, error) {
	var o roleOptions
	for _, n := range opts {
		d := n.GetDefElem()
		if d == nil {
			continue
		}
		flag := func() *bool {
			b := true
			if x := d.Arg.GetBoolean(); x != nil {
				b = x.Boolval
			}
			return &b
		}
		switch d.Defname {
		case "password":
			o.passwordSet = true
			p := ""
			if str := d.Arg.GetString_(); str != nil {
				p = str.Sval
			}
			o.password = &p
		case "canlogin":
			o.login = flag()
		case "superuser":
			o.superuser = flag()
		case "createrole":
			o.createRole = flag()
		case "inherit":
			// Every role inherits; there is no role membership yet.
		default:
			return o, pgerror.Unsupported("role option " + strings.ToUpper(d.Defname))
		}
	}
	return o, nil
}

// verifier turns a password from CREATE/ALTER ROLE into a SCRAM verifier.
// A client may send one already hashed (psql's \password does); MD5
// hashes are refused: ShaleDB stores SCRAM verifiers only.
func verifier(password string) (string, error) {
	if strings.HasPrefix(password, "SCRAM-SHA-256$") {
		if _, err := scram.ParseVerifier(password); err != nil {
			return "", pgerror.New(pgerror.CodeInvalidParameterValue, "invalid SCRAM-SHA-256 verifier: %v", err)
		}
		return password, nil
	}
	if len(password) == 35 && strings.HasPrefix(password, "md5") {
		return "", pgerror.New(pgerror.CodeInvalidParameterValue, "MD5 password hashes are not supported; send the password or a SCRAM-SHA-256 verifier")
	}
	return scram.NewVerifier(password)
}

func (o roleOptions) apply(r *catalog.Role) error {
	if o.passwordSet {
		r.SCRAM = ""
		if *o.password != "" {
			v, err := verifier(*o.password)
			if err != nil {
				return err
			}
			r.SCRAM = v
		}
	}
	if o.login != nil {
		r.NoLogin = !*o.login
	}
	if o.superuser != nil {
		r.Superuser = *o.superuser
	}
	if o.createRole != nil {
		r.CreateRole = *o.createRole
	}
	return nil
}

// checkRoleName refuses names PostgreSQL reserves.
func checkRoleName(name string) error {
	if strings.HasPrefix(name, "pg_") || name == "public" || name == "none" {
		return pgerror.New(pgerror.CodeReservedName, "role name %q is reserved", name)
	}
	return nil
}

// mayManageRoles: superusers, and CREATEROLE roles for non-superusers.
func (s *Session) mayManageRoles(target *catalog.Role, o roleOptions) error {
	if s.role.Superuser {
		return nil
	}
	if !s.role.CreateRole {
		return pgerror.New(pgerror.CodeInsufficientPrivilege, "permission denied to create or change roles")
	}
	if (target != nil && target.Superuser) || (o.superuser != nil && *o.superuser) {
		return pgerror.New(pgerror.CodeInsufficientPrivilege, "must be superuser to create or change superusers")
	}
	return nil
}

func (s *Session) createRole(ctx context.Context, st *pg.CreateRoleStmt, w ResultWriter) error {
	if st.StmtType == pg.RoleStmtType_ROLESTMT_GROUP {
		return pgerror.Unsupported("CREATE GROUP")
	}
	o, err := parseRoleOptions(st.Options)
	if err != nil {
		return err
	}
	if err := checkRoleName(st.Role); err != nil {
		return err
	}
	if err := s.mayManageRoles(nil, o); err != nil {
		return err
	}
	if _, found, err := s.cat.Role(ctx, s.txn, st.Role); err != nil {
		return err
	} else if found {
		return pgerror.New(pgerror.CodeDuplicateObject, "role %q already exists", st.Role)
	}
	// CREATE USER logs in unless told otherwise; CREATE ROLE does not.
	r := &catalog.Role{Name: st.Role, NoLogin: st.StmtType != pg.RoleStmtType_ROLESTMT_USER}
	if err := o.apply(r); err != nil {
		return err
	}
	if err := s.cat.PutRole(ctx, s.txn, r); err != nil {
		return err
	}
	return w.Complete("CREATE ROLE")
}

// roleName resolves a RoleSpec (CURRENT_USER and friends included).
func (s *Session) roleName(spec *pg.RoleSpec) (string, error) {
	switch spec.Roletype {
	case pg.RoleSpecType_ROLESPEC_CSTRING:
		return spec.Rolename, nil
	case pg.RoleSpecType_ROLESPEC_CURRENT_USER, pg.RoleSpecType_ROLESPEC_SESSION_USER, pg.RoleSpecType_ROLESPEC_CURRENT_ROLE:
		return s.role.Name, nil
	case pg.RoleSpecType_ROLESPEC_PUBLIC:
		return "public", nil
	}
	return "", pgerror.Unsupported("this role specification")
}

func (s *Session) mustRole(ctx context.Context, name string) (*catalog.Role, error) {
	r, found, err := s.cat.Role(ctx, s.txn, name)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, pgerror.New(pgerror.CodeUndefinedObject, "role %q does not exist", name)
	}
	return r, nil
}

func (s *Session) alterRole(ctx context.Context, st *pg.AlterRoleStmt, w ResultWriter) error {
	name, err := s.roleName(st.Role)
	if err != nil {
		return err
	}
	o, err := parseRoleOptions(st.Options)
	if err != nil {
		return err
	}
	r, err := s.mustRole(ctx, name)
	if err != nil {
		return err
	}
	// Anyone may change their own password, and nothing else of theirs.
	own := name == s.role.Name && o.login == nil && o.superuser == nil && o.createRole == nil
	if !own {
		if err := s.mayManageRoles(r, o); err != nil {
			return err
		}
	}
	changed := *r
	if err := o.apply(&changed); err != nil {
		return err
	}
	if err := s.cat.PutRole(ctx, s.txn, &changed); err != nil {
		return err
	}
	if name == s.role.Name {
		s.role = &changed
	}
	return w.Complete("ALTER ROLE")
}

func (s *Session) dropRole(ctx context.Context, st *pg.DropRoleStmt, w ResultWriter) error {
	tables, err := s.cat.Tables(ctx, s.txn)
	if err != nil {
		return err
	}
	for _, n := range st.Roles {
		name, err := s.roleName(n.GetRoleSpec())
		if err != nil {
			return err
		}
		r, found, err := s.cat.Role(ctx, s.txn, name)
		if err != nil {
			return err
		}
		if !found {
			if st.MissingOk {
				if err := w.Notice("NOTICE", pgerror.CodeSuccessfulCompletion, "role \""+name+"\" does not exist, skipping"); err != nil {
					return err
				}
				continue
			}
			return pgerror.New(pgerror.CodeUndefinedObject, "role %q does not exist", name)
		}
		if name == s.role.Name {
			return pgerror.New(pgerror.CodeObjectInUse, "current user cannot be dropped")
		}
		if err := s.mayManageRoles(r, roleOptions{}); err != nil {
			return err
		}
		for _, t := range tables {
			if t.Owner == name || t.Grants[name] != 0 {
				return pgerror.New(pgerror.CodeDependentObjectsStillExist, "role %q cannot be dropped because some objects depend on it", name).
					WithDetail("privileges for table %s", t.Name)
			}
		}
		if err := s.cat.DropRole(ctx, s.txn, name); err != nil {
			return err
		}
	}
	return w.Complete("DROP ROLE")
}

// grant runs GRANT and REVOKE of table privileges.
func (s *Session) grant(ctx context.Context, st *pg.GrantStmt, w ResultWriter) error {
	tag := "GRANT"
	if !st.IsGrant {
		tag = "REVOKE"
	}
	if st.Objtype != pg.ObjectType_OBJECT_TABLE {
		return pgerror.Unsupported(tag + " on " + strings.ToLower(strings.TrimPrefix(st.Objtype.String(), "OBJECT_")))
	}
	if st.GrantOption {
		return pgerror.Unsupported(tag + " … WITH GRANT OPTION")
	}
	privs := catalog.PrivAll
	if len(st.Privileges) > 0 {
		privs = 0
		for _, n := range st.Privileges {
			ap := n.GetAccessPriv()
			if len(ap.Cols) > 0 {
				return pgerror.Unsupported("column privileges")
			}
			p, ok := catalog.ParsePrivilege(ap.PrivName)
			if !ok {
				return pgerror.New(pgerror.CodeInvalidGrantOperation, "invalid privilege type %s for table", strings.ToUpper(ap.PrivName))
			}
			privs |= p
		}
	}
	var grantees []string
	for _, n := range st.Grantees {
		name, err := s.roleName(n.GetRoleSpec())
		if err != nil {
			return err
		}
		if name != "public" {
			if _, err := s.mustRole(ctx, name); err != nil {
				return err
			}
		}
		grantees = append(grantees, name)
	}
	var tables []*catalog.Table
	switch st.Targtype {
	case pg.GrantTargetType_ACL_TARGET_OBJECT:
		for _, n := range st.Objects {
			rv := n.GetRangeVar()
			t, err := s.cat.MustTable(ctx, s.txn, rv.Relname)
			if err != nil {
				return err
			}
			tables = append(tables, t)
		}
	case pg.GrantTargetType_ACL_TARGET_ALL_IN_SCHEMA:
		for _, n := range st.Objects {
			if sv := n.GetString_(); sv == nil || sv.Sval != "public" {
				return pgerror.New(pgerror.CodeInvalidSchemaName, "schema %q does not exist", n.GetString_().GetSval())
			}
		}
		all, err := s.cat.Tables(ctx, s.txn)
		if err != nil {
			return err
		}
		tables = all
	default:
		return pgerror.Unsupported(tag + " … DEFAULT PRIVILEGES")
	}
	for _, t := range tables {
		if !t.OwnedBy(s.role) {
			// PostgreSQL's answer to a grantor without any privilege.
			return pgerror.New(pgerror.CodeInsufficientPrivilege, "permission denied for table %s", t.Name)
		}
		changed := *t
		changed.Grants = make(map[string]catalog.Privileges, len(t.Grants)+len(grantees))
		for k, v := range t.Grants {
			changed.Grants[k] = v
		}
		for _, g := range grantees {
			if st.IsGrant {
				changed.Grants[g] |= privs
			} else {
				changed.Grants[g] &^= privs
			}
			if changed.Grants[g] == 0 {
				delete(changed.Grants, g)
			}
		}
		if err := s.cat.UpdateTable(ctx, s.txn, &changed); err != nil {
			return err
		}
	}
	return w.Complete(tag)
}
