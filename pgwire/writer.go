package pgwire

import (
	"encoding/binary"

	"github.com/jackc/pgproto3/v2"

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
