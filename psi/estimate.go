package psi

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/psimatch/psimatch/psi/ident"
	"github.com/psimatch/psimatch/psi/inventory"
	"github.com/psimatch/psimatch/psi/setcodec"
)

// Estimate mode's deniable set (see protocol/README.md, "Estimate mode", for
// the byte-level specification):
//
//   - A long-lived estimate key, derived from the estimate root (itself
//     derived from the master seed) and the parameters' label, never from an
//     epoch or a set generation.
//   - Each eligible value is kept with probability p, decided once by a PRF
//     keyed from the root (HMAC-SHA256), so every build, reload, epoch, restart and
//     replica decides the same.
//   - The set is a bitmap of 2^L bits: the first L bits of each kept value's
//     RFC 9497 output under the estimate key, OR a decoy bitmap in which each
//     bit is set with probability d = 1/4, drawn from an AES-CTR stream keyed
//     from the root, so it too is the same in every build.
//
// A value the platform does not hold as eligible hits with probability D,
// the set's density (D ≥ d); an eligible one with p + (1-p)·D. Both are fixed
// for the life of the key, so asking again gains nothing.

// EstimateDecoy is d, the fraction of the 2^L positions the decoys fill. It
// is fixed (one bit in four), which makes the decoy bitmap the AND of two
// keystream bits and the set code at about 1.6 bytes or less per eligible
// identifier.
const EstimateDecoy = 0.25

// DefaultEstimateEpsilon is the default ε of estimate mode: ln 3, at which
// p = 2/3 and d = 1/4 make both likelihood ratios exactly 3.
const DefaultEstimateEpsilon = 1.0986122886681098 // ln 3

// EstimateHeadroomBits is how many bits L has above log2(eligible/d) when it
// is chosen: 2^L is 8 to 16 times the eligible count, so the set codes in
// 0.9 to 1.7 bytes per eligible identifier, and the eligible set can grow
// threefold or more before kept values fill as much of the space as the
// decoys (which only costs precision: ε holds whatever the growth).
const EstimateHeadroomBits = 1

// Bounds of L for estimate sets.
const (
	MinEstimateBits = 12
	MaxEstimateBits = setcodec.MaxBitmapBits
)

// pBits is the resolution of p: p is a multiple of 2^-pBits, so p·2^64 is
// an exact integer threshold and p travels exactly in JSON.
const pBits = 20

// Errors of estimate mode.
var (
	ErrEstimateEpsilon = errors.New("psi: estimate epsilon must be between 0.05 and 5")
	ErrEstimateBits    = fmt.Errorf("psi: estimate bits must be %d..%d", MinEstimateBits, MaxEstimateBits)
	ErrEstimateParams  = errors.New("psi: estimate parameters are inconsistent")
	ErrEstimateRoot    = errors.New("psi: the estimate root must be 32 bytes")
)

// EstimateParams are the parameters of one estimate key. Changing any of
// them (or the seed) is a re-key: a new OPRF key, new keep decisions and new
// decoys, which spends ε again (see SECURITY.md).
type EstimateParams struct {
	// P is the probability that an eligible value is kept, a multiple of
	// 2^-20.
	P float64
	// D is the decoy fraction, EstimateDecoy.
	D float64
	// Bits is L: positions are the first L bits of the output.
	Bits uint
	// Version numbers re-keys with unchanged parameters (operator action).
	Version uint
}

// NewEstimateParams returns the parameters for a target ε: d = 1/4 and the
// largest p (rounded down to a multiple of 2^-20) with both likelihood
// ratios at most e^ε, that is p = min(1 - e^-ε, d·(e^ε - 1)/(1 - d)). L is
// bits if non-zero, else EstimateBitsFor(eligible).
func NewEstimateParams(epsilon float64, eligible int, bits, version uint) (EstimateParams, error) {
	if !(epsilon >= 0.05 && epsilon <= 5) {
		return EstimateParams{}, ErrEstimateEpsilon
	}
	d := EstimateDecoy
	p := min(1-math.Exp(-epsilon), d*(math.Expm1(epsilon))/(1-d))
	p = math.Floor(math.Ldexp(p, pBits)) / (1 << pBits)
	if bits == 0 {
		bits = EstimateBitsFor(eligible)
	}
	pr := EstimateParams{P: p, D: d, Bits: bits, Version: version}
	return pr, pr.Check()
}

