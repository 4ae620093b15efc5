package psi

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudflare/circl/group"
	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// sessionVectorFile is one whole session, committed for other
// implementations of protocol/README.md to check themselves against: the
// platform's seed and identifiers, its key and both coded sets; the
// advertiser's identifiers, blinds, blinded and evaluated elements, outputs
// and which matched, in members and in count mode. Regenerate with
// PSIMATCH_UPDATE_VECTORS=1 go test -run TestSessionVectors ./psi (only when
// the protocol's version changes).
var sessionVectorFile = filepath.Join("..", "protocol", "testdata", "session-v1.json")

type vectorIdentifier struct {
	Kind       string `json:"kind"`
	Normalized string `json:"normalized"`
	Input      string `json:"input"` // kind byte || SHA-256(normalized), hex
}

type vectorElement struct {
	vectorIdentifier
	Blind     string `json:"blind,omitempty"` // SerializeScalar, hex (members mode)
	Blinded   string `json:"blinded"`
	Evaluated string `json:"evaluated"` // in the order sent (a count-mode server shuffles them)
	Output    string `json:"output"`
	SetValue  string `json:"set_value"` // the output's first set_bits bits, as the 16 bytes of a 128-bit big-endian number
	Matched   bool   `json:"matched"`
}

type sessionVectors struct {
	Comment          string             `json:"comment"`
	Suite            string             `json:"suite"`
	Verifiable       bool               `json:"verifiable"`
	Seed             string             `json:"seed"`
	Epoch            string             `json:"epoch"`
	KeyInfo          string             `json:"key_info"`
	SecretKey        string             `json:"secret_key"`
	PublicKey        string             `json:"public_key"`
	MaxClientRows    uint64             `json:"max_client_rows"`
	Platform         []vectorIdentifier `json:"platform"`
	SetSize          int                `json:"set_size"`
	SetBits          uint               `json:"set_bits"`
	MembersSet       string             `json:"members_set"`
	MembersSetDigest string             `json:"members_set_digest"`
	CountSet         string             `json:"count_set"`
	CountSetDigest   string             `json:"count_set_digest"`
	Members          []vectorElement    `json:"members"`
	CountBlind       string             `json:"count_blind"`
	Count            []vectorElement    `json:"count"`
}

