package psi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestRatchetIsAPureFunction: two parties that share the seed and the
// origin epoch compute the same secret for any later epoch, whether they
// walk step by step (a long-running server) or from the origin in one go (a
// replica that starts late), and the walk does not change its anchor.
func TestRatchetIsAPureFunction(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, SeedSize)
	epochs := []string{"e1", "e2", "e3", "e4"}
	origin, err := RatchetOrigin(seed, "e0")
	if err != nil {
		t.Fatal(err)
	}
	kept := origin
	oneGo, err := WalkRatchet(origin, epochs)
	if err != nil {
		t.Fatal(err)
	}
	if origin != kept {
		t.Fatal("WalkRatchet changed its anchor")
	}
	step := origin
	for _, e := range epochs {
		next, err := step.Next(e)
		if err != nil {
			t.Fatal(err)
		}
		step = next
	}
	if step != oneGo || oneGo.Epoch != "e4" {
		t.Fatalf("step by step %s %x, in one go %s %x", step.Epoch, step.Secret[:4], oneGo.Epoch, oneGo.Secret[:4])
	}
	// From a stored anchor half way.
	mid, _ := WalkRatchet(origin, epochs[:2])
	fromMid, _ := WalkRatchet(mid, epochs[2:])
	if fromMid != oneGo {
		t.Fatal("walking from a stored anchor gives another secret")
	}
	// Another seed, another origin epoch, another step name: another chain.
	other, _ := RatchetOrigin(bytes.Repeat([]byte{8}, SeedSize), "e0")
	late, _ := RatchetOrigin(seed, "e1")
	skip, _ := WalkRatchet(origin, []string{"e2"})
	for name, s := range map[string]EpochSecret{"other seed": other, "other origin": late, "skipped epoch": skip} {
		if s.Secret == origin.Secret || s.Secret == oneGo.Secret || s.Secret == mid.Secret {
			t.Errorf("%s: the same secret", name)
		}
	}
	if _, err := RatchetOrigin(seed[:31], "e0"); err != ErrSeedSize {
		t.Errorf("short seed: %v", err)
	}
	origin.Wipe()
	if origin.Secret != ([EpochSecretSize]byte{}) {
		t.Error("Wipe left the secret")
	}
}

// TestGenerationKeys: each generation (fingerprint) of an epoch has its own
// key, each epoch too, and a key is a pure function of its inputs. The
// vector pins the schedule: a change to it changes every deployed key.
func TestGenerationKeys(t *testing.T) {
	s, err := SuiteByName("ristretto255", false)
	if err != nil {
		t.Fatal(err)
	}
	seed := bytes.Repeat([]byte{7}, SeedSize)
	e0, _ := RatchetOrigin(seed, "20261130T000000Z")
	e1, _ := e0.Next("20261201T000000Z")
	fpA, fpB := bytes.Repeat([]byte{0xa}, 32), bytes.Repeat([]byte{0xb}, 32)
	pk := func(e EpochSecret, fp []byte) string {
		t.Helper()
		k, err := DeriveGenerationKey(s, &e, fp)
		if err != nil {
			t.Fatal(err)
		}
		if k.Epoch() != e.Epoch {
			t.Errorf("key of epoch %s, want %s", k.Epoch(), e.Epoch)
		}
		return hex.EncodeToString(k.PublicKey())
	}
	a0, b0, a1 := pk(e0, fpA), pk(e0, fpB), pk(e1, fpA)
	if a0 == b0 || a0 == a1 || b0 == a1 {
		t.Fatalf("keys repeat across generations or epochs: %s %s %s", a0, b0, a1)
	}
	if pk(e0, fpA) != a0 {
		t.Fatal("the same inputs give another key")
	}
	const want = "82e612f54f9361bde21517f825530662688bf2c3218258499f776f619f2ed36a"
	if a0 != want {
		t.Errorf("public key %s, want %s", a0, want)
	}
}

// TestRatchetIsHKDF checks the origin and a step against RFC 5869 written
// out with HMAC-SHA256: PRK = HMAC(salt, ikm), OKM = HMAC(PRK, info || 1).
func TestRatchetIsHKDF(t *testing.T) {
	hkdf := func(ikm []byte, info string) []byte {
		m := hmac.New(sha256.New, []byte("psimatch ratchet v1"))
		m.Write(ikm)
		prk := m.Sum(nil)
		m = hmac.New(sha256.New, prk)
		m.Write([]byte(info))
		m.Write([]byte{1})
		return m.Sum(nil)
	}
	seed := bytes.Repeat([]byte{3}, SeedSize)
	o, _ := RatchetOrigin(seed, "E0")
	if want := hkdf(seed, "psimatch ratchet origin E0"); !bytes.Equal(o.Secret[:], want) {
		t.Fatalf("origin %x, want %x", o.Secret, want)
	}
	n, _ := o.Next("E1")
	if want := hkdf(o.Secret[:], "psimatch ratchet step E1"); !bytes.Equal(n.Secret[:], want) || n.Epoch != "E1" {
		t.Fatalf("step %x, want %x", n.Secret, want)
	}
}