// EstimateBitsFor returns L for an eligible set of n identifiers:
// ceil(log2(n/d)) + EstimateHeadroomBits, within MinEstimateBits..MaxEstimateBits.
func EstimateBitsFor(n int) uint {
	need := uint(bits.Len64(uint64(max(n, 1))*4 - 1)) // ceil(log2(n/d)) for d = 1/4
	return min(max(need+EstimateHeadroomBits, MinEstimateBits), MaxEstimateBits)
}

// Check reports whether the parameters are ones NewEstimateParams can make.
func (pr EstimateParams) Check() error {
	if pr.Bits < MinEstimateBits || pr.Bits > MaxEstimateBits {
		return ErrEstimateBits
	}
	if pr.D != EstimateDecoy || !(pr.P > 0 && pr.P < 1) || math.Ldexp(pr.P, pBits) != math.Floor(math.Ldexp(pr.P, pBits)) {
		return fmt.Errorf("%w: p = %v, d = %v", ErrEstimateParams, pr.P, pr.D)
	}
	return nil
}

// Epsilon returns the parameters' ε: EstimateEpsilon(P, D).
func (pr EstimateParams) Epsilon() float64 { return EstimateEpsilon(pr.P, pr.D) }

// EstimateEpsilon is the per-identifier ε of keep probability p and decoy
// fraction d: max(ln((p + (1-p)·d)/d), ln(1/(1-p))), the larger log
// likelihood ratio of a hit and of a miss between an eligible value and one
// the platform does not hold. A denser set (D > d) only lowers the first.
func EstimateEpsilon(p, d float64) float64 {
	return max(math.Log((p+(1-p)*d)/d), -math.Log1p(-p))
}

// Label names the estimate key: every secret of estimate mode is derived
// from the seed and this string, so a change of any parameter is a re-key.
func (pr EstimateParams) Label() string {
	return fmt.Sprintf("v1 version=%d L=%d p=%d/2^%d d=1/4", pr.Version, pr.Bits, int64(math.Ldexp(pr.P, pBits)), pBits)
}

// EstimateKey is the platform's long-lived estimate key: the OPRF key that
// estimate sessions are evaluated under, and the keys of the keep decision
// and of the decoys. It is safe for concurrent use.
type EstimateKey struct {
	key     *Key
	params  EstimateParams
	keepKey []byte
	decoy   []byte
	// position returns the position of an input; nil for the OPRF (tests
	// put a cheaper function here to simulate many sets quickly).
	position func(in ident.Input) uint64
}

// EstimateRootSize is the length of the estimate root.
const EstimateRootSize = 32

// EstimateRoot returns the estimate root of a master seed:
// HMAC-SHA256(seed, "psimatch estimate root v1"). Every secret of estimate
// mode derives from it. It is long-lived by design (estimate mode's
// randomness must be permanent), so a server keeps it when the seed itself
// is erased (the epoch keys' ratchet no longer needs the seed).
func EstimateRoot(seed []byte) ([]byte, error) {
	if len(seed) != SeedSize {
		return nil, ErrSeedSize
	}
	return seedMAC(seed, "psimatch estimate root v1"), nil
}

// DeriveEstimateKey derives the estimate key of pr from the estimate root
// (EstimateRoot): the OPRF key oprf.DeriveKey(suite, mode, root,
// "psimatch estimate key " + label), the keep key HMAC-SHA256(root,
// "psimatch estimate keep " + label) and the decoy key HMAC-SHA256(root,
// "psimatch estimate decoys " + label).
func DeriveEstimateKey(s *Suite, root []byte, pr EstimateParams) (*EstimateKey, error) {
	if len(root) != EstimateRootSize {
		return nil, ErrEstimateRoot
	}
	if err := pr.Check(); err != nil {
		return nil, err
	}
	label := pr.Label()
	key, err := deriveKey(s, root, "psimatch estimate key "+label, "estimate", "the estimate key")
	if err != nil {
		return nil, err
	}
	return &EstimateKey{
		key: key, params: pr,
		keepKey: seedMAC(root, "psimatch estimate keep "+label),
		decoy:   seedMAC(root, "psimatch estimate decoys "+label),
	}, nil
}

func seedMAC(seed []byte, info string) []byte {
	m := hmac.New(sha256.New, seed)
	m.Write([]byte(info))
	return m.Sum(nil)
}

// Key returns the OPRF key estimate sessions are evaluated under.
func (k *EstimateKey) Key() *Key { return k.key }

// Params returns the key's parameters.
func (k *EstimateKey) Params() EstimateParams { return k.params }

// keepMAC returns HMAC-SHA256(keep key, input).
func (k *EstimateKey) keepMAC(m hashMAC, in ident.Input) [32]byte {
	m.Reset()
	m.Write(in[:])
	var out [32]byte
	m.Sum(out[:0])
	return out
}