func makeSessionVectors(t *testing.T) *sessionVectors {
	t.Helper()
	s, err := SuiteByName("ristretto255", false)
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	const epoch = "20261201T000000Z"
	key, err := DeriveEpochKey(s, seed, epoch)
	if err != nil {
		t.Fatal(err)
	}
	sk, _ := key.k.MarshalBinary()
	v := &sessionVectors{
		Comment: "psimatch protocol v1, one whole session; see protocol/README.md (Test vectors). Hex throughout.",
		Suite:   s.Name(), Seed: hex.EncodeToString(seed), Epoch: epoch, KeyInfo: "psimatch epoch " + epoch,
		SecretKey: hex.EncodeToString(sk), PublicKey: hex.EncodeToString(key.PublicKey()), MaxClientRows: DefaultMaxClientRows,
	}
	id := func(k ident.Kind, n string) vectorIdentifier {
		in := ident.FromNormalized(k, n)
		return vectorIdentifier{Kind: k.String(), Normalized: n, Input: hex.EncodeToString(in[:])}
	}
	platform := []struct {
		k ident.Kind
		n string
	}{
		{ident.Email, "alice@example.com"}, {ident.Email, "bob.jones@example.org"}, {ident.Email, "alicesmith@gmail.com"},
		{ident.Phone, "+14155550132"}, {ident.Phone, "+442079460018"},
	}
	inputs := make([]ident.Input, len(platform))
	for i, p := range platform {
		v.Platform = append(v.Platform, id(p.k, p.n))
		inputs[i] = ident.FromNormalized(p.k, p.n)
	}
	count, members := make([]Prefix, len(inputs)), make([]Prefix, len(inputs))
	if err := key.evaluateRange(inputs, count, members); err != nil {
		t.Fatal(err)
	}
	sp, err := newSpill(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if err := sp.add(count, members); err != nil {
		t.Fatal(err)
	}
	ps, err := encodeSet(key, sp, DefaultMaxClientRows)
	if err != nil {
		t.Fatal(err)
	}
	v.SetSize, v.SetBits = ps.Size, ps.Bits
	v.MembersSet, v.CountSet = hex.EncodeToString(ps.Members), hex.EncodeToString(ps.Count)
	md, cd := sha256.Sum256(ps.Members[:len(ps.Members)-32]), sha256.Sum256(ps.Count[:len(ps.Count)-32])
	v.MembersSetDigest, v.CountSetDigest = hex.EncodeToString(md[:]), hex.EncodeToString(cd[:])
	membersSet, err := setcodec.Open(ps.Members, uint64(ps.Size))
	if err != nil {
		t.Fatal(err)
	}
	countSet, err := setcodec.Open(ps.Count, uint64(ps.Size))
	if err != nil {
		t.Fatal(err)
	}

	// The advertiser: two of the platform's identifiers and two others.
	list := []struct {
		k ident.Kind
		n string
	}{{ident.Email, "alice@example.com"}, {ident.Email, "carol+list@example.net"}, {ident.Phone, "+442079460018"}, {ident.Phone, "+33123456789"}}
	clientInputs := make([]ident.Input, len(list))
	for i, l := range list {
		clientInputs[i] = ident.FromNormalized(l.k, l.n)
	}
	scalar := func(label string) group.Scalar {
		return s.g.HashToScalar([]byte(label), []byte("psimatch test vectors v1"))
	}
	hexScalar := func(x group.Scalar) string {
		b, _ := x.MarshalBinary()
		return hex.EncodeToString(b)
	}
	size, osize := s.ElementSize(), s.OutputSize()
	element := func(i int, l struct {
		k ident.Kind
		n string
	}, blinded, evaluated, outputs []byte, set *setcodec.Set) vectorElement {
		out := outputs[i*osize : (i+1)*osize]
		val := setcodec.Truncate(out, set.Bits())
		var vb [16]byte
		for j := range 8 {
			vb[j] = byte(val.Hi >> (56 - 8*j))
			vb[8+j] = byte(val.Lo >> (56 - 8*j))
		}
		return vectorElement{
			vectorIdentifier: id(l.k, l.n),
			Blinded:          hex.EncodeToString(blinded[i*size : (i+1)*size]),
			Evaluated:        hex.EncodeToString(evaluated[i*size : (i+1)*size]),
			Output:           hex.EncodeToString(out),
			SetValue:         hex.EncodeToString(vb[:]),
			Matched:          s.Lookup(set, out)[0],
		}
	}

	// Members mode: a blind per element.
	blinds := make([]group.Scalar, len(list))
	for i := range blinds {
		blinds[i] = scalar(fmt.Sprintf("members blind %d", i))
	}
	mb, _ := NewMembersBlinder(s, nil)
	blinded, err := mb.blindWith(len(clientInputs), func(i int) []byte { return clientInputs[i][:] }, blinds)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := key.Evaluate(blinded, ModeMembers, 0)
	if err != nil {
		t.Fatal(err)
	}
	outs, err := mb.Finalize(ev)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range list {
		e := element(i, l, blinded, ev.Elements, outs, membersSet)
		e.Blind = hexScalar(blinds[i])
		v.Members = append(v.Members, e)
	}

	// Count mode: one blind for the batch; the server's shuffle is left out
	// (evaluated is listed in the order sent; a client must not rely on it).
	cb := &CountBlinder{suite: s, r: scalar("count blind")}
	v.CountBlind = hexScalar(cb.r)
	cblinded, err := cb.Blind(clientInputs)
	if err != nil {
		t.Fatal(err)
	}
	cev, err := key.Evaluate(cblinded, ModeMembers, 0) // k·x in order; ModeCount returns the same elements shuffled
	if err != nil {
		t.Fatal(err)
	}
	shuffled, err := key.Evaluate(cblinded, ModeCount, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !samePermutation(cev.Elements, shuffled.Elements, size) {
		t.Fatal("a count-mode evaluation is not a permutation of the ordered one")
	}
	couts, err := cb.Finalize(cev)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range list {
		v.Count = append(v.Count, element(i, l, cblinded, cev.Elements, couts, countSet))
	}
	return v
}

func samePermutation(a, b []byte, size int) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for i := 0; i < len(a); i += size {
		seen[string(a[i:i+size])]++
		seen[string(b[i:i+size])]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestSessionVectors recomputes the committed session from its seed,
// identifiers and blinds, and checks every byte; the matches are the
// planted ones (alice@example.com and +442079460018).
func TestSessionVectors(t *testing.T) {
	got := makeSessionVectors(t)
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if os.Getenv("PSIMATCH_UPDATE_VECTORS") != "" {
		if err := os.WriteFile(sessionVectorFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(sessionVectorFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		var w sessionVectors
		json.Unmarshal(want, &w)
		t.Fatalf("the session no longer reproduces %s:\ngot  %+v\nwant %+v", sessionVectorFile, got, w)
	}
	for _, set := range [][]vectorElement{got.Members, got.Count} {
		for _, e := range set {
			planted := e.Normalized == "alice@example.com" || e.Normalized == "+442079460018"
			if e.Matched != planted {
				t.Errorf("%s %s: matched %v", e.Kind, e.Normalized, e.Matched)
			}
		}
	}
}
