package pgwire

import (
	"encoding/binary"
	"io"

	"github.com/jackc/pgproto3/v2"

	"github.com/shaledb/shaledb/sql/pgerror"
	"github.com/shaledb/shaledb/sql/session"
	"github.com/shaledb/shaledb/sql/types"
	"github.com/shaledb/shaledb/sql/value"
)

// resultWriter turns a session's results into protocol messages.
type resultWriter struct {
	c *conn
	// describe sends RowDescription (simple protocol); the extended
	// protocol describes through Describe instead.
	describe bool
	formats  []int16
	cols     []session.Column
}

func (c *conn) sendRowDescription(cols []session.Column, formats []int16) {
	if len(cols) == 0 {
		c.send(&pgproto3.NoData{})
		return
	}
	fields := make([]pgproto3.FieldDescription, len(cols))
	for i, col := range cols {
		fields[i] = pgproto3.FieldDescription{
			Name:         []byte(col.Name),
			DataTypeOID:  col.Type.OID,
			DataTypeSize: col.Type.Size(),
			TypeModifier: col.Type.Typmod(),
			Format:       formatOf(formats, i),
		}
	}
	c.send(&pgproto3.RowDescription{Fields: fields})
}

func formatOf(formats []int16, i int) int16 {
	switch {
	case len(formats) == 1:
		return formats[0]
	case i < len(formats):
		return formats[i]
	}
	return 0
}

func (r *resultWriter) Columns(cols []session.Column) error {
	r.cols = cols
	if r.describe {
		r.c.sendRowDescription(cols, nil)
	}
	return nil
}

// Row encodes a DataRow straight into the write buffer: no per-value
// allocation.
func (r *resultWriter) Row(row []value.Value) error {
	b := append(r.c.buf[:0], 'D', 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(row)))
	for i, v := range row {
		if v.Kind() == value.KindNull {
			b = binary.BigEndian.AppendUint32(b, 0xffffffff)
			continue
		}
		t := types.Text
		if i < len(r.cols) {
			t = r.cols[i].Type
		}
		at := len(b)
		b = append(b, 0, 0, 0, 0)
		if formatOf(r.formats, i) == 1 {
			b = types.AppendBinary(b, t, v)
		} else {
			b = types.AppendText(b, t, v)
		}
		binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	}
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-1))
	r.c.buf = b
	_, err := r.c.w.Write(b)
	return err
}

func (r *resultWriter) Complete(tag string) error {
	r.c.send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
	return nil
}

func (r *resultWriter) Notice(severity, code, message string) error {
	r.c.send(&pgproto3.NoticeResponse{Severity: severity, SeverityUnlocalized: severity, Code: code, Message: message})
	return nil
}

func (r *resultWriter) ParameterStatus(name, value string) error {
	r.c.send(&pgproto3.ParameterStatus{Name: name, Value: value})
	return nil
}

// CopyIn implements session.CopyIO.
func (r *resultWriter) CopyIn(columns int) (io.Reader, error) {
	r.c.send(&pgproto3.CopyInResponse{OverallFormat: 0, ColumnFormatCodes: make([]uint16, columns)})
	if err := r.c.w.Flush(); err != nil {
		return nil, err
	}
	return &copyInReader{c: r.c}, nil
}

// CopyOut implements session.CopyIO.
func (r *resultWriter) CopyOut(columns int) error {
	r.c.send(&pgproto3.CopyOutResponse{OverallFormat: 0, ColumnFormatCodes: make([]uint16, columns)})
	return nil
}

// CopyData implements session.CopyIO.
func (r *resultWriter) CopyData(line []byte) error {
	b := append(r.c.buf[:0], 'd', 0, 0, 0, 0)
	b = append(b, line...)
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-1))
	r.c.buf = b
	_, err := r.c.w.Write(b)
	return err
}

// CopyDone implements session.CopyIO.
func (r *resultWriter) CopyDone() error {
	r.c.send(&pgproto3.CopyDone{})
	return nil
}

// copyInReader yields the CopyData a client sends during COPY FROM STDIN.
type copyInReader struct {
	c    *conn
	buf  []byte
	done bool
	err  error
}

func (r *copyInReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.done {
			return 0, io.EOF
		}
		if r.err != nil {
			return 0, r.err
		}
		msg, err := r.c.receive()
		if err != nil {
			r.err = err
			return 0, err
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			r.buf = append(r.buf[:0], m.Data...) // pgproto3 reuses m.Data
		case *pgproto3.CopyDone:
			r.done = true
		case *pgproto3.CopyFail:
			r.err = pgerror.New(pgerror.CodeQueryCanceled, "COPY from stdin failed: %s", m.Message)
		case *pgproto3.Flush, *pgproto3.Sync:
			// Ignored during COPY, as PostgreSQL does.
		default:
			r.err = pgerror.New(pgerror.CodeProtocolViolation, "unexpected message type 0x%02X during COPY from stdin", messageType(msg))
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func messageType(msg pgproto3.FrontendMessage) byte {
	b, _ := msg.Encode(nil)
	if len(b) > 0 {
		return b[0]
	}
	return 0
}