type hashMAC = interface {
	Reset()
	Write([]byte) (int, error)
	Sum([]byte) []byte
}

// keepThreshold is p·2^64.
func (k *EstimateKey) keepThreshold() uint64 {
	return uint64(math.Ldexp(k.params.P, pBits)) << (64 - pBits)
}

// Keep reports whether the estimate set keeps input: whether the first 8
// bytes of HMAC-SHA256(keep key, input), big-endian, are below p·2^64.
func (k *EstimateKey) Keep(in ident.Input) bool {
	h := k.keepMAC(hmac.New(sha256.New, k.keepKey), in)
	return binary.BigEndian.Uint64(h[:8]) < k.keepThreshold()
}

// Decoys returns the decoy bitmap of 2^L bits (setcodec.BitmapHas reads
// it): with K the AES-256-CTR keystream of the decoy key from a zero
// counter block, and w_j its j-th big-endian 64-bit word, word i of the
// bitmap is w_2i AND w_2i+1, so each bit is set with probability 1/4.
func (k *EstimateKey) Decoys() []uint64 {
	words := setcodec.BitmapWords(k.params.Bits)
	block, err := aes.NewCipher(k.decoy)
	if err != nil {
		panic("psi: AES-256 of a 32-byte key: " + err.Error()) // cannot happen
	}
	ctr := cipher.NewCTR(block, make([]byte, aes.BlockSize))
	bm := make([]uint64, words)
	buf := make([]byte, 16<<10)
	for i := 0; i < words; {
		n := min(len(buf)/16, words-i)
		b := buf[:16*n]
		clear(b)
		ctr.XORKeyStream(b, b)
		for j := range n {
			bm[i+j] = binary.BigEndian.Uint64(b[16*j:]) & binary.BigEndian.Uint64(b[16*j+8:])
		}
		i += n
	}
	return bm
}

// Position returns the position of input in the L-bit space: the first L
// bits (big-endian) of its RFC 9497 output under the estimate key. A client
// gets the same from the members flow; this is the platform's direct
// evaluation.
func (k *EstimateKey) Position(in ident.Input) uint64 {
	if k.position != nil {
		return k.position(in)
	}
	s := k.key.suite
	e := s.g.NewElement().Mul(s.hashToGroup(in[:]), k.key.k)
	enc, err := e.MarshalBinaryCompress()
	if err != nil {
		panic("psi: encoding an evaluated element: " + err.Error()) // a valid element always encodes
	}
	return EstimatePosition(s.finalize(s.newHash(), in[:], enc), k.params.Bits)
}

// EstimatePosition returns the position of an RFC 9497 output: its first
// bits bits, big-endian.
func EstimatePosition(output []byte, bits uint) uint64 {
	return binary.BigEndian.Uint64(output[:8]) >> (64 - bits)
}

// EstimateCache remembers, from one build of an estimate set to the next,
// the positions of the kept values, so that a reload or a rotation
// evaluates only values it has not seen kept before: the estimate key never
// changes, so neither do those positions. Entries are keyed by bytes 8..23
// of the keep MAC, a pseudonym that needs the seed to link to a value. A
// cache holds only the values kept in its build, so a value that left the
// inventory leaves the cache too.
type EstimateCache struct {
	label   string
	entries []estimateEntry // sorted by id
}

type estimateEntry struct {
	id  [16]byte
	pos uint64
}

// Len returns the number of cached positions.
func (c *EstimateCache) Len() int {
	if c == nil {
		return 0
	}
	return len(c.entries)
}

func (c *EstimateCache) lookup(id [16]byte) (uint64, bool) {
	i, ok := slices.BinarySearchFunc(c.entries, id, func(e estimateEntry, id [16]byte) int { return bytes.Compare(e.id[:], id[:]) })
	if !ok {
		return 0, false
	}
	return c.entries[i].pos, true
}

// MarshalBinary encodes the cache: the label's length (2 bytes) and bytes,
// then 24 bytes per entry (16 of pseudonym, 8 of position), sorted.
func (c *EstimateCache) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 2+len(c.label)+24*len(c.entries))
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.label)))
	b = append(b, c.label...)
	for _, e := range c.entries {
		b = append(b, e.id[:]...)
		b = binary.BigEndian.AppendUint64(b, e.pos)
	}
	return b, nil
}

// ErrEstimateCache is returned for a cache that does not decode or does not
// belong to the key.
var ErrEstimateCache = errors.New("psi: the estimate cache is corrupt or of another key")

