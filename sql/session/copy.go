package session

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/shaledb/shaledb/executor"
	"github.com/shaledb/shaledb/planner"
	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// CopyIO is the wire protocol's side of COPY. A ResultWriter that supports
// COPY implements it.
type CopyIO interface {
	// CopyIn asks the client for data (CopyInResponse) and returns the
	// data it sends: EOF at CopyDone, an error at CopyFail.
	CopyIn(columns int) (io.Reader, error)
	// CopyOut announces outgoing data (CopyOutResponse).
	CopyOut(columns int) error
	// CopyData sends one row's encoded line.
	CopyData(line []byte) error
	// CopyDone ends outgoing data.
	CopyDone() error
}

// copyOptions are the supported COPY options.
type copyOptions struct {
	csv       bool
	header    bool
	delimiter byte
	null      string
	quote     byte
}

func parseCopyOptions(opts []*pg.Node) (copyOptions, error) {
	o := copyOptions{delimiter: '\t', null: `\N`, quote: '"'}
	delimSet, nullSet := false, false
	for _, n := range opts {
		d := n.GetDefElem()
		arg := ""
		if d.Arg != nil {
			if c := d.Arg.GetAConst(); c != nil && c.GetSval() != nil {
				arg = c.GetSval().Sval
			} else if s := d.Arg.GetString_(); s != nil {
				arg = s.Sval
			} else if c := d.Arg.GetAConst(); c != nil && c.GetBoolval() != nil {
				arg = strconv.FormatBool(c.GetBoolval().Boolval)
			} else if c := d.Arg.GetAConst(); c != nil && c.GetIval() != nil {
				arg = strconv.Itoa(int(c.GetIval().Ival))
			}
		}
		switch d.Defname {
		case "format":
			switch strings.ToLower(arg) {
			case "text":
			case "csv":
				o.csv = true
			default:
				return o, pgerror.Unsupported("COPY format " + arg)
			}
		case "header":
			o.header = arg == "" || arg == "true" || arg == "on" || arg == "1"
		case "delimiter":
			if len(arg) != 1 {
				return o, pgerror.New(pgerror.CodeFeatureNotSupported, "COPY delimiter must be a single one-byte character")
			}
			o.delimiter, delimSet = arg[0], true
		case "null":
			o.null, nullSet = arg, true
		case "quote":
			if len(arg) != 1 {
				return o, pgerror.New(pgerror.CodeFeatureNotSupported, "COPY quote must be a single one-byte character")
			}
			o.quote = arg[0]
		case "freeze", "encoding":
		default:
			return o, pgerror.Unsupported("COPY option " + d.Defname)
		}
	}
	if o.csv {
		if !delimSet {
			o.delimiter = ','
		}
		if !nullSet {
			o.null = ""
		}
	}
	if o.header && !o.csv {
		return o, pgerror.New(pgerror.CodeFeatureNotSupported, "COPY HEADER available only in CSV mode")
	}
	return o, nil
}

func (s *Session) copy(ctx context.Context, st *pg.CopyStmt, w ResultWriter) error {
	cio, ok := unwrap(w).(CopyIO)
	if !ok {
		return pgerror.Unsupported("COPY in the extended query protocol")
	}
	if st.Filename != "" || st.IsProgram {
		return pgerror.Unsupported("COPY to or from a server file or program; use STDIN/STDOUT")
	}
	if st.WhereClause != nil {
		return pgerror.Unsupported("COPY … WHERE")
	}
	opts, err := parseCopyOptions(st.Options)
	if err != nil {
		return err
	}
	if st.IsFrom {
		return s.copyFrom(ctx, st, opts, cio, w)
	}
	return s.copyTo(ctx, st, opts, cio, w)
}

// copyTarget plans the rows COPY TO sends.
func (s *Session) copyTarget(ctx context.Context, st *pg.CopyStmt) (planner.Plan, error) {
	b := s.builder(ctx, nil)
	if st.Query != nil {
		sel := st.Query.GetSelectStmt()
		if sel == nil {
			return nil, pgerror.Unsupported("COPY (non-SELECT query) TO")
		}
		return b.Select(sel)
	}
	targets := []*pg.Node{}
	if len(st.Attlist) == 0 {
		targets = append(targets, pg.MakeResTargetNodeWithVal(pg.MakeColumnRefNode([]*pg.Node{pg.MakeAStarNode()}, 0), 0))
	}
	for _, a := range st.Attlist {
		targets = append(targets, pg.MakeResTargetNodeWithVal(pg.MakeColumnRefNode([]*pg.Node{a}, 0), 0))
	}
	return b.Select(&pg.SelectStmt{TargetList: targets, FromClause: []*pg.Node{{Node: &pg.Node_RangeVar{RangeVar: st.Relation}}}})
}

