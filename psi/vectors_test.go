package psi

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/oprf"
)

// testdata/rfc9497.json.gz holds the test vectors of RFC 9497 Appendix A,
// as shipped by github.com/cloudflare/circl (oprf/testdata/rfc9497.json.gz),
// taken from https://www.rfc-editor.org/rfc/rfc9497#appendix-A.
type rfcVector struct {
	Identifier string     `json:"identifier"`
	Mode       oprf.Mode  `json:"mode"`
	SkSm       hexBytes   `json:"skSm"`
	PkSm       hexBytes   `json:"pkSm"`
	Seed       hexBytes   `json:"seed"`
	KeyInfo    hexBytes   `json:"keyInfo"`
	Vectors    []rfcEntry `json:"vectors"`
}

type rfcEntry struct {
	Batch             int     `json:"Batch"`
	Blind             hexList `json:"Blind"`
	BlindedElement    hexList `json:"BlindedElement"`
	EvaluationElement hexList `json:"EvaluationElement"`
	Input             hexList `json:"Input"`
	Output            hexList `json:"Output"`
}

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

type hexList [][]byte

func (h *hexList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	for _, part := range strings.Split(s, ",") {
		v, err := hex.DecodeString(part)
		if err != nil {
			return err
		}
		*h = append(*h, v)
	}
	return nil
}

func loadVectors(t *testing.T) []rfcVector {
	t.Helper()
	f, err := os.Open("testdata/rfc9497.json.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var vs []rfcVector
	if err := json.NewDecoder(z).Decode(&vs); err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestRFC9497Vectors runs the RFC's base and verifiable vectors for our two
// suites through psimatch's own key derivation, blinding, evaluation and
// finalization (not circl's client), so the members-mode path is RFC 9497.
func TestRFC9497Vectors(t *testing.T) {
	ran := 0
	for _, v := range loadVectors(t) {
		var name string
		switch v.Identifier {
		case "ristretto255-SHA512":
			name = "ristretto255"
		case "P256-SHA256":
			name = "p256"
		default:
			continue
		}
		if v.Mode == oprf.PartialObliviousMode {
			continue
		}
		t.Run(v.Identifier+"/"+[]string{"base", "verifiable"}[v.Mode], func(t *testing.T) {
			s, err := SuiteByName(name, v.Mode == oprf.VerifiableMode)
			if err != nil {
				t.Fatal(err)
			}
			sk, err := oprf.DeriveKey(s.OPRF(), v.Mode, v.Seed, v.KeyInfo)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := sk.MarshalBinary()
			if !bytes.Equal(raw, v.SkSm) {
				t.Fatalf("derived key %x, want %x", raw, v.SkSm)
			}
			key := keyFromScalar(t, s, raw)
			if v.Mode == oprf.VerifiableMode && !bytes.Equal(key.PublicKey(), v.PkSm) {
				t.Fatalf("public key %x, want %x", key.PublicKey(), v.PkSm)
			}
			for i, e := range v.Vectors {
				blinds := make([]group.Scalar, e.Batch)
				for j := range blinds {
					blinds[j] = s.g.NewScalar()
					if err := blinds[j].UnmarshalBinary(e.Blind[j]); err != nil {
						t.Fatal(err)
					}
				}
				b, err := NewMembersBlinder(s, key.PublicKey())
				if err != nil {
					t.Fatal(err)
				}
				blinded, err := b.blindWith(e.Batch, func(j int) []byte { return e.Input[j] }, blinds)
				if err != nil {
					t.Fatal(err)
				}
				if want := bytes.Join(e.BlindedElement, nil); !bytes.Equal(blinded, want) {
					t.Fatalf("vector %d: blinded %x, want %x", i, blinded, want)
				}
				ev, err := key.Evaluate(blinded, ModeMembers, 0)
				if err != nil {
					t.Fatal(err)
				}
				if want := bytes.Join(e.EvaluationElement, nil); !bytes.Equal(ev.Elements, want) {
					t.Fatalf("vector %d: evaluated %x, want %x", i, ev.Elements, want)
				}
				out, err := b.Finalize(ev)
				if err != nil {
					t.Fatal(err)
				}
				if want := bytes.Join(e.Output, nil); !bytes.Equal(out, want) {
					t.Fatalf("vector %d: output %x, want %x", i, out, want)
				}
				ran++
			}
		})
	}
	if ran < 8 {
		t.Fatalf("ran %d vectors, want at least 8", ran)
	}
}

func keyFromScalar(t *testing.T, s *Suite, raw []byte) *Key {
	t.Helper()
	k := s.g.NewScalar()
	if err := k.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	sk := new(oprf.PrivateKey)
	if err := sk.UnmarshalBinary(s.OPRF(), raw); err != nil {
		t.Fatal(err)
	}
	key, err := newKey(s, "rfc", sk, k)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
