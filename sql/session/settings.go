package session

import (
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/kvcluster"
	"github.com/shaledb/shaledb/planner"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// defaultSettings are the session settings clients read and set, with
// PostgreSQL 15's defaults (ShaleDB always runs in UTC and ISO dates).
func defaultSettings() map[string]string {
	return map[string]string{
		"server_version":                      planner.ServerVersion,
		"server_version_num":                  "150000",
		"server_encoding":                     "UTF8",
		"client_encoding":                     "UTF8",
		"datestyle":                           "ISO, MDY",
		"timezone":                            "UTC",
		"intervalstyle":                       "postgres",
		"integer_datetimes":                   "on",
		"standard_conforming_strings":         "on",
		"application_name":                    "",
		"search_path":                         `"$user", public`,
		"extra_float_digits":                  "1",
		"statement_timeout":                   "0",
		"lock_timeout":                        "0",
		"idle_in_transaction_session_timeout": "0",
		"client_min_messages":                 "notice",
		"default_transaction_isolation":       "repeatable read",
		"transaction_isolation":               "repeatable read",
		"max_identifier_length":               "63",
		"is_superuser":                        "on",
		"bytea_output":                        "hex",
		"synchronous_commit":                  "on",
		"session_authorization":               "",
		"shaledb.database":                    "",
		"shaledb.query_memory_limit":          "256MB",
		"shaledb.read_mode":                   "leader",
	}
}

// parseMemory reads a memory setting as PostgreSQL writes them: a number
// with kB, MB or GB (a bare number is kB).
func parseMemory(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	mult := int64(1 << 10)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 64 && mult == 1<<10 || n <= 0 || n > (1<<50)/mult {
		return 0, false
	}
	return n * mult, true
}

// txnOptions are the options of the session's transactions: follower
// reads when shaledb.read_mode is follower.
func (s *Session) txnOptions(readOnly bool) kvcluster.TxnOptions {
	return kvcluster.TxnOptions{ReadOnly: readOnly, FollowerReads: s.settings["shaledb.read_mode"] == "follower"}
}

// queryMemory is the session's per-statement memory limit in bytes,
// parsed again only when the setting changed.
func (s *Session) queryMemory() int64 {
	if v := s.settings["shaledb.query_memory_limit"]; v != s.memSetting {
		s.memSetting = v
		s.memLimit, _ = parseMemory(v)
	}
	return s.memLimit
}

// reported are the settings whose changes the client is told of with
// ParameterStatus, as PostgreSQL's GUC_REPORT.
var reported = map[string]string{
	"application_name": "application_name", "client_encoding": "client_encoding",
	"datestyle": "DateStyle", "timezone": "TimeZone", "intervalstyle": "IntervalStyle",
	"standard_conforming_strings": "standard_conforming_strings", "is_superuser": "is_superuser",
	"integer_datetimes": "integer_datetimes", "server_version": "server_version",
	"server_encoding": "server_encoding", "session_authorization": "session_authorization",
}

// readOnly settings cannot be SET.
var readOnly = map[string]bool{
	"server_version": true, "server_version_num": true, "server_encoding": true,
	"integer_datetimes": true, "max_identifier_length": true, "is_superuser": true,
	"transaction_isolation": false, "shaledb.database": true,
}

// fixed settings accept only the value ShaleDB implements.
var fixed = map[string][]string{
	"client_encoding":             {"utf8", "utf-8", "unicode"},
	"timezone":                    {"utc", "etc/utc", "gmt", "z", "zulu", "universal"},
	"datestyle":                   {"iso, mdy", "iso", "iso,mdy", "iso, ymd", "iso,ymd"},
	"standard_conforming_strings": {"on", "true", "1"},
	"bytea_output":                {"hex"},
	"extra_float_digits":          {"1", "2", "3"},
}

func (s *Session) setting(name string) (string, bool) {
	v, ok := s.settings[strings.ToLower(name)]
	return v, ok
}

// ReportedSettings are the ParameterStatus values sent at startup.
func (s *Session) ReportedSettings() [][2]string {
	var out [][2]string
	for k, wire := range reported {
		out = append(out, [2]string{wire, s.settings[k]})
	}
	return out
}

func settingValue(args []*pg.Node) (string, error) {
	var parts []string
	for _, a := range args {
		c := a.GetAConst()
		if c == nil {
			if tc := a.GetTypeCast(); tc != nil && tc.Arg.GetAConst() != nil {
				c = tc.Arg.GetAConst()
			} else {
				return "", pgerror.Unsupported("this SET value")
			}
		}
		switch v := c.Val.(type) {
		case *pg.A_Const_Sval:
			parts = append(parts, v.Sval.Sval)
		case *pg.A_Const_Ival:
			parts = append(parts, value.Int(v.Ival.Ival).String())
		case *pg.A_Const_Fval:
			parts = append(parts, v.Fval.Fval)
		case *pg.A_Const_Boolval:
			parts = append(parts, value.Bool(v.Boolval.Boolval).String())
		}
	}
	return strings.Join(parts, ", "), nil
}

func (s *Session) set(st *pg.VariableSetStmt, w ResultWriter) error {
	name := strings.ToLower(st.Name)
	switch st.Kind {
	case pg.VariableSetKind_VAR_SET_MULTI:
		// SET TRANSACTION … / SET SESSION CHARACTERISTICS: isolation
		// levels as BEGIN accepts them.
		if err := transactionOptions(st.Args); err != nil {
			return err
		}
		return w.Complete("SET")
	case pg.VariableSetKind_VAR_RESET_ALL:
		d := defaultSettings()
		for k := range s.settings {
			if !readOnly[k] && k != "session_authorization" && k != "shaledb.database" {
				s.settings[k] = d[k]
			}
		}
		return w.Complete("RESET")
	}
	if name == "transaction_isolation" || name == "default_transaction_isolation" {
		v, err := settingValue(st.Args)
		if err != nil {
			return err
		}
		if strings.EqualFold(v, "serializable") {
			return pgerror.Unsupported("SERIALIZABLE isolation")
		}
		return w.Complete("SET")
	}
	cur, known := s.settings[name]
	_ = cur
	if !known {
		if strings.Contains(name, ".") {
			// Custom placeholder settings (app.x) are allowed, as in PostgreSQL.
		} else {
			return pgerror.New(pgerror.CodeUndefinedObject, "unrecognized configuration parameter %q", name)
		}
	}
	if readOnly[name] {
		return pgerror.New("55P02", "parameter %q cannot be changed", name)
	}
	var v string
	switch st.Kind {
	case pg.VariableSetKind_VAR_SET_VALUE:
		var err error
		if v, err = settingValue(st.Args); err != nil {
			return err
		}
	case pg.VariableSetKind_VAR_SET_DEFAULT, pg.VariableSetKind_VAR_RESET:
		v = defaultSettings()[name]
	default:
		return pgerror.Unsupported("SET FROM CURRENT")
	}
	if allowed, ok := fixed[name]; ok {
		match := false
		for _, a := range allowed {
			if strings.EqualFold(strings.TrimSpace(v), a) {
				match = true
			}
		}
		if !match {
			return pgerror.Unsupported(st.Name + " = " + v + " (ShaleDB supports " + allowed[0] + ")")
		}
		if name == "timezone" {
			v = "UTC"
		}
	}
	if name == "shaledb.read_mode" {
		v = strings.ToLower(strings.TrimSpace(v))
		if v != "leader" && v != "follower" {
			return pgerror.New(pgerror.CodeInvalidParameterValue, "invalid value for parameter %q: %q", name, v).
				WithHint("Available values: leader, follower.")
		}
	}
	if name == "shaledb.query_memory_limit" {
		if _, ok := parseMemory(v); !ok {
			return pgerror.New(pgerror.CodeInvalidParameterValue, "invalid value for parameter %q: %q", name, v).
				WithHint("Valid units for this parameter are \"kB\", \"MB\" and \"GB\"; the least is 64kB.")
		}
	}
	if st.IsLocal {
		// SET LOCAL lasts until the end of the transaction; without a
		// transaction-scoped store yet, it is refused rather than leaked.
		return pgerror.Unsupported("SET LOCAL")
	}
	s.settings[name] = v
	if wire, ok := reported[name]; ok {
		if err := w.ParameterStatus(wire, v); err != nil {
			return err
		}
	}
	return w.Complete("SET")
}

func (s *Session) show(st *pg.VariableShowStmt, w ResultWriter) error {
	name := strings.ToLower(st.Name)
	if name == "all" {
		return pgerror.Unsupported("SHOW ALL")
	}
	v, ok := s.settings[name]
	if !ok {
		return pgerror.New(pgerror.CodeUndefinedObject, "unrecognized configuration parameter %q", name)
	}
	if err := w.Columns([]Column{{Name: name, Type: types.Text}}); err != nil {
		return err
	}
	if err := w.Row([]value.Value{value.Text(v)}); err != nil {
		return err
	}
	return w.Complete("SHOW")
}
