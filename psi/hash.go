package psi

import "hash"

// hashState is a reusable hash with its own output buffer, one per worker.
type hashState struct {
	hash.Hash
	buf []byte
}

func (s *Suite) newHash() hashState {
	return hashState{Hash: s.hash.New(), buf: make([]byte, 0, s.hash.Size())}
}
