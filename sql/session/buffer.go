package session

import "github.com/shaledb/shaledb/sql/value"

// bufferedWriter holds an implicit block's results until it commits, so a
// block that lost a write-write race can run again without the client
// seeing the first attempt.
type bufferedWriter struct {
	ops           []func(ResultWriter) error
	sawTxnControl bool
}

func (b *bufferedWriter) Columns(cols []Column) error {
	b.ops = append(b.ops, func(w ResultWriter) error { return w.Columns(cols) })
	return nil
}

func (b *bufferedWriter) Row(row []value.Value) error {
	b.ops = append(b.ops, func(w ResultWriter) error { return w.Row(row) })
	return nil
}

func (b *bufferedWriter) Complete(tag string) error {
	b.ops = append(b.ops, func(w ResultWriter) error { return w.Complete(tag) })
	return nil
}

func (b *bufferedWriter) Notice(severity, code, message string) error {
	b.ops = append(b.ops, func(w ResultWriter) error { return w.Notice(severity, code, message) })
	return nil
}

func (b *bufferedWriter) ParameterStatus(name, value string) error {
	b.ops = append(b.ops, func(w ResultWriter) error { return w.ParameterStatus(name, value) })
	return nil
}

func (b *bufferedWriter) flush(w ResultWriter) error {
	for _, op := range b.ops {
		if err := op(w); err != nil {
			return err
		}
	}
	return nil
}
