package encoding

import "encoding/binary"

// Ordered unsigned integers, for the ids in a key (tenant, table, index).
// Small values, the common case, take one byte:
//
//	0 … 0xef          one byte, the value itself
//	larger            f0+n-1, then the value in n big-endian bytes (n = 1…8,
//	                  the fewest that hold it)
//
// The encoding is prefix-free and ordered: the first byte of a longer
// encoding is larger, and values of one length compare as their bytes do.
const uvarintOneByteMax = 0xef

// AppendUvarint appends the ordered encoding of v.
func AppendUvarint(b []byte, v uint64) []byte {
	if v <= uvarintOneByteMax {
		return append(b, byte(v))
	}
	n := 8
	for n > 1 && v>>(8*(n-1)) == 0 {
		n--
	}
	b = append(b, byte(0xf0+n-1))
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return append(b, buf[8-n:]...)
}

// DecodeUvarint decodes an ordered unsigned integer from the front of b.
// Non-minimal encodings are rejected, so every value has exactly one.
func DecodeUvarint(b []byte) (uint64, []byte, error) {
	if len(b) == 0 {
		return 0, nil, corrupt("empty uvarint")
	}
	if b[0] <= uvarintOneByteMax {
		return uint64(b[0]), b[1:], nil
	}
	n := int(b[0]-0xf0) + 1
	if n > 8 {
		return 0, nil, corrupt("uvarint tag %02x", b[0])
	}
	if len(b) < 1+n {
		return 0, nil, corrupt("truncated uvarint")
	}
	var v uint64
	for _, c := range b[1 : 1+n] {
		v = v<<8 | uint64(c)
	}
	if v <= uvarintOneByteMax || (n > 1 && v>>(8*(n-1)) == 0) {
		return 0, nil, corrupt("non-minimal uvarint")
	}
	return v, b[1+n:], nil
}