func (s *Session) copyTo(ctx context.Context, st *pg.CopyStmt, o copyOptions, cio CopyIO, w ResultWriter) error {
	p, err := s.copyTarget(ctx, st)
	if err == nil {
		err = s.checkPrivileges(p)
	}
	if err != nil {
		return err
	}
	cols := p.Columns()
	if err := cio.CopyOut(len(cols)); err != nil {
		return err
	}
	var line []byte
	if o.header {
		line = line[:0]
		for i, c := range cols {
			if i > 0 {
				line = append(line, o.delimiter)
			}
			line = appendCSVField(line, c.Name, o)
		}
		if err := cio.CopyData(append(line, '\n')); err != nil {
			return err
		}
	}
	n, err := executor.Run(s.runtime(ctx, nil), p, func(row []value.Value) error {
		line = line[:0]
		for i, v := range row {
			if i > 0 {
				line = append(line, o.delimiter)
			}
			switch {
			case v.Kind() == value.KindNull:
				line = append(line, o.null...)
			case o.csv:
				line = appendCSVField(line, string(types.AppendText(nil, cols[i].Type, v)), o)
			default:
				line = appendTextField(line, types.AppendText(nil, cols[i].Type, v), o.delimiter)
			}
		}
		return cio.CopyData(append(line, '\n'))
	})
	if err != nil {
		return err
	}
	if err := cio.CopyDone(); err != nil {
		return err
	}
	return w.Complete("COPY " + strconv.FormatInt(n, 10))
}

// appendTextField escapes a value for COPY's text format.
func appendTextField(b, v []byte, delim byte) []byte {
	for _, c := range v {
		switch c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			if c == delim {
				b = append(b, '\\')
			}
			b = append(b, c)
		}
	}
	return b
}

func appendCSVField(b []byte, v string, o copyOptions) []byte {
	needs := v == "" && o.null == "" || strings.ContainsAny(v, string([]byte{o.delimiter, o.quote, '\n', '\r'})) || v == o.null
	if !needs {
		return append(b, v...)
	}
	b = append(b, o.quote)
	for i := 0; i < len(v); i++ {
		if v[i] == o.quote {
			b = append(b, o.quote)
		}
		b = append(b, v[i])
	}
	return append(b, o.quote)
}

func (s *Session) copyFrom(ctx context.Context, st *pg.CopyStmt, o copyOptions, cio CopyIO, w ResultWriter) error {
	if st.Query != nil {
		return pgerror.New(pgerror.CodeSyntaxError, "COPY FROM requires a table")
	}
	t, err := s.cat.MustTable(ctx, s.txn, st.Relation.Relname)
	if err != nil {
		return err
	}
	// The columns the data holds.
	var names []string
	for _, a := range st.Attlist {
		names = append(names, a.GetString_().Sval)
	}
	b := s.builder(ctx, nil)
	var next func() ([]value.Value, error)
	ins, colTypes, err := b.CopyInsert(t, names, func() ([]value.Value, error) { return next() })
	if err == nil {
		err = s.checkPrivileges(ins)
	}
	if err != nil {
		return err
	}
	data, err := cio.CopyIn(len(colTypes))
	if err != nil {
		return err
	}
	rows := newCopyReader(data, o)
	lineNo := 0
	next = func() ([]value.Value, error) {
		fields, err := rows.next()
		lineNo++
		if err != nil {
			return nil, err
		}
		if fields == nil {
			return nil, nil
		}
		if len(fields) != len(colTypes) {
			msg := "missing data for column"
			if len(fields) > len(colTypes) {
				msg = "extra data after last expected column"
			}
			return nil, pgerror.New(pgerror.CodeBadCopyFileFormat, "%s", msg).WithDetail("COPY %s, line %d", t.Name, lineNo)
		}
		row := make([]value.Value, len(fields))
		for i, f := range fields {
			if f == nil {
				row[i] = value.Null{}
				continue
			}
			v, err := types.ParseText(colTypes[i], *f)
			if err != nil {
				if pe, ok := err.(*pgerror.Error); ok {
					pe.Detail = "COPY " + t.Name + ", line " + strconv.Itoa(lineNo)
				}
				return nil, err
			}
			row[i] = v
		}
		return row, nil
	}
	n, err := executor.Run(s.runtime(ctx, nil), ins, func([]value.Value) error { return nil })
	// Read on to the client's CopyDone whatever happened — the rows may
	// have failed, or ended at a \. marker before it — so the protocol
	// stays in step: the answer comes after CopyDone, as in PostgreSQL.
	// A CopyFail after the marker still fails the COPY.
	if _, derr := io.Copy(io.Discard, data); err == nil {
		err = derr
	}
	if err != nil {
		return err
	}
	return w.Complete("COPY " + strconv.FormatInt(n, 10))
}

