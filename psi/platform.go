package psi

import (
	"github.com/psimatch/psimatch/psi/ident"
)

// PrefixSize is how much of each output the platform keeps while building
// its set: 128 bits, more than any truncation the set codec uses.
const PrefixSize = 16

// Prefix is the first PrefixSize bytes of an output.
type Prefix [PrefixSize]byte

// evaluateOwn computes, for each of the platform's own inputs, the prefixes
// of its count-mode output H(ctx || k·H(x)) and of its members-mode output
// (the RFC 9497 output, equal to circl's FullEvaluate), in parallel. This is
// the once-per-epoch work: one hash to group and one scalar multiplication
// per identifier.
func (k *Key) evaluateOwn(inputs []ident.Input, count, members []Prefix) error {
	s := k.suite
	return parallel(len(inputs), chunkSize, func(lo, hi int) error {
		e := s.g.NewElement()
		h := s.newHash()
		for i := lo; i < hi; i++ {
			enc, err := e.Mul(s.hashToGroup(inputs[i][:]), k.k).MarshalBinaryCompress()
			if err != nil {
				return err
			}
			copy(count[i][:], s.countOutput(h, enc))
			copy(members[i][:], s.finalize(h, inputs[i][:], enc))
		}
		return nil
	})
}