// UnmarshalEstimateCache decodes a cache made under k (by label); entries
// must be strictly sorted and positions below 2^L.
func (k *EstimateKey) UnmarshalEstimateCache(b []byte) (*EstimateCache, error) {
	if len(b) < 2 {
		return nil, ErrEstimateCache
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < n || string(b[:n]) != k.params.Label() || (len(b)-n)%24 != 0 {
		return nil, ErrEstimateCache
	}
	b = b[n:]
	c := &EstimateCache{label: k.params.Label(), entries: make([]estimateEntry, len(b)/24)}
	for i := range c.entries {
		e := &c.entries[i]
		copy(e.id[:], b[24*i:])
		e.pos = binary.BigEndian.Uint64(b[24*i+16:])
		if e.pos>>k.params.Bits != 0 || i > 0 && bytes.Compare(c.entries[i-1].id[:], e.id[:]) >= 0 {
			return nil, ErrEstimateCache
		}
	}
	return c, nil
}

// EstimateSet is one build of the deniable set.
type EstimateSet struct {
	Params    EstimateParams
	Eligible  int    // eligible identifiers seen
	Kept      int    // of which kept
	Evaluated int    // kept ones evaluated in this build (the rest came from the cache)
	Coded     []byte // the setcodec encoding of the bitmap
	Ones      uint64 // values in the coded set
	// Cache is what the next build starts from.
	Cache *EstimateCache
}

// Density returns the set's density D: Ones / 2^L, the probability that a
// value the platform does not hold hits.
func (e *EstimateSet) Density() float64 {
	return float64(e.Ones) / math.Ldexp(1, int(e.Params.Bits))
}

// EstimateBuilder builds an estimate set from the policy filter's stream:
// Add each eligible identifier (from one goroutine), then Finish.
type EstimateBuilder struct {
	key      *EstimateKey
	prev     *EstimateCache
	mac      hashMAC
	thresh   uint64
	eligible int
	known    []estimateEntry // kept, position from the cache
	pending  []ident.Input   // kept, to evaluate
	pendIDs  [][16]byte
}

// NewBuilder starts a build. prev is the previous build's cache (nil for
// none); a cache of another key is ignored.
func (k *EstimateKey) NewBuilder(prev *EstimateCache) *EstimateBuilder {
	if prev != nil && prev.label != k.params.Label() {
		prev = nil
	}
	return &EstimateBuilder{key: k, prev: prev, mac: hmac.New(sha256.New, k.keepKey), thresh: k.keepThreshold()}
}

// Add takes one eligible identifier: it makes the keep decision and, for a
// kept one, takes its position from the cache or queues it for
// evaluation. Like BuildSet, it accepts inventory.Eligible and nothing else.
func (b *EstimateBuilder) Add(e inventory.Eligible) {
	in := e.Input()
	b.eligible++
	h := b.key.keepMAC(b.mac, in)
	if binary.BigEndian.Uint64(h[:8]) >= b.thresh {
		return
	}
	id := [16]byte(h[8:24])
	if b.prev != nil {
		if pos, ok := b.prev.lookup(id); ok {
			b.known = append(b.known, estimateEntry{id, pos})
			return
		}
	}
	b.pending = append(b.pending, in)
	b.pendIDs = append(b.pendIDs, id)
}

// Finish evaluates the kept identifiers not in the cache (on every core),
// sets their positions over the decoys and codes the bitmap.
func (b *EstimateBuilder) Finish(ctx context.Context) (*EstimateSet, error) {
	k := b.key
	fresh := make([]estimateEntry, len(b.pending))
	err := parallel(len(b.pending), chunkSize, func(lo, hi int) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		for i := lo; i < hi; i++ {
			fresh[i] = estimateEntry{b.pendIDs[i], k.Position(b.pending[i])}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	entries := append(b.known, fresh...)
	bm := k.Decoys()
	for _, e := range entries {
		setcodec.BitmapSet(bm, e.pos)
	}
	var ones uint64
	for _, x := range bm {
		ones += uint64(bits.OnesCount64(x))
	}
	coded, err := setcodec.EncodeBitmap(bm, k.params.Bits)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(entries, func(a, b estimateEntry) int { return bytes.Compare(a.id[:], b.id[:]) })
	entries = slices.CompactFunc(entries, func(a, b estimateEntry) bool { return a.id == b.id })
	return &EstimateSet{
		Params: k.params, Eligible: b.eligible, Kept: len(entries), Evaluated: len(fresh),
		Coded: coded, Ones: ones, Cache: &EstimateCache{label: k.params.Label(), entries: entries},
	}, nil
}
