package customers

import (
	"hash/maphash"

	"github.com/psimatch/psimatch/psi/ident"
)

// index de-duplicates the inputs of one kind without a second copy of them:
// an open-addressing table of positions into the inputs slice (4 bytes a
// slot, at most half full), where a map[ident.Input]int32 costs about 50
// bytes an identifier and doubles as it grows. Lookups compare whole inputs,
// so a hash collision never merges two identifiers.
type index struct {
	seed  maphash.Seed
	slots []int32 // position + 1; 0 is empty
	n     int
}

func newIndex() *index { return &index{seed: maphash.MakeSeed(), slots: make([]int32, 1024)} }

func (x *index) hash(in *ident.Input) uint64 { return maphash.Bytes(x.seed, in[:]) }

// add returns the position of in among inputs, appending it first when it
// is new.
func (x *index) add(inputs *[]ident.Input, in ident.Input) int32 {
	mask := uint64(len(x.slots) - 1)
	for i := x.hash(&in) & mask; ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == 0 {
			id := int32(len(*inputs))
			*inputs = append(*inputs, in)
			x.slots[i] = id + 1
			if x.n++; 2*x.n > len(x.slots) {
				x.grow(*inputs)
			}
			return id
		}
		if (*inputs)[s-1] == in {
			return s - 1
		}
	}
}

func (x *index) grow(inputs []ident.Input) {
	x.slots = make([]int32, 2*len(x.slots))
	mask := uint64(len(x.slots) - 1)
	for id := range inputs {
		i := x.hash(&inputs[id]) & mask
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = int32(id) + 1
	}
}