// copyReader splits COPY data into rows of fields; a nil field is NULL.
type copyReader struct {
	br     *bufio.Reader
	o      copyOptions
	header bool
	done   bool
}

func newCopyReader(r io.Reader, o copyOptions) *copyReader {
	return &copyReader{br: bufio.NewReaderSize(r, 64<<10), o: o, header: o.header}
}

func (c *copyReader) next() ([]*string, error) {
	if c.done {
		return nil, nil
	}
	if c.o.csv {
		return c.nextCSV()
	}
	line, err := c.br.ReadBytes('\n')
	if err == io.EOF && len(line) == 0 {
		c.done = true
		return nil, nil
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	if string(line) == `\.` {
		c.done = true
		return nil, nil
	}
	var fields []*string
	for _, raw := range bytes.Split(line, []byte{c.o.delimiter}) {
		if string(raw) == c.o.null {
			fields = append(fields, nil)
			continue
		}
		s, err := unescapeText(raw)
		if err != nil {
			return nil, err
		}
		fields = append(fields, &s)
	}
	return fields, nil
}

// unescapeText undoes COPY text-format escapes.
func unescapeText(raw []byte) (string, error) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw), nil
	}
	var out []byte
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 == len(raw) {
			out = append(out, c)
			continue
		}
		i++
		switch raw[i] {
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'r':
			out = append(out, '\r')
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'v':
			out = append(out, '\v')
		case 'x':
			n, j := 0, i+1
			for ; j < len(raw) && j < i+3 && isHex(raw[j]); j++ {
				n = n*16 + hexVal(raw[j])
			}
			if j == i+1 {
				out = append(out, 'x')
				continue
			}
			out = append(out, byte(n))
			i = j - 1
		case '0', '1', '2', '3', '4', '5', '6', '7':
			n, j := 0, i
			for ; j < len(raw) && j < i+3 && raw[j] >= '0' && raw[j] <= '7'; j++ {
				n = n*8 + int(raw[j]-'0')
			}
			out = append(out, byte(n))
			i = j - 1
		default:
			out = append(out, raw[i])
		}
	}
	return string(out), nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return int(c-'A') + 10
}

// nextCSV reads one CSV record: fields split by the delimiter, a quoted
// field may hold delimiters, newlines and doubled quotes; only an unquoted
// field equal to the NULL string is NULL (so "" is an empty string).
func (c *copyReader) nextCSV() ([]*string, error) {
	for {
		fields, err := c.csvRecord()
		if err != nil || fields == nil {
			return fields, err
		}
		if len(fields) == 1 && fields[0] != nil && *fields[0] == `\.` {
			c.done = true
			return nil, nil
		}
		if c.header {
			c.header = false
			continue
		}
		return fields, nil
	}
}

func (c *copyReader) csvRecord() ([]*string, error) {
	var fields []*string
	var cur []byte
	quoted, inQuotes, started := false, false, false
	end := func() {
		s := string(cur)
		if !quoted && s == c.o.null {
			fields = append(fields, nil)
		} else {
			fields = append(fields, &s)
		}
		cur, quoted = cur[:0], false
	}
	for {
		ch, err := c.br.ReadByte()
		if err == io.EOF {
			if inQuotes {
				return nil, pgerror.New(pgerror.CodeBadCopyFileFormat, "unterminated CSV quoted field")
			}
			if !started {
				c.done = true
				return nil, nil
			}
			end()
			return fields, nil
		}
		if err != nil {
			return nil, err
		}
		started = true
		switch {
		case inQuotes && ch == c.o.quote:
			if nxt, err := c.br.Peek(1); err == nil && nxt[0] == c.o.quote {
				_, _ = c.br.ReadByte()
				cur = append(cur, c.o.quote)
			} else {
				inQuotes = false
			}
		case inQuotes:
			cur = append(cur, ch)
		case ch == c.o.quote && len(cur) == 0 && !quoted:
			inQuotes, quoted = true, true
		case ch == c.o.delimiter:
			end()
		case ch == '\n':
			end()
			return fields, nil
		case ch == '\r':
			if nxt, err := c.br.Peek(1); err == nil && nxt[0] == '\n' {
				continue
			}
			end()
			return fields, nil
		default:
			cur = append(cur, ch)
		}
	}
}
