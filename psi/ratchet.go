package psi

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
)

// The key schedule (protocol/README.md, "Key schedule"):
//
//	origin   = HKDF-SHA256(ikm = seed, salt = "psimatch ratchet v1",
//	                       info = "psimatch ratchet origin " || E0)      at the origin epoch E0
//	secret_n = HKDF-SHA256(ikm = secret_{n-1}, salt = "psimatch ratchet v1",
//	                       info = "psimatch ratchet step " || E_n)      for each later epoch E_n
//	key      = oprf.DeriveKey(suite, mode, secret_n,
//	                          "psimatch generation " || E_n || " " || hex(fingerprint))
//
// Each epoch's secret is derived from the previous one, and the previous one
// is erased, so whoever steals the current secret cannot compute an earlier
// epoch's. Within an epoch, each generation of the set (a distinct eligible
// set, named by its fingerprint) has its own key.

// EpochSecretSize is the length of an epoch secret.
const EpochSecretSize = 32

// ratchetSalt is the HKDF salt of every ratchet step.
const ratchetSalt = "psimatch ratchet v1"

// ErrEpochBehind is returned when asked for an epoch secret earlier than the
// ratchet's position: that secret was erased and cannot be recomputed.
var ErrEpochBehind = errors.New("psi: the epoch is before the ratchet's position; its secret was erased")

// EpochSecret is one position of the epoch ratchet: an epoch's name and its
// secret. Wipe it once no later derivation needs it.
type EpochSecret struct {
	Epoch  string
	Secret [EpochSecretSize]byte
}

// RatchetOrigin returns the ratchet's first position, at epoch, derived from
// the master seed. Every party that shares the seed and the origin epoch
// computes the same chain.
func RatchetOrigin(seed []byte, epoch string) (EpochSecret, error) {
	if len(seed) != SeedSize {
		return EpochSecret{}, ErrSeedSize
	}
	return hkdfSecret(seed, "psimatch ratchet origin "+epoch, epoch)
}

// Next returns the ratchet's position at epoch, the epoch after s.Epoch. It
// does not change s: the caller wipes it.
func (s *EpochSecret) Next(epoch string) (EpochSecret, error) {
	return hkdfSecret(s.Secret[:], "psimatch ratchet step "+epoch, epoch)
}

// Wipe overwrites the secret with zeros.
func (s *EpochSecret) Wipe() {
	clear(s.Secret[:])
}

func hkdfSecret(ikm []byte, info, epoch string) (EpochSecret, error) {
	out, err := hkdf.Key(sha256.New, ikm, []byte(ratchetSalt), info, EpochSecretSize)
	if err != nil {
		return EpochSecret{}, fmt.Errorf("psi: ratchet: %w", err)
	}
	s := EpochSecret{Epoch: epoch}
	copy(s.Secret[:], out)
	clear(out)
	return s, nil
}

// WalkRatchet returns the position at the last of epochs by stepping from
// anchor through each of epochs in order (the epochs after anchor.Epoch, up
// to the wanted one; none returns a copy of anchor). Intermediate secrets
// are wiped; anchor is not.
func WalkRatchet(anchor EpochSecret, epochs []string) (EpochSecret, error) {
	cur := anchor
	for i, e := range epochs {
		next, err := cur.Next(e)
		if i > 0 {
			cur.Wipe()
		}
		if err != nil {
			return EpochSecret{}, err
		}
		cur = next
	}
	return cur, nil
}

// DeriveGenerationKey derives the OPRF key of one generation of an epoch's
// set: oprf.DeriveKey(suite, mode, secret, "psimatch generation " || epoch
// || " " || hex(generation)), where generation is the fingerprint of the
// eligible set. A rebuilt set with other identifiers gets another key and
// public key, so outputs from an earlier generation are useless against it.
func DeriveGenerationKey(s *Suite, secret *EpochSecret, generation []byte) (*Key, error) {
	info := fmt.Sprintf("psimatch generation %s %x", secret.Epoch, generation)
	return deriveKey(s, secret.Secret[:], info, secret.Epoch, "the generation key")
}
