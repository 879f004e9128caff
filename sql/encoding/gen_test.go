package encoding

import (
	"math"
	"math/rand/v2"
	"strings"

	"github.com/cockroachdb/apd/v3"

	"github.com/shaledb/shaledb/sql/value"
)

// keyableKinds are the kinds with a key encoding.
var keyableKinds = []value.Kind{
	value.KindBool, value.KindInt, value.KindFloat, value.KindNumeric, value.KindText,
	value.KindBytes, value.KindDate, value.KindTimestamp, value.KindTimestampTZ, value.KindUUID,
	value.KindArray,
}

// randValue returns a value of kind k, biased towards the edges: extremes,
// zero, NaN, -0, infinities, embedded 0x00 and 0xff bytes, prefixes.
func randValue(r *rand.Rand, k value.Kind) value.Value {
	if r.IntN(12) == 0 {
		return value.Null{}
	}
	switch k {
	case value.KindBool:
		return value.Bool(r.IntN(2) == 0)
	case value.KindInt:
		return value.Int(randInt64(r))
	case value.KindFloat:
		specials := []float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1),
			math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, 1, -1}
		if r.IntN(3) == 0 {
			return value.Float(specials[r.IntN(len(specials))])
		}
		if r.IntN(2) == 0 {
			return value.Float(float64(r.IntN(200) - 100))
		}
		return value.Float(math.Float64frombits(r.Uint64()))
	case value.KindNumeric:
		return value.Numeric{Dec: randDecimal(r)}
	case value.KindText:
		return value.Text(randBytes(r))
	case value.KindBytes:
		return value.Bytes(randBytes(r))
	case value.KindDate:
		switch r.IntN(8) {
		case 0:
			return value.Date(math.MinInt32)
		case 1:
			return value.Date(math.MaxInt32)
		}
		return value.Date(r.Int32N(2_000_000) - 1_000_000)
	case value.KindTimestamp:
		return value.Timestamp(randInt64(r))
	case value.KindTimestampTZ:
		return value.TimestampTZ(randInt64(r))
	case value.KindUUID:
		var u value.UUID
		for i := range u {
			if r.IntN(3) > 0 {
				u[i] = byte(r.IntN(256))
			}
		}
		return u
	case value.KindArray:
		// Arrays of text: element bytes 00 and 01 meet the array's own
		// element markers; a short array is often a prefix of another.
		elems := make([]value.Value, r.IntN(4))
		for i := range elems {
			elems[i] = randValue(r, value.KindText)
			if t, ok := elems[i].(value.Text); ok && len(t) > 2 {
				elems[i] = t[:2]
			}
		}
		return value.Array{Elems: elems}
	}
	panic("randValue: " + k.String())
}

func randInt64(r *rand.Rand) int64 {
	switch r.IntN(6) {
	case 0:
		return []int64{0, 1, -1, math.MinInt64, math.MaxInt64, math.MinInt64 + 1, math.MaxInt64 - 1}[r.IntN(7)]
	case 1, 2:
		return int64(r.IntN(2000)) - 1000
	}
	return int64(r.Uint64())
}

func randBytes(r *rand.Rand) []byte {
	alphabet := []byte{0x00, 0x01, 0xfe, 0xff, 'a', 'b', 0x7f, 0x80}
	b := make([]byte, r.IntN(8))
	for i := range b {
		if r.IntN(2) == 0 {
			b[i] = alphabet[r.IntN(len(alphabet))]
		} else {
			b[i] = byte(r.IntN(256))
		}
	}
	return b
}

func randDecimal(r *rand.Rand) *apd.Decimal {
	switch r.IntN(14) {
	case 0:
		return &apd.Decimal{Form: apd.NaN}
	case 1:
		return &apd.Decimal{Form: apd.Infinite}
	case 2:
		return &apd.Decimal{Form: apd.Infinite, Negative: true}
	case 3:
		return apd.New(0, int32(-r.IntN(5))) // 0, 0.0, 0.00 …
	}
	var digits strings.Builder
	n := 1 + r.IntN(30)
	for i := 0; i < n; i++ {
		digits.WriteByte(byte('0' + r.IntN(10)))
	}
	if r.IntN(4) == 0 {
		digits.WriteString(strings.Repeat("0", r.IntN(6))) // trailing zeros: other scales
	}
	var coeff apd.BigInt
	coeff.SetString(digits.String(), 10)
	d := apd.NewWithBigInt(&coeff, int32(r.IntN(60)-40))
	d.Negative = r.IntN(2) == 0 && coeff.Sign() != 0
	return d
}
